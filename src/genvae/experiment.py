"""One training run as an experiment: its settings, its data, its model and objective, its run directory.

:class:`TrainConfig` holds what ``genvae train`` takes (and what ``config.json`` records);
:func:`train_run` trains the model it describes and publishes the run directory through
:class:`genvae.runs.RunDir`. The parts are chosen by name from their registries, so parts a user
registers work here too: models (:data:`genvae.models.registry`, or a builder of
:data:`~genvae.experiment_parts.MODEL_BUILDERS`), objectives (:data:`genvae.losses.objectives`), datasets
(:data:`genvae.data.datasets`), conditioners, likelihoods and priors. The ``genvae`` command
(:mod:`genvae.cli`) is a thin layer of argument parsing over this module.

Example:
    >>> from genvae.experiment import TrainConfig, train_run
    >>> config = TrainConfig(model="vae", dataset="synthetic-digits", epochs=1, train_size=64, test_size=32)
    >>> run = train_run(config, "runs/doctest-vae", quiet=True, overwrite=True)  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from genvae._version import __version__
from genvae.data import ImageDataset
from genvae.experiment_parts import (
    MODEL_BUILDERS,
    ConfigError,
    DataChoice,
    Interrupted,
    TrainConfig,
    build_model,
    build_objective,
    check_config,
    choose_dataset,
    import_modules,
    imported_modules,
    load_splits,
    objective_name,
    partly_labelled,
)
from genvae.runs import STATUS_COMPLETE, STATUS_DIVERGED, RunDir
from genvae.training import (
    Callback,
    CSVLogger,
    DivergenceError,
    EpochLog,
    ModelCheckpoint,
    ProgressBar,
    Trainer,
    resolve_device,
)
from genvae.training.distributed import is_main_process
from genvae.training.tensorboard import TensorBoard
from genvae.training.trackers import MLflowLogger, WandbLogger, redacted_uri

__all__ = ["MODEL_BUILDERS", "ConfigError", "DataChoice", "Interrupted", "TrainConfig", "build_model",
           "build_objective", "check_config", "choose_dataset", "import_modules", "imported_modules", "load_splits",
           "objective_name", "train_run"]  # fmt: skip


# Settings a resume may change: where the data comes from, how the run executes and where it is
# logged, not what it computes. `epochs` may grow. Everything else must be what the run was started with.
_TRACKING = ("tensorboard", "mlflow", "mlflow_experiment", "wandb", "wandb_mode", "trackers")
_MAY_CHANGE = frozenset({"data_root", "download", "device", "threads", "imports", "genvae_version", "notes",
                         *_TRACKING})  # fmt: skip
_MAY_GROW = frozenset({"epochs"})
# Settings added since a run may have been started, and the values such a run had without naming them.
_IMPLIED = {"posterior": ("gaussian", None), "latent_dims": (None,), "codebook_size": (None,), "code_dim": (None,)}


# -- one training run ---------------------------------------------------------------------------


def train_run(
    config: TrainConfig,
    out: str | os.PathLike[str],
    *,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    notes: dict[str, Any] | None = None,
    quiet: bool = False,
    resume: bool = False,
    overwrite: bool = False,
    callbacks: Iterable[Callback] = (),
) -> Path:
    """Train one model as ``config`` says and publish its run directory ``out`` (see
    :class:`genvae.runs.RunDir`): ``config.json``, ``model.json`` and its weights (``gv.load(out)``
    rebuilds the model), ``history.csv``, ``metrics.json``; ``checkpoints/`` for resuming. Returns ``out``.

    A directory that holds a run is refused unless ``resume`` (continue from its last checkpoint,
    after a crash, a kill or Ctrl-C, with the same settings; more epochs are allowed) or
    ``overwrite``. Settings that cannot go together are a :class:`ConfigError` naming the flag,
    raised before the data is read (see :func:`check_config`). ``callbacks`` join the run's own
    (checkpoints, history, progress). Ctrl-C writes the checkpoint and raises :class:`Interrupted`.
    A run that diverges publishes its last finite state with the status ``"diverged"`` and raises
    :class:`~genvae.DivergenceError`."""
    if resume and overwrite:
        raise ConfigError("--resume, --overwrite: expected at most one of them, got both")
    _check_tensorboard(config.tensorboard)
    resolve_device(config.device)  # an unusable device is an error before anything is written
    check_config(config)  # and settings that cannot go together, before the data is read
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    run, extra = RunDir(out), list(callbacks)
    if not is_main_process():  # under torchrun, rank 0 alone checks and writes the run directory
        last = run.resume_checkpoint() if resume else None
        _train(config, run, data, notes, quiet, extra, lambda record: (record, last))
        return run.path
    with run.lock() as lock:
        if lock.stale is not None:
            print(f"genvae: took over the lock of {run.path} left by {lock.stale}, which ended without releasing it",
                  file=sys.stderr, flush=True)  # fmt: skip
        _train(config, run, data, notes, quiet, extra, lambda record: run.start(
            record, resume=resume, overwrite=overwrite, may_change=_MAY_CHANGE, may_grow=_MAY_GROW,
            implied=_IMPLIED))  # fmt: skip
    return run.path


def _check_tensorboard(folder: str | None) -> None:
    if folder is not None and Path(folder).exists() and not Path(folder).is_dir():
        raise ConfigError(f"--tensorboard: expected a folder, got an existing file: {folder!r}")


_Start = Callable[[dict[str, Any]], tuple[dict[str, Any], Path | None]]


def _train(
    config: TrainConfig,
    run: RunDir,
    data: tuple[ImageDataset, ImageDataset] | None,
    notes: dict[str, Any] | None,
    quiet: bool,
    extra: list[Callback],
    start: _Start,
) -> None:
    """Data, model and trainer first (nothing is written if any of them fails), then ``start``
    the run (which gives the checkpoint to resume from), train, and publish (on rank 0)."""
    notes = dict(notes or {})
    if config.dataset == "auto":
        choice = choose_dataset(config.data_root, config.download)
        config = dataclasses.replace(config, dataset=choice.name)
        notes["dataset_choice"] = choice.details
    if data is None and not quiet and is_main_process():  # reading or rendering the data can take minutes
        print(f"genvae train: preparing the data ({config.dataset})", flush=True)
    train, test = data if data is not None else load_splits(config)
    model, settings = build_model(config, train.num_classes)
    train = partly_labelled(config, model, train)
    objective, objective_settings = build_objective(config, model, len(train))
    config = dataclasses.replace(config, **objective_settings)  # the name and k as used, for config.json
    trackers = _trackers(config, run.path.name)
    for tracker in trackers:  # an unreachable tracker is an error before the run directory is touched
        tracker.connect()
    # quiet: the Trainer adds no output of its own; the run's callbacks hold it
    trainer = Trainer(model, objective, lr=config.lr, max_epochs=config.epochs, batch_size=config.batch_size,
                      device=config.device, callbacks=[*_callbacks(run, quiet, config.tensorboard), *trackers, *extra],
                      seed=config.seed, quiet=True)  # fmt: skip
    record, resume_from = start(_record(config, settings, train, test, notes))
    for tracker in trackers:  # the trackers' parameters: config.json, as the run started (not where it logs)
        tracker.params = {k: v for k, v in record.items() if k not in _TRACKING}
    if resume_from is not None:
        _restore(trainer, resume_from)
    started = time.perf_counter()
    diverged = _fit(trainer, train, test)
    if trainer.interrupted:
        raise Interrupted(
            f"{trainer.state.stop_reason}; checkpoint written to {run.last_checkpoint}; resume with --resume"
        )
    if is_main_process():
        record = {**record, "trackers": {tracker.extra: tracker.run_id for tracker in trackers}}
        run.publish(model, record, trainer.history, _metrics(config, trainer, time.perf_counter() - started, diverged))
    if diverged is not None:
        raise diverged


def _record(
    config: TrainConfig, settings: dict[str, Any], train: ImageDataset, test: ImageDataset, notes: dict[str, Any]
) -> dict[str, Any]:
    """What ``config.json`` records: the settings (the model's as built), the data, the version."""
    return {
        **dataclasses.asdict(config),
        **settings,
        "mlflow": redacted_uri(config.mlflow),  # a password in the URI stays out of the run's files
        "genvae_version": __version__,
        "train_data": {"name": train.name, "size": len(train)},
        "test_data": {"name": test.name, "size": len(test)},
        "imports": imported_modules(),
        "notes": notes,
    }


def _callbacks(run: RunDir, quiet: bool, tensorboard: str | None) -> list[Callback]:
    callbacks: list[Callback] = [ModelCheckpoint(run.checkpoint_dir), CSVLogger(run.live_history)]
    if tensorboard is not None and is_main_process():
        callbacks.append(TensorBoard(tensorboard))
    if not quiet:  # a bar on a terminal; elsewhere a line per epoch and a heartbeat during long ones
        callbacks.append(ProgressBar(file=sys.stdout) if sys.stdout.isatty() else EpochLog(file=sys.stdout))
    return callbacks


def _trackers(config: TrainConfig, name: str) -> list[MLflowLogger | WandbLogger]:
    """The experiment trackers ``config`` names (rank 0 logs), built before anything is written."""
    trackers: list[MLflowLogger | WandbLogger] = []
    try:
        if config.mlflow is not None and is_main_process():
            trackers.append(MLflowLogger(config.mlflow, config.mlflow_experiment, run_name=name))
        if config.wandb is not None and is_main_process():
            trackers.append(WandbLogger(config.wandb, config.wandb_mode, name=name))
    except (ImportError, ValueError) as err:
        flag = "--wandb" if config.mlflow is None or trackers else "--mlflow"
        raise ConfigError(f"{flag}: {err}") from None
    return trackers


def _restore(trainer: Trainer, path: Path) -> None:
    """Load the checkpoint to resume from; its stop reason belongs to the session that ended."""
    try:
        trainer.load_checkpoint(path)
    except (KeyError, TypeError, AttributeError, IndexError, RuntimeError) as err:
        message = " ".join(str(err).split())[:300]
        raise ValueError(f"{path}: the checkpoint does not fit this run ({type(err).__name__}: {message})") from None
    trainer.state.stop_reason = ""


def _fit(trainer: Trainer, train: ImageDataset, test: ImageDataset) -> DivergenceError | None:
    """Train; a divergence is returned (the trainer holds the last finite state) to be published."""
    try:
        trainer.fit(train, test)
    except DivergenceError as err:
        return err
    return None


#: ``metrics.json``'s ``units``: what its figures are.
METRICS_UNITS = (
    "nats per image, one sampled z per image; elbo = recon + kl is the negative ELBO; total is the "
    "negative of the objective's own bound, named in bound (and recorded under that name too when it is not the ELBO)"
)


def _figures(record: Mapping[str, float], prefix: str) -> dict[str, float]:
    """A split's figures of the History record, the prefix removed, with ``elbo`` = recon + kl."""
    figures = {k[len(prefix) :]: v for k, v in record.items() if k.startswith(prefix)}
    if "recon" in figures and "kl" in figures:
        figures["elbo"] = figures["recon"] + figures["kl"]
    return figures


def _metrics(config: TrainConfig, trainer: Trainer, seconds: float, diverged: DivergenceError | None) -> dict[str, Any]:
    """What ``metrics.json`` records: the status, the last epoch's figures (``train`` and
    ``test``, per-sample nats: ``elbo`` the negative ELBO, ``total`` the objective's negative bound,
    which ``bound`` names, e.g. ``{"name": "iwae", "k": 5}``, also under its own name when it is
    not the ELBO), the time, and where a divergence happened."""
    history, model = trainer.history, trainer.model
    bound = getattr(trainer.objective, "bound", None)
    metrics: dict[str, Any] = {
        "status": STATUS_DIVERGED if diverged is not None else STATUS_COMPLETE,
        "model": config.model,
        "dataset": config.dataset,
        "epochs": len(history),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train": _figures(history.last, "train_"),
        "test": _figures(history.last, "val_"),
        "bound": bound() if callable(bound) else {"name": "elbo"},
        "seconds": seconds,
        "seconds_per_epoch": [r["time"] for r in history],
        "stop_reason": trainer.state.stop_reason,
        "units": METRICS_UNITS,
    }
    if diverged is not None:
        metrics["diverged"] = {"epoch": diverged.epoch, "term": diverged.term, "value": str(diverged.value)}
    return metrics
