"""The run directory: the one owner of its layout, of every read and write in it, of its lock and
of its lifecycle (start, checked resume, atomic publication).

A run directory written by ``genvae train``::

    RUN/
      config.json  → published/current/config.json     the published run's settings and data
      model.json   → published/current/model.json      its model: gv.load(RUN) rebuilds it
      history.csv  → published/current/history.csv     per-epoch figures, per-sample nats
      metrics.json → published/current/metrics.json    final figures and the run's status
      report.html, evaluation.json → published/current/...   written by the report
      published/
        current → 000002                               the switch (one atomic symlink replacement)
        000002/                                        one complete publication, never modified
      checkpoints/                                     the training in progress (or the last one)
        config.json                                    its settings: a resume is checked against them
        history.csv                                    per-epoch figures as they come
        last.ckpt, best.ckpt                           for --resume
      .lock                                            held while a process writes the run

**Publication is atomic.** The files of a finished run are written into a new folder under
``published/``; then the symlink ``published/current`` is replaced by one pointing at it, in one
rename. The top-level names are links through ``current``, so whenever a writer stops (an
exception, Ctrl-C, SIGKILL, a full disk), ``RUN/*`` shows the complete old run or the complete new
one, and ``gv.load(RUN)`` its model. Old publications are removed after the switch.

**One writer at a time.** A writer holds an exclusive ``flock`` on ``RUN/.lock`` and records its
PID, host and start time there; a second writer gets a one-line :class:`RunLockedError` naming
the holder. The kernel releases the lock of a process that dies; the next writer takes it over
and reports the dead holder (:attr:`RunLock.stale`). The lock is :mod:`genvae.runlock`'s: opened
without following a symlink, never truncated.

**Bounded, checked reads.** Every run file is read through :mod:`genvae.runfiles` (a size cap per
kind, no hanging on a FIFO, a JSON depth limit, a schema per file); a write that fails raises a
:class:`RunWriteError` naming the path and the state the run was left in.

**No silent overwrite, checked resume.** :meth:`RunDir.start` refuses to start in a directory that
holds a run unless asked to resume it or to overwrite it; a resume is refused, with every
difference listed, when its settings differ from those the run was started with.

Run directories written before this layout (the files directly in ``RUN/``) are read as they are,
and moved into the layout (without a moment at which they are inconsistent) when written again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from genvae._io import RunWriteError, atomic_write, fsync_dir, new_folder, step, write_synced, writing
from genvae._validation import NonFiniteWeightsError
from genvae.config import MODEL_FILE, load, save
from genvae.runfiles import RunFileError, read_run_json
from genvae.runlock import LockHolder, RunLock, RunLockedError, now
from genvae.training.checkpoint import existing_checkpoint
from genvae.training.state import History

__all__ = [
    "STATUS_COMPLETE",
    "STATUS_DIVERGED",
    "LockHolder",
    "ResumeMismatchError",
    "RunDir",
    "RunExistsError",
    "RunFileError",
    "RunLock",
    "RunLockedError",
    "RunWriteError",
]

#: The status a run's metrics record: it finished, or it diverged (the last finite state is published).
STATUS_COMPLETE = "complete"
STATUS_DIVERGED = "diverged"

CONFIG, METRICS, HISTORY = "config.json", "metrics.json", "history.csv"
EVALUATION, REPORT = "evaluation.json", "report.html"
_PUBLISHED_FILES = (CONFIG, MODEL_FILE, HISTORY, METRICS)
_DERIVED_FILES = (EVALUATION, REPORT)
_PUBLISHED, _CURRENT, _CHECKPOINTS, _LOCK = "published", "current", "checkpoints", ".lock"
_LAST, _BEST = "last.ckpt", "best.ckpt"
_LEGACY_WEIGHTS = "weights.pt"
_GENERATION = re.compile(r"\d{6}")
_T = TypeVar("_T")


class RunExistsError(ValueError):
    """The directory holds a run, and neither resuming nor overwriting it was asked for."""


class ResumeMismatchError(ValueError):
    """A resume whose settings differ from those the run was started with (each listed)."""


class RunDir:
    """One run directory (see the module's description of the layout).

    Example:
        >>> run = RunDir("runs/vae")          # doctest: +SKIP
        >>> run.metrics()["test"]["total"]   # doctest: +SKIP
        156.2
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # -- reading the published run -------------------------------------------------------------

    def is_published(self) -> bool:
        """Whether a finished run is published (its config, model, history and metrics)."""
        return all((self.path / name).is_file() for name in _PUBLISHED_FILES)

    def require_published(self) -> None:
        """Raise ``FileNotFoundError`` saying what is missing and why, unless a run is published."""
        for name in _PUBLISHED_FILES:
            if not (self.path / name).is_file():
                why = (
                    "its training has not finished: resume it with genvae train --resume"
                    if self.training_config() is not None
                    else "it is not a run directory written by genvae train"
                )
                raise FileNotFoundError(f"run: expected {name} in {str(self.path)!r}, but it is not there; {why}")

    def config(self) -> dict[str, Any]:
        """The published run's settings and data (``config.json``)."""
        return self._read_published(read_run_json, CONFIG, "config")

    def metrics(self) -> dict[str, Any]:
        """The published run's final figures and status (``metrics.json``)."""
        return self._read_published(read_run_json, METRICS, "metrics")

    def history(self) -> History:
        """The published run's per-epoch figures."""
        return self._read_published(History.from_csv, HISTORY)

    def _read_published(self, reader: Callable[..., _T], name: str, *kind: str) -> _T:
        """``RUN/name`` read by ``reader``: through its link into ``published/`` (refused with a
        :class:`~genvae.runfiles.RunFileError` when the link leads out of the run directory), or
        directly in a run of the old flat layout."""
        path = self.path / name
        linked = self._check_link(path)
        return _read(reader, path, *kind, follow_symlinks=linked)

    def _check_link(self, path: Path) -> bool:
        """Whether ``path`` is a link; a :class:`~genvae.runfiles.RunFileError` when it leads out of
        the run directory."""
        linked = path.is_symlink()
        if linked and not (real := path.resolve()).is_relative_to(self.path.resolve()):
            raise RunFileError(f"{path}: expected a link into the run directory, got one to {real}; not following it")
        return linked

    def status(self) -> str:
        """``"complete"``, ``"diverged"`` (the last finite state is published) or ``"unfinished"``."""
        if not self.is_published():
            return "unfinished"
        return str(self.metrics().get("status", STATUS_COMPLETE))

    def load_model(self, map_location: str | torch.device = "cpu") -> Any:
        """The published model (what ``gv.load(RUN)`` gives); a ``model.json`` whose link leads out
        of the run directory is refused (:class:`~genvae.runfiles.RunFileError`), as the other
        run files are: the report would otherwise evaluate another model under this run's name."""
        self._check_link(self.path / MODEL_FILE)
        return load(self.path, map_location)

    def evaluation(self) -> dict[str, Any]:
        """The evaluation figures the report wrote (``evaluation.json``)."""
        return self._read_published(read_run_json, EVALUATION, "evaluation")

    # -- files derived from the published run ----------------------------------------------------

    def write_evaluation(self, figures: Mapping[str, Any]) -> Path:
        """Write the report's evaluation figures beside the published run they describe."""
        with writing(self.path / EVALUATION, "writing the evaluation", f"the run in {self.path} is as it was"):
            target = self.derived_file(EVALUATION)
            atomic_write(target, (json.dumps(figures, indent=2) + "\n").encode())
        return self.path / EVALUATION

    @property
    def report_path(self) -> Path:
        """``RUN/report.html``: where the report of this run is seen."""
        return self.path / REPORT

    def report_file(self) -> Path:
        """Where the report of this run is written (the file behind ``RUN/report.html``)."""
        return self.derived_file(REPORT)

    def derived_file(self, name: str) -> Path:
        """The real path of a file derived from the published run: in the published folder, so a
        new publication never shows a stale one, with ``RUN/name`` linked to it. A run in the old
        flat layout keeps its files directly in ``RUN``."""
        current = self.path / _PUBLISHED / _CURRENT
        if not current.is_symlink():
            return self.path / name
        _link(self.path / name, Path(_PUBLISHED, _CURRENT, name))
        return current.resolve() / name

    # -- the training in progress ------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        """Where the training writes its checkpoints (``last.ckpt``, ``best.ckpt``)."""
        return self.path / _CHECKPOINTS

    @property
    def last_checkpoint(self) -> Path:
        """The checkpoint a resume continues from."""
        return self.checkpoint_dir / _LAST

    @property
    def live_history(self) -> Path:
        """The per-epoch figures of the training in progress, written as epochs finish."""
        return self.checkpoint_dir / HISTORY

    def training_config(self) -> dict[str, Any] | None:
        """The settings the training in ``checkpoints/`` was started with (or, for a run in the old
        layout, the published ones); None when there is no training to resume."""
        for path in (self.checkpoint_dir / CONFIG, self.path / CONFIG):
            if path.is_file() and not path.is_symlink():
                return _read(read_run_json, path, "training config")
        return None

    def holds_run(self) -> bool:
        """Whether anything of a run is here: a published run or a training's checkpoints."""
        names = (_PUBLISHED, _CHECKPOINTS, CONFIG, MODEL_FILE, METRICS)
        return any((self.path / n).exists() or (self.path / n).is_symlink() for n in names)

    def describe(self) -> str:
        """A few words on what the directory holds, for messages."""
        training = self.training_config() if (self.checkpoint_dir / CONFIG).is_file() else None
        if not self.is_published():
            return "an unfinished run"
        status = self.status()
        published = (
            f"a {'finished' if status == STATUS_COMPLETE else status} run ({self.metrics().get('epochs')} epochs)"
        )
        if training is not None and training.get("run_id") != self.config().get("run_id"):
            return f"{published} and the unfinished training of another"
        return published

    def lock(self, *, create: bool = True, advice: str | None = None) -> RunLock:
        """The run's lock (use as a context manager). ``create`` makes the directory first (a
        writer's start); a reader of a published run, such as the report, passes False. ``advice``
        ends the refusal's message (by default: wait, or use another ``--out``)."""
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        if advice is None:
            return RunLock(self.path / _LOCK, self.path)
        return RunLock(self.path / _LOCK, self.path, advice)

    def remove_if_unused(self) -> bool:
        """Remove the run directory if it holds nothing but its lock file and no process holds the
        lock: what a run that stopped before it started leaves (its data or its model could not be
        made). The lock is held while its file and the folder are removed, so a process that opened
        the file meanwhile is refused as by a running run. Returns whether the folder was removed."""
        try:
            if [p.name for p in self.path.iterdir()] != [_LOCK]:
                return False
            with self.lock(create=False):
                if [p.name for p in self.path.iterdir()] != [_LOCK]:
                    return False
                (self.path / _LOCK).unlink()
                self.path.rmdir()
        except (OSError, RunLockedError):  # in use, or changed meanwhile: left as it is
            return False
        return True

    def start(
        self,
        record: Mapping[str, Any],
        *,
        resume: bool = False,
        overwrite: bool = False,
        may_change: Collection[str] = (),
        may_grow: Collection[str] = (),
        implied: Mapping[str, Collection[Any]] | None = None,
    ) -> tuple[dict[str, Any], Path | None]:
        """Begin writing a training run described by ``record`` (its settings, JSON-ready). Call it
        while holding :meth:`lock`.

        A directory that holds a run is refused (:class:`RunExistsError`) unless ``resume`` or
        ``overwrite``. With ``resume``, the settings are compared with those the run was started
        with: keys in ``may_change`` may differ, keys in ``may_grow`` may increase, and any other
        difference is refused (:class:`ResumeMismatchError`, listing each as ``old → new``); values
        are compared as JSON (a tuple equals the list it was saved as). ``implied`` maps a setting
        added since a run may have been started to the values such a run had without naming it.
        ``overwrite`` starts again (the published run stays visible until the new one replaces it).

        Returns the record as saved (with the run's ``run_id`` and ``started``) and the checkpoint
        to resume from, or None."""
        if resume and overwrite:
            raise ValueError("resume, overwrite: expected at most one of them, got both")
        saved = self.training_config() if resume else None
        if resume and self.holds_run() and (saved is None or not self._can_resume()):
            raise RunExistsError(
                f"{self.path}: holds {self.describe()} but no checkpoint to resume from; start again with --overwrite"
            )
        if not resume and self.holds_run() and not overwrite:
            raise RunExistsError(
                f"{self.path}: holds {self.describe()}; continue it with --resume or replace it with --overwrite"
            )
        if saved is not None:
            _check_same(saved, record, self.path, may_change, may_grow, implied or {})
            record = {**record, "run_id": saved.get("run_id"), "started": saved.get("started")}
        else:
            record = {**record, "run_id": uuid.uuid4().hex[:12], "started": now()}
        with writing(
            self.checkpoint_dir, "starting the run", f"the run published in {self.path} (if any) is as it was"
        ):
            self._tidy()
            if saved is None:
                shutil.rmtree(self.checkpoint_dir, ignore_errors=True)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.checkpoint_dir / CONFIG, _json_bytes(record))
        return record, self.resume_checkpoint()

    def resume_checkpoint(self) -> Path | None:
        """``last.ckpt`` when there is one to resume from, else None; anything else in its place (a
        folder, a FIFO, a link to a device) is refused with a :class:`~genvae.runfiles.RunFileError`
        rather than taken for "no checkpoint", which would start the training again silently."""
        last = self.last_checkpoint
        if last.is_symlink():  # genvae writes a regular file here: a link is someone else's doing
            raise RunFileError(
                f"{last}: expected the checkpoint file genvae wrote, got a symlink; "
                "remove it to start the training again"
            )
        return existing_checkpoint(last)  # a folder, FIFO or device there is refused too

    def _can_resume(self) -> bool:
        """A checkpoint to continue from, or a training that was started and has none yet."""
        return self.resume_checkpoint() is not None or (self.checkpoint_dir / CONFIG).is_file()

    def _tidy(self) -> None:
        """Before writing: move an old flat layout into the new one, and remove what writers
        stopped part-way left behind (temporary links and folders)."""
        for leftover in (*self.path.glob(".*.link"), *self.path.glob(".migrate-*")):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        self._migrate_flat_layout()

    # -- publication -------------------------------------------------------------------------

    def publish(
        self, model: torch.nn.Module, config: Mapping[str, Any], history: History, metrics: Mapping[str, Any]
    ) -> None:
        """Publish a finished run atomically: its config, model, history and metrics become
        visible together, replacing the previous publication in one step (see the module's
        description). Call it while holding :meth:`lock`."""
        published = self.path / _PUBLISHED
        before = f"nothing was published: {self.path} shows the run as it was before"
        with writing(published, "publishing the run", before):
            published.mkdir(parents=True, exist_ok=True)
            generation = self._stage(published, model, config, history, metrics)
            fsync_dir(published)
            step("publish:generation-renamed")
            for name in _PUBLISHED_FILES:  # links through `current`: in place before the first switch
                _link(self.path / name, Path(_PUBLISHED, _CURRENT, name))
            step("publish:linked")
            _link(published / _CURRENT, Path(generation.name))  # the switch
        after = f"the run was published in {self.path}, but an older publication may be left in {published}"
        with writing(published, "tidying up after publishing the run", after):
            fsync_dir(published)
            step("publish:switched")
            self._remove_old_generations(keep=generation.name)
            step("publish:cleaned")

    def _stage(
        self,
        published: Path,
        model: torch.nn.Module,
        config: Mapping[str, Any],
        history: History,
        metrics: Mapping[str, Any],
    ) -> Path:
        """Write the run's files into a new folder and rename it to the next generation's name."""
        staging = new_folder(published, ".new-")
        try:
            write_synced(staging / CONFIG, _json_bytes(config))
            write_synced(staging / METRICS, _json_bytes(metrics))
            history.to_csv(staging / HISTORY)
            try:
                save(model, staging)
            except NonFiniteWeightsError as err:  # publish has no allow_non_finite to offer
                raise err.with_option(None) from None
            fsync_dir(staging)
            step("publish:files-written")
            generation = published / f"{_next_generation(published):06d}"
            os.rename(staging, generation)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return generation

    def _remove_old_generations(self, keep: str) -> None:
        for path in (self.path / _PUBLISHED).iterdir():
            if (
                path.name != keep
                and path.name != _CURRENT
                and (_GENERATION.fullmatch(path.name) or path.name[0] == ".")
            ):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)

    def _migrate_flat_layout(self) -> None:
        """Move a run of the old flat layout (its files directly in ``RUN``) into a first
        publication. Each top-level file is replaced by a link to an identical copy, so the run
        reads the same at every moment."""
        if (self.path / _PUBLISHED).exists() or not (self.path / MODEL_FILE).is_file():
            return
        if (self.path / MODEL_FILE).is_symlink():
            return
        published = self.path / _PUBLISHED
        staging = new_folder(self.path, ".migrate-")
        names = [n for n in (*_PUBLISHED_FILES, *_DERIVED_FILES) if (self.path / n).is_file()]
        weights = [p.name for p in self.path.glob("weights*.pt")]
        for name in (*names, *weights):
            shutil.copy2(self.path / name, staging / name)
        fsync_dir(staging)
        (staging / "000001").mkdir()
        for name in (*names, *weights):
            os.rename(staging / name, staging / "000001" / name)
        _link(staging / _CURRENT, Path("000001"))
        os.rename(staging, published)
        fsync_dir(self.path)
        for name in names:
            _link(self.path / name, Path(_PUBLISHED, _CURRENT, name))
        for name in weights:
            (self.path / name).unlink(missing_ok=True)


def _link(path: Path, target: Path) -> None:
    """Make ``path`` a symlink to ``target`` (relative), replacing what is there in one rename."""
    if path.is_symlink() and Path(os.readlink(path)) == target:
        return
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.link")
    os.symlink(target, temporary)
    os.replace(temporary, path)


def _next_generation(published: Path) -> int:
    numbers = [int(p.name) for p in published.iterdir() if _GENERATION.fullmatch(p.name)]
    return max(numbers, default=0) + 1


def _check_same(
    saved: Mapping[str, Any],
    new: Mapping[str, Any],
    run: Path,
    may_change: Collection[str],
    may_grow: Collection[str],
    implied: Mapping[str, Collection[Any]],
) -> None:
    """Refuse a resume whose settings differ from the saved ones (one line listing each)."""
    ignored = {*may_change, "run_id", "started"}
    differences = []
    for key in sorted((saved.keys() | new.keys()) - ignored):
        old, value = saved.get(key), new.get(key)
        if _compact(old) == _compact(value) or (key not in saved and value in implied.get(key, ())):
            continue
        if key in may_grow and isinstance(old, int | float) and isinstance(value, int | float) and value > old:
            continue
        differences.append(f"{key} {_compact(old)} → {_compact(value)}")
    if differences:
        raise ResumeMismatchError(
            f"--resume: {run} was started with other settings: {'; '.join(differences)}; resume it with the "
            f"same settings (only {', '.join(sorted(may_grow)) or 'nothing'} may grow) or start again with --overwrite"
        )


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _json_bytes(value: Mapping[str, Any]) -> bytes:
    return (json.dumps(value, indent=2) + "\n").encode()


def _read(reader: Callable[..., _T], path: Path, *kind: str, follow_symlinks: bool = False) -> _T:
    """A run file read by ``reader`` (of :mod:`genvae.runfiles`, which checks its size and fields);
    a missing file says where it was expected."""
    try:
        return reader(path, *kind, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        raise FileNotFoundError(f"run: expected {path.name} in {str(path.parent)!r}, but it is not there") from None
