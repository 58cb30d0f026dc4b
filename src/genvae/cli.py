"""The ``genvae`` command: ``genvae train``, ``genvae demo``, ``genvae report``.

Run ``genvae --help`` or ``genvae train --help`` for the options. Every error is one line on
stderr and a non-zero exit status. Models, conditioners and likelihoods are chosen from their
registries, so parts a user registers work here too (``--import mymodule`` imports them first).
The run directory is written through :class:`genvae.runs.RunDir`.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import inspect
import math
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from genvae import __version__, conditioners, likelihoods, models, presets, priors
from genvae._io import step
from genvae.data import DATASETS, MNIST, FashionMNIST, ImageDataset, load_dataset, partially_labeled
from genvae.data.files import DownloadError
from genvae.losses import ELBO, IWAE, BetaTCVAE, Objective
from genvae.report import ReportSettings, write_report
from genvae.runs import STATUS_COMPLETE, STATUS_DIVERGED, RunDir, RunLockedError
from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE
from genvae.training import Callback, CSVLogger, DivergenceError, ModelCheckpoint, ProgressBar, Trainer, resolve_device
from genvae.training.distributed import is_main_process, shutdown
from genvae.training.tensorboard import TensorBoard

__all__ = ["MODEL_BUILDERS", "OBJECTIVES", "DataChoice", "Interrupted", "TrainConfig", "build_model",
           "build_objective", "choose_dataset", "main", "train_run"]  # fmt: skip


class CLIError(ValueError):
    """A user error, reported as one line."""


@dataclass
class TrainConfig:
    """The settings of one training run (what ``genvae train`` takes; saved as ``config.json``).

    ``conditioner``, ``likelihood`` and ``prior`` left as None take the model's default;
    ``dataset="auto"`` picks MNIST, else Fashion-MNIST, else SyntheticDigits (see
    :func:`choose_dataset`). ``objective`` is one of :data:`OBJECTIVES` (``k``: IWAE's samples);
    ``labels`` keeps that many training labels (balanced over the classes) for the
    semi-supervised ``"m2"``; ``tensorboard`` is a folder for TensorBoard's event files."""

    model: str = "vae"
    dataset: str = "synthetic-digits"
    data_root: str | None = None
    download: bool = False
    latent_dim: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    conditioner: str | None = None
    likelihood: str | None = None
    seed: int = 0
    device: str = "auto"
    train_size: int | None = None
    test_size: int | None = None
    threads: int | None = None
    prior: str | None = None
    objective: str = "elbo"
    k: int | None = None
    labels: int | None = None
    tensorboard: str | None = None


class Interrupted(Exception):
    """Ctrl-C stopped a run; the message says where and how to resume."""


# Settings a resume may change: where the data comes from and how the run executes, not what it
# computes. `epochs` may grow. Everything else must be what the run was started with.
_MAY_CHANGE = frozenset(
    {"data_root", "download", "device", "threads", "imports", "genvae_version", "notes", "tensorboard"}
)
_MAY_GROW = frozenset({"epochs"})


# -- the data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataChoice:
    """What ``--dataset auto`` chose: the dataset's name, a short reason (for one line of output)
    and the details of what was tried (download errors and so on, for the run's notes)."""

    name: str
    summary: str
    details: str


_REAL_DATA = (("mnist", MNIST, "MNIST"), ("fashion-mnist", FashionMNIST, "Fashion-MNIST"))


def choose_dataset(root: str | None, download: bool) -> DataChoice:
    """MNIST if its files are found (or, with ``download``, can be downloaded), else Fashion-MNIST
    likewise, else the offline SyntheticDigits."""
    tried: list[str] = []
    for name, dataset, label in _REAL_DATA:
        unavailable = f"; {tried[0].split(':')[0]} is not available" if tried else ""
        if all(dataset.available(root, split) for split in ("train", "test")):
            return DataChoice(name, f"{label} (found locally{unavailable})", "; ".join([*tried, f"{label}: found"]))
        if not download:
            tried.append(f"{label}: not found locally, and downloading is off")
            continue
        try:
            for split in ("train", "test"):
                dataset(root, split, download=True)
            return DataChoice(name, f"{label} (downloaded{unavailable})", "; ".join([*tried, f"{label}: downloaded"]))
        except (DownloadError, OSError, ValueError) as err:
            reason = " ".join(str(err).split())
            tried.append(f"{label}: not found locally, and the download failed ({reason[:400]})")
    summary = "SyntheticDigits (rendered offline; neither MNIST nor Fashion-MNIST is available)"
    return DataChoice("synthetic-digits", summary, "; ".join(tried))


def _load_splits(config: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    train = load_dataset(config.dataset, "train", config.data_root, config.download, config.train_size)
    test = load_dataset(config.dataset, "test", config.data_root, config.download, config.test_size)
    return train, test


# -- the model --------------------------------------------------------------------------------


#: How ``genvae train --model NAME`` builds a model: the notebook's networks for the built-in
#: names; any other registered model is built by its class. Add a preset here to make a new
#: registered model build like the notebook's.
MODEL_BUILDERS: dict[str, Callable[..., torch.nn.Module]] = {
    "vae": presets.seed_vae,
    "cvae": presets.seed_cvae,
    "m2": presets.seed_m2,
}

#: The objectives ``genvae train --objective`` names (the semi-supervised ``m2`` trains with its
#: own bound, :class:`~genvae.SemiSupervisedELBO`).
OBJECTIVES = ("elbo", "iwae", "beta-tcvae")


def build_model(config: TrainConfig, num_classes: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model ``config.model`` names (from the model registry), and the settings it was built
    with. Every setting goes to the builder's keyword argument of the same name; a setting the
    builder does not take is an error when it was given, and recorded as None otherwise."""
    builder = MODEL_BUILDERS.get(config.model) or models.get(config.model)
    parameters = inspect.signature(builder).parameters
    chosen = {
        "latent_dim": config.latent_dim,
        "conditioner": config.conditioner,
        "likelihood": config.likelihood,
        "prior": config.prior,
    }
    for name, value in chosen.items():
        if value is not None and name not in parameters:
            flag = "--" + name.replace("_", "-")
            raise CLIError(f"{flag}: the model {config.model!r} takes no {name}, got {value!r}")
    derived = {"num_classes": num_classes}  # from the data: passed where the builder takes it
    arguments = {k: v for k, v in {**chosen, **derived}.items() if v is not None and k in parameters}
    torch.manual_seed(config.seed)  # the model's initialisation follows the seed too
    model = builder(**arguments)
    settings = {name: arguments.get(name, _default(parameters, name)) for name in chosen}
    return model, settings


def build_objective(config: TrainConfig, model: torch.nn.Module, train_size: int) -> Objective:
    """The objective ``config.objective`` names for ``model`` (β-TCVAE's estimator needs the
    training set's size); the M2 model's own bound for a :class:`~genvae.SemiSupervisedVAE`."""
    if config.k is not None and config.objective != "iwae":
        raise CLIError(f"--k: only --objective iwae takes k, got --objective {config.objective}")
    if isinstance(model, SemiSupervisedVAE):
        if config.objective != "elbo":
            raise CLIError(
                f"--objective: the model 'm2' trains with its own bound; expected elbo, got {config.objective}"
            )
        return SemiSupervisedELBO()
    if config.objective == "iwae":
        return IWAE(k=config.k if config.k is not None else 5)
    if config.objective == "beta-tcvae":
        return BetaTCVAE(dataset_size=train_size)
    if config.objective != "elbo":
        raise CLIError(f"--objective: expected one of {', '.join(OBJECTIVES)}, got {config.objective!r}")
    return ELBO()


def _partly_labelled(config: TrainConfig, model: torch.nn.Module, train: ImageDataset) -> ImageDataset:
    """The training data with only ``config.labels`` labels kept (for M2), oversampled to half of
    every batch as the semi-supervised papers do."""
    if config.labels is None:
        return train
    if not isinstance(model, SemiSupervisedVAE):
        raise CLIError(f"--labels: only --model m2 learns from partly labelled data, got --model {config.model}")
    return partially_labeled(train, config.labels, seed=config.seed, labelled_share=0.5)


def _default(parameters: Any, name: str) -> Any:
    parameter = parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


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
) -> Path:
    """Train one model as ``config`` says and publish its run directory ``out`` (see
    :class:`genvae.runs.RunDir`): ``config.json``, ``model.json`` and its weights (``gv.load(out)``
    rebuilds the model), ``history.csv``, ``metrics.json``; ``checkpoints/`` for resuming. Returns ``out``.

    A directory that holds a run is refused unless ``resume`` (continue from its last checkpoint,
    after a crash, a kill or Ctrl-C, with the same settings; more epochs are allowed) or
    ``overwrite``. Ctrl-C writes the checkpoint and raises :class:`Interrupted`. A run that
    diverges publishes its last finite state with the status ``"diverged"`` and raises
    :class:`~genvae.DivergenceError`."""
    if resume and overwrite:
        raise CLIError("--resume, --overwrite: expected at most one of them, got both")
    config = _effective(config)
    resolve_device(config.device)  # an unusable device is an error before anything is written
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    run = RunDir(out)
    if not is_main_process():  # under torchrun, rank 0 alone checks and writes the run directory
        last = run.last_checkpoint if resume and run.last_checkpoint.is_file() else None
        _train(config, run, data, notes, quiet, lambda record: (record, last))
        return run.path
    with run.lock() as lock:
        if lock.stale is not None:
            print(f"genvae: took over the lock of {run.path} left by {lock.stale}, which ended without releasing it",
                  file=sys.stderr, flush=True)  # fmt: skip
        _train(config, run, data, notes, quiet, lambda record: run.start(
            record, resume=resume, overwrite=overwrite, may_change=_MAY_CHANGE, may_grow=_MAY_GROW))  # fmt: skip
    return run.path


def _effective(config: TrainConfig) -> TrainConfig:
    """``config`` with the defaults it implies spelled out (IWAE's k), so that ``config.json``
    says what trained the model and a resume compares like with like; and checked paths."""
    if config.tensorboard is not None and Path(config.tensorboard).exists() and not Path(config.tensorboard).is_dir():
        raise CLIError(f"--tensorboard: expected a folder, got an existing file: {config.tensorboard!r}")
    if config.objective == "iwae" and config.k is None:
        return dataclasses.replace(config, k=5)
    return config


_Start = Callable[[dict[str, Any]], tuple[dict[str, Any], Path | None]]


def _train(
    config: TrainConfig,
    run: RunDir,
    data: tuple[ImageDataset, ImageDataset] | None,
    notes: dict[str, Any] | None,
    quiet: bool,
    start: _Start,
) -> None:
    """Data, model and trainer first (nothing is written if any of them fails), then ``start``
    the run (which gives the checkpoint to resume from), train, and publish (on rank 0)."""
    notes = dict(notes or {})
    if config.dataset == "auto":
        choice = choose_dataset(config.data_root, config.download)
        config = dataclasses.replace(config, dataset=choice.name)
        notes["dataset_choice"] = choice.details
    train, test = data if data is not None else _load_splits(config)
    model, settings = build_model(config, train.num_classes)
    train = _partly_labelled(config, model, train)
    objective = build_objective(config, model, len(train))
    trainer = Trainer(model, objective, lr=config.lr, max_epochs=config.epochs, batch_size=config.batch_size,
                      device=config.device, callbacks=_callbacks(run, quiet, config.tensorboard),
                      seed=config.seed, quiet=True)  # fmt: skip
    record, resume_from = start(_record(config, settings, train, test, notes))
    if resume_from is not None:
        _restore(trainer, resume_from)
    started = time.perf_counter()
    diverged = _fit(trainer, train, test)
    if trainer.interrupted:
        raise Interrupted(
            f"{trainer.state.stop_reason}; checkpoint written to {run.last_checkpoint}; resume with --resume"
        )
    if is_main_process():
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
        "genvae_version": __version__,
        "train_data": {"name": train.name, "size": len(train)},
        "test_data": {"name": test.name, "size": len(test)},
        "imports": list(_IMPORTED),
        "notes": notes,
    }


def _callbacks(run: RunDir, quiet: bool, tensorboard: str | None) -> list[Callback]:
    callbacks: list[Callback] = [ModelCheckpoint(run.checkpoint_dir), CSVLogger(run.live_history)]
    if tensorboard is not None and is_main_process():
        callbacks.append(TensorBoard(tensorboard))
    if not quiet:
        callbacks.append(ProgressBar(file=sys.stdout))
    if os.environ.get("GENVAE_TEST_PAUSE_AT", "").startswith("train:"):
        callbacks.append(_PauseAt())
    return callbacks


class _PauseAt(Callback):
    """The test hook of :mod:`genvae._io` inside training: the step ``train:epoch-E:step-S`` is
    reached after step S (1-based) of epoch E, so a test can signal a run at an exact point."""

    def on_batch_end(self, trainer: Trainer, step_: int, terms: Any) -> None:
        step(f"train:epoch-{trainer.state.epoch + 1}:step-{step_ + 1}")


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


def _metrics(config: TrainConfig, trainer: Trainer, seconds: float, diverged: DivergenceError | None) -> dict[str, Any]:
    history, model = trainer.history, trainer.model
    metrics: dict[str, Any] = {
        "status": STATUS_DIVERGED if diverged is not None else STATUS_COMPLETE,
        "model": config.model,
        "dataset": config.dataset,
        "epochs": len(history),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train": {k[6:]: v for k, v in history.last.items() if k.startswith("train_")},
        "test": {k[4:]: v for k, v in history.last.items() if k.startswith("val_")},
        "seconds": seconds,
        "seconds_per_epoch": [r["time"] for r in history],
        "stop_reason": trainer.state.stop_reason,
        "units": "nats per sample (negative ELBO = recon + kl), one sampled z per image",
    }
    if diverged is not None:
        metrics["diverged"] = {"epoch": diverged.epoch, "term": diverged.term, "value": str(diverged.value)}
    return metrics


# -- the demo ---------------------------------------------------------------------------------


_QUICK_REPORT = ReportSettings(eval_size=200, probe_size=1000, k=10, classify_k=5, classify_size=100)


#: The demo's runs: the notebook's VAE and CVAE with a 2-D latent space, and the VAE with an 8-D
#: one, so the report can answer the notebook's question 10.4c (what a larger latent space does).
DEMO_RUNS = {
    "vae": ("vae", 2, "the notebook's VAE, latent size 2"),
    "cvae": ("cvae", 2, "the notebook's conditional VAE, latent size 2"),
    "vae-8d": ("vae", 8, "the notebook's VAE, latent size 8 (for question 10.4c)"),
}


def demo(out: str, epochs: int, quick: bool, root: str | None, download: bool, overwrite: bool = False) -> None:
    """Train the notebook's VAE and CVAE (and the VAE with latent size 8) on the best data
    available and write their report."""
    choice = choose_dataset(root, download)
    print(f"genvae demo: data: {choice.summary}", flush=True)
    runs = {name: Path(out) / name for name in DEMO_RUNS}
    report = Path(out) / "report.html"  # the demo's own report, beside its run directories
    print(f"genvae demo: runs in {out}: {', '.join(runs)}; report {report} (written at the end)", flush=True)
    base = TrainConfig(dataset=choice.name, data_root=root, epochs=epochs)
    if quick:
        base.epochs, base.train_size, base.test_size = 1, 2000, 500
    data = _load_splits(base)
    for name, run in runs.items():
        model, latent_dim, what = DEMO_RUNS[name]
        config = dataclasses.replace(base, model=model, latent_dim=latent_dim)
        print(f"== {name}: {what}", flush=True)
        train_run(config, run, data=data, notes={"dataset_choice": choice.details}, overwrite=overwrite)
        test = RunDir(run).metrics()["test"]
        print(
            f"   test: {test['total']:.2f} nats per image (recon {test['recon']:.2f} + KL {test['kl']:.2f}); "
            f"written to {run}",
            flush=True,
        )
    print("== report: evaluating the models and drawing their figures", flush=True)
    write_report(list(runs.values()), report, _QUICK_REPORT if quick else None)
    print(f"genvae demo: wrote {report}", flush=True)


# -- argument parsing ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _number(parse: Callable[[str], Any], minimum: float, inclusive: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: ``parse`` the text and require a finite value above ``minimum``."""

    def check(text: str) -> Any:
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    return check


_positive_int = _number(int, 1, True, "a positive integer")
_non_negative_int = _number(int, 0, True, "a non-negative integer")
_positive_float = _number(float, 0, False, "a positive number")
#: More threads than this only slows torch down (and a huge count crashes its thread pool).
MAX_THREADS = 1024


def _threads(text: str) -> int:
    value: int = _positive_int(text)
    if value > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected a positive integer up to {MAX_THREADS}, got {text!r}")
    return value


def _folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    if not os.access(text, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder is not readable: {text!r}")
    return text


def _common_options() -> argparse.ArgumentParser:
    """Options every command takes (``--import`` is also read before the others, see :func:`main`)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE",
                        help="import a module (a name or a .py file) first, e.g. one that registers parts")  # fmt: skip
    common.add_argument("--threads", type=_threads, default=None, help="CPU threads for torch (default: torch's)")
    return common


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="genvae", description="Train and inspect variational autoencoders.")
    parser.add_argument("--version", action="version", version=f"genvae {__version__}")
    parser.add_argument("--import", dest="imports_first", action="append", default=[], metavar="MODULE",
                        help="import a module first (also accepted after the command)")  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    common = _common_options()
    _add_train(commands, common)
    _add_demo(commands, common)
    _add_report(commands, common)
    return parser


def _add_train(commands: Any, common: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a VAE or CVAE and write a run directory",
        description="Train a model (by default the course notebook's VAE) and publish its run directory: "
        "config.json, model.json and its weights, history.csv, metrics.json (gv.load(RUN_DIR) reloads the model).",
    )
    _add_model_options(train)
    data = train.add_argument_group("data")
    auto = "auto: MNIST, else Fashion-MNIST, else synthetic-digits"
    data.add_argument(
        "--dataset",
        choices=(*DATASETS, "auto"),
        default="synthetic-digits",
        help=f"data; {auto} (default: %(default)s)",
    )
    data.add_argument("--data-root", type=_folder, default=None, help="folder searched first for dataset files")
    data.add_argument("--download", action="store_true", help="download missing dataset files")
    data.add_argument("--train-size", type=_positive_int, default=None, help="use only the first N training images")
    data.add_argument("--test-size", type=_positive_int, default=None, help="use only the first N test images")
    _add_training_options(train)
    run = train.add_argument_group("the run directory")
    run.add_argument("--out", required=True, help="run directory to write")
    existing = run.add_mutually_exclusive_group()
    existing.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its last checkpoint (same settings)"
    )
    existing.add_argument("--overwrite", action="store_true", help="replace the run in --out")
    run.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    run.add_argument("--tensorboard", metavar="DIR", default=None, help="also log to TensorBoard in DIR")
    run.add_argument("--no-report", action="store_true", help="do not write report.html")
    run.add_argument("--quick-report", action="store_true", help="a report with small evaluation sizes")


def _add_model_options(train: argparse.ArgumentParser) -> None:
    """The model's options; the choices are the registries' names (a registered part is a choice)."""
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=models.names(), default="vae", help="model (default: vae)")
    model.add_argument("--latent-dim", type=_positive_int, default=2, help="size of z (default: 2)")
    model.add_argument("--conditioner", choices=conditioners.names(), default=None,
                       help="how a conditional model takes its label (default: the model's, split)")  # fmt: skip
    model.add_argument("--likelihood", choices=likelihoods.names(), default=None,
                       help="p(x given z) (default: the model's, bernoulli)")  # fmt: skip
    model.add_argument("--prior", choices=priors.names(), default=None,
                       help="p(z) (default: the model's, normal; conditional: p(z given y))")  # fmt: skip
    model.add_argument("--labels", type=_non_negative_int, default=None,
                       help="--model m2: keep only N training labels, balanced over the classes")  # fmt: skip


def _add_training_options(train: argparse.ArgumentParser) -> None:
    training = train.add_argument_group("training")
    training.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default: 10)")
    training.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default: 32)")
    training.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    training.add_argument("--objective", choices=OBJECTIVES, default="elbo", help="the loss (default: elbo)")
    training.add_argument(
        "--k", type=_positive_int, default=None, help="--objective iwae: samples per image (default: 5)"
    )
    training.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    training.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")


def _add_demo(commands: Any, common: argparse.ArgumentParser) -> None:
    demo_ = commands.add_parser(
        "demo",
        parents=[common],
        help="train the notebook's VAE and CVAE (MNIST, else Fashion-MNIST, else SyntheticDigits)",
        description="Train the notebook's VAE and CVAE with latent size 2 (and the VAE with latent size 8, for "
        "the notebook's question 10.4c), write a run directory for each and one report of all three. "
        "Uses MNIST when its files are found or can be downloaded, else Fashion-MNIST likewise, otherwise "
        "SyntheticDigits; the first line of output says which.",
    )
    demo_.add_argument("--out", default="runs/demo", help="folder for the two runs (default: runs/demo)")
    demo_.add_argument("--epochs", type=_positive_int, default=5, help="epochs per model (default: 5)")
    demo_.add_argument("--data-root", type=_folder, default=None, help="folder searched first for the data")
    demo_.add_argument("--no-download", action="store_true", help="do not try to download MNIST or Fashion-MNIST")
    demo_.add_argument("--quick", action="store_true", help="one epoch on a small subset (a smoke test)")
    demo_.add_argument("--overwrite", action="store_true", help="replace the runs of an earlier demo in --out")


def _add_report(commands: Any, common: argparse.ArgumentParser) -> None:
    report = commands.add_parser(
        "report",
        parents=[common],
        help="write the HTML report of run directories",
        description="Evaluate the models of one or more run directories and write one self-contained HTML "
        "report (configuration, metrics, loss curves, latent-space figures).",
    )
    report.add_argument("runs", nargs="+", type=_folder, help="run directories written by genvae train")
    report.add_argument("--out", default=None, help="the HTML file (default: RUN_DIR/report.html of the first run)")
    report.add_argument("--k", type=_positive_int, default=100, help="importance samples for the NLL (default: 100)")
    report.add_argument("--eval-size", type=_positive_int, default=1000, help="test images evaluated (default: 1000)")


# -- running a command ------------------------------------------------------------------------------


_IMPORTED: list[str] = []  # the modules --import loaded, recorded in each run's config


def _import_modules(argv: Sequence[str] | None) -> None:
    """Import the ``--import`` modules before the full parser is built, so the parts they
    register are among its choices. A name is imported as ``python -m`` would (the current
    folder first); a path ending in ``.py`` is loaded from that file."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--import", dest="imports", action="append", default=[])
    wanted = early.parse_known_args(argv)[0].imports
    _IMPORTED.clear()
    for target in wanted:
        try:
            if target.endswith(".py"):
                spec = importlib.util.spec_from_file_location(Path(target).stem, target)
                if spec is None or spec.loader is None or not Path(target).is_file():
                    raise ImportError(f"no such file: {target!r}")
                module = importlib.util.module_from_spec(spec)
                sys.modules[spec.name] = module
                spec.loader.exec_module(module)
            else:
                sys.path.insert(0, os.getcwd())
                try:
                    importlib.import_module(target)
                finally:
                    sys.path.remove(os.getcwd())
        except Exception as err:  # the module's own code may fail in any way
            raise CLIError(f"--import: cannot import {target!r} ({type(err).__name__}: {err})") from None
        _IMPORTED.append(target)


def _check_out(path: str) -> None:
    if not path.strip():
        raise CLIError(f"--out: expected a folder name, got {path!r}")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CLIError(f"--out: expected a folder, got an existing file: {path!r}")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out: cannot create {path!r}: {err.strerror}") from None
    if not os.access(target, os.W_OK):
        raise CLIError(f"--out: folder is not writable: {path!r}")


def _command_train(args: argparse.Namespace) -> int:
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**fields)
    settings = _QUICK_REPORT if args.quick_report else None
    try:
        run = train_run(config, args.out, quiet=args.quiet, resume=args.resume, overwrite=args.overwrite)
    except DivergenceError as err:
        if not args.no_report and is_main_process():
            write_report([args.out], RunDir(args.out).report_file(), settings)
        raise CLIError(f"{err}; the last finite state is published in {args.out}") from None
    if not args.no_report and is_main_process():
        write_report([run], RunDir(run).report_file(), settings)
    print(f"genvae train: wrote {run}", flush=True)
    return 0


def _command_report(args: argparse.Namespace) -> int:
    settings = ReportSettings(eval_size=args.eval_size, k=args.k)
    if args.out is not None and Path(args.out).is_dir():
        raise CLIError(f"--out: expected the report's file name, got a folder: {args.out!r}")
    target = Path(args.out) if args.out else RunDir(args.runs[0]).report_file()
    write_report(args.runs, target, settings, log=lambda line: print(f"genvae report: {line}", flush=True))
    print(f"genvae report: wrote {args.out or RunDir(args.runs[0]).report_path}", flush=True)
    return 0


def _command_demo(args: argparse.Namespace) -> int:
    demo(args.out, args.epochs, args.quick, args.data_root, not args.no_download, args.overwrite)
    return 0


_COMMANDS = {"train": _command_train, "report": _command_report, "demo": _command_demo}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genvae`` command; returns the exit status."""
    command = "genvae"
    try:
        _import_modules(argv)
        args = _parser().parse_args(argv)
        command = f"genvae {args.command}"
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        if args.out is not None:
            _check_out(args.out if args.command != "report" else str(Path(args.out).parent or "."))
        return _COMMANDS[args.command](args)
    except (ValueError, KeyError, OSError, RunLockedError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"{command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        # torch.OutOfMemoryError is a RuntimeError; a CPU allocation failure is a plain one
        out_of_memory = isinstance(err, MemoryError | torch.OutOfMemoryError) or any(
            text in str(err) for text in ("tried to allocate", "not enough memory")
        )
        if not out_of_memory:
            raise
        print(f"{command}: error: out of memory ({_short(err)}); try smaller sizes", file=sys.stderr)
        return 1
    except Interrupted as err:
        print(f"{command}: {err}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return 130
    finally:
        shutdown()


def _short(err: BaseException) -> str:
    """The gist of an allocation error: torch's message names the bytes it tried to allocate."""
    text = " ".join(str(err).split())
    found = re.search(r"tried to allocate (\d+) bytes", text)
    if found:
        return f"an allocation of {int(found.group(1)) / 2**30:,.1f} GiB failed"
    return text[:200]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
