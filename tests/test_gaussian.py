"""genvae.gaussian: each diagonal-Gaussian formula once, checked against torch.distributions, and
a forward pass that decodes ``mean + eps · std``."""

from __future__ import annotations

import math

import pytest
import torch
from torch import distributions as D
from torch.distributions import Normal

from genvae.gaussian import LOG_2PI, kl_per_dim, log_normal, log_normal_dims, reparameterize
from tests.helpers import mean_logvar, tiny_vae


def test_log_normal_dims_is_the_elementwise_normal_log_density() -> None:
    gen = torch.Generator().manual_seed(0)
    z, mean, logvar = (torch.randn(5, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    expected = Normal(mean, torch.exp(0.5 * logvar)).log_prob(z)
    torch.testing.assert_close(log_normal_dims(z, mean, logvar), expected)
    torch.testing.assert_close(log_normal_dims(z), Normal(0.0, 1.0).log_prob(z))
    torch.testing.assert_close(log_normal_dims(z, mean), Normal(mean, 1.0).log_prob(z))


def test_log_normal_is_log_normal_dims_summed_over_the_last_dimension() -> None:
    gen = torch.Generator().manual_seed(1)
    z, mean, logvar = (torch.randn(4, 2, 3, generator=gen) for _ in range(3))
    torch.testing.assert_close(log_normal(z, mean, logvar), log_normal_dims(z, mean, logvar).sum(-1))
    assert float(log_normal_dims(torch.zeros(1, dtype=torch.float64))) == -0.5 * LOG_2PI


def test_log_normal_dims_broadcasts_pairs_of_points_and_components() -> None:
    """The (points, components, dims) table of the β-TCVAE's minibatch estimator."""
    z, mean, logvar = torch.randn(4, 2), torch.randn(4, 2), torch.randn(4, 2)
    table = log_normal_dims(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))
    assert table.shape == (4, 4, 2)
    torch.testing.assert_close(table[1, 2], log_normal_dims(z[1], mean[2], logvar[2]))


# -- the textbook formulas, and a forward pass that decodes mean + eps * std ----------------------


def test_kl_per_dim_is_the_closed_form_against_torch_distributions() -> None:
    mean, logvar = mean_logvar()
    expected = D.kl_divergence(D.Normal(mean, (0.5 * logvar).exp()), D.Normal(0.0, 1.0))
    torch.testing.assert_close(kl_per_dim(mean, logvar), expected)
    by_hand = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar)
    torch.testing.assert_close(kl_per_dim(mean, logvar), by_hand)


def test_log_normal_is_the_diagonal_gaussian_density() -> None:
    mean, logvar = mean_logvar()
    z = torch.randn(5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    expected = D.Normal(mean, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    torch.testing.assert_close(log_normal(z, mean, logvar), expected)
    torch.testing.assert_close(log_normal(z), D.Normal(0.0, 1.0).log_prob(z).sum(-1))
    assert math.log(2 * math.pi) == pytest.approx(LOG_2PI, rel=1e-15)


def test_reparameterize_scales_the_noise_by_the_standard_deviation() -> None:
    mean, logvar = mean_logvar()
    eps = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    torch.testing.assert_close(reparameterize(mean, logvar, eps), mean + eps * (0.5 * logvar).exp())


def test_a_forward_pass_decodes_mean_plus_noise_times_std() -> None:
    model = tiny_vae(latent=3, shape=(1, 4, 4), hidden=8, seed=None)
    x = torch.rand(6, 1, 4, 4)
    torch.manual_seed(9)
    out = model(x)
    torch.manual_seed(9)
    eps = torch.randn(6, 3)
    torch.testing.assert_close(out.z, out.mean + eps * (0.5 * out.logvar).exp())
    torch.testing.assert_close(out.params, model.decoder_params(out.z))
