"""SyntheticDigits: determinism, prefixes, factors and their ranges, the skeletons, and realism
against MNIST's test-split statistics."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.data.digit_strokes import VARIANTS, catmull_rom, skeletons
from genvae.data.digit_style import MNIST_TEST_STYLE, style_measures, style_summary
from genvae.data.synthetic import FACTORS, Style

SHARED_MNIST = next(
    (
        p / "shared" / "data" / "mnist"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "mnist").is_dir()
    ),
    None,
)
needs_mnist = pytest.mark.skipif(SHARED_MNIST is None, reason="shared/data/mnist is not beside the checkout")


@pytest.fixture(scope="module")
def digits() -> gv.data.SyntheticDigits:
    return gv.data.SyntheticDigits(3000, seed=0)


def test_deterministic_for_a_seed() -> None:
    a, b, c = (gv.data.SyntheticDigits(200, seed=s) for s in (3, 3, 4))
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert all(torch.equal(a.factors[k], b.factors[k]) for k in FACTORS)
    assert not torch.equal(a.images, c.images)


def test_a_smaller_set_is_a_prefix_of_a_larger_one() -> None:
    small, large = gv.data.SyntheticDigits(1500, seed=2), gv.data.SyntheticDigits(2100, seed=2)  # across a block
    assert torch.equal(small.images, large.images[:1500]) and torch.equal(small.labels, large.labels[:1500])
    assert all(torch.equal(v, large.factors[k][:1500]) for k, v in small.factors.items())
    assert torch.equal(gv.data.SyntheticDigits(1, seed=2).images, large.images[:1])


def test_contract(digits: gv.data.SyntheticDigits) -> None:
    assert digits.images.shape == (3000, 1, 28, 28) and digits.images.dtype == torch.float32
    levels = digits.images * 255
    assert digits.images.min() >= 0 and digits.images.max() <= 1 and torch.equal(levels, levels.round())  # 8-bit
    assert digits.labels.dtype == torch.int64 and set(digits.labels.tolist()) == set(range(10))
    assert list(digits.factors) == list(FACTORS) and all(v.shape == (3000,) for v in digits.factors.values())
    assert (digits.images.flatten(1).sum(1) > 10).all()  # every image shows a digit


def test_factors_lie_in_their_ranges(digits: gv.data.SyntheticDigits) -> None:
    for name, (low, high) in Style().ranges().items():
        values = digits.factors[name]
        assert values.min() >= low - 1e-6 and values.max() <= high + 1e-6, name
        assert values.max() > values.min(), f"{name} does not vary"
    for d in range(10):  # each digit's variants index VARIANTS[d]
        assert digits.factors["variant"][digits.labels == d].max() < len(VARIANTS[d])


def test_a_style_without_deformation_draws_none() -> None:
    flat = gv.data.SyntheticDigits(300, seed=0, style=Style(elastic=0.0, pressure=0.0, jitter=(0.0, 0.0)))
    assert all(float(flat.factors[k].abs().max()) == 0.0 for k in ("elastic", "pressure", "jitter"))
    assert not torch.equal(flat.images, gv.data.SyntheticDigits(300, seed=0).images)


def test_variants_are_drawn_by_their_weights() -> None:
    ds = gv.data.SyntheticDigits(20_000, seed=5)
    for d in range(10):
        chosen = ds.factors["variant"][ds.labels == d]
        weights = torch.tensor([w for w, _ in VARIANTS[d]])
        observed = torch.bincount(chosen, minlength=len(weights)).double() / len(chosen)
        assert torch.allclose(observed, weights.double() / weights.sum(), atol=0.04), (d, observed)


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.corrcoef(torch.stack([a.double(), b.double()]))[0, 1])


def test_style_factors_act_on_the_images(digits: gv.data.SyntheticDigits) -> None:
    measured = style_measures(digits.images)
    factors = digits.factors
    assert _correlation(factors["thickness"], measured["thickness"]) > 0.7
    assert _correlation(factors["slant"], measured["slant"]) > 0.6
    # Width: with the other deformations off, each form of a digit is as wide as its aspect factor says.
    rigid = Style(elastic=0.0, jitter=(0.0, 0.0), rotation_sd=0.0, slant_sd=0.0, thickness_sd=0.0)
    plain = gv.data.SyntheticDigits(1000, seed=1, style=rigid)
    width = style_measures(plain.images)["width"]
    for d in (4, 7, 9):  # taller than wide: the height fills the box, the width follows the aspect
        mask = (plain.labels == d) & (plain.factors["variant"] == 0)
        assert _correlation(plain.factors["aspect"][mask], width[mask]) > 0.8
    # The shifts are where the centre of mass ended up, within half a pixel of the centre (MNIST's placement).
    assert torch.allclose(measured["centre_x"] - 14, factors["shift_x"].double(), atol=1e-4)
    assert torch.allclose(measured["centre_y"] - 14, factors["shift_y"].double(), atol=1e-4)


def test_classes_differ(digits: gv.data.SyntheticDigits) -> None:
    means = torch.stack([digits.images[digits.labels == k].mean(0) for k in range(10)])
    distances = torch.cdist(means.flatten(1), means.flatten(1))
    assert (distances + torch.eye(10) * 1e9).min() > 1.0


def test_other_image_sizes_scale_the_style() -> None:
    ds = gv.data.SyntheticDigits(400, seed=0, image_size=56)
    measured = style_measures(ds.images)
    assert ds.images.shape == (400, 1, 56, 56)
    assert abs(float(measured["height"].mean()) - 2 * MNIST_TEST_STYLE["height_mean"]) < 1.5
    assert abs(float(measured["centre_y"].mean()) - 28) < 0.2


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, r"n: expected a positive integer, got 0"),
        ({"n": 10, "image_size": 4}, r"image_size: expected at least 8 pixels, got 4"),
        ({"n": 10, "seed": -1}, r"seed: expected a non-negative integer, got -1"),
        ({"n": 2.5}, r"n: expected a positive integer, got 2.5"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gv.data.SyntheticDigits(**kwargs)  # type: ignore[arg-type]


def test_style_needs_one_value_per_digit() -> None:
    with pytest.raises(ValueError, match=r"digit_slant: expected 10 values \(one per digit\), got 9"):
        Style(digit_slant=(0.0,) * 9)


# -- realism: statistics of a few hundred images against MNIST's test split --------------------------

TOLERANCE = {
    "mean_intensity": 0.01,
    "zero_fraction": 0.015,
    "ink_fraction": 0.012,
    "saturated_fraction": 0.025,
    "centre_x_mean": 0.1,
    "centre_y_mean": 0.1,
    "centre_x_sd": 0.06,
    "centre_y_sd": 0.06,
    "height_mean": 0.5,
    "width_mean": 0.8,
    "slant_mean": 0.04,
    "thickness_mean": 0.15,
    "thickness_sd": 0.15,
}


def test_statistics_are_close_to_mnist() -> None:
    summary = style_summary(gv.data.SyntheticDigits(500, seed=0).images)
    off = {k: round(float(summary[k]) - MNIST_TEST_STYLE[k], 4) for k in TOLERANCE}  # type: ignore[arg-type]
    assert all(abs(off[k]) <= tol for k, tol in TOLERANCE.items()), off


@needs_mnist
def test_the_recorded_mnist_figures_are_the_test_split() -> None:
    real = gv.data.MNIST(root=SHARED_MNIST, split="test")
    summary = style_summary(real.images)
    for key, value in MNIST_TEST_STYLE.items():
        assert abs(float(summary[key]) - value) < 1e-3 * max(1.0, abs(value)), key  # type: ignore[arg-type]


# -- the skeletons and the spline ---------------------------------------------------------------------


def test_catmull_rom_passes_through_its_control_points() -> None:
    matrix = catmull_rom(4, [3, 2, 5])
    assert matrix.shape == (3 + 2 + 5 + 1, 4)
    assert torch.allclose(matrix.sum(1), torch.ones(len(matrix), dtype=matrix.dtype))  # affine: moves with the points
    for row, point in ((0, 0), (3, 1), (5, 2), (10, 3)):  # span starts and the end are the control points
        assert torch.allclose(matrix[row], torch.eye(4, dtype=matrix.dtype)[point])
    with pytest.raises(ValueError, match=r"samples_per_span: expected 3 counts for 4 points"):
        catmull_rom(4, [3, 2])


def test_skeletons_pack_every_variant() -> None:
    skel = skeletons()
    assert len(skel.digit) == sum(len(v) for v in VARIANTS.values())
    for d in range(10):
        assert torch.isclose(skel.weight[skel.digit == d].sum(), torch.tensor(1.0))
    # Each variant's sampled points are the strokes' points, dense enough for the pen (< 0.1 of the height apart).
    points = skel.spline @ skel.control
    steps = (points[:, 1:] - points[:, :-1]).norm(dim=-1)[skel.joined]
    assert steps.max() < 0.1 and steps.min() > 0
    assert dataclasses.is_dataclass(skel) and skel.valid.sum(1).min() > 20
