"""Memory of evaluation does not grow with the number of importance samples: measured as the peak
resident set size of a fresh process (torch's CPU allocations are invisible to tracemalloc),
with generous margins."""

from __future__ import annotations

import pytest

from tests.helpers import added_mb

TINY = """
class Decoder(nn.Module):  # x = W z + b: a decoder so cheap that the log-weights are what costs memory
    latent_dim, output_shape = 2, (4,)
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 4)
    def forward(self, z, c=None):
        return self.linear(z)

torch.manual_seed(0)
model = gv.VAE(gv.encoders.MLPEncoder((4,), hidden=(8,)), Decoder(), 2, likelihood=gv.likelihoods.Gaussian(0.5))
x = torch.randn(100, 4)
"""


def test_nll_memory_does_not_grow_with_k() -> None:
    """100 images, k = 100,000: the (images, k) log-weights alone would be 40 MB (the two-pass
    estimator added 116 MB here); streamed, the peak stays at one chunk's worth (0 MB added)."""
    grown = added_mb(TINY, "gv.evaluation.nll(model, x, k=2000, chunk=20_000)",
                     "gv.evaluation.nll(model, x, k=100_000, chunk=20_000)")  # fmt: skip
    assert grown < 30


@pytest.mark.slow
def test_a_million_samples_on_one_image_add_under_300_mb() -> None:
    setup = "torch.manual_seed(0)\nmodel, x = gv.presets.seed_vae(), torch.rand(1, 1, 28, 28)"
    grown = added_mb(setup, "gv.evaluation.nll(model, x, k=10)", "gv.evaluation.nll(model, x, k=1_000_000)")
    assert grown < 300
