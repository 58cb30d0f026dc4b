"""Likelihoods against closed forms, at scales other than 1."""

from __future__ import annotations

import math

import pytest
import torch

import genvae as gv


@pytest.mark.parametrize("scale", [0.05, 0.3, 2.5])
@pytest.mark.parametrize("learn_scale", [False, True])
def test_the_gaussian_log_density_is_the_closed_form_at_any_scale(scale: float, learn_scale: bool) -> None:
    lik = gv.likelihoods.Gaussian(scale=scale, learn_scale=learn_scale)
    x, mean = torch.rand(3, 1, 4, 4, dtype=torch.float64), torch.rand(3, 1, 4, 4, dtype=torch.float64)
    # log N(x; μ, σ²) = −(x − μ)² / (2σ²) − log σ − ½ log 2π
    expected = -((x - mean) ** 2) / (2 * scale**2) - math.log(scale) - 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(lik.log_prob(x, mean), expected)
    independent = torch.distributions.Normal(mean, scale).log_prob(x).sum((1, 2, 3))
    torch.testing.assert_close(lik.distribution(mean).log_prob(x), independent)
    torch.testing.assert_close(lik.log_prob(x, mean).sum((1, 2, 3)), independent)


def test_a_learned_scale_is_differentiated_through_its_log() -> None:
    lik = gv.likelihoods.Gaussian(scale=0.5, learn_scale=True)
    x, mean = torch.tensor([0.3]), torch.tensor([0.1])
    lik.log_prob(x, mean).sum().backward()
    # d/d log σ of −(x − μ)² e^(−2 log σ) / 2 − log σ is (x − μ)² / σ² − 1
    assert lik.log_scale.grad is not None
    assert float(lik.log_scale.grad) == pytest.approx(0.2**2 / 0.25 - 1)
