"""Active units and the mutual-information gap, on models whose posterior means are known."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import genvae as gv


class Identity(nn.Module):
    """An encoder whose features are the inputs themselves (two numbers per input)."""

    out_features = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def linear_means(weight: list[list[float]]) -> gv.VAE:
    """A VAE on 2-number inputs whose posterior mean is ``weight @ x``."""
    model = gv.VAE(Identity(), gv.decoders.MLPDecoder(2, 2, hidden=(4,)), latent_dim=2, likelihood="gaussian")
    with torch.no_grad():
        model.mean_head.weight.copy_(torch.tensor(weight))
        model.mean_head.bias.zero_()
    return model


def inputs(n: int = 4000, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 2, generator=torch.Generator().manual_seed(seed))


def test_active_units_count_the_dimensions_whose_means_vary() -> None:
    x = inputs()
    units = gv.evaluation.active_units(linear_means([[1.0, 0.0], [0.0, 0.0]]), x)
    assert units.count == 1
    torch.testing.assert_close(
        units.variances, torch.stack([x[:, 0].double().var(unbiased=False), torch.tensor(0.0, dtype=torch.float64)])
    )
    small = gv.evaluation.active_units(linear_means([[1.0, 0.0], [0.05, 0.0]]), x)  # variance 0.0025
    assert (
        small.count == 1
        and gv.evaluation.active_units(linear_means([[1.0, 0.0], [0.05, 0.0]]), x, threshold=0.001).count == 2
    )


@pytest.mark.parametrize("threshold", [-1.0, float("nan"), "0.1", True])
def test_active_units_refuse_a_threshold_that_is_not_a_variance(threshold: object) -> None:
    with pytest.raises(ValueError, match="threshold: expected a finite number >= 0"):
        gv.evaluation.active_units(linear_means([[1.0, 0.0], [0.0, 1.0]]), inputs(10), threshold=threshold)  # type: ignore[arg-type]


def test_mig_is_one_for_a_factor_one_dimension_holds_alone_and_near_zero_for_noise() -> None:
    x = inputs()
    noise = torch.randn(x.shape[0], generator=torch.Generator().manual_seed(9))
    result = gv.evaluation.mig(linear_means([[1.0, 0.0], [0.0, 1.0]]), x, {"first": x[:, 0], "noise": noise})
    # dimension 0 holds all of the factor's entropy; the gap to dimension 1 (independent of it) is
    # 1 less the histogram estimator's small positive bias
    assert float(result.mutual_information[0, 0]) == pytest.approx(result.entropies["first"])
    assert result.per_factor["first"] == pytest.approx(1.0, abs=0.03)
    assert result.per_factor["noise"] < 0.05
    assert result.score == pytest.approx((result.per_factor["first"] + result.per_factor["noise"]) / 2)


def test_mig_is_zero_when_two_dimensions_hold_the_factor_equally() -> None:
    x = inputs()
    result = gv.evaluation.mig(linear_means([[1.0, 0.0], [1.0, 0.0]]), x, {"first": x[:, 0]})
    assert result.per_factor["first"] == pytest.approx(0.0, abs=1e-9)


def test_mig_refuses_factors_that_do_not_fit_the_data() -> None:
    model, x = linear_means([[1.0, 0.0], [0.0, 1.0]]), inputs(50)
    with pytest.raises(ValueError, match="factors: expected at least one factor that varies"):
        gv.evaluation.mig(model, x, {"constant": torch.zeros(50)})
    with pytest.raises(ValueError, match="bins: expected at least 2 bins, got 1"):
        gv.evaluation.mig(model, x, {"first": x[:, 0]}, bins=1)


def test_active_units_at_exactly_the_threshold_are_not_active() -> None:
    # x[:, 0] is ±1 in equal numbers: the means 1·x and 0.25·x have variances 1 and 0.0625 exactly
    x = torch.tensor([[1.0, 0.0], [-1.0, 0.0]]).repeat(50, 1)
    model = linear_means([[1.0, 0.0], [0.25, 0.0]])
    units = gv.evaluation.active_units(model, x, threshold=0.0625)
    assert units.variances.tolist() == [1.0, 0.0625]
    assert units.count == 1 and units.active.tolist() == [True, False]  # "exceeds", not "reaches"
    below = gv.evaluation.active_units(model, x, threshold=0.0624)
    assert below.count == 2 and below.active.tolist() == [True, True]


class Identity3(nn.Module):
    """An encoder whose features are the inputs themselves (three numbers per input)."""

    out_features = 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_mig_takes_the_gap_between_the_two_largest_of_three_or_more_dimensions() -> None:
    # every combination of a factor f in {0, 1, 2, 3} and a bit b, equally often; the latent
    # dimensions are f, f // 2 and b: MI log 4, log 2 and exactly 0 with f, so the gap between
    # the two largest is (log 4 − log 2) / H(f) = 1/2 (the largest and the smallest would give 1)
    f = torch.arange(4.0).repeat_interleave(2).repeat(10)
    b = torch.tensor([0.0, 1.0]).repeat(40)
    x = torch.stack([f, torch.div(f, 2, rounding_mode="floor"), b], 1)
    model = gv.VAE(Identity3(), gv.decoders.MLPDecoder(3, 3, hidden=(4,)), latent_dim=3, likelihood="gaussian")
    with torch.no_grad():
        model.mean_head.weight.copy_(torch.eye(3))
        model.mean_head.bias.zero_()
    result = gv.evaluation.mig(model, x, {"f": f})
    log2 = torch.log(torch.tensor(2.0, dtype=torch.float64))
    torch.testing.assert_close(result.mutual_information[:, 0], torch.stack([2 * log2, log2, log2 * 0]))
    assert result.entropies["f"] == pytest.approx(float(2 * log2))
    assert result.per_factor["f"] == pytest.approx(0.5) and result.score == pytest.approx(0.5)
