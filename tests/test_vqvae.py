"""The VQ-VAE: its codebook (lookup, losses, EMA, restarts), the model, its objective and save/load."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.quantizers import VectorQuantizer, perplexity
from genvae.vqvae import VQVAE, VQObjective, VQOutput, seed_cvqvae, seed_vqvae

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 8, 8)


def tiny_conv(num_classes: int | None = None, conditioner: str = "split", **options: object) -> VQVAE:
    """A VQ-VAE on 8×8 images with a 2×2 map of codes (two stride-2 convolutions)."""
    cond = {"condition_dim": num_classes, "conditioner": conditioner} if num_classes else {}
    enc = gv.encoders.ConvEncoder(1, 8, channels=(4, 6), hidden=(), **cond)
    dec = gv.decoders.ConvDecoder(3 * 4, 1, 8, channels=(6, 4), **cond)
    return VQVAE(enc, dec, codebook_size=5, code_dim=3, grid=(2, 2), num_classes=num_classes, **options)  # type: ignore[arg-type]


def tiny_mlp(**options: object) -> VQVAE:
    """A VQ-VAE on 8×8 images with 3 codes from an MLP encoder."""
    return VQVAE("mlp", "mlp", codebook_size=6, code_dim=2, grid=3, **options)  # type: ignore[arg-type]


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


def mlp_images(n: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28)


# -- the codebook --------------------------------------------------------------------------------


def test_lookup_picks_the_nearest_code() -> None:
    vq = VectorQuantizer(3, 2).eval()
    vq.embedding.data = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 5.0]])
    z = torch.tensor([[[0.1, 0.2], [0.9, -0.3], [0.0, 3.0], [0.4, 0.0]]])
    assert vq.lookup(z).tolist() == [[0, 1, 2, 0]]


def test_losses_equal_their_definitions_on_a_hand_made_case() -> None:
    vq = VectorQuantizer(2, 2).eval()
    vq.embedding.data = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    z = torch.tensor([[1.0, 0.5], [2.0, 3.0]], requires_grad=True)
    out = vq(z)
    assert out.codes.tolist() == [0, 1]
    # ‖z − e‖²: (1² + 0.5²) and (0² + 1²)
    assert torch.allclose(out.codebook, torch.tensor([1.25, 1.0]))
    assert torch.allclose(out.commitment, torch.tensor([1.25, 1.0]))
    out.commitment.sum().backward()
    assert torch.allclose(z.grad, 2 * (z - torch.tensor([[0.0, 0.0], [2.0, 2.0]])).detach())  # type: ignore[arg-type]
    assert vq.embedding.grad is None  # the commitment term leaves the codebook alone
    out = vq(z.detach())
    out.codebook.sum().backward()
    assert torch.allclose(vq.embedding.grad, torch.tensor([[-2.0, -1.0], [0.0, -2.0]]))  # type: ignore[arg-type]


def test_the_straight_through_gradient_reaches_the_encoder() -> None:
    model = tiny_conv()
    x = images(4)
    out = model(x)
    loss = out.params.sum()  # the decoder's output only: no commitment term
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters()]
    assert all(g is not None and bool(g.abs().sum() > 0) for g in grads)
    assert torch.allclose(out.quantized.quantized, model.quantizer.embed(out.codes), atol=1e-6)


def test_ema_update_matches_the_formula_on_a_hand_made_batch() -> None:
    vq = VectorQuantizer(3, 2, ema=True, decay=0.9, epsilon=0.1, restart_after=None).train()
    e0 = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 9.0]])
    vq.embedding.copy_(e0)
    vq.embed_sum.copy_(e0)
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [3.0, 1.0]])  # codes 0, 0, 1; code 2 unused
    with torch.enable_grad():
        vq(z)
    n = torch.tensor([2.0, 1.0, 0.0])
    sums = torch.tensor([[1.0, 1.0], [3.0, 1.0], [0.0, 0.0]])
    size = 0.9 * torch.ones(3) + 0.1 * n
    m = 0.9 * e0 + 0.1 * sums
    total = size.sum()
    smoothed = (size + 0.1) / (total + 3 * 0.1) * total
    assert torch.allclose(vq.cluster_size, size)
    assert torch.allclose(vq.embed_sum, m)
    assert torch.allclose(vq.embedding, m / smoothed.unsqueeze(1))


def test_no_update_in_eval_mode() -> None:
    vq = VectorQuantizer(3, 2, ema=True).eval()
    before = {k: v.clone() for k, v in vq.state_dict().items()}
    vq(torch.randn(5, 2))
    assert all(torch.equal(before[k], v) for k, v in vq.state_dict().items())


@pytest.mark.parametrize("ema", [False, True])
def test_dead_codes_get_restarted_from_the_batch(ema: bool) -> None:
    vq = VectorQuantizer(4, 2, ema=ema, restart_after=3).train()
    vq.embedding.data.copy_(torch.tensor([[0.0, 0.0], [100.0, 100.0], [200.0, 0.0], [0.0, 200.0]]))
    if ema:
        vq.embed_sum.copy_(vq.embedding)
    z = torch.tensor([[0.1, 0.0], [0.0, 0.1], [-0.1, 0.0]])  # all nearest to code 0
    with torch.enable_grad():
        for step in range(3):
            vq(z)
            restarted = vq.embedding[1:]
            far = bool((restarted.norm(dim=1) > 50).all())
            assert far == (step < 2), f"step {step}"
    # codes 1-3, unused for 3 steps, now hold rows of the batch
    for row in vq.embedding[1:]:
        assert any(torch.allclose(row, r) for r in z)
    assert vq.unused_steps.tolist() == [0, 0, 0, 0]


def test_perplexity_of_uniform_usage_is_the_codebook_size() -> None:
    assert float(perplexity(torch.full((7,), 3.0))) == pytest.approx(7.0)
    assert float(perplexity(torch.tensor([4.0, 0.0, 0.0]))) == pytest.approx(1.0)
    vq = VectorQuantizer(4, 1).eval()
    vq.embedding.data = torch.arange(4.0).unsqueeze(1)
    out = vq(torch.arange(4.0).repeat(3).unsqueeze(1))
    assert float(out.perplexity) == pytest.approx(4.0)
    assert float(out.usage) == 1.0
    assert float(vq(torch.zeros(5, 1)).usage) == 0.25


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"codebook_size": 0}, "codebook_size"),
        ({"code_dim": -1}, "code_dim"),
        ({"decay": 1.0}, "decay"),
        ({"epsilon": 0.0}, "epsilon"),
        ({"restart_after": 0}, "restart_after"),
    ],
)
def test_bad_codebook_arguments_are_named(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("ema", ["false", 1, None])
def test_ema_must_be_a_bool(ema: object) -> None:
    # bool("false") is True: a model.json edited to "ema": "false" built an EMA codebook
    with pytest.raises(TypeError, match=rf"^ema: expected True or False, got {ema!r}$"):
        VectorQuantizer(ema=ema)  # type: ignore[arg-type]


def test_a_codebook_too_large_for_the_memory_is_refused_before_it_is_allocated(monkeypatch: pytest.MonkeyPatch) -> None:
    # 2**40 codes of 2 were the allocator's RuntimeError (8 TiB), refused at once should the check go
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 2**20)
    message = r"^codebook_size: expected at most 52,428 codes of 2 float32 .*, got 1099511627776, "
    with pytest.raises(ValueError, match=message):
        VectorQuantizer(codebook_size=2**40, code_dim=2)
    with pytest.raises(ValueError, match=r"^codebook_size: expected at most 2,001 codes of 64 float32 "):
        VQVAE("mlp", "mlp", codebook_size=4096, code_dim=64, grid=2, ema=True)
    assert VectorQuantizer(codebook_size=2001, code_dim=64, ema=True).embedding.shape == (2001, 64)


# -- the model -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [tiny_conv, tiny_mlp])
def test_codes_are_in_range_and_shaped_as_the_map(build: object) -> None:
    model = build()  # type: ignore[operator]
    x = images(6) if model.code_shape == (2, 2) else mlp_images(6)
    codes = model.codes(x)
    assert codes.dtype == torch.long
    assert codes.shape == (6, *model.code_shape)
    assert int(codes.min()) >= 0 and int(codes.max()) < model.codebook_size
    assert model.decode_codes(codes).shape == x.shape
    assert torch.equal(model.reconstruct(x), model.decode_codes(codes))


def test_seed_vqvae_has_a_7_by_7_map() -> None:
    model = seed_vqvae(codebook_size=32, code_dim=4)
    x = torch.rand(2, 1, 28, 28)
    assert model.codes(x).shape == (2, 7, 7)
    assert gv.presets.seed_vqvae is seed_vqvae and gv.VQVAE is VQVAE
    assert gv.models.get("vqvae") is VQVAE


def test_bad_codes_are_refused() -> None:
    model = tiny_conv()
    with pytest.raises(ValueError, match="codes"):
        model.decode_codes(torch.full((1, 2, 2), 5))
    with pytest.raises(ValueError, match="codes: expected a tensor of shape"):
        model.decode_codes(torch.zeros(1, 3, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="codes"):
        model.decode_codes(torch.zeros(1, 2, 2))


def test_a_sample_too_large_for_the_memory_is_refused_before_codes_are_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1e12 code maps of 2×2 int64 would be 32 TB: the allocator's RuntimeError came before this check
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 2**20)
    model = tiny_conv()
    with pytest.raises(ValueError, match=r"^n: expected at most 3,449 samples of 1×8×8 float32 .*, got 10+, "):
        model.sample(10**12)
    assert model.sample(3).shape == (3, *SHAPE)


def test_a_grid_that_does_not_divide_the_features_is_an_error() -> None:
    with pytest.raises(ValueError, match="grid"):
        VQVAE("mlp", "mlp", grid=(7, 7))


def test_objective_terms_and_the_uniform_prior_kl() -> None:
    model = tiny_conv()
    x = images(4)
    out = model(x)
    assert isinstance(out, VQOutput)
    terms = VQObjective(beta=0.5)(out, x)
    recon = -out.log_prob(x).sum((1, 2, 3)).mean()
    commitment = out.quantized.commitment.sum((1, 2)).mean()
    codebook = out.quantized.codebook.sum((1, 2)).mean()
    assert torch.allclose(terms.recon, recon)
    assert torch.allclose(terms.kl, torch.tensor(4 * math.log(5)))
    assert torch.allclose(terms.loss, recon + codebook + 0.5 * commitment)
    assert torch.allclose(terms.total, recon + terms.kl)
    assert sorted(terms.extra) == ["codebook", "commitment", "perplexity", "usage"]


def test_an_ema_codebook_leaves_the_codebook_term_out_of_the_loss() -> None:
    model = tiny_conv(ema=True).eval()
    x = images(4)
    terms = VQObjective()(model(x), x)
    assert torch.allclose(terms.loss, terms.recon + 0.25 * terms.extra["commitment"])


def test_training_decreases_the_loss_and_logs_the_codebook() -> None:
    model = tiny_conv(ema=True)
    x = images(64)
    history = gv.Trainer(model, max_epochs=4, batch_size=16, seed=0, quiet=True, lr=1e-2).fit(x)
    first, last = history.records[0], history.records[-1]
    assert last["train_loss"] < first["train_loss"]
    assert {"train_codebook", "train_commitment", "train_perplexity", "train_usage"} <= set(last)
    assert 1.0 <= last["train_perplexity"] <= 5.0 and 0 < last["train_usage"] <= 1.0


def test_save_and_load_give_the_same_codes(tmp_path: Path) -> None:
    model = tiny_conv(ema=True, restart_after=7)
    x = images(16)
    gv.Trainer(model, max_epochs=1, batch_size=8, seed=0, quiet=True).fit(x)
    gv.save(model, tmp_path)
    again = gv.load(tmp_path)
    assert isinstance(again, VQVAE) and again.quantizer.ema and again.quantizer.restart_after == 7
    for key in ("quantizer.cluster_size", "quantizer.embed_sum", "quantizer.unused_steps", "quantizer.embedding"):
        assert torch.equal(model.state_dict()[key], again.state_dict()[key])
    assert torch.equal(model.codes(x), again.codes(x))
    assert torch.equal(model.reconstruct(x), again.reconstruct(x))


def test_seed_vqvae_saves_and_loads(tmp_path: Path) -> None:
    model = seed_cvqvae(codebook_size=8, code_dim=2, num_classes=3)
    gv.save(model, tmp_path)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([0, 2])
    assert torch.equal(gv.load(tmp_path).codes(x, y), model.codes(x, y))


@pytest.mark.parametrize("conditioner", ["split", "concat", "film"])
def test_a_conditional_vqvae_with_each_conditioner(conditioner: str) -> None:
    model = tiny_conv(num_classes=3, conditioner=conditioner)
    assert model.conditional
    x, y = images(12), torch.arange(12) % 3
    history = gv.Trainer(model, max_epochs=1, batch_size=6, seed=0, quiet=True).fit((x, y))
    assert math.isfinite(history.records[-1]["train_loss"])
    assert model.codes(x, y).shape == (12, 2, 2)
    # the label reaches the decoder: one code map, two labels, two images
    codes = model.codes(x[:1], y[:1])
    assert not torch.allclose(model.decode_codes(codes, 0), model.decode_codes(codes, 1))
    with pytest.raises(ValueError, match="y: expected labels"):
        model.codes(x)
    with pytest.raises(ValueError, match="y"):
        model.codes(x, torch.full((12,), 3))


def test_an_unconditional_vqvae_refuses_labels() -> None:
    with pytest.raises(ValueError, match="y: expected None"):
        tiny_conv().codes(images(2), torch.tensor([0, 1]))


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_every_likelihood_trains(likelihood: str) -> None:
    model = tiny_conv(likelihood=likelihood)
    history = gv.Trainer(model, max_epochs=1, batch_size=8, seed=0, quiet=True).fit(images(16))
    assert math.isfinite(history.records[-1]["train_total"])


def test_uniform_samples_have_the_data_shape() -> None:
    model = tiny_conv()
    gen = torch.Generator().manual_seed(1)
    assert model.sample(3, generator=gen).shape == (3, *SHAPE)


def test_what_needs_a_continuous_latent_refuses_a_vq_vae_in_one_line() -> None:
    vq, data = gv.presets.seed_vqvae(codebook_size=8, code_dim=2), gv.data.SyntheticDigits(8, seed=0)
    continuous = r"^model: expected a model with a continuous latent z .* got VQVAE; a VQ-VAE's codes are discrete"
    for call in (
        lambda: gv.evaluation.nll(vq, data, k=2),
        lambda: gv.latent_metrics.active_units(vq, data),
        lambda: gv.samplers.GaussianMixtureSampler(vq),
    ):
        with pytest.raises(TypeError, match=continuous):
            call()
    with pytest.raises(TypeError, match=r"^objective: VQVAE trains with vq only, got ELBO\("):
        gv.Trainer(vq, gv.ELBO())
    with pytest.raises(ValueError, match=r"^code_dim: expected a positive integer, got 0$"):
        gv.presets.seed_vqvae(code_dim=0)
