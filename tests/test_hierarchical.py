"""HierarchicalVAE (the Ladder VAE): shapes, each level's KL against its closed form, the bounds
against a linear-Gaussian hierarchy's exact likelihood, training with the ELBO and IWAE, the
per-level KL columns, save/load, conditioning, sampling, active units and the composition matrix."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

import genvae as gv
from genvae.hierarchical import HierarchicalOutput, Level, merge

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)
CLASSES = 3


def tiny(
    conditioner: str | None = None, prior: str = "normal", dims: tuple[int, ...] = (3, 2), **kwargs: object
) -> gv.HierarchicalVAE:
    """A small MLP hierarchy on 4×4 images; conditional (three classes) with a conditioner."""
    cond = {"condition_dim": CLASSES, "conditioner": conditioner} if conditioner else {}
    enc = gv.encoders.MLPEncoder(SHAPE, hidden=(8,), **cond)
    dec = gv.decoders.MLPDecoder(dims[0], SHAPE, hidden=(8,), **cond)
    classes = {"num_classes": CLASSES, "conditioner": conditioner} if conditioner else {}
    return gv.HierarchicalVAE(enc, dec, latent_dims=dims, hidden=8, prior=prior, **classes, **kwargs)  # type: ignore[arg-type]


def binary_data(n: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, *SHAPE, generator=g) > 0.5).float()
    return x, torch.randint(CLASSES, (n,), generator=g)


def test_a_forward_pass_gives_every_level_and_joined_shapes() -> None:
    model, (x, _) = tiny(dims=(3, 2, 2)), binary_data(5)
    out = model(x)
    assert isinstance(out, HierarchicalOutput) and model.latent_dim == 7
    assert out.z.shape == (5, 7) and out.params.shape == (5, *SHAPE) and out.samples is None
    assert [lv.z.shape[-1] for lv in out.levels] == [3, 2, 2]
    assert out.log_q.shape == out.log_prior().shape == (5,)
    assert out.kl().shape == (5, 7)  # analytic per dimension with the normal prior
    assert [v.shape for v in out.kl_levels()] == [(5,)] * 3
    torch.testing.assert_close(torch.cat([lv.z for lv in out.levels], -1), out.z)
    many = model(x, samples=4)
    assert many.samples == 4 and many.z.shape == (4, 5, 7) and many.params.shape == (4, 5, *SHAPE)
    assert many.log_q.shape == many.log_prior().shape == (4, 5)


def test_the_merge_is_the_product_of_the_two_gaussians() -> None:
    m1, lv1, m2, lv2 = (
        torch.tensor([1.0, -2.0]),
        torch.tensor([0.5, -1.0]),
        torch.tensor([0.0, 3.0]),
        torch.tensor([2.0, 0.0]),
    )
    p1, p2 = torch.exp(-lv1), torch.exp(-lv2)
    mean, logvar = merge(m1, lv1, m2, lv2)
    torch.testing.assert_close(logvar, -torch.log(p1 + p2))
    torch.testing.assert_close(mean, (m1 * p1 + m2 * p2) / (p1 + p2))


def test_each_levels_kl_is_the_closed_form_of_its_two_gaussians() -> None:
    g = torch.Generator().manual_seed(1)
    mean, logvar, pm, plv = (torch.randn(4, 3, generator=g) for _ in range(4))
    top_mean, top_logvar = torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g)
    levels = [
        Level(torch.randn(4, 3, generator=g), mean, logvar, pm, plv),
        Level(torch.randn(4, 2, generator=g), top_mean, top_logvar),
    ]
    prior = tiny().prior  # N(0, I) over the top level
    out = HierarchicalOutput(torch.zeros(4, 1), mean, logvar, torch.cat([lv.z for lv in levels], -1),
                             gv.likelihoods.Bernoulli(), None, prior, torch.zeros(4), False, levels=levels)  # fmt: skip
    normal = torch.distributions.Normal
    lower = torch.distributions.kl_divergence(normal(mean, (logvar / 2).exp()), normal(pm, (plv / 2).exp())).sum(-1)
    top = torch.distributions.kl_divergence(normal(top_mean, (top_logvar / 2).exp()), normal(0.0, 1.0)).sum(-1)
    kl1, kl2 = out.kl_levels()
    torch.testing.assert_close(kl1, lower)
    torch.testing.assert_close(kl2, top)
    torch.testing.assert_close(out.kl().sum(-1), lower + top)


class LinearStep(nn.Module):
    """p(z1 | z2) = N(A z2 + a, diag(exp(log_d))), the top-down step of the linear-Gaussian test."""

    def __init__(self, a_matrix: torch.Tensor, a_bias: torch.Tensor, log_d: torch.Tensor) -> None:
        super().__init__()
        self.a_matrix, self.a_bias, self.log_d = a_matrix, a_bias, log_d

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        return z @ self.a_matrix.T + self.a_bias, self.log_d.expand(*z.shape[:-1], -1)


def linear_gaussian() -> tuple[gv.HierarchicalVAE, torch.distributions.MultivariateNormal]:
    """z2 ~ N(0, I), z1 | z2 ~ N(A z2 + a, D), x | z1 ~ N(B z1 + b, s² I), in float64, and the exact
    marginal of x, N(B a + b, B (A Aᵀ + D) Bᵀ + s² I). The encoder proposes broad posteriors."""
    torch.manual_seed(0)
    enc = gv.encoders.MLPEncoder((3,), hidden=(4,))
    dec = gv.decoders.MLPDecoder(2, (3,), hidden=())
    model = gv.HierarchicalVAE(enc, dec, latent_dims=(2, 1), hidden=4, likelihood=gv.likelihoods.Gaussian(0.5))
    model = model.double()
    f64 = torch.float64
    a_matrix, a_bias = torch.tensor([[1.0], [-0.5]], dtype=f64), torch.tensor([0.2, -0.1], dtype=f64)
    log_d = torch.log(torch.tensor([0.3, 0.6], dtype=f64))
    model.down[0] = LinearStep(a_matrix, a_bias, log_d)
    with torch.no_grad():
        for head in model.up_heads:
            head.weight.zero_()
            head.bias.zero_()  # bottom-up estimates N(0, I) at every level
    layer = model.decoder.first
    b_matrix, b_bias = layer.weight.detach(), layer.bias.detach()
    noise = 0.25 * torch.eye(3, dtype=f64)
    cov = b_matrix @ (a_matrix @ a_matrix.T + torch.diag(log_d.exp())) @ b_matrix.T + noise
    return model, torch.distributions.MultivariateNormal(b_matrix @ a_bias + b_bias, cov)


X_LINEAR = torch.tensor([[0.3, -0.2, 0.5], [1.0, 0.5, -0.4], [-0.8, 0.1, 0.0]], dtype=torch.float64)


def test_the_elbo_is_below_the_exact_log_likelihood_of_a_linear_gaussian_hierarchy() -> None:
    model, marginal = linear_gaussian()
    exact = marginal.log_prob(X_LINEAR)
    torch.manual_seed(1)
    with torch.no_grad():
        out = model(X_LINEAR, samples=20_000)
        log_px = out.log_prob(X_LINEAR).sum(-1)
        elbo = (log_px + out.log_prior() - out.log_q).mean(0)
        analytic = (log_px - torch.stack(out.kl_levels()).sum(0)).mean(0)  # the same bound, the KLs in closed form
    assert bool((elbo < exact - 0.01).all())
    torch.testing.assert_close(analytic, elbo, atol=0.02, rtol=0)


def test_the_iw_nll_converges_to_the_exact_likelihood_of_a_linear_gaussian_hierarchy() -> None:
    model, marginal = linear_gaussian()
    torch.manual_seed(2)
    estimate = gv.evaluation.nll(model, X_LINEAR, k=200_000).per_sample
    torch.testing.assert_close(estimate, -marginal.log_prob(X_LINEAR), atol=0.02, rtol=0)


def test_the_joint_prior_is_the_chain_of_its_levels() -> None:
    model, _ = linear_gaussian()
    z = torch.tensor([[0.1, -0.3, 0.7], [1.2, 0.4, -1.0]], dtype=torch.float64)  # [z1 (2), z2 (1)]
    step = model.down[0]
    exact = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 2]) + torch.distributions.MultivariateNormal(
        z[:, 2:] @ step.a_matrix.T + step.a_bias, torch.diag(step.log_d.exp())
    ).log_prob(z[:, :2])
    torch.testing.assert_close(model.prior_log_prob(z), exact)


@pytest.mark.parametrize("objective", [gv.ELBO(), gv.IWAE(k=3)], ids=["elbo", "iwae"])
def test_training_lowers_the_loss_and_records_each_levels_kl(objective: gv.Objective) -> None:
    model, (x, _) = tiny(), binary_data(64)
    history = gv.Trainer(model, objective, max_epochs=6, batch_size=16, lr=1e-2, device="cpu", seed=0).fit(
        TensorDataset(x), TensorDataset(x[:16])
    )
    assert history["train_loss"][-1] < history["train_loss"][0]
    if isinstance(objective, gv.ELBO):
        for key in ("train_kl_level_1", "train_kl_level_2", "val_kl_level_1", "val_kl_level_2"):
            assert key in history
        last = history.last
        assert last["train_kl_level_1"] + last["train_kl_level_2"] == pytest.approx(last["train_kl"], rel=1e-4)


@pytest.mark.parametrize("conditioner", [None, "film"])
@pytest.mark.parametrize("prior", ["normal", "vamp", "flow"])
def test_save_and_load_give_identical_outputs(tmp_path: Path, prior: str, conditioner: str | None) -> None:
    model, (x, y) = tiny(conditioner, prior), binary_data(6)
    labels = y if conditioner else None
    gv.save(model, tmp_path / "m")
    loaded = gv.load(tmp_path / "m")
    assert isinstance(loaded, gv.HierarchicalVAE) and loaded.latent_dims == model.latent_dims
    outputs = []
    for m in (model, loaded):
        torch.manual_seed(5)
        out = m(x, labels)
        outputs.append((out.params, out.z, out.log_q, out.log_prior(), m.sample(3, None if labels is None else 1)))
    for a, b in zip(*outputs, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("conditioner", ["split", "concat", "film"])
def test_every_level_sees_the_condition(conditioner: str) -> None:
    model, (x, _) = tiny(conditioner), binary_data(4)
    torch.manual_seed(0)
    z_top = torch.randn(4, 2)
    first, second = (model.prior_step(0, z_top, model.condition(k, 4))[0] for k in (0, 1))
    assert not torch.allclose(first, second)  # the top-down network p(z_1 | z_2, c) depends on c
    assert model.sample(5, y=2).shape == (5, *SHAPE)
    assert model(x, torch.tensor([0, 1, 2, 0])).z.shape == (4, 5)
    with pytest.raises(ValueError, match=r"^y: expected labels"):
        model(x)


def test_sampling_draws_every_level_from_its_prior() -> None:
    model = tiny(dims=(3, 2, 2))
    z = model.sample_prior(6, generator=torch.Generator().manual_seed(0))
    again = model.sample_prior(6, generator=torch.Generator().manual_seed(0))
    assert z.shape == (6, 7) and torch.equal(z, again)
    assert model.sample(4).shape == (4, *SHAPE)
    assert [p.shape[-1] for p in model.split_levels(z)] == [3, 2, 2]
    with torch.no_grad():
        big = model.sample_prior(20_000)
    top = model.split_levels(big)[-1]
    assert float(top.mean(0).abs().max()) < 0.05 and float((top.var(0) - 1).abs().max()) < 0.05


def test_active_units_are_counted_per_level() -> None:
    model, (x, _) = tiny(), binary_data(64)
    gv.Trainer(model, max_epochs=3, batch_size=16, lr=1e-2, device="cpu", seed=0).fit(TensorDataset(x))
    per_level = model.active_units(x)
    assert len(per_level) == 2 and all(0 <= n <= d for n, d in zip(per_level, model.latent_dims, strict=True))
    whole = gv.latent_metrics.active_units(model, x)
    assert sum(per_level) == whole.count
    assert [int((v > 0.01).sum()) for v in model.split_levels(whole.variances)] == per_level
    assert model.active_units(x, threshold=0.0) == [3, 2]


def test_the_top_prior_is_pluggable() -> None:
    x = binary_data(4)[0]
    for prior in ("mog", "vamp", "flow"):
        model = tiny(prior=prior)
        assert model.prior.latent_dim == 2  # the top level's size
        out = model(x)
        assert out.kl().shape == (4,)  # the top level's KL is a Monte-Carlo estimate
        assert gv.ELBO()(out, x).total.isfinite()
    means, _, _ = tiny(prior="vamp").prior.mixture()
    assert means.shape[1] == 2  # the pseudo-inputs' top-level posteriors
    with pytest.raises(
        ValueError, match=r"^prior: the 'conditional' prior .* got HierarchicalVAE without a condition$"
    ):
        tiny(prior="conditional")  # the user's model named, not the top level's stand-in


def test_bad_arguments_and_beta_tcvae_are_one_line_errors() -> None:
    enc, dec = gv.encoders.MLPEncoder(SHAPE, hidden=(8,)), gv.decoders.MLPDecoder(3, SHAPE, hidden=(8,))
    with pytest.raises(ValueError, match=r"^latent_dims: expected two levels"):
        gv.HierarchicalVAE(enc, dec, latent_dims=(3,))
    with pytest.raises(ValueError, match=r"^decoder: expected a decoder of latent_dim=4"):
        gv.HierarchicalVAE(enc, dec, latent_dims=(4, 2))
    with pytest.raises(ValueError, match=r"^latent_dim: expected None or the bottom level's size"):
        gv.presets.seed_hierarchical(latent_dims=(8, 4), latent_dim=2)
    with pytest.raises(ValueError, match=r"^logvar_range: expected low < high"):
        gv.HierarchicalVAE(enc, dec, latent_dims=(3, 2), logvar_range=(1.0, -1.0))
    x = binary_data(4)[0]
    with pytest.raises(ValueError, match=r"^model: BetaTCVAE decomposes the KL of one latent vector"):
        gv.BetaTCVAE()(tiny()(x), x)


def test_the_preset_builds_from_what_a_run_passes() -> None:
    assert gv.models.get("hierarchical") is gv.HierarchicalVAE
    model = gv.presets.seed_hierarchical(
        latent_dims=(8, 4), latent_dim=8, conditioner="concat", likelihood="bernoulli", prior="normal", num_classes=10
    )
    x = torch.rand(2, 1, 28, 28)
    assert model(x, torch.tensor([1, 2])).params.shape == (2, 1, 28, 28) and model.conditional
    labelled = gv.presets.seed_hierarchical(latent_dims=(8, 4), num_classes=10)  # as seed_cvae: conditional
    assert labelled.conditional and labelled.sample(2, y=3).shape == (2, 1, 28, 28)
    from genvae.experiment_parts import seed_hierarchical_run

    plain = seed_hierarchical_run(latent_dims=(8, 4), num_classes=10)  # a run passes num_classes always
    assert not plain.conditional and plain(x).z.shape == (2, 12)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("conditioner", [None, "split", "concat", "film"])
def test_composition(tmp_path: Path, conditioner: str | None, objective: str) -> None:
    """Build, train a few steps, evaluate the IW-NLL, save, load and sample."""
    model, (x, y) = tiny(conditioner), binary_data(32)
    data = TensorDataset(x, y) if conditioner else TensorDataset(x)
    goal = gv.ELBO() if objective == "elbo" else gv.IWAE(k=2)
    history = gv.Trainer(model, goal, max_epochs=1, batch_size=16, device="cpu", seed=0).fit(data)
    assert math.isfinite(history.last["train_total"])
    nll = gv.evaluation.nll(model, (x[:8], y[:8]) if conditioner else x[:8], k=4)
    assert math.isfinite(nll.nats)
    gv.save(model, tmp_path / "m")
    loaded = gv.load(tmp_path / "m")
    label = 1 if conditioner else None
    torch.manual_seed(0)
    a = model.sample(3, label)
    torch.manual_seed(0)
    assert torch.equal(a, loaded.sample(3, label))


def test_logvar_range_clamps_the_bottom_up_and_top_down_log_variances() -> None:
    model, x = tiny(logvar_range=(-0.1, 0.1)), binary_data(8)[0]
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(50)  # log-variances far outside the range before the clamp
        params = model.posterior_params(x)
        prior_logvar = model.prior_step(0, torch.randn(8, 2), None)[1]
    for logvar in (*params.logvars, prior_logvar):
        assert float(logvar.abs().max()) <= 0.1 + 1e-6
