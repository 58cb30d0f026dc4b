"""Samplers saved with gv.save and loaded with gv.load, as models are: the model and the fitted
state in one folder, the same log-probabilities and, from one seed, the same samples after the
round trip; an unfitted sampler stays unfitted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.samplers import CodeSampler, GaussianMixtureSampler, PriorSampler
from genvae.vqvae import VQVAE
from tests.helpers import tiny_data, tiny_vae

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 6, 6)


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(7)


def tiny_vq(num_classes: int | None = None, dtype: torch.dtype = torch.float32) -> VQVAE:
    return VQVAE("mlp", "mlp", codebook_size=4, code_dim=2, grid=3, num_classes=num_classes).to(dtype)


@pytest.mark.parametrize("num_classes", [None, 2])
def test_a_fitted_code_sampler_round_trips(tmp_path: Path, num_classes: int | None) -> None:
    sampler = CodeSampler(tiny_vq(num_classes), width=8, layers=1, heads=2, lr=1e-2)
    codes = torch.tensor([[0, 1, 2], [3, 3, 0]] * 8)
    y = torch.tensor([0, 1] * 8) if num_classes else None
    sampler.fit_codes(codes, y, epochs=2, batch_size=4)
    gv.save(sampler, tmp_path)
    again = gv.load(tmp_path)
    assert isinstance(again, CodeSampler) and again.fitted
    assert json.loads((tmp_path / "model.json").read_text())["model"]["genvae"] == "samplers/code"
    labels = {} if num_classes is None else {"y": torch.tensor([0, 1] * 8)}
    assert torch.equal(again.log_prob(codes, **labels), sampler.log_prob(codes, **labels))
    draw = {} if num_classes is None else {"y": 1}
    assert torch.equal(
        again.sample_latent(6, **draw, generator=seeded()), sampler.sample_latent(6, **draw, generator=seeded())
    )
    assert torch.equal(again.sample(3, **draw, generator=seeded()), sampler.sample(3, **draw, generator=seeded()))
    assert (again.width, again.layers, again.heads, again.lr) == (8, 1, 2, 1e-2)


def test_an_unfitted_code_sampler_loads_unfitted(tmp_path: Path) -> None:
    gv.save(CodeSampler(tiny_vq(), width=8, layers=1, heads=2), tmp_path)
    again = gv.load(tmp_path)
    assert not again.fitted
    with pytest.raises(RuntimeError, match=r"^CodeSampler: call fit\(data\) before sampling$"):
        again.sample(1)


def test_a_code_sampler_of_a_float64_model_round_trips_in_float64(tmp_path: Path) -> None:
    # the prior was float32 whatever the model: a conditional float64 VQ-VAE failed in its first layer
    sampler = CodeSampler(tiny_vq(2, torch.float64), width=8, layers=1, heads=2)
    sampler.fit_codes(torch.tensor([[0, 1, 2]] * 4), torch.tensor([0, 1, 0, 1]), epochs=1)
    assert {p.dtype for p in sampler.prior.parameters()} == {torch.float64}
    assert sampler.sample(2, 1).dtype == torch.float64
    gv.save(sampler, tmp_path)
    again = gv.load(tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["dtype"] == "float64"
    assert torch.equal(again.sample_latent(4, 0, generator=seeded()), sampler.sample_latent(4, 0, generator=seeded()))


@pytest.mark.parametrize("conditional", [False, True])
def test_a_fitted_gmm_sampler_round_trips(tmp_path: Path, conditional: bool) -> None:
    model = tiny_vae(latent=3, conditional=conditional)
    x, y = tiny_data(40, SHAPE)
    keep = y != 1 if conditional else torch.ones_like(y, dtype=torch.bool)  # class 1 has no inputs
    data = (x[keep], y[keep]) if conditional else x
    sampler = GaussianMixtureSampler(model, components=20, covariance="diag", seed=3).fit(data, progress=False)
    gv.save(sampler, tmp_path)
    again = gv.load(tmp_path)
    assert isinstance(again, GaussianMixtureSampler) and again.fitted
    assert (again.components, again.covariance, again.seed) == (20, "diag", 3)
    assert len(again.mixtures) == len(sampler.mixtures)
    z = torch.randn(5, 3, dtype=torch.float64)
    for a, b in zip(again.mixtures, sampler.mixtures, strict=True):
        assert (a is None) == (b is None)
        if a is not None and b is not None:
            assert torch.equal(a.log_prob(z), b.log_prob(z))
            assert (a.log_likelihood, a.iterations, a.converged) == (b.log_likelihood, b.iterations, b.converged)
    draw = {"y": torch.tensor([0, 2, 2, 0])} if conditional else {}
    assert torch.equal(
        again.sample_latent(4, **draw, generator=seeded()), sampler.sample_latent(4, **draw, generator=seeded())
    )
    assert torch.equal(again.sample(4, **draw, generator=seeded()), sampler.sample(4, **draw, generator=seeded()))


def test_the_gmm_mixtures_stay_float64_on_the_cpu_when_the_model_moves(tmp_path: Path) -> None:
    sampler = GaussianMixtureSampler(tiny_vae(latent=2), components=2).fit(tiny_data(20, SHAPE)[0], progress=False)
    sampler.double()
    assert sampler.model.dtype == torch.float64
    assert sampler.mixtures[0] is not None and sampler.mixtures[0].means.dtype == torch.float64
    assert sampler.sample_latent(3).dtype == torch.float64
    gv.save(sampler, tmp_path)  # one dtype: the model's; the mixtures keep theirs
    assert json.loads((tmp_path / "model.json").read_text())["dtype"] == "float64"
    assert gv.load(tmp_path).model.dtype == torch.float64


def test_an_unfitted_gmm_sampler_loads_unfitted(tmp_path: Path) -> None:
    gv.save(GaussianMixtureSampler(tiny_vae(latent=2), components=2), tmp_path)
    again = gv.load(tmp_path)
    assert not again.fitted and again.mixtures == []


def test_a_prior_sampler_round_trips(tmp_path: Path) -> None:
    sampler = PriorSampler(tiny_vae(latent=2))
    gv.save(sampler, tmp_path)
    again = gv.load(tmp_path)
    assert isinstance(again, PriorSampler)
    assert torch.equal(again.sample(3, generator=seeded()), sampler.sample(3, generator=seeded()))


def test_hand_set_mixtures_that_do_not_fit_the_sampler_are_refused() -> None:
    sampler = GaussianMixtureSampler(tiny_vae(latent=2), components=2)
    eye = torch.eye(2, dtype=torch.float64).unsqueeze(0)
    one = gv.samplers.GaussianMixture(torch.ones(1, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64), eye)
    with pytest.raises(ValueError, match=r"^mixtures: expected 1 mixture \(the model is unconditional\), got 2$"):
        sampler.mixtures = [one, one]
    three = gv.samplers.GaussianMixture(torch.ones(3) / 3, torch.zeros(3, 2), eye.repeat(3, 1, 1))
    with pytest.raises(
        ValueError, match=r"^mixtures\[0\]: expected at most components=2 components of dim 2, got 3 of dim 2$"
    ):
        sampler.mixtures = [three]
    sampler.mixtures = [one]
    assert sampler.fitted and torch.equal(sampler.mixtures[0].means, one.means)  # type: ignore[union-attr]
