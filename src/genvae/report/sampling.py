"""The report's samplers and how good their samples are.

Each run's samplers are the model's own (``"prior"``, or ``"code"`` for a VQ-VAE) and those
:class:`~genvae.report.settings.ReportSettings` names (``genvae report --sampler gmm``), each
fitted on the run's first training images (:func:`fit_samplers`). Their samples are measured
(:func:`measure_samples`) against the held-out images in the features of one network trained per
report and data set (:class:`FeatureNetworks`): the Fréchet distance, precision and recall of
:mod:`genvae.sample_quality`, comparable only within one report (same feature network, same data).

    >>> figures = SampleQualityFigures.from_json({
    ...     "real": 200, "k": 3, "feature_epochs": 1, "feature_images": 1000,
    ...     "samplers": [{"name": "prior", "frechet_distance": 12.5, "precision": 0.5, "recall": 0.25,
    ...                   "generated": 200}]})
    >>> figures.samplers[0].name, figures.to_json()["samplers"][0]["recall"]
    ('prior', 0.25)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch

from genvae import samplers as sampler_registry
from genvae.data import ImageDataset
from genvae.report.kinds import RunKind
from genvae.report.settings import ReportSettings
from genvae.sample_quality import FeatureNetwork, feature_network, sample_quality
from genvae.samplers import CodeSampler, Sampler

__all__ = [
    "CAVEAT",
    "FeatureNetworks",
    "FittedSamplers",
    "SampleQualityFigures",
    "SamplerQuality",
    "check_sampler_names",
    "fit_samplers",
    "measure_samples",
    "sampler_rows",
]

#: What the sample-quality figures can be compared with.
CAVEAT = "comparable only within this report (same feature network, same data)"

#: The neighbour of the precision and recall radii.
NEIGHBOUR = 3


@dataclass(frozen=True)
class SamplerQuality:
    """One sampler's figures: the Fréchet distance (lower is better), precision (fidelity) and
    recall (coverage) of its ``generated`` samples against the held-out images."""

    name: str
    frechet_distance: float
    precision: float
    recall: float
    generated: int

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> SamplerQuality:
        """Read from one entry of ``evaluation.json``'s ``sample_quality.samplers``."""
        return cls(
            str(figures["name"]),
            float(figures["frechet_distance"]),
            float(figures["precision"]),
            float(figures["recall"]),
            int(figures["generated"]),
        )


@dataclass(frozen=True)
class SampleQualityFigures:
    """The sample quality of a run's samplers (``evaluation.json``'s ``sample_quality``).

    Attributes:
        samplers: each sampler's figures, the model's own first.
        real: held-out images the samples were compared with.
        k: the neighbour of the precision and recall radii.
        feature_epochs: epochs the feature network trained.
        feature_images: training images it trained on.
    """

    samplers: tuple[SamplerQuality, ...]
    real: int
    k: int
    feature_epochs: int
    feature_images: int

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready figures."""
        return {
            "real": self.real,
            "k": self.k,
            "feature_epochs": self.feature_epochs,
            "feature_images": self.feature_images,
            "samplers": [asdict(s) for s in self.samplers],
        }

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> SampleQualityFigures:
        """Read from ``evaluation.json``'s ``sample_quality``."""
        return cls(
            tuple(SamplerQuality.from_json(s) for s in figures["samplers"]),
            int(figures["real"]),
            int(figures["k"]),
            int(figures["feature_epochs"]),
            int(figures["feature_images"]),
        )


def check_sampler_names(names: Sequence[str]) -> tuple[str, ...]:
    """``names``, each checked against :data:`genvae.samplers.registry`: an unknown one raises a
    one-line ``ValueError`` naming ``samplers`` and the known names."""
    known = sampler_registry.names()
    for name in names:
        if name not in known:
            raise ValueError(f"samplers: unknown sampler {name!r}; known samplers: {', '.join(known)}")
    return tuple(names)


@dataclass
class FittedSamplers:
    """A run's samplers, fitted: ``fitted`` by name, the model's own first; ``skipped``: the
    names asked for that do not apply to the model, with why."""

    fitted: dict[str, Sampler]
    skipped: dict[str, str]


def _why_not(name: str, kind: RunKind) -> str | None:
    """Why sampler ``name`` does not apply to a model of ``kind`` (None when it does)."""
    codes = issubclass(sampler_registry.get(name), CodeSampler)
    if codes and not kind.discrete:
        return "it draws the code maps of a VQ-VAE"
    if kind.discrete and not codes:
        return "a VQ-VAE has no continuous z to draw"
    return None


def fit_samplers(
    model: Any, kind: RunKind, train: ImageDataset, settings: ReportSettings, seed: int = 0
) -> FittedSamplers:
    """The model's own sampler and those ``settings`` names, each built from ``seed`` and fitted
    on the first ``settings.probe_size`` images of ``train`` (a VQ-VAE's code prior for
    ``settings.code_epochs``)."""
    names = [kind.own_sampler, *check_sampler_names(settings.samplers)]
    data = train.subset(slice(0, settings.probe_size))
    result = FittedSamplers({}, {})
    for name in dict.fromkeys(names):  # once each, in order
        why = _why_not(name, kind)
        if why is not None:
            result.skipped[name] = why
            continue
        torch.manual_seed(seed)
        sampler = sampler_registry.get(name)(model)
        if isinstance(sampler, CodeSampler):
            sampler.fit(data, epochs=settings.code_epochs, progress=False)
        else:
            sampler.fit(data, progress=False)
        result.fitted[name] = sampler
    return result


class FeatureNetworks:
    """The sample-quality feature networks of one report: one per training data, trained on its
    first ``settings.probe_size`` images for ``settings.feature_epochs`` when first asked for."""

    def __init__(self, settings: ReportSettings, seed: int = 0) -> None:
        self.settings, self.seed = settings, seed
        self._networks: dict[Any, tuple[FeatureNetwork, int]] = {}

    def get(self, key: Any, train: ImageDataset) -> tuple[FeatureNetwork, int]:
        """The network for the training data ``key`` names (trained on ``train``), and the number
        of images it trained on."""
        if key not in self._networks:
            data = train.subset(slice(0, self.settings.probe_size))
            network = feature_network(data, epochs=self.settings.feature_epochs, seed=self.seed)
            self._networks[key] = (network, len(data))
        return self._networks[key]


def _labels(kind: RunKind, test: ImageDataset, n: int) -> torch.Tensor | None:
    """The labels a conditional model's samples are drawn with: the test images' own, so both
    sets have the same classes."""
    return test.labels[:n] if kind.conditional else None


def measure_samples(
    samplers: FittedSamplers,
    kind: RunKind,
    test: ImageDataset,
    features: tuple[FeatureNetwork, int],
    settings: ReportSettings,
    seed: int = 0,
) -> SampleQualityFigures:
    """Each fitted sampler's Fréchet distance, precision and recall: ``min(len(test),
    settings.quality_size)`` samples (seeded; a conditional model's with the test labels) against
    as many held-out images, in the features of ``features`` (a network and its training size)."""
    network, trained_on = features
    n = min(len(test), settings.quality_size)
    real = test.images[:n]
    figures = []
    for name, sampler in samplers.fitted.items():
        generated = sampler.sample(n, _labels(kind, test, n), generator=torch.Generator().manual_seed(seed))
        quality = sample_quality(real, generated.to("cpu", real.dtype), network, k=NEIGHBOUR)
        figures.append(SamplerQuality(name, quality.frechet_distance, quality.precision, quality.recall, n))
    return SampleQualityFigures(tuple(figures), n, NEIGHBOUR, settings.feature_epochs, trained_on)


def sampler_rows(samplers: FittedSamplers, kind: RunKind, n: int = 12, seed: int = 0) -> list[tuple[str, torch.Tensor]]:
    """One row of seeded samples per fitted sampler: ``n`` images, or one per class (in class
    order) for a conditional model with classes."""
    rows = []
    for name, sampler in samplers.fitted.items():
        y = torch.arange(kind.classes) if kind.conditional and kind.classes else None
        count = kind.classes if y is not None else n
        images = sampler.sample(count, y, generator=torch.Generator().manual_seed(seed))
        rows.append((name, images.detach().cpu()))
    return rows
