"""Sample quality: the Fréchet distance against its closed forms (diagonal covariances, the 2×2
case derived by hand, the general eigenvalue route), identical sets, precision and recall at
their extremes and under a dropped mode, and the feature network."""

from __future__ import annotations

import math

import pytest
import torch

import genvae as gv
from genvae.classification import train_labels_only
from genvae.sample_quality import (
    FeatureNetwork,
    feature_network,
    features_of,
    frechet_distance,
    frechet_distance_gaussians,
    precision_recall,
    sample_quality,
)

pytestmark = pytest.mark.usefixtures("one_thread")

f64 = torch.float64


def random_cov(d: int, g: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=g, dtype=f64)
    return a @ a.T + 0.1 * torch.eye(d, dtype=f64)


# -- the distance between two Gaussians -----------------------------------------------------------


def test_diagonal_covariances_give_the_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    m1, m2 = torch.randn(6, generator=g, dtype=f64), torch.randn(6, generator=g, dtype=f64)
    s1, s2 = torch.rand(6, generator=g, dtype=f64) + 0.1, torch.rand(6, generator=g, dtype=f64) + 0.1
    expected = float((m1 - m2).square().sum() + (s1 - s2).square().sum())  # σ: standard deviations
    assert math.isclose(
        frechet_distance_gaussians(m1, torch.diag(s1**2), m2, torch.diag(s2**2)), expected, rel_tol=1e-10
    )


def test_the_2x2_case_derived_by_hand() -> None:
    # Σ₁Σ₂ has eigenvalues λ₁, λ₂ ≥ 0, so tr √(Σ₁Σ₂) = √λ₁ + √λ₂ = √(tr(Σ₁Σ₂) + 2 √(det Σ₁ det Σ₂))
    s1 = torch.tensor([[2.0, 0.6], [0.6, 1.0]], dtype=f64)
    s2 = torch.tensor([[1.0, -0.3], [-0.3, 0.5]], dtype=f64)
    m1, m2 = torch.tensor([1.0, 2.0], dtype=f64), torch.tensor([-1.0, 0.5], dtype=f64)
    trace_sqrt = math.sqrt(float((s1 @ s2).trace()) + 2 * math.sqrt(float(s1.det() * s2.det())))
    expected = 4 + 2.25 + 3.0 + 1.5 - 2 * trace_sqrt
    assert math.isclose(frechet_distance_gaussians(m1, s1, m2, s2), expected, rel_tol=1e-12)


def test_the_general_case_matches_the_eigenvalues_of_the_product() -> None:
    g = torch.Generator().manual_seed(1)
    m1, m2 = torch.randn(10, generator=g, dtype=f64), torch.randn(10, generator=g, dtype=f64)
    s1, s2 = random_cov(10, g), random_cov(10, g)
    via_product = torch.linalg.eigvals(s1 @ s2).sqrt().real.sum()  # the FID papers' route
    expected = float((m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * via_product)
    assert math.isclose(frechet_distance_gaussians(m1, s1, m2, s2), expected, rel_tol=1e-9)
    assert math.isclose(frechet_distance_gaussians(m1, s1, m2, s2), frechet_distance_gaussians(m2, s2, m1, s1))


def test_the_general_case_matches_scipy_when_installed() -> None:
    linalg = pytest.importorskip("scipy.linalg")
    g = torch.Generator().manual_seed(2)
    s1, s2 = random_cov(5, g), random_cov(5, g)
    m = torch.zeros(5, dtype=f64)
    expected = float(s1.trace() + s2.trace()) - 2 * float(linalg.sqrtm(s1.numpy() @ s2.numpy()).real.trace())
    assert math.isclose(frechet_distance_gaussians(m, s1, m, s2), expected, rel_tol=1e-9)


def test_equal_gaussians_are_at_distance_zero_even_when_singular() -> None:
    cov = torch.diag(torch.tensor([1.0, 0.0, 2.0], dtype=f64))  # a dead feature
    assert frechet_distance_gaussians(torch.ones(3), cov, torch.ones(3), cov) == pytest.approx(0.0, abs=1e-12)


# -- the distance between two sets ----------------------------------------------------------------


def test_identical_sets_are_at_distance_zero_and_a_shift_costs_its_square() -> None:
    x = torch.randn(300, 5, generator=torch.Generator().manual_seed(0), dtype=f64)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    shift = torch.tensor([1.0, -2.0, 0.0, 0.5, 0.0], dtype=f64)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift.square().sum()), rel=1e-9)


def test_large_gaussian_samples_approach_the_closed_form() -> None:
    g = torch.Generator().manual_seed(3)
    a = torch.randn(20000, 3, generator=g, dtype=f64)
    b = torch.randn(20000, 3, generator=g, dtype=f64) * 2 + 1  # σ 2, μ 1: 3 + 3 · (2 − 1)² = 6
    assert frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)


def test_features_are_applied_to_images_in_eval_mode_and_the_mode_is_restored() -> None:
    seen: list[bool] = []
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4)).train()
    net.register_forward_pre_hook(lambda m, args: seen.append(m.training))
    images = torch.rand(7, 1, 4, 4)
    f = features_of(net, (images, torch.zeros(7, dtype=torch.long)), batch_size=3)
    assert f.shape == (7, 4) and f.dtype == f64 and seen == [False, False, False] and net.training
    with torch.no_grad():
        assert torch.allclose(f, net(images).double())
    assert frechet_distance(images, images, net) == pytest.approx(0.0, abs=1e-9)


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"^generated: expected at least 2 inputs"):
        frechet_distance(torch.rand(5, 2), torch.rand(1, 2))
    with pytest.raises(ValueError, match=r"^real: expected more than k=3 inputs"):
        precision_recall(torch.rand(3, 2), torch.rand(10, 2))
    with pytest.raises(ValueError, match=r"^cov2: expected means"):
        frechet_distance_gaussians(torch.zeros(2), torch.eye(2), torch.zeros(3), torch.eye(3))


# -- precision and recall -------------------------------------------------------------------------


def test_identical_sets_have_precision_and_recall_one() -> None:
    x = torch.randn(200, 4)
    assert precision_recall(x, x) == gv.sample_quality.PrecisionRecall(1.0, 1.0, 3)


def test_far_apart_sets_have_precision_and_recall_zero() -> None:
    x = torch.randn(200, 4)
    result = precision_recall(x, torch.randn(150, 4) + 50, k=5)
    assert (result.precision, result.recall, result.k) == (0.0, 0.0, 5)


def test_a_dropped_mode_lowers_recall_not_precision() -> None:
    g = torch.Generator().manual_seed(0)
    real = torch.cat([torch.randn(300, 2, generator=g) - 20, torch.randn(300, 2, generator=g) + 20])
    generated = torch.randn(300, 2, generator=g) + 20  # only the second mode
    result = precision_recall(real, generated)
    assert result.precision > 0.9 and 0.4 < result.recall <= 0.5


def test_sample_quality_agrees_with_the_separate_figures() -> None:
    g = torch.Generator().manual_seed(4)
    real, fake = torch.randn(100, 3, generator=g), torch.randn(80, 3, generator=g) + 0.5
    both = sample_quality(real, fake, k=4)
    pr = precision_recall(real, fake, k=4)
    assert both.frechet_distance == frechet_distance(real, fake)
    assert (both.precision, both.recall, both.real, both.generated) == (pr.precision, pr.recall, 100, 80)


@pytest.mark.slow  # the import of torchmetrics
def test_the_distance_matches_torchmetrics_when_installed() -> None:
    fid = pytest.importorskip("torchmetrics.image.fid")

    class Features(torch.nn.Module):
        num_features = 8

        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(16, 8)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.layer(x.flatten(1))).double()

    net = Features().double()
    real, fake = torch.rand(200, 1, 4, 4, dtype=f64), torch.rand(150, 1, 4, 4, dtype=f64) ** 2
    metric = fid.FrechetInceptionDistance(feature=net, normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    assert frechet_distance(real, fake, net) == pytest.approx(float(metric.compute()), rel=1e-6)


# -- the feature network --------------------------------------------------------------------------


@pytest.mark.slow
def test_the_feature_network_is_a_trained_classifiers_penultimate_layer() -> None:
    data = gv.data.SyntheticDigits(n=200, seed=0)
    net = feature_network(data, epochs=5, batch_size=20, hidden=(32,), seed=1)
    assert isinstance(net, FeatureNetwork) and not net.training
    f = features_of(net, data)
    assert f.shape == (200, 32) and (f >= 0).all()  # after the body's ReLU
    again = features_of(feature_network(data, epochs=5, batch_size=20, hidden=(32,), seed=1), data)
    assert torch.equal(f, again)  # seeded
    assert gv.classification.accuracy(net.classifier, data) > 0.4  # it learnt the classes (chance: 0.1)


def test_the_feature_network_refuses_negative_labels_and_non_finite_images() -> None:
    # a label of -1 was an IndexError from the cross-entropy; NaN images trained a NaN network
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"^data: expected class labels 0 … C−1, got -1$"):
        feature_network((x, torch.tensor([0, -1, 0, 1])), epochs=1)
    x[2, 0, 3, 3] = float("nan")
    with pytest.raises(
        ValueError, match=r"^data: expected finite values, got NaN in a tensor of shape \(4, 1, 8, 8\)$"
    ):
        feature_network((x, y), epochs=1)


def test_fit_classifier_trains_as_the_labels_only_baseline_did() -> None:
    x, y = torch.rand(40, 1, 6, 6), torch.arange(40) % 4
    net = gv.classifiers.MLPClassifier(4, (1, 6, 6), hidden=(8,))
    baseline = train_labels_only(net, (x, y), (x, y), epochs=3, seed=2)
    trained = gv.classification.fit_classifier(net, (x, y), epochs=3, seed=2)
    assert gv.classification.accuracy(trained, (x, y)) == baseline


def test_sets_of_other_sizes_or_with_nan_are_one_line_errors_naming_the_set() -> None:
    with pytest.raises(ValueError, match=r"^generated: expected features of the size of real's \(8\), got 6;"):
        precision_recall(torch.randn(50, 8), torch.randn(50, 6))
    with pytest.raises(ValueError, match=r"^real: expected finite features, got NaN or infinite values$"):
        frechet_distance(torch.full((5, 8), float("nan")), torch.randn(5, 8))
