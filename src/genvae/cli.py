"""The ``genvae`` command: ``genvae train``, ``genvae demo``, ``genvae report``.

Run ``genvae --help`` or ``genvae train --help`` for the options. Every error is one line on
stderr and a non-zero exit status; under torchrun, rank 0 alone prints. Models, objectives,
datasets, conditioners, likelihoods and priors are chosen from their registries, so parts a user
registers work here too (``--import mymodule`` imports them first). This module parses the
arguments only: the run itself is :func:`genvae.experiment.train_run`.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import torch

from genvae import conditioners, likelihoods, models, posteriors, priors
from genvae._startup import restore_ctrl_c
from genvae._version import __version__
from genvae.data import DatasetNotFoundError, datasets
from genvae.demo import QUICK_REPORT, demo
from genvae.experiment import Interrupted, TrainConfig, import_modules, train_run
from genvae.losses import objectives
from genvae.report import ReportSettings, write_report
from genvae.runs import RunDir, RunLockedError
from genvae.training import Callback, DivergenceError
from genvae.training.distributed import is_main_process, shutdown

__all__ = ["CLIError", "main"]


class CLIError(ValueError):
    """A command-line error that is not a setting of the run (``--out``, the report's file), one line."""


# -- argument parsing ---------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n" if is_main_process() else None)  # rank 0 speaks


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


def _sizes(text: str) -> tuple[int, ...]:
    """``"32,16"`` -> ``(32, 16)``: positive integers separated by commas."""
    try:
        return tuple(_positive_int(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, got {text!r}") from None


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
        choices=(*datasets.names(), "auto"),
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
    _add_tracker_options(train)
    run.add_argument("--no-report", action="store_true", help="do not write report.html")
    run.add_argument("--quick-report", action="store_true", help="a report with small evaluation sizes")


def _add_tracker_options(train: argparse.ArgumentParser) -> None:
    """Where else the run is logged; a resume may change them (the tracker's run continues when its
    flags are the same: the checkpoint holds its run id)."""
    trackers = train.add_argument_group("experiment trackers")
    trackers.add_argument("--mlflow", metavar="URI", type=_non_empty("a tracking URI"), default=None,
                          help="also log to MLflow at URI (a server or a store); needs genvae[mlflow]")  # fmt: skip
    trackers.add_argument("--mlflow-experiment", metavar="NAME", type=_non_empty("an experiment's name"),
                          default="genvae", help="the MLflow experiment (default: %(default)s)")  # fmt: skip
    trackers.add_argument("--wandb", metavar="PROJECT", type=_non_empty("a project's name"), default=None,
                          help="also log to Weights & Biases in PROJECT; needs genvae[wandb]")  # fmt: skip
    trackers.add_argument("--wandb-mode", choices=("online", "offline", "disabled"), default="online",
                          help="offline: keep the run in ./wandb for wandb sync (default: %(default)s)")  # fmt: skip


def _non_empty(what: str) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return text

    return check


def _add_model_options(train: argparse.ArgumentParser) -> None:
    """The model's options; the choices are the registries' names (a registered part is a choice)."""
    model = train.add_argument_group("model")
    model.add_argument("--model", choices=models.names(), default="vae", help="model (default: vae)")
    model.add_argument("--latent-dim", type=_positive_int, default=None,
                       help="size of z (default: 2; a hierarchical model: its bottom level's size)")  # fmt: skip
    model.add_argument("--codebook-size", type=_positive_int, default=None,
                       help="--model vqvae: the number of codes (default: 64)")  # fmt: skip
    model.add_argument("--code-dim", type=_positive_int, default=None,
                       help="--model vqvae: the size of each code vector (default: 8)")  # fmt: skip
    model.add_argument("--latent-dims", type=_sizes, default=None, metavar="N,N,...",
                       help="--model hierarchical: the size of each level, bottom first (default: 32,16)")  # fmt: skip
    model.add_argument("--conditioner", choices=conditioners.names(), default=None,
                       help="how a conditional model takes its label (default: the model's, split)")  # fmt: skip
    model.add_argument("--likelihood", choices=likelihoods.names(), default=None,
                       help="p(x given z) (default: the model's, bernoulli)")  # fmt: skip
    model.add_argument("--prior", choices=priors.names(), default=None,
                       help="p(z) (default: the model's, normal; conditional: p(z given y); flow: a MAF)")  # fmt: skip
    model.add_argument("--posterior", choices=posteriors.names(), default=None,
                       help="q(z given x) (default: the model's, gaussian; iaf: an IAF on top of it)")  # fmt: skip
    model.add_argument("--labels", type=_non_negative_int, default=None,
                       help="--model m2: keep only N training labels, balanced over the classes")  # fmt: skip


def _add_training_options(train: argparse.ArgumentParser) -> None:
    training = train.add_argument_group("training")
    training.add_argument("--epochs", type=_positive_int, default=10, help="epochs (default: 10)")
    training.add_argument("--batch-size", type=_positive_int, default=32, help="batch size (default: 32)")
    training.add_argument("--lr", type=_positive_float, default=1e-3, help="Adam learning rate (default: 1e-3)")
    training.add_argument("--objective", choices=objectives.names(), default=None,
                          help="the loss (default: the model's, elbo; m2: its own bound, m2)")  # fmt: skip
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
    report.add_argument("--k", type=_positive_int, default=None, help="importance samples for the NLL (default: 100)")
    report.add_argument("--eval-size", type=_positive_int, default=None, help="test images evaluated (default: 1000)")
    from genvae.samplers import names as sampler_names  # here: the report's lines of this module

    report.add_argument(
        "--sampler", dest="samplers", action="append", default=[], choices=sampler_names(), metavar="NAME",
        help="also draw from this sampler, fitted on the run's training data, and measure its samples "
        f"(repeatable; one of {', '.join(sampler_names())}); the model's own (prior; code for a VQ-VAE) is "
        "always shown",
    )  # fmt: skip
    report.add_argument(
        "--sample-quality", action="store_true",
        help="measure the samples (Fréchet distance, precision, recall) even without --sampler",
    )  # fmt: skip
    report.add_argument("--quick", action="store_true", help="small evaluation sizes, as genvae train --quick-report")


# -- running a command ------------------------------------------------------------------------------


def _import_modules(argv: Sequence[str] | None) -> None:
    """Import the ``--import`` modules before the full parser is built, so the parts they
    register are among its choices (see :func:`genvae.experiment.import_modules`)."""
    early = argparse.ArgumentParser(add_help=False)
    early.add_argument("--import", dest="imports", action="append", default=[])
    import_modules(early.parse_known_args(argv)[0].imports)


def _check_out(path: str) -> list[Path]:
    """Make the ``--out`` folder (an unusable one is a one-line error); returns the folders this
    made, outermost first, so that a command that fails can remove them again while they are empty."""
    if not path.strip():
        raise CLIError(f"--out: expected a folder name, got {path!r}")
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise CLIError(f"--out: expected a folder, got an existing file: {path!r}")
    missing = [folder for folder in (target, *target.parents) if not folder.exists()][::-1]
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _remove_if_empty(missing)
        raise CLIError(f"--out: cannot create {path!r}: {err.strerror}") from None
    if not os.access(target, os.W_OK):
        raise CLIError(f"--out: folder is not writable: {path!r}")
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """Remove ``folders`` (outermost first), innermost first, as long as each is empty: a refused
    command leaves no empty ``--out`` behind, and never removes what another process put there."""
    for folder in reversed(folders):
        try:
            folder.rmdir()  # fails on a folder that is not empty
        except FileNotFoundError:  # removed already (RunDir.remove_if_unused)
            continue
        except OSError:
            return


#: The exit status of ``genvae train`` when the run was published but only its report failed.
REPORT_FAILED = 3


def _command_train(args: argparse.Namespace, callbacks: Iterable[Callback]) -> int:
    fields = {k: v for k, v in vars(args).items() if k in TrainConfig.__dataclass_fields__}
    config = TrainConfig(**fields)
    try:
        run = train_run(
            config, args.out, quiet=args.quiet, resume=args.resume, overwrite=args.overwrite, callbacks=callbacks
        )
    except DivergenceError as err:
        failed = _train_report(args, args.out)
        also = f"; {failed}" if failed else ""
        raise CLIError(f"{err}; the last finite state is published in {args.out}{also}") from None
    failed = _train_report(args, run)
    if failed:
        _say(f"genvae train: the run was published in {run}, but {failed}", sys.stderr)
        return REPORT_FAILED
    _say(f"genvae train: wrote {run}")
    return 0


def _train_report(args: argparse.Namespace, run: str | Path) -> str | None:
    """Write the report of the run just published (unless ``--no-report``; rank 0 alone): None
    when written, else what failed, in one line. The run stays published either way."""
    if args.no_report or not is_main_process():
        return None
    try:
        write_report([run], RunDir(run).report_path, QUICK_REPORT if args.quick_report else None)
    except Exception as err:  # whatever stopped the report, the published run is complete
        expected = isinstance(err, ValueError | KeyError | OSError | RunLockedError)
        text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        text = " ".join((text if expected else f"{type(err).__name__}: {text}").split())
        return f"only its report failed ({text}); write it again with genvae report {run}"
    return None


def _command_report(args: argparse.Namespace, callbacks: Iterable[Callback]) -> int:
    base = QUICK_REPORT if args.quick else ReportSettings()
    settings = ReportSettings(**{
        **vars(base),
        **{key: getattr(args, key) for key in ("eval_size", "k") if getattr(args, key) is not None},
        "samplers": tuple(args.samplers),
        "sample_quality": args.sample_quality,
    })  # fmt: skip
    if args.out is not None and Path(args.out).is_dir():
        raise CLIError(f"--out: expected the report's file name, got a folder: {args.out!r}")
    target = Path(args.out) if args.out else RunDir(args.runs[0]).report_path
    write_report(args.runs, target, settings, log=lambda line: _say(f"genvae report: {line}"))
    _say(f"genvae report: wrote {args.out or RunDir(args.runs[0]).report_path}")
    return 0


def _command_demo(args: argparse.Namespace, callbacks: Iterable[Callback]) -> int:
    demo(args.out, args.epochs, args.quick, args.data_root, not args.no_download, args.overwrite)
    return 0


_COMMANDS = {"train": _command_train, "report": _command_report, "demo": _command_demo}


def _say(line: str, file: Any = None) -> None:
    """Print one line of the command's output; under torchrun, rank 0 alone speaks for the run."""
    if is_main_process():
        print(line, file=file or sys.stdout, flush=True)


def main(argv: Sequence[str] | None = None, *, callbacks: Iterable[Callback] = ()) -> int:
    """Entry point of the ``genvae`` command; returns the exit status. ``callbacks`` join the
    training callbacks of ``genvae train`` (for a program that wraps the command)."""
    command, status = "genvae", 1
    created: list[Path] = []  # the --out folders this command made, removed again if it fails before using them
    restore_ctrl_c()  # from here, Ctrl-C is a KeyboardInterrupt, answered below
    try:
        _import_modules(argv)
        args = _parser().parse_args(argv)
        command = f"genvae {args.command}"
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        if args.out is not None:
            created = _check_out(args.out if args.command != "report" else str(Path(args.out).parent or "."))
        status = _COMMANDS[args.command](args, callbacks)
        return status
    except (ValueError, KeyError, OSError, RunLockedError) as err:
        if isinstance(err, DatasetNotFoundError):  # the library says download=True; here it is a flag
            err = err.with_option("--download")
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        _say(f"{command}: error: {' '.join(message.split())}", sys.stderr)
        return 1
    except (MemoryError, RuntimeError) as err:
        # torch.OutOfMemoryError is a RuntimeError; a CPU allocation failure is a plain one
        out_of_memory = isinstance(err, MemoryError | torch.OutOfMemoryError) or any(
            text in str(err) for text in ("tried to allocate", "not enough memory")
        )
        if not out_of_memory:
            raise
        _say(f"{command}: error: out of memory ({_short(err)}); try smaller sizes", sys.stderr)
        return 1
    except Interrupted as err:
        _say(f"{command}: {err}", sys.stderr)
        return 130
    except KeyboardInterrupt:
        _say(f"{command}: interrupted", sys.stderr)
        return 130
    finally:
        if status != 0 and is_main_process() and created:  # a refused command leaves no --out folder it made
            if command == "genvae train":  # a run refused once it held the folder's lock leaves the lock file
                RunDir(created[-1]).remove_if_unused()
            _remove_if_empty(created)
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
