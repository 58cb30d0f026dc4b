"""CodeSampler: a learned autoregressive prior over a VQ-VAE's code maps."""

from __future__ import annotations

import itertools

import pytest
import torch

import genvae as gv
from genvae.samplers.code import CodeSampler
from genvae.vqvae import VQVAE

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(codebook_size: int = 4, grid: int = 3, num_classes: int | None = None) -> VQVAE:
    """A VQ-VAE on 28×28 images (the MLP parts' default shape) with ``grid`` codes."""
    return VQVAE("mlp", "mlp", codebook_size=codebook_size, code_dim=2, grid=grid, num_classes=num_classes)


def test_log_prob_is_normalised_over_every_code_map() -> None:
    model = tiny(codebook_size=2, grid=2)
    sampler = CodeSampler(model, width=8, layers=1, heads=2)
    maps = torch.tensor(list(itertools.product(range(2), repeat=2)))  # the 4 maps of 2 codes
    sampler.fit_codes(torch.tensor([[0, 1], [0, 1], [1, 1]]), epochs=3, batch_size=2)
    assert float(sampler.log_prob(maps).exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_log_prob_is_normalised_given_a_label() -> None:
    model = tiny(codebook_size=3, grid=2, num_classes=2)
    sampler = CodeSampler(model, width=8, layers=1, heads=2)
    sampler.fit_codes(torch.tensor([[0, 1], [2, 1]]), torch.tensor([0, 1]), epochs=1)
    maps = torch.tensor(list(itertools.product(range(3), repeat=2)))
    for label in (0, 1):
        assert float(sampler.log_prob(maps, label).exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_a_fixed_code_pattern_is_reproduced() -> None:
    model = tiny(codebook_size=5, grid=4)
    pattern = torch.tensor([3, 0, 4, 1])
    sampler = CodeSampler(model, width=16, layers=1, heads=2, lr=1e-2)
    sampler.fit_codes(pattern.repeat(64, 1), epochs=10, batch_size=32)
    drawn = sampler.sample_latent(20, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (20, 4) and drawn.dtype == torch.long
    assert (drawn == pattern).all(1).float().mean() >= 0.95


def test_fit_on_images_learns_their_codes() -> None:
    model = tiny(codebook_size=6, grid=3)
    x = torch.rand(1, 1, 28, 28).repeat(40, 1, 1, 1)  # one image: one code map
    sampler = CodeSampler(model, width=16, layers=1, heads=2, lr=1e-2).fit(x, epochs=10, batch_size=20)
    drawn = sampler.sample_latent(10, generator=torch.Generator().manual_seed(1))
    assert (drawn == model.codes(x[:1])).all(1).float().mean() >= 0.9
    images = sampler.sample(3)
    assert images.shape == (3, 1, 28, 28) and bool(((images >= 0) & (images <= 1)).all())


def test_a_conditional_prior_learns_a_pattern_per_label() -> None:
    model = tiny(codebook_size=4, grid=3, num_classes=2)
    codes = torch.tensor([[0, 1, 2]] * 32 + [[3, 3, 0]] * 32)
    labels = torch.tensor([0] * 32 + [1] * 32)
    sampler = CodeSampler(model, width=16, layers=1, heads=2, lr=1e-2).fit_codes(
        codes, labels, epochs=10, batch_size=16
    )
    gen = torch.Generator().manual_seed(2)
    assert (sampler.sample_latent(10, 0, generator=gen) == torch.tensor([0, 1, 2])).all(1).float().mean() >= 0.9
    assert (sampler.sample_latent(10, 1, generator=gen) == torch.tensor([3, 3, 0])).all(1).float().mean() >= 0.9
    assert sampler.sample(4, torch.tensor([0, 1, 0, 1])).shape == (4, 1, 28, 28)
    with pytest.raises(ValueError, match="y: expected labels"):
        sampler.sample_latent(2)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_one_step_with_the_cache_gives_the_full_pass_logits(num_classes: int | None) -> None:
    model = tiny(codebook_size=5, grid=6, num_classes=num_classes)
    prior = CodeSampler(model, width=16, layers=3, heads=4).prior.eval()
    torch.manual_seed(0)
    for p in prior.parameters():  # away from the initial values (zero positions, unit norms)
        torch.nn.init.normal_(p, std=0.3)
    codes = torch.randint(0, 5, (7, 6))
    c = model.condition(torch.arange(7) % 3, 7) if num_classes else None
    full = prior(codes, c)
    cache: list[torch.Tensor] = []
    token = torch.full((7,), 5)  # the start token
    for position in range(6):
        torch.testing.assert_close(prior.step(token, position, c, cache), full[:, position], atol=1e-5, rtol=1e-5)
        token = codes[:, position]


def test_drawn_maps_follow_the_prior_log_prob() -> None:
    model = tiny(codebook_size=2, grid=2)
    sampler = CodeSampler(model, width=8, layers=2, heads=2, lr=5e-2)
    sampler.fit_codes(torch.tensor([[0, 1]] * 6 + [[1, 1]] * 3 + [[1, 0]]), epochs=5, batch_size=4)
    maps = torch.tensor(list(itertools.product(range(2), repeat=2)))
    expected = sampler.log_prob(maps).exp()
    drawn = sampler.sample_latent(20_000, generator=torch.Generator().manual_seed(4)).reshape(-1, 2)
    observed = torch.stack([(drawn == m).all(1).float().mean() for m in maps])
    # four frequencies of 20,000 draws: standard error under 0.004
    torch.testing.assert_close(observed, expected, atol=0.015, rtol=0)


def test_samples_follow_the_generator() -> None:
    sampler = CodeSampler(tiny(), width=8, layers=1, heads=2).fit_codes(torch.tensor([[0, 1, 2]]), epochs=1)
    a = sampler.sample_latent(5, generator=torch.Generator().manual_seed(3))
    b = sampler.sample_latent(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_a_grid_model_samples_code_maps() -> None:
    model = gv.presets.seed_vqvae(codebook_size=8, code_dim=2)
    sampler = CodeSampler(model, width=8, layers=1, heads=2).fit(torch.rand(4, 1, 28, 28), epochs=1)
    assert sampler.sample_latent(2).shape == (2, 7, 7)
    assert sampler.sample(2).shape == (2, 1, 28, 28)


def test_bad_arguments_are_named() -> None:
    with pytest.raises(TypeError, match="model: expected a VQVAE"):
        CodeSampler(gv.presets.seed_vae())  # type: ignore[arg-type]
    sampler = CodeSampler(tiny(), width=8, layers=1, heads=2)
    with pytest.raises(ValueError, match="epochs"):
        sampler.fit(torch.rand(4, 1, 28, 28), epochs=0)
    with pytest.raises(RuntimeError, match=r"^CodeSampler: call fit\(data\) before sampling$"):
        sampler.sample(2)
    with pytest.raises(ValueError, match="n"):
        sampler.sample_latent(0)
    with pytest.raises(ValueError, match="codes"):
        sampler.log_prob(torch.full((1, 3), 4))
    with pytest.raises(ValueError, match="data: expected labels"):
        CodeSampler(tiny(num_classes=2), width=8, layers=1, heads=2).fit(torch.rand(4, 1, 28, 28))
    with pytest.raises(ValueError, match=r"^heads: expected a divisor of width \(10\), got 4$"):
        CodeSampler(tiny(), width=10, heads=4)


def test_sizes_beyond_the_memory_are_refused_before_allocating() -> None:
    with pytest.raises(ValueError, match=r"^width: expected at most [\d,]+ float32 parameters of the code prior"):
        CodeSampler(tiny(), width=2**40, heads=1)
    with pytest.raises(ValueError, match=r"^layers: expected at most [\d,]+ float32 parameters of the code prior"):
        CodeSampler(tiny(), width=8, layers=10**12, heads=1)  # names the count that blows it, not width
    sampler = CodeSampler(tiny(), width=8, layers=1, heads=2).fit_codes(torch.tensor([[0, 1, 2]]), epochs=1)
    with pytest.raises(ValueError, match=r"^n: expected at most [\d,]+ code maps of 3 int64 in all"):
        sampler.sample_latent(10**15)
    with pytest.raises(ValueError, match=r"^n: expected at most [\d,]+ samples of 1×28×28 float32 in all"):
        sampler.sample(10**15)


def test_progress_shows_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    CodeSampler(tiny(), width=8, layers=1, heads=2).fit(torch.rand(8, 1, 28, 28), epochs=1, progress=True)
    assert "code prior" in capsys.readouterr().err


def test_log_prob_before_fit_is_an_error_naming_fit() -> None:
    # it returned the log-probabilities of the untrained prior's random weights
    sampler = CodeSampler(tiny(), width=8, layers=1, heads=2)
    with pytest.raises(RuntimeError, match=r"^CodeSampler: call fit\(data\) before log_prob$"):
        sampler.log_prob(torch.zeros(2, 3, dtype=torch.long))
    sampler.fit_codes(torch.tensor([[0, 1, 2]]), epochs=1)
    assert sampler.log_prob(torch.zeros(2, 3, dtype=torch.long)).shape == (2,)


def test_the_repr_says_whether_the_sampler_is_fitted() -> None:
    sampler = CodeSampler(tiny(), width=8, layers=1, heads=2)
    assert repr(sampler) == "CodeSampler(VQVAE, width=8, layers=1, heads=2, fitted=False)"
    sampler.fit_codes(torch.tensor([[0, 1, 2]]), epochs=1)
    assert repr(sampler) == "CodeSampler(VQVAE, width=8, layers=1, heads=2, fitted=True)"
