"""The objective's arithmetic, computed by hand on batches chosen so that each rule matters: free
bits floor each latent dimension (not the total), β weights the floored KL in the loss only, the
Gaussian formulas are the textbook ones, and a forward pass decodes ``mean + eps · std``.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D

import genvae as gv
from genvae.gaussian import LOG_2PI, kl_per_dim, log_normal, reparameterize


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


# -- the Gaussian formulas ------------------------------------------------------------------------


def gaussian_params() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)


def test_kl_per_dim_is_the_closed_form_against_torch_distributions() -> None:
    mean, logvar = gaussian_params()
    expected = D.kl_divergence(D.Normal(mean, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_per_dim(mean, logvar), expected)
    by_hand = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
    torch.testing.assert_close(kl_per_dim(mean, logvar), by_hand)


def test_the_kl_loss_term_is_the_closed_form_per_dimension() -> None:
    mean, logvar = gaussian_params()
    out = output(mean, logvar, torch.zeros(5, 2, dtype=torch.float64))
    expected = D.kl_divergence(D.Normal(mean, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    torch.testing.assert_close(gv.losses.get("kl")(out, torch.zeros(5, 2)), expected)
    torch.testing.assert_close(gv.losses.kl_normal(mean, logvar, reduction="none"), expected.sum(1))


def test_log_normal_is_the_diagonal_gaussian_density() -> None:
    mean, logvar = gaussian_params()
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = D.Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal(z, mean, logvar), expected)
    torch.testing.assert_close(log_normal(z), D.Normal(0.0, 1.0).log_prob(z).sum(-1))
    assert math.log(2 * math.pi) == pytest.approx(LOG_2PI, rel=1e-15)


def test_reparameterize_scales_the_noise_by_the_standard_deviation() -> None:
    mean, logvar = gaussian_params()
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(reparameterize(mean, logvar, eps), mean + eps * (0.5 * logvar).exp())


def test_a_forward_pass_decodes_mean_plus_noise_times_std() -> None:
    model = gv.VAE(gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,)), gv.decoders.MLPDecoder(3, (1, 4, 4), hidden=(8,)),
                   latent_dim=3)  # fmt: skip
    x = torch.rand(6, 1, 4, 4)
    torch.manual_seed(9)
    out = model(x)
    torch.manual_seed(9)
    eps = torch.randn(6, 3)
    torch.testing.assert_close(out.z, out.mean + eps * (0.5 * out.logvar).exp())
    torch.testing.assert_close(out.params, model.decoder_params(out.z))
