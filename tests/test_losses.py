"""genvae.losses: the KL, the reconstruction terms and the ELBO, its free bits and beta by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import distributions as D

import genvae as gv
from genvae.losses import kl_normal
from tests.helpers import mean_logvar, tiny_vae
from tests.strategies import float_tensors, gaussian_params

# -- the notebook's own assertions on kl_loss, against genvae ------------------------------------


def test_seed_kl_zero_at_standard_normal() -> None:
    assert kl_normal(torch.tensor([[0]]), torch.tensor([[0]])) == 0


def test_seed_kl_positive_for_smaller_variance() -> None:
    assert kl_normal(torch.tensor([[0]]), torch.tensor([[-1]])) > 0


def test_seed_kl_positive_for_larger_variance() -> None:
    assert kl_normal(torch.tensor([[0]]), torch.tensor([[1]])) > 0


def test_seed_kl_positive_for_shifted_mean() -> None:
    assert kl_normal(torch.tensor([[1]]), torch.tensor([[0]])) > 0


def test_seed_kl_sums_over_latent_dimensions() -> None:
    one = kl_normal(torch.tensor([[0]]), torch.tensor([[1]]))
    two = kl_normal(torch.tensor([[0, 0]]), torch.tensor([[1, 1]]))
    assert one == two / 2


def test_seed_kl_means_over_the_batch() -> None:
    single = kl_normal(torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1, -0.5]]))
    double = kl_normal(torch.tensor([[0, 0, 1], [0, 0, 1]]), torch.tensor([[0, 1, -0.5], [0, 1, -0.5]]))
    assert single == double


# -- laws of the analytic KL ---------------------------------------------------------------------


@given(gaussian_params())
def test_kl_is_non_negative(params: tuple[torch.Tensor, torch.Tensor]) -> None:
    mean, logvar = params
    assert (kl_normal(mean, logvar, reduction="dims") >= 0).all()


@given(st.integers(1, 8), st.integers(1, 8))
def test_kl_is_exactly_zero_at_the_prior(batch: int, dim: int) -> None:
    zeros = torch.zeros(batch, dim)
    assert torch.equal(kl_normal(zeros, zeros, reduction="dims"), zeros)


@given(gaussian_params())
def test_kl_equals_torch_distributions(params: tuple[torch.Tensor, torch.Tensor]) -> None:
    mean, logvar = params
    q = torch.distributions.Normal(mean, torch.exp(0.5 * logvar))
    p = torch.distributions.Normal(torch.zeros_like(mean), torch.ones_like(mean))
    expected = torch.distributions.kl_divergence(q, p).sum(-1)
    torch.testing.assert_close(kl_normal(mean, logvar, reduction="none"), expected, rtol=1e-9, atol=1e-9)


@given(gaussian_params())
def test_kl_reductions_agree(params: tuple[torch.Tensor, torch.Tensor]) -> None:
    mean, logvar = params
    per_sample = kl_normal(mean, logvar, reduction="none")
    torch.testing.assert_close(kl_normal(mean, logvar), per_sample.mean())
    torch.testing.assert_close(kl_normal(mean, logvar, reduction="sum"), per_sample.sum())


def test_kl_rejects_mismatched_shapes_and_unknown_reduction() -> None:
    with pytest.raises(ValueError, match=r"logvar: expected the shape of mean \(2, 3\), got \(2, 4\)"):
        kl_normal(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="reduction: expected"):
        kl_normal(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")


# -- reconstruction terms -------------------------------------------------------------------------


def _output(params: torch.Tensor, likelihood: str = "bernoulli") -> gv.VAEOutput:
    zeros = torch.zeros(params.shape[0], 2, dtype=params.dtype)
    return gv.VAEOutput(params, zeros, zeros, zeros, gv.likelihoods.get(likelihood)())


@given(float_tensors((4, 6), -15.0, 15.0), float_tensors((4, 6), 0.0, 1.0))
def test_bce_from_logits_equals_bce_on_probabilities(logits: torch.Tensor, x: torch.Tensor) -> None:
    from_logits = gv.losses.get("bce")(_output(logits), x)
    on_probs = F.binary_cross_entropy(torch.sigmoid(logits), x, reduction="none")
    torch.testing.assert_close(from_logits, on_probs, rtol=1e-6, atol=1e-6)


def test_bce_stays_finite_where_probabilities_saturate() -> None:
    logits = torch.tensor([[200.0, -200.0]])
    x = torch.tensor([[0.0, 1.0]])
    values = gv.losses.get("bce")(_output(logits), x)
    torch.testing.assert_close(values, torch.tensor([[200.0, 200.0]]))


def test_nll_equals_bce_for_a_bernoulli_likelihood() -> None:
    logits, x = torch.randn(3, 1, 4, 4), torch.rand(3, 1, 4, 4)
    out = _output(logits)
    torch.testing.assert_close(gv.losses.get("nll")(out, x), gv.losses.get("bce")(out, x))


def test_nll_of_a_gaussian_is_its_negative_log_density() -> None:
    mean, x = torch.randn(2, 5), torch.randn(2, 5)
    out = _output(mean, "gaussian")
    expected = -torch.distributions.Normal(mean, 1.0).log_prob(x)
    torch.testing.assert_close(gv.losses.get("nll")(out, x), expected)


def test_bce_refuses_a_non_bernoulli_likelihood() -> None:
    with pytest.raises(ValueError, match=r"'bce' term expects logits from a Bernoulli likelihood.*'nll'"):
        gv.losses.get("bce")(_output(torch.zeros(2, 3), "gaussian"), torch.zeros(2, 3))


def test_mse_is_the_squared_error_of_the_mean() -> None:
    logits, x = torch.randn(2, 3), torch.rand(2, 3)
    torch.testing.assert_close(gv.losses.get("mse")(_output(logits), x), (torch.sigmoid(logits) - x) ** 2)


def test_kl_mc_averages_to_the_analytic_kl() -> None:
    mean = torch.tensor([[0.5, -1.0]]).expand(200_000, 2)
    logvar = torch.tensor([[-0.5, 0.7]]).expand(200_000, 2)
    z = gv.VAE.sample_latent(mean, logvar)
    out = gv.VAEOutput(torch.zeros(len(z), 1), mean, logvar, z, gv.likelihoods.Bernoulli())
    estimate = gv.losses.get("kl_mc")(out, torch.zeros(1)).mean(0)
    torch.testing.assert_close(estimate, kl_normal(mean[:1], logvar[:1], reduction="dims")[0], atol=0.02, rtol=0)


# -- the ELBO ---------------------------------------------------------------------------------------


def _batch() -> tuple[gv.VAEOutput, torch.Tensor]:
    model = tiny_vae(latent=3, shape=(1, 4, 4), hidden=8, seed=1)
    x = torch.rand(5, 1, 4, 4)
    return model(x), x


def test_elbo_terms_are_per_sample_means_in_nats() -> None:
    out, x = _batch()
    terms = gv.ELBO()(out, x)
    recon = F.binary_cross_entropy_with_logits(out.params, x, reduction="sum") / len(x)
    kl = kl_normal(out.mean, out.logvar)
    torch.testing.assert_close(terms.recon, recon)
    torch.testing.assert_close(terms.kl, kl)
    torch.testing.assert_close(terms.total, recon + kl)
    torch.testing.assert_close(terms.loss, terms.total)


def test_elbo_beta_weights_the_kl_in_the_loss_only() -> None:
    out, x = _batch()
    terms = gv.ELBO(beta=0.25)(out, x)
    torch.testing.assert_close(terms.loss, terms.recon + 0.25 * terms.kl)
    torch.testing.assert_close(terms.total, terms.recon + terms.kl)


def test_elbo_free_bits_floor_each_dimension() -> None:
    out, x = _batch()
    floor = 5.0  # above every dimension's KL at initialisation
    per_dim = kl_normal(out.mean, out.logvar, reduction="dims").mean(0)
    assert (per_dim < floor).all()
    terms = gv.ELBO(free_bits=floor)(out, x)
    torch.testing.assert_close(terms.loss, terms.recon + floor * out.mean.shape[1])
    torch.testing.assert_close(terms.kl, per_dim.sum())


def test_elbo_extra_terms_are_weighted_into_the_loss() -> None:
    out, x = _batch()
    terms = gv.ELBO(extra={"mse": 2.0})(out, x)
    mse = ((out.recon - x) ** 2).flatten(1).sum(1).mean()
    torch.testing.assert_close(terms.extra["mse"], mse)
    torch.testing.assert_close(terms.loss, terms.total + 2.0 * mse)


def test_user_registered_term_is_used_by_name() -> None:
    calls = []

    @gv.losses.register("test_l1")
    def l1(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return (out.recon - x).abs()

    try:
        out, x = _batch()
        terms = gv.ELBO(reconstruction="test_l1")(out, x)
        torch.testing.assert_close(terms.recon, (out.recon - x).abs().flatten(1).sum(1).mean())
        assert calls == [1]
    finally:
        gv.losses.registry.unregister("test_l1")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"reconstruction": "bec"},
            r"reconstruction: losses: unknown name 'bec'; known names: bce, kl, kl_mc, mse, nll",
        ),
        ({"beta": -1.0}, r"beta: expected a finite number >= 0, got -1.0"),
        ({"free_bits": math.nan}, r"free_bits: expected a finite number >= 0, got nan"),
        ({"kl": 3}, r"kl: expected a registered term name"),
    ],
)
def test_elbo_rejects_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, KeyError, TypeError), match=message):
        gv.ELBO(**kwargs)


def test_elbo_rejects_a_term_without_a_batch_dimension() -> None:
    out, x = _batch()
    with pytest.raises(ValueError, match="reconstruction: expected per-sample values"):
        gv.ELBO(reconstruction=lambda out, x: (out.recon - x).abs().sum())(out, x)


# -- the objective's arithmetic by hand (batches chosen so that each rule matters): free bits floor
# each latent dimension, not the total; beta weights the floored KL in the loss only ----------------


def output(mean: torch.Tensor, logvar: torch.Tensor, logits: torch.Tensor) -> gv.VAEOutput:
    bernoulli = gv.likelihoods.get("bernoulli")()
    return gv.VAEOutput(logits, mean, logvar, mean.clone(), bernoulli)


def num(value: torch.Tensor) -> float:
    return float(value.detach())


def mixed_batch() -> tuple[gv.VAEOutput, torch.Tensor]:
    """Two samples, four latent dimensions whose batch-mean KLs are 1.25, 0.005, 0 and 0.5 nats
    (logvar 0, so each is mean² / 2), and a 3-pixel Bernoulli reconstruction."""
    mean = torch.tensor([[2.0, 0.1, 0.0, 1.0], [1.0, -0.1, 0.0, -1.0]], requires_grad=True)
    logvar = torch.zeros(2, 4, requires_grad=True)
    logits = torch.tensor([[0.0, 1.0, -2.0], [3.0, -1.0, 0.5]])
    x = torch.tensor([[1.0, 0.0, 0.5], [0.25, 1.0, 0.0]])
    return output(mean, logvar, logits), x


def by_hand_recon(out: gv.VAEOutput, x: torch.Tensor) -> float:
    p = torch.sigmoid(out.params.detach()).double()
    xd = x.double()
    return float(-(xd * p.log() + (1 - xd) * (1 - p).log()).sum(1).mean())


def test_the_batch_is_mixed_about_the_floor() -> None:
    out, _ = mixed_batch()
    per_dim = (0.5 * out.mean.detach().pow(2)).mean(0)
    torch.testing.assert_close(per_dim, torch.tensor([1.25, 0.005, 0.0, 0.5]))


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_free_bits_floor_each_dimension_not_the_total(beta: float) -> None:
    out, x = mixed_batch()
    terms = gv.ELBO(free_bits=0.3, beta=beta)(out, x)
    recon = by_hand_recon(out, x)
    floored = 1.25 + 0.3 + 0.3 + 0.5  # dims 2 and 3 lifted to the floor, 1 and 4 kept
    assert num(terms.loss) == pytest.approx(recon + beta * floored, rel=1e-6)
    # the total KL (1.755) is above the floor: clamping the total would change nothing
    assert num(terms.loss) != pytest.approx(recon + beta * 1.755, rel=1e-3)
    # the reported figures are the honest ones: no floor, no β
    assert num(terms.kl) == pytest.approx(1.755, rel=1e-6)
    assert num(terms.total) == pytest.approx(recon + 1.755, rel=1e-6)


def test_free_bits_stop_the_gradient_of_the_dimensions_below_the_floor() -> None:
    out, x = mixed_batch()
    gv.ELBO(free_bits=0.3)(out, x).loss.backward()
    grad = out.mean.grad
    assert grad is not None
    assert torch.equal(grad[:, 1:3], torch.zeros(2, 2))  # below the floor: no pull towards the prior
    torch.testing.assert_close(grad[:, [0, 3]], out.mean.detach()[:, [0, 3]] / 2)  # d(mean²/2)/d mean, batch mean


def test_without_free_bits_every_dimension_gets_its_gradient() -> None:
    out, x = mixed_batch()
    gv.ELBO()(out, x).loss.backward()
    assert out.mean.grad is not None
    torch.testing.assert_close(out.mean.grad, out.mean.detach() / 2)


def test_beta_weights_the_kl_in_the_loss_by_hand() -> None:
    out, x = mixed_batch()
    for beta in (0.0, 0.5, 4.0):
        terms = gv.ELBO(beta=beta)(out, x)
        assert num(terms.loss) == pytest.approx(by_hand_recon(out, x) + beta * 1.755, rel=1e-6)
        assert num(terms.total) == pytest.approx(by_hand_recon(out, x) + 1.755, rel=1e-6)


def test_the_kl_loss_term_is_the_closed_form_per_dimension() -> None:
    mean, logvar = mean_logvar()
    out = output(mean, logvar, torch.zeros(5, 2, dtype=torch.float64))
    expected = D.kl_divergence(D.Normal(mean, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    torch.testing.assert_close(gv.losses.get("kl")(out, torch.zeros(5, 2)), expected)
    torch.testing.assert_close(gv.losses.kl_normal(mean, logvar, reduction="none"), expected.sum(1))
