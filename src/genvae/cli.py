"""The ``genvae`` command: ``genvae train``, ``genvae demo``, ``genvae report``.

Run ``genvae --help`` or ``genvae train --help`` for the options. Every error is one line on
stderr and a non-zero exit status.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch

from genvae import __version__, presets
from genvae._io import atomic_write
from genvae.config import save
from genvae.data import DATASETS, MNIST, ImageDataset, load_dataset
from genvae.data.files import DownloadError
from genvae.report import ReportSettings, write_report
from genvae.training import CSVLogger, ModelCheckpoint, ProgressBar, TerminateOnNaN, Trainer
from genvae.training.distributed import is_main_process, shutdown

__all__ = ["TrainConfig", "main", "train_run"]


class CLIError(Exception):
    """A user error, reported as one line."""


@dataclass
class TrainConfig:
    """The settings of one training run (what ``genvae train`` takes; saved as ``config.json``)."""

    model: str = "vae"
    dataset: str = "synthetic-digits"
    data_root: str | None = None
    download: bool = False
    latent_dim: int = 2
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    conditioner: str = "split"
    seed: int = 0
    device: str = "auto"
    train_size: int | None = None
    test_size: int | None = None


class Interrupted(Exception):
    """Ctrl-C stopped a run; the message says where and how to resume."""


def _load_splits(config: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    train = load_dataset(config.dataset, "train", config.data_root, config.download, config.train_size)
    test = load_dataset(config.dataset, "test", config.data_root, config.download, config.test_size)
    return train, test


def train_run(
    config: TrainConfig,
    out: str | os.PathLike[str],
    *,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    notes: dict[str, Any] | None = None,
    quiet: bool = False,
    resume: bool = False,
) -> Path:
    """Train one model as ``config`` says and write its run directory ``out``: ``config.json``,
    ``model.json`` and ``weights.pt`` (``gv.load(out)`` rebuilds the model), ``history.csv``,
    ``metrics.json`` and ``checkpoints/``. Returns ``out``.

    With ``resume``, a run whose ``checkpoints/last.ckpt`` exists continues from it (after a crash,
    a kill or Ctrl-C) and ends as the uninterrupted run would. Ctrl-C writes that checkpoint and
    raises :class:`Interrupted`."""
    run = Path(out)
    run.mkdir(parents=True, exist_ok=True)
    train, test = data if data is not None else _load_splits(config)
    torch.manual_seed(config.seed)  # the model's initialisation follows the seed too
    if config.model == "vae":
        model: torch.nn.Module = presets.seed_vae(latent_dim=config.latent_dim)
    else:
        model = presets.seed_cvae(
            latent_dim=config.latent_dim, num_classes=train.num_classes, conditioner=config.conditioner
        )
    callbacks = [
        ModelCheckpoint(run / "checkpoints"),
        CSVLogger(run / "history.csv"),
        TerminateOnNaN(),
    ]
    if not quiet:
        callbacks.append(ProgressBar(file=sys.stdout))
    record = {
        **vars(config),
        "genvae_version": __version__,
        "train_data": {"name": train.name, "size": len(train)},
        "test_data": {"name": test.name, "size": len(test)},
        **(notes or {}),
    }
    last = run / "checkpoints" / "last.ckpt"
    resume_from = last if resume and last.is_file() else None
    main_process = is_main_process()  # under torchrun, rank 0 alone writes files
    if resume_from is None and main_process:
        atomic_write(run / "config.json", (json.dumps(record, indent=2) + "\n").encode())
    trainer = Trainer(
        model,
        lr=config.lr,
        max_epochs=config.epochs,
        batch_size=config.batch_size,
        device=config.device,
        callbacks=callbacks,
        seed=config.seed,
    )
    started = time.perf_counter()
    history = trainer.fit(train, test, resume_from=resume_from)
    seconds = time.perf_counter() - started
    if trainer.interrupted:
        raise Interrupted(f"{trainer.state.stop_reason}; checkpoint written to {last}; resume with --resume")
    if not main_process:
        return run
    save(model, run)
    metrics = {
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
    atomic_write(run / "metrics.json", (json.dumps(metrics, indent=2) + "\n").encode())
    return run


# -- the demo ---------------------------------------------------------------------------------


def _demo_data(root: str | None, download: bool) -> tuple[str, str]:
    """The demo's dataset and why: MNIST when found or downloadable, else SyntheticDigits."""
    if MNIST.available(root, "train") and MNIST.available(root, "test"):
        return "mnist", "MNIST found locally"
    if download:
        try:
            for split in ("train", "test"):
                MNIST(root, split, download=True)
            return "mnist", "MNIST downloaded"
        except (DownloadError, OSError, ValueError) as err:
            reason = " ".join(str(err).split())
            reason = reason if len(reason) <= 200 else reason[:197] + "..."
            return "synthetic-digits", f"MNIST not found locally and its download failed ({reason})"
    return "synthetic-digits", "MNIST not found locally and downloading is off"


_QUICK_REPORT = ReportSettings(eval_size=200, probe_size=1000, k=10, classify_k=5, classify_size=100)


def demo(out: str, epochs: int, quick: bool, root: str | None, download: bool) -> None:
    dataset, why = _demo_data(root, download)
    runs = {kind: Path(out) / kind for kind in ("vae", "cvae")}
    report = Path(out) / "report.html"
    print(
        f"genvae demo: report {report} (written at the end); dataset {dataset} ({why}); "
        f"runs {runs['vae']} and {runs['cvae']}",
        flush=True,
    )
    base = TrainConfig(dataset=dataset, data_root=root, epochs=epochs)
    if quick:
        base.epochs, base.train_size, base.test_size = 1, 2000, 500
    data = _load_splits(base)
    for kind, run in runs.items():
        config = TrainConfig(**{**vars(base), "model": kind})
        print(f"== {kind}: the notebook's {'conditional VAE' if kind == 'cvae' else 'VAE'}, latent size 2", flush=True)
        train_run(config, run, data=data, notes={"dataset_choice": why})
        metrics = json.loads((run / "metrics.json").read_text())
        test = metrics["test"]
        print(
            f"   test: {test['total']:.2f} nats per image (recon {test['recon']:.2f} + KL {test['kl']:.2f}); "
            f"written to {run}",
            flush=True,
        )
    print("== report: evaluating both models and drawing their figures", flush=True)
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


def _folder(text: str) -> str:
    if not Path(text).is_dir():
        raise argparse.ArgumentTypeError(f"no such folder: {text!r}")
    if not os.access(text, os.R_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"folder is not readable: {text!r}")
    return text


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="genvae", description="Train and inspect variational autoencoders.")
    parser.add_argument("--version", action="version", version=f"genvae {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train",
        help="train the notebook's VAE or CVAE and write a run directory",
        description="Train the course notebook's VAE or conditional VAE; write config.json, model.json, "
        "weights.pt, history.csv and metrics.json into the run directory (gv.load(RUN_DIR) reloads the model).",
    )
    train.add_argument("--model", choices=("vae", "cvae"), default="vae", help="model (default: vae)")
    train.add_argument(
        "--dataset", choices=DATASETS, default="synthetic-digits", help="data (default: synthetic-digits)"
    )
    train.add_argument("--data-root", type=_folder, default=None, help="folder searched first for dataset files")
    train.add_argument("--download", action="store_true", help="download missing dataset files")
    train.add_argument("--latent-dim", type=_positive_int, default=2, help="size of z (default: 2)")
    train.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default: 10)")
    train.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default: 32)")
    train.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    train.add_argument(
        "--conditioner", choices=("split", "concat", "film"), default="split", help="CVAE conditioner (default: split)"
    )
    train.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default: 0)")
    train.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    train.add_argument("--train-size", type=_positive_int, default=None, help="use only the first N training images")
    train.add_argument("--test-size", type=_positive_int, default=None, help="use only the first N test images")
    train.add_argument("--out", required=True, help="run directory to write")
    train.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    train.add_argument("--no-report", action="store_true", help="do not write report.html")
    train.add_argument(
        "--resume", action="store_true", help="continue from RUN_DIR/checkpoints/last.ckpt when it exists"
    )
    train.add_argument("--quick-report", action="store_true", help="a report with small evaluation sizes")

    demo_ = commands.add_parser(
        "demo",
        help="train the notebook's VAE and CVAE (MNIST if available, else SyntheticDigits)",
        description="Train the notebook's VAE and CVAE with latent size 2 and write a run directory for each. "
        "Uses MNIST when its files are found or can be downloaded, otherwise SyntheticDigits; "
        "the first line of output says which.",
    )
    demo_.add_argument("--out", default="runs/demo", help="folder for the two runs (default: runs/demo)")
    demo_.add_argument("--epochs", type=_positive_int, default=5, help="epochs per model (default: 5)")
    demo_.add_argument("--data-root", type=_folder, default=None, help="folder searched first for MNIST")
    demo_.add_argument("--no-download", action="store_true", help="do not try to download MNIST")
    demo_.add_argument("--quick", action="store_true", help="one epoch on a small subset (a smoke test)")

    report = commands.add_parser(
        "report",
        help="write the HTML report of run directories",
        description="Evaluate the models of one or more run directories and write one self-contained HTML "
        "report (configuration, metrics, loss curves, latent-space figures).",
    )
    report.add_argument("runs", nargs="+", type=_folder, help="run directories written by genvae train")
    report.add_argument("--out", default=None, help="the HTML file (default: RUN_DIR/report.html of the first run)")
    report.add_argument("--k", type=_positive_int, default=100, help="importance samples for the NLL (default: 100)")
    report.add_argument("--eval-size", type=_positive_int, default=1000, help="test images evaluated (default: 1000)")
    return parser


def _check_out(path: str) -> None:
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CLIError(f"--out: expected a folder, got an existing file: {path!r}")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CLIError(f"--out: cannot create {path!r}: {err.strerror}") from None
    if not os.access(target, os.W_OK):
        raise CLIError(f"--out: folder is not writable: {path!r}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``genvae`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        if args.out is not None:
            _check_out(args.out if args.command != "report" else str(Path(args.out).parent or "."))
        if args.command == "train":
            fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
            run = train_run(TrainConfig(**fields), args.out, quiet=args.quiet, resume=args.resume)
            if not args.no_report and is_main_process():
                write_report([run], run / "report.html", _QUICK_REPORT if args.quick_report else None)
            print(f"genvae train: wrote {run}", flush=True)
        elif args.command == "report":
            settings = ReportSettings(eval_size=args.eval_size, k=args.k)
            target = write_report(args.runs, args.out or Path(args.runs[0]) / "report.html", settings)
            print(f"genvae report: wrote {target}", flush=True)
        elif args.command == "demo":
            demo(args.out, args.epochs, args.quick, args.data_root, not args.no_download)
    except (CLIError, ValueError, KeyError, OSError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        print(f"genvae {args.command}: error: {' '.join(message.split())}", file=sys.stderr)
        return 1
    except Interrupted as err:
        print(f"genvae {args.command}: {err}", file=sys.stderr, flush=True)
        return 130
    except KeyboardInterrupt:
        print(f"genvae {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        shutdown()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
