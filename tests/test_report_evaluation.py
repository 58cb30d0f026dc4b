"""The report's evaluation of a run (genvae.report.evaluation): its typed result, evaluation.json
written and read back through it, and the MIG it reports against an independent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from genvae.data import SyntheticDigits
from genvae.presets import seed_cvae, seed_vae
from genvae.report import ReportSettings, RunEvaluation, evaluate_run, read_evaluation, write_evaluation
from genvae.report.evaluation import BayesFigures, ClassifierFigures, MIGFigures
from genvae.runs import RunDir

# evaluation.json as the report has always written it: flat keys, in this order, every part present
WRITTEN = {
    "elbo_nats": 120.5,
    "nll_nats": 118.25,
    "nll_bits_per_dim": 0.2176,
    "nll_k": 100,
    "nll_images": 1000,
    "latent_probe_accuracy": 0.125,
    "active_units": {"count": 2, "variances": [0.9, 0.5], "threshold": 0.01},
    "prior_match": {
        "mean": [0.01, -0.02],
        "covariance": [[1.1, 0.05], [0.05, 0.9]],
        "kl_moment_matched": 0.0123,
        "ks_statistic": [0.03, 0.04],
    },
    "bayes_accuracy": 0.8,
    "bayes_k": 20,
    "bayes_images": 500,
    "label_swap_accuracy": 0.7,
    "label_swap_images": 500,
    "label_swap_z_shift": 0.3,
    "z_distance_between_images": 1.4,
    "classifier_accuracy": 0.9,
    "confusion_matrix": [[5, 1, 0], [0, 6, 0], [1, 0, 7]],
    "classified_images": 20,
    "mig": {"score": 0.25, "per_factor": {"slant": 0.3, "width": 0.2}, "images": 1000},
}
TINY = ReportSettings(eval_size=40, probe_size=60, k=2, classify_k=2, classify_size=20)


def test_evaluation_json_reads_into_typed_fields() -> None:
    figures = RunEvaluation.from_json(WRITTEN)
    assert figures.nll_nats == 118.25 and figures.nll_k == 100
    assert figures.active_units.count == 2 and figures.prior_match.covariance[1] == (0.05, 0.9)
    assert figures.bayes == BayesFigures(0.8, 20, 500, 0.7, 500, 0.3, 1.4)
    assert figures.classifier == ClassifierFigures(0.9, ((5, 1, 0), (0, 6, 0), (1, 0, 7)), 20)
    assert figures.mig == MIGFigures(0.25, {"slant": 0.3, "width": 0.2}, 1000)


def test_the_typed_result_writes_the_keys_and_order_evaluation_json_always_had() -> None:
    written = RunEvaluation.from_json(WRITTEN).to_json()
    assert json.dumps(written, indent=2) == json.dumps(WRITTEN, indent=2)  # same keys, order and values
    plain = {k: v for k, v in WRITTEN.items() if k in list(WRITTEN)[:8]}  # a VAE on real data: no optional part
    figures = RunEvaluation.from_json(plain)
    assert figures.bayes is None and figures.classifier is None and figures.mig is None
    assert json.dumps(figures.to_json()) == json.dumps(plain)


def test_evaluation_json_round_trips_through_the_run_folder(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    figures = RunEvaluation.from_json(WRITTEN)
    path = write_evaluation(run, figures)
    assert path == tmp_path / "evaluation.json"
    assert json.loads(path.read_text()) == WRITTEN
    assert read_evaluation(run) == figures


def test_a_measured_evaluation_round_trips_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = seed_cvae(latent_dim=2, num_classes=10)
    train, test = SyntheticDigits(60, seed=0), SyntheticDigits(40, seed=1)
    figures = evaluate_run(model, train, test, TINY)
    assert figures.bayes is not None and figures.bayes.images == 20 and figures.classifier is None
    assert figures.mig is not None and figures.mig.images == 40  # synthetic digits know their style factors
    write_evaluation(RunDir(tmp_path), figures)
    assert read_evaluation(RunDir(tmp_path)) == figures  # floats and all: nothing lost in the file


def test_the_evaluation_is_frozen() -> None:
    figures = RunEvaluation.from_json(WRITTEN)
    with pytest.raises(AttributeError):
        figures.nll_nats = 0.0  # type: ignore[misc]


# -- the MIG, against an independent computation (numpy histograms) ---------------------------------


def codes(values: np.ndarray, bins: int) -> np.ndarray:
    """The distinct values' indices when there are at most ``bins`` of them, else equal-width bins."""
    distinct = np.unique(values)
    if len(distinct) <= bins:
        return np.searchsorted(distinct, values)
    edges = np.linspace(values.min(), values.max(), bins + 1)[1:-1]
    return np.digitize(values, edges)


def entropy(a: np.ndarray) -> float:
    p = np.bincount(a) / len(a)
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def mutual_information(a: np.ndarray, b: np.ndarray) -> float:
    return entropy(a) + entropy(b) - entropy(a * (b.max() + 1) + b)  # I(a; b) = H(a) + H(b) - H(a, b)


def reference_mig(means: np.ndarray, factors: dict[str, np.ndarray], bins: int = 20) -> dict[str, float]:
    """MIG per factor (Chen et al., 2018): the gap between the two latent dimensions that share
    the most information with the factor, over the factor's entropy."""
    latents = [codes(means[:, d], bins) for d in range(means.shape[1])]
    gaps = {}
    for name, values in factors.items():
        v = codes(values, bins)
        if entropy(v) > 0:
            top = sorted((mutual_information(z, v) for z in latents), reverse=True)
            gaps[name] = (top[0] - top[1]) / entropy(v)
    return gaps


def test_the_reported_mig_matches_an_independent_computation() -> None:
    torch.manual_seed(0)
    model = seed_vae(latent_dim=3).eval()
    train, test = SyntheticDigits(60, seed=0), SyntheticDigits(50, seed=1)
    figures = evaluate_run(model, train, test, TINY)
    assert figures.mig is not None and figures.mig.images == TINY.eval_size  # the first 40 test images
    with torch.no_grad():
        means = model.encode(test.images[:40])[0].double().numpy()
    factors: dict[str, Any] = {name: np.asarray(values[:40]) for name, values in test.factors.items()}
    expected = reference_mig(means, factors)
    assert figures.mig.per_factor == pytest.approx(expected, abs=1e-9)
    assert figures.mig.score == pytest.approx(sum(expected.values()) / len(expected), abs=1e-9)
    assert 0 < figures.mig.score < 1 and not math.isnan(figures.mig.score)
