"""Writing a report: :func:`write_report` evaluates each run, draws its figures and writes the page."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from genvae._io import atomic_write
from genvae._version import __version__
from genvae.data import ImageDataset
from genvae.report.evaluation import ReportSettings
from genvae.report.page import page_html
from genvae.report.views import view_run
from genvae.runs import RunDir

__all__ = ["write_report"]


def write_report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: ReportSettings | None = None,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write one self-contained HTML report of ``runs`` (run directories written by
    ``genvae train``) to ``out``. Returns the path.

    The evaluation uses each run's own dataset (from its ``config.json``), or ``data``, a
    ``(train, test)`` pair, when given. ``log``, if given, receives a line as each run's
    evaluation starts (what it computes and how many decoder passes that is)."""
    settings = settings or ReportSettings()
    dirs = [RunDir(r) for r in runs]
    for run in dirs:
        run.require_published()
    views = [view_run(i, run, settings, data, log or (lambda line: None)) for i, run in enumerate(dirs)]
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, page_html(views, settings, __version__).encode())
    return target
