"""Writing a report: :func:`write_report` evaluates each run, draws its figures and writes the page."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from genvae._io import atomic_write, step, writing
from genvae._version import __version__
from genvae.data import ImageDataset
from genvae.report.page import page_html
from genvae.report.sampling import FeatureNetworks
from genvae.report.settings import ReportSettings
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
    evaluation starts (what it computes and how many decoder passes that is), and one per sampler
    asked for that does not apply to the run's model (with why).

    Each run's samplers (its own, and those ``settings.samplers`` names) are fitted on its
    training data; when ``settings.measures_samples``, their samples are measured in the features
    of one network per training data set, trained once per report, so the figures compare within
    the report only.

    The report holds each run's lock (:meth:`RunDir.lock <genvae.runs.RunDir.lock>`) while it
    reads the run and writes ``evaluation.json`` and the page, so what it shows and writes is of
    one publication: a training that would replace the run meanwhile is refused (and a report of
    a run being written is refused), each with a one-line :class:`~genvae.runs.RunLockedError`.
    ``out`` given as ``RUN/report.html`` is the page beside that run's publication."""
    settings = settings or ReportSettings()
    dirs = [RunDir(r) for r in runs]
    with contextlib.ExitStack() as held:
        for run in _distinct(dirs):
            run.require_published()  # before the lock, which would create a file in a stray folder
            held.enter_context(run.lock(create=False, advice="wait for it to finish, then write the report again"))
        step("report:locked")
        features = FeatureNetworks(settings)  # one per training data set: the sample quality compares within it
        say = log or (lambda line: None)
        views = [view_run(i, run, settings, data, say, features) for i, run in enumerate(dirs)]
        target = _target(Path(out), dirs)
        kept = "the report there before (if any) is intact, and the runs are as they were"
        with writing(target, "writing the report", kept):  # a full disk: one line naming the page
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, page_html(views, settings, __version__).encode(), step_name="report:page")
    return Path(out)


def _distinct(dirs: Sequence[RunDir]) -> list[RunDir]:
    """The runs once each (a run named twice is locked once), in one order for every report."""
    seen = {os.path.realpath(run.path): run for run in dirs}
    return [seen[key] for key in sorted(seen)]


def _target(out: Path, dirs: Sequence[RunDir]) -> Path:
    """Where the page is written: ``RUN/report.html`` of a run is the file beside its publication
    (which the link ``RUN/report.html`` shows), resolved while the run is locked; any other path
    as it is."""
    for run in dirs:
        if os.path.abspath(out) == os.path.abspath(run.report_path):
            return run.report_file()
    return out
