"""The shared argument checkers of genvae._validation (each written once, used everywhere)."""

from __future__ import annotations

import math

import pytest
import torch

from genvae._validation import check_finite_number, check_labels, check_non_negative


@pytest.mark.parametrize("value", [0, 0.0, 2, 1e-3, 7.5])
def test_check_non_negative_returns_a_float(value: float) -> None:
    result = check_non_negative("beta", value)
    assert result == value and isinstance(result, float)


@pytest.mark.parametrize("value", [-1.0, -1, math.nan, math.inf, True, "0.1", None])
def test_check_non_negative_names_the_argument(value: object) -> None:
    with pytest.raises(ValueError, match=rf"^beta: expected a finite number >= 0, got {value!r}$".replace("(", r"\(")):
        check_non_negative("beta", value)


@pytest.mark.parametrize("value", [-2.5, 0, 3])
def test_check_finite_number_accepts_any_sign(value: float) -> None:
    assert check_finite_number("extra", value) == value


@pytest.mark.parametrize("value", [math.nan, -math.inf, False, "1"])
def test_check_finite_number_refuses_the_rest(value: object) -> None:
    with pytest.raises(ValueError, match=r"^extra: expected a finite number, got "):
        check_finite_number("extra", value)


def test_check_labels_accepts_class_indices_and_empty_tensors() -> None:
    check_labels("y", torch.tensor([0, 2, 1]), 3)
    check_labels("y", torch.tensor([], dtype=torch.long), 3)
    check_labels("y", torch.tensor([-1, 2]), 3, unlabelled=-1)


@pytest.mark.parametrize(
    ("labels", "unlabelled", "message"),
    [
        ([0, 3], None, r"^y: expected class indices in \[0, 2\], got 3$"),
        ([-1, 1], None, r"^y: expected class indices in \[0, 2\], got -1$"),
        ([0, -2], -1, r"^y: expected class indices in \[0, 2\] or -1 \(unlabelled\), got -2$"),
        ([-1, 5], -1, r"^y: expected class indices in \[0, 2\] or -1 \(unlabelled\), got 5$"),
        ([-3, 5], None, r"got -3$"),  # the smallest value is named first
    ],
)
def test_check_labels_names_the_offending_value(labels: list[int], unlabelled: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_labels("y", torch.tensor(labels), 3, unlabelled=unlabelled)


def test_check_labels_says_what_the_values_are() -> None:
    with pytest.raises(ValueError, match=r"^data: expected labels in \[0, 1\] for every input \(none\), got 4$"):
        check_labels("data", torch.tensor([4]), 2, what="labels", note=" for every input (none)")


def test_every_conditional_model_checks_its_condition_size_with_one_rule() -> None:
    import genvae as gv
    from genvae._validation import check_condition_size

    assert check_condition_size(None, None) == (None, 0) and check_condition_size(10, None) == (10, 10)
    assert check_condition_size(None, 3) == (None, 3)
    mismatch = r"^condition_dim: expected condition_dim equal to num_classes \(10\) or None, got 3$"
    enc, dec = gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,)), gv.decoders.MLPDecoder(2, (1, 4, 4), hidden=(8,))
    for build in (
        lambda: gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=10, condition_dim=3),
        lambda: gv.HierarchicalVAE(enc, dec, latent_dims=(2, 1), num_classes=10, condition_dim=3),
        lambda: gv.VQVAE(enc, dec, codebook_size=4, code_dim=2, grid=1, num_classes=10, condition_dim=3),
    ):
        with pytest.raises(ValueError, match=mismatch):
            build()
    with pytest.raises(ValueError, match=r"^num_classes: expected num_classes or condition_dim .* got neither$"):
        gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=None)
