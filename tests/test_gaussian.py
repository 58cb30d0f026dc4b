"""genvae.gaussian: each diagonal-Gaussian formula once, checked against torch.distributions."""

from __future__ import annotations

import torch
from torch.distributions import Normal

from genvae.gaussian import LOG_2PI, log_normal, log_normal_dims


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
