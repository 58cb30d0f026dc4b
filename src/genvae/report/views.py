"""One run as the report shows it: its records, its kind, its evaluation and its figures.

:func:`view_run` loads a published run, evaluates it (writing ``evaluation.json``) and draws its
figures; the page and the course questions read the :class:`RunView` it returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from genvae.data import ImageDataset, load_dataset
from genvae.report.bounds import RunBound, run_bound
from genvae.report.evaluation import ReportSettings, RunEvaluation, evaluate_run, write_evaluation
from genvae.report.figures import ReportFigure, choose_figures
from genvae.report.kinds import RunKind, run_kind
from genvae.runs import RunDir

__all__ = ["RunView", "view_run"]


@dataclass
class RunView:
    """What the report shows of one run, evaluated and drawn.

    Attributes:
        slug: the prefix of the run's anchors on the page (``run1``, ``run2``...).
        run: the run directory.
        kind: the kind of its model, and so which parts of the report apply.
        latent_dim: its latent size.
        num_classes: its number of classes (the model's, else the data's, else 10): chance is 1 / this.
        config: its ``config.json``.
        metrics: its ``metrics.json``.
        evaluation: what :func:`~genvae.report.evaluation.evaluate_run` measured.
        shown: its figures, in the order they are shown.
    """

    slug: str
    run: RunDir
    kind: RunKind
    latent_dim: int
    num_classes: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    evaluation: RunEvaluation
    shown: list[ReportFigure]

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
) -> RunView:
    """Evaluate the ``index``-th run of a report (on ``data``, a ``(train, test)`` pair, or else
    on the run's own dataset), write its ``evaluation.json``, and draw its figures. ``log``
    receives a line as the evaluation starts."""
    config, metrics, history = run.config(), run.metrics(), run.history()
    model = run.load_model()
    model.eval()
    if data is not None:
        train, test = data
    else:
        train = _data_for(config, "train", settings.probe_size)
        test = _data_for(config, "test", max(settings.eval_size, settings.classify_size))
    images = min(settings.eval_size, len(test))
    work = f"IW-NLL with k={settings.k:,} on {images:,} test images ({images * settings.k:,} decodes)"
    log(f"evaluating {run.path}: {work}")
    evaluation = evaluate_run(model, train, test, settings, seed=int(config.get("seed", 0)))
    write_evaluation(run, evaluation)
    kind = run_kind(model)
    return RunView(
        slug=f"run{index + 1}",
        run=run,
        kind=kind,
        latent_dim=model.latent_dim,
        num_classes=int(kind.classes or test.num_classes or 10),
        config=config,
        metrics=metrics,
        evaluation=evaluation,
        shown=choose_figures(model, kind, history, test, settings),
    )
