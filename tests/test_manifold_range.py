"""The latent manifold spans the model's prior (issue 21): ±2 under N(0, I) as always, the
central 95% of any other prior in each plotted dimension (per label for a conditional prior),
and ``scale`` still overrides; the report's captions say what to expect for each prior."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import genvae as gv
from genvae import viz
from genvae.report.figures import _range_note, _scatter_caption

Z95 = 1.959964  # Φ⁻¹(0.975)


def shifted_mog(means: list[float], std: float, components: int = 1) -> gv.VAE:
    """A seed VAE whose mixture prior has every component at ``means`` with deviation ``std``."""
    model = gv.presets.seed_vae(prior="mog").eval()
    with torch.no_grad():
        model.prior.means.copy_(torch.tensor([means] * components))
        model.prior.logvars.fill_(2 * math.log(std))
    return model


def test_the_range_under_the_standard_normal_prior_is_plus_minus_two() -> None:
    model = gv.presets.seed_vae().eval()
    assert viz.prior_range(model) == [(-2.0, 2.0), (-2.0, 2.0)]
    _, grid_x, grid_y = viz.manifold_grid(model, n=5)
    np.testing.assert_allclose(grid_x, np.linspace(-2, 2, 5))
    np.testing.assert_allclose(grid_y, np.linspace(2, -2, 5))
    _, quantile_x, _ = viz.manifold_grid(model, n=5, grid="quantile")
    np.testing.assert_allclose(quantile_x, viz.manifold_grid(model, n=5, grid="quantile", scale=2.0)[1])


def test_a_shifted_one_component_prior_spans_its_mean_plus_minus_1_96_sigma() -> None:
    model = shifted_mog([3.0, -5.0], 0.5)
    for (low, high), mean in zip(viz.prior_range(model), (3.0, -5.0), strict=True):
        assert low == pytest.approx(mean - Z95 * 0.5, abs=0.03)
        assert high == pytest.approx(mean + Z95 * 0.5, abs=0.03)
    _, grid_x, grid_y = viz.manifold_grid(model, n=7)
    assert grid_x[0] == pytest.approx(3.0 - Z95 * 0.5, abs=0.03)
    assert grid_y[0] == pytest.approx(-5.0 + Z95 * 0.5, abs=0.03)  # the top row: the largest
    assert np.all(np.diff(grid_x) > 0) and np.all(np.diff(grid_y) < 0)


def test_the_range_covers_the_components_of_a_mixture_and_is_the_same_every_time() -> None:
    model = gv.presets.seed_vae(prior="mog").eval()
    with torch.no_grad():  # components far from 0, as a trained MoG's were (z0 in [-7, 0])
        model.prior.means.copy_(torch.stack([torch.linspace(-7, 0, 10), torch.linspace(-1, 5.5, 10)], 1))
    (x0, x1), (y0, y1) = viz.prior_range(model)
    assert x0 < -6 and -1 < x1 < 1.5 and y0 < -0.5 and 5 < y1 < 7.5
    assert viz.prior_range(model) == viz.prior_range(model)  # a fixed generator


def test_the_quantile_grid_follows_the_prior_too() -> None:
    model = shifted_mog([3.0, -5.0], 0.5)
    _, grid_x, _ = viz.manifold_grid(model, n=5, grid="quantile")
    normal = torch.distributions.Normal(3.0, 0.5)
    expected = normal.icdf(torch.linspace(0.025, 0.975, 5, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(grid_x, expected, atol=0.05)


def test_scale_still_overrides_the_prior() -> None:
    _, grid_x, _ = viz.manifold_grid(shifted_mog([3.0, -5.0], 0.5), n=5, scale=1.5)
    np.testing.assert_allclose(grid_x, np.linspace(-1.5, 1.5, 5))
    with pytest.raises(ValueError, match=r"^scale: expected a positive number or None, got 0$"):
        viz.manifold_grid(gv.presets.seed_vae(), scale=0)


def test_a_conditional_prior_spans_each_labels_prior() -> None:
    torch.manual_seed(0)
    cvae = gv.presets.seed_cvae(prior="conditional").eval()
    with torch.no_grad():
        for p in cvae.prior.parameters():
            p.normal_(0, 2.0)
    for label in (1, 7):
        with torch.no_grad():
            mean, logvar = cvae.prior.gaussian(cvae.condition(label, 1))
        std = (0.5 * logvar[0]).exp()
        expected = [(float(m - Z95 * s), float(m + Z95 * s)) for m, s in zip(mean[0], std, strict=True)]
        np.testing.assert_allclose(viz.prior_range(cvae, label), expected, rtol=1e-5)
        _, grid_x, _ = viz.manifold_grid(cvae, y=label, n=3)
        np.testing.assert_allclose(grid_x[[0, -1]], expected[0], rtol=1e-5)


def test_the_captions_say_what_to_expect_for_each_prior() -> None:
    normal, mog = gv.presets.seed_vae(), shifted_mog([3.0, -5.0], 0.5)
    conditional = gv.presets.seed_cvae(prior="conditional")
    assert "±2" in _range_note(normal) and "N(0, I)" in _range_note(normal)
    assert "z[0] from 2.0 to 4.0" in _range_note(mog) and "not ±2" in _range_note(mog)
    assert "p(z | y)" in _range_note(conditional, 0)
    assert _scatter_caption(normal) == "scatter"
    assert _scatter_caption(mog) == "scatter-learned" and _scatter_caption(conditional) == "scatter-conditional"
