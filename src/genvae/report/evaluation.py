"""The evaluation of one run that the report shows, as a typed result.

:func:`evaluate_run` measures a model and returns a :class:`RunEvaluation`;
:func:`write_evaluation` writes it to the run's ``evaluation.json`` and :func:`read_evaluation`
reads it back. The file's keys are flat (``nll_nats``, ``bayes_accuracy``, ...) and a part that
does not apply to the run (Bayes' rule for a plain VAE, the MIG on real data) is left out.

    >>> figures = RunEvaluation.from_json({
    ...     "elbo_nats": 101.5, "nll_nats": 99.0, "nll_bits_per_dim": 0.18, "nll_k": 100, "nll_images": 1000,
    ...     "latent_probe_accuracy": 0.8,
    ...     "active_units": {"count": 2, "variances": [1.0, 0.9], "threshold": 0.01},
    ...     "prior_match": {"mean": [0.0, 0.1], "covariance": [[1.0, 0.0], [0.0, 1.0]],
    ...                     "kl_moment_matched": 0.01, "ks_statistic": [0.02, 0.03]}})
    >>> figures.nll_nats, figures.active_units.count, figures.bayes is None
    (99.0, 2, True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch

from genvae import evaluation
from genvae.data import ImageDataset
from genvae.latent_metrics import active_units, mig
from genvae.models import VAE, ConditionalVAE
from genvae.report.codes import CodeEvaluation, evaluate_codes
from genvae.report.kinds import RunKind, run_kind
from genvae.report.sampling import SampleQualityFigures
from genvae.report.settings import ReportSettings
from genvae.runs import RunDir
from genvae.semisupervised import classifier_summary
from genvae.vqvae import VQVAE

__all__ = [
    "ActiveUnitsFigures",
    "BayesFigures",
    "ClassifierFigures",
    "Evaluation",
    "MIGFigures",
    "PriorMatchFigures",
    "RunEvaluation",
    "evaluate_run",
    "read_evaluation",
    "write_evaluation",
]


def _floats(values: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


@dataclass(frozen=True)
class ActiveUnitsFigures:
    """The active units (``evaluation.json``'s ``active_units``): how many dimensions have a
    posterior mean whose variance over the test images exceeds ``threshold``."""

    count: int
    variances: tuple[float, ...]
    threshold: float

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> ActiveUnitsFigures:
        """Read from ``evaluation.json``'s ``active_units``."""
        return cls(int(figures["count"]), _floats(figures["variances"]), float(figures["threshold"]))


@dataclass(frozen=True)
class PriorMatchFigures:
    """The aggregate posterior against N(0, I) (``evaluation.json``'s ``prior_match``)."""

    mean: tuple[float, ...]
    covariance: tuple[tuple[float, ...], ...]
    kl_moment_matched: float
    ks_statistic: tuple[float, ...]

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> PriorMatchFigures:
        """Read from ``evaluation.json``'s ``prior_match``."""
        covariance = tuple(_floats(row) for row in figures["covariance"])
        return cls(
            _floats(figures["mean"]), covariance, float(figures["kl_moment_matched"]), _floats(figures["ks_statistic"])
        )


@dataclass(frozen=True)
class BayesFigures:
    """A conditional model's Bayes-rule accuracy and its label swaps (notebook 10.6h and 10.6i).

    Attributes:
        accuracy: Bayes-rule accuracy on ``images`` test images (``bayes_accuracy``).
        k: importance samples per image and class (``bayes_k``).
        images: test images classified (``bayes_images``).
        label_swap_accuracy: how often Bayes' rule reads the new label of a swapped image.
        label_swap_images: images swapped.
        label_swap_z_shift: mean distance a swapped image's re-encoded z moved.
        z_distance_between_images: mean distance between the z of two different test images.
    """

    accuracy: float
    k: int
    images: int
    label_swap_accuracy: float
    label_swap_images: int
    label_swap_z_shift: float
    z_distance_between_images: float

    def to_json(self) -> dict[str, Any]:
        """The flat keys ``evaluation.json`` holds."""
        return {
            "bayes_accuracy": self.accuracy,
            "bayes_k": self.k,
            "bayes_images": self.images,
            "label_swap_accuracy": self.label_swap_accuracy,
            "label_swap_images": self.label_swap_images,
            "label_swap_z_shift": self.label_swap_z_shift,
            "z_distance_between_images": self.z_distance_between_images,
        }

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> BayesFigures:
        """Read from the flat keys of ``evaluation.json``."""
        return cls(
            float(figures["bayes_accuracy"]),
            int(figures["bayes_k"]),
            int(figures["bayes_images"]),
            float(figures["label_swap_accuracy"]),
            int(figures["label_swap_images"]),
            float(figures["label_swap_z_shift"]),
            float(figures["z_distance_between_images"]),
        )


@dataclass(frozen=True)
class ClassifierFigures:
    """A semi-supervised model's classifier q(y | x): its accuracy (``classifier_accuracy``),
    confusion matrix (rows: true class, columns: predicted) and the images it classified
    (``classified_images``)."""

    accuracy: float
    confusion_matrix: tuple[tuple[int, ...], ...]
    images: int

    def to_json(self) -> dict[str, Any]:
        """The flat keys ``evaluation.json`` holds."""
        return {
            "classifier_accuracy": self.accuracy,
            "confusion_matrix": self.confusion_matrix,
            "classified_images": self.images,
        }

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> ClassifierFigures:
        """Read from the flat keys of ``evaluation.json`` (or :func:`~genvae.semisupervised.classifier_summary`)."""
        matrix = tuple(tuple(int(n) for n in row) for row in figures["confusion_matrix"])
        return cls(float(figures["classifier_accuracy"]), matrix, int(figures["classified_images"]))


@dataclass(frozen=True)
class MIGFigures:
    """The mutual-information gap against the data's style factors (``evaluation.json``'s ``mig``)."""

    score: float
    per_factor: dict[str, float]
    images: int

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> MIGFigures:
        """Read from ``evaluation.json``'s ``mig``."""
        per_factor = {str(k): float(v) for k, v in figures["per_factor"].items()}
        return cls(float(figures["score"]), per_factor, int(figures["images"]))


@dataclass(frozen=True)
class RunEvaluation:
    """The evaluation figures of one run: what the report shows and ``evaluation.json`` holds.

    Attributes:
        elbo_nats: the negative ELBO (one sampled z) on the ``nll_images`` test images.
        nll_nats: the importance-weighted NLL with ``nll_k`` samples on the same images.
        nll_bits_per_dim: the same in bits per data dimension.
        nll_k: importance samples per image.
        nll_images: test images the estimates, the probe's test and the latent figures use.
        latent_probe_accuracy: test accuracy of a linear classifier from posterior means to labels.
        active_units: the active latent dimensions.
        prior_match: the aggregate posterior against N(0, I).
        bayes: Bayes' rule and label swaps, for a conditional model with classes; else None.
        classifier: the classifier q(y | x), for a semi-supervised model; else None.
        mig: the MIG, for data with known style factors; else None.
        sample_quality: the samplers' sample quality, when the report measured it; else None.
    """

    elbo_nats: float
    nll_nats: float
    nll_bits_per_dim: float
    nll_k: int
    nll_images: int
    latent_probe_accuracy: float
    active_units: ActiveUnitsFigures
    prior_match: PriorMatchFigures
    bayes: BayesFigures | None = None
    classifier: ClassifierFigures | None = None
    mig: MIGFigures | None = None
    sample_quality: SampleQualityFigures | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready figures, with ``evaluation.json``'s keys in its order."""
        figures: dict[str, Any] = {
            "elbo_nats": self.elbo_nats,
            "nll_nats": self.nll_nats,
            "nll_bits_per_dim": self.nll_bits_per_dim,
            "nll_k": self.nll_k,
            "nll_images": self.nll_images,
            "latent_probe_accuracy": self.latent_probe_accuracy,
            "active_units": asdict(self.active_units),
            "prior_match": asdict(self.prior_match),
        }
        for part in (self.bayes, self.classifier):
            figures.update(part.to_json() if part is not None else {})
        if self.mig is not None:
            figures["mig"] = asdict(self.mig)
        if self.sample_quality is not None:
            figures["sample_quality"] = self.sample_quality.to_json()
        return figures

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> RunEvaluation:
        """Read the figures :meth:`to_json` gives (what ``evaluation.json`` holds)."""
        return cls(
            elbo_nats=float(figures["elbo_nats"]),
            nll_nats=float(figures["nll_nats"]),
            nll_bits_per_dim=float(figures["nll_bits_per_dim"]),
            nll_k=int(figures["nll_k"]),
            nll_images=int(figures["nll_images"]),
            latent_probe_accuracy=float(figures["latent_probe_accuracy"]),
            active_units=ActiveUnitsFigures.from_json(figures["active_units"]),
            prior_match=PriorMatchFigures.from_json(figures["prior_match"]),
            bayes=BayesFigures.from_json(figures) if "bayes_accuracy" in figures else None,
            classifier=ClassifierFigures.from_json(figures) if "classifier_accuracy" in figures else None,
            mig=MIGFigures.from_json(figures["mig"]) if "mig" in figures else None,
            sample_quality=SampleQualityFigures.from_json(figures["sample_quality"])
            if "sample_quality" in figures
            else None,
        )


#: A run's evaluation: a model with a Gaussian latent's, or a VQ-VAE's (:class:`CodeEvaluation`).
Evaluation = RunEvaluation | CodeEvaluation


def evaluation_from_json(figures: Mapping[str, Any]) -> Evaluation:
    """The evaluation ``figures`` (what ``evaluation.json`` holds) describe: a VQ-VAE's when they
    hold its ``codebook``, else a :class:`RunEvaluation`."""
    return CodeEvaluation.from_json(figures) if "codebook" in figures else RunEvaluation.from_json(figures)


def write_evaluation(run: RunDir, figures: Evaluation) -> Path:
    """Write ``figures`` to the run's ``evaluation.json`` (beside the publication it describes).
    Returns the path."""
    return run.write_evaluation(figures.to_json())


def read_evaluation(run: RunDir) -> Evaluation:
    """The evaluation in the run's ``evaluation.json``: a :class:`RunEvaluation`, or a
    :class:`CodeEvaluation` for a VQ-VAE run."""
    return evaluation_from_json(run.evaluation())


def evaluate_run(
    model: Any, train: ImageDataset, test: ImageDataset, settings: ReportSettings, seed: int = 0
) -> Evaluation:
    """The evaluation figures the report shows (also what ``evaluation.json`` holds): the negative
    ELBO and the IW-NLL on the same test images, the latent probe, the active units and the prior
    match for every model with a Gaussian latent; for a conditional model with classes, its
    Bayes-rule accuracy and how its label swaps read; for a
    :class:`~genvae.semisupervised.SemiSupervisedVAE`, its classifier's accuracy and confusion
    matrix. A :class:`~genvae.VQVAE` gets a :class:`CodeEvaluation` instead (held-out
    reconstruction, codebook perplexity and usage). The sample quality is left to the report
    (:mod:`genvae.report.sampling`)."""
    if run_kind(model).discrete:
        return evaluate_codes(cast(VQVAE, model), test, settings)
    return _evaluate_latent(model, train, test, settings, seed)


def _evaluate_latent(
    model: VAE, train: ImageDataset, test: ImageDataset, settings: ReportSettings, seed: int
) -> RunEvaluation:
    kind = run_kind(model)
    torch.manual_seed(seed)
    test_eval = test.subset(slice(0, settings.eval_size))
    result = evaluation.nll(model, test_eval, k=settings.k)
    one_sample = evaluation.nll(model, test_eval, k=1)  # the negative ELBO, on the same images
    probe = evaluation.latent_probe(model, train.subset(slice(0, settings.probe_size)), test_eval)
    units = active_units(model, test_eval)
    match = evaluation.prior_match(model, test_eval)
    # kind.bayes_rule says the model is a ConditionalVAE with classes
    bayes = _bayes_figures(cast(ConditionalVAE, model), kind, test, settings) if kind.bayes_rule else None
    classifier = ClassifierFigures.from_json(classifier_summary(model, test_eval)) if kind.semi_supervised else None
    return RunEvaluation(
        elbo_nats=one_sample.nats,
        nll_nats=result.nats,
        nll_bits_per_dim=result.bits_per_dim,
        nll_k=settings.k,
        nll_images=len(test_eval),
        latent_probe_accuracy=probe,
        active_units=ActiveUnitsFigures(units.count, _floats(units.variances.tolist()), units.threshold),
        prior_match=PriorMatchFigures(
            _floats(match.mean.tolist()),
            tuple(_floats(row) for row in match.covariance.tolist()),
            match.kl_moment_matched,
            _floats(match.ks_statistic.tolist()),
        ),
        bayes=bayes,
        classifier=classifier,
        mig=_mig_figures(model, test, len(test_eval)),
    )


def _mig_figures(model: VAE, test: ImageDataset, n: int) -> MIGFigures | None:
    """The MIG against the data's known style factors (SyntheticDigits has them; real data does
    not), on the first ``n`` test images; None for data without factors."""
    factors = getattr(test, "factors", None)
    if not factors or model.latent_dim < 2 or n < 2:
        return None
    data = (test.images[:n], test.labels[:n])  # a conditional model encodes with the labels
    result = mig(model, data, {name: values[:n] for name, values in factors.items()})
    return MIGFigures(result.score, dict(result.per_factor), n)


def _bayes_figures(model: ConditionalVAE, kind: RunKind, test: ImageDataset, settings: ReportSettings) -> BayesFigures:
    """Bayes-rule accuracy, and the label swaps of the same images (notebook 10.6h and 10.6i)."""
    n = min(settings.classify_size, len(test))
    x, y = test.images[:n], test.labels[:n]
    predicted = evaluation.classify(model, x, k=settings.classify_k)
    # each image decoded under another label, drawn uniformly (under the seed evaluate_run set)
    new_y = (y + torch.randint(1, kind.classes, y.shape)) % kind.classes  # at least 2 classes: kind.bayes_rule
    swapped = evaluation.label_swap(model, x, y, new_y)
    # the style is z: re-encoded under its new label, a swapped image should land near its old z
    z, _ = evaluation.posterior_means(model, (x, y))
    z_new, _ = evaluation.posterior_means(model, (swapped, new_y))
    return BayesFigures(
        accuracy=predicted.accuracy(y),
        k=settings.classify_k,
        images=n,
        label_swap_accuracy=evaluation.classify(model, swapped, k=settings.classify_k).accuracy(new_y),
        label_swap_images=n,
        label_swap_z_shift=float((z_new - z).norm(dim=1).mean()),
        z_distance_between_images=float((z - z.roll(1, 0)).norm(dim=1).mean()),
    )
