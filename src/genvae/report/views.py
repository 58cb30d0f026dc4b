"""One run as the report shows it: its records, its kind, its evaluation and its figures.

:func:`view_run` loads a published run, evaluates it (writing ``evaluation.json``) and draws its
figures; the page and the course questions read the :class:`RunView` it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from genvae.data import ImageDataset, load_dataset
from genvae.hierarchical import HierarchicalVAE
from genvae.report.bounds import RunBound, run_bound
from genvae.report.codes import CodeEvaluation
from genvae.report.evaluation import Evaluation, RunEvaluation, evaluate_run, write_evaluation
from genvae.report.figures import ReportFigure, choose_figures
from genvae.report.kinds import RunKind, run_kind
from genvae.report.sample_figures import sample_figures
from genvae.report.sampling import FeatureNetworks, fit_samplers, measure_samples
from genvae.report.settings import ReportSettings
from genvae.runs import RunDir

__all__ = ["RunView", "view_run"]


@dataclass
class RunView:
    """What the report shows of one run, evaluated and drawn.

    Attributes:
        slug: the prefix of the run's anchors on the page (``run1``, ``run2``...).
        run: the run directory.
        kind: the kind of its model, and so which parts of the report apply.
        latent_dim: its latent size (all levels' together for a hierarchy).
        latent_dims: a hierarchy's size per level, level 1 first; None for one latent.
        num_classes: its number of classes (the model's, else the data's, else 10): chance is 1 / this.
        config: its ``config.json``.
        metrics: its ``metrics.json``.
        evaluation: what :func:`~genvae.report.evaluation.evaluate_run` measured (with the
            samplers' sample quality when the report measured it).
        shown: its figures, in the order they are shown.
        skipped: the samplers asked for that do not apply to the run's model, with why.
    """

    slug: str
    run: RunDir
    kind: RunKind
    latent_dim: int
    num_classes: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    evaluation: Evaluation
    shown: list[ReportFigure]
    skipped: dict[str, str] | None = None
    latent_dims: tuple[int, ...] | None = None

    @property
    def latent(self) -> RunEvaluation | None:
        """The evaluation of a model with a Gaussian latent; None for a VQ-VAE."""
        return self.evaluation if isinstance(self.evaluation, RunEvaluation) else None

    @property
    def codes(self) -> CodeEvaluation | None:
        """The evaluation of a VQ-VAE; None for the others."""
        return self.evaluation if isinstance(self.evaluation, CodeEvaluation) else None

    @property
    def name(self) -> str:
        """The run's folder name."""
        return self.run.path.name or str(self.run.path)

    def anchor(self, key: str) -> str | None:
        """The id of the figure ``key`` of this run, or None when the run has no such figure."""
        return f"{self.slug}-{key}" if any(s.key == key for s in self.shown) else None

    @property
    def bound(self) -> RunBound:
        """The objective's bound (what ``metrics.json``'s ``total`` is) and its test value."""
        return run_bound(self.metrics, self.config)

    @property
    def test_terms(self) -> tuple[float, float] | None:
        """(reconstruction, KL) on the whole test set at the end of training, if recorded."""
        test = self.metrics.get("test", {})
        if isinstance(test.get("recon"), float | int) and isinstance(test.get("kl"), float | int):
            return float(test["recon"]), float(test["kl"])
        return None


def _data_for(config: dict[str, Any], split: str, limit: int) -> ImageDataset:
    size_key = "test_size" if split == "test" else "train_size"
    limit = min(limit, config.get(size_key) or limit)
    return load_dataset(config["dataset"], split, config.get("data_root"), False, limit)


def view_run(
    index: int,
    run: RunDir,
    settings: ReportSettings,
    data: tuple[ImageDataset, ImageDataset] | None,
    log: Callable[[str], None],
    features: FeatureNetworks | None = None,
) -> RunView:
    """Evaluate the ``index``-th run of a report (on ``data``, a ``(train, test)`` pair, or else
    on the run's own dataset), fit its samplers, measure their samples when ``settings`` asks
    (in the features of ``features``' network for the run's training data), write its
    ``evaluation.json``, and draw its figures. ``log`` receives a line as each step starts."""
    config, metrics, history = run.config(), run.metrics(), run.history()
    model = run.load_model()
    model.eval()
    if data is not None:
        train, test = data
    else:
        train = _data_for(config, "train", settings.probe_size)
        test = _data_for(config, "test", max(settings.eval_size, settings.classify_size))
    kind, seed = run_kind(model), int(config.get("seed", 0))
    images = min(settings.eval_size, len(test))
    work = f"IW-NLL with k={settings.k:,} on {images:,} test images ({images * settings.k:,} decodes)"
    log(f"evaluating {run.path}: {work if not kind.discrete else f'reconstructions of {images:,} test images'}")
    evaluation = evaluate_run(model, train, test, settings, seed=seed)
    samplers = fit_samplers(model, kind, train, settings, seed)
    for name, why in samplers.skipped.items():  # said here too: the page is not where one looks for it
        log(f"{run.path}: not using the sampler {name} ({why})")
    if settings.measures_samples:
        network = (features or FeatureNetworks(settings, seed)).get(_data_key(config, data, train), train)
        log(f"measuring the samples of {run.path}: {', '.join(samplers.fitted)}")
        evaluation = replace(evaluation, sample_quality=measure_samples(samplers, kind, test, network, settings, seed))
    write_evaluation(run, evaluation)
    shown = choose_figures(model, kind, history, test, settings)
    shown += sample_figures(model, kind, history, evaluation, samplers, seed)
    return RunView(
        slug=f"run{index + 1}",
        run=run,
        kind=kind,
        latent_dim=model.latent_dim,
        num_classes=int(kind.classes or test.num_classes or 10),
        config=config,
        metrics=metrics,
        evaluation=evaluation,
        shown=shown,
        skipped=samplers.skipped,
        latent_dims=tuple(model.latent_dims) if isinstance(model, HierarchicalVAE) else None,
    )


def _data_key(config: dict[str, Any], data: Any, train: ImageDataset) -> Any:
    """What names a run's training data, so runs of one data set share a feature network."""
    if data is not None:
        return id(data[0])
    return (config.get("dataset"), config.get("data_root"), len(train))
