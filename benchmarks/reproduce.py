"""The reproducibility table: each family of genvae trained in a stated regime, scored by the
importance-weighted NLL, beside its paper's figure.

Every invocation adds (or replaces) its rows in ``benchmarks/results/reproduce.json``, each row
with the command that produced it, then rewrites the docs page ``docs/reproducibility.md`` from the
whole file. Sub-commands:

    # likelihood rows: a family trained in one regime, IW-NLL (k >= 1000) on held-out images
    python benchmarks/reproduce.py likelihood --dataset mnist-8k --epochs 100 --family vae vae-warmup vamp mog
    # the papers' own protocol, for users who have the full MNIST (60k/10k, dynamic binarisation, k = 5000)
    python benchmarks/reproduce.py likelihood --dataset mnist-full --root ~/data/mnist --family vae iwae-50
    # disentanglement: β-TCVAE against the VAE on SyntheticDigits, scored by the MIG
    python benchmarks/reproduce.py mig --epochs 20 --seeds 0 1
    # M2 against the labels-only classifier, one entry per draw of the labelled images
    python benchmarks/reproduce.py semi --labels 100 --draws 0 1 2 --epochs 10
    # the CVAE's Bayes-rule classifier against latent size and epochs
    python benchmarks/reproduce.py bayes --latent 2 8 --epochs 10 30
    # sample quality: record the rows benchmarks/sample_quality.py wrote (each file holds its command)
    python benchmarks/reproduce.py samples /tmp/sample_quality_mnist8k.json /tmp/sample_quality_fashion.json
    # only the docs page, from the JSON file
    python benchmarks/reproduce.py docs

The likelihood models are Burda et al.'s one-layer architecture (MLP 784-200-200-50, tanh,
Glorot-initialised; ``benchmarks/model_families.py``), a Bernoulli likelihood on binarised images
(a fresh Bernoulli draw per batch for training, one fixed draw for evaluation). Datasets:
``mnist-8k`` (the first 8,000 images of the MNIST test split to train, the last 2,000 held out),
``fashion-mnist`` (60,000 / 10,000), ``mnist-full`` (60,000 / 10,000, needs the training split).
Rows are compared only with the VAE (the CVAE for the conditional prior) of the same dataset,
epochs and regime.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch

import genvae as gv
from genvae._io import atomic_write  # the one atomic write: a temporary file, fsync, rename
from genvae.latent_metrics import active_units, mig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from model_families import build, build_hierarchical, fixed_binary  # the one architecture, shared
from reproduce_docs import write_docs

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "reproduce.json"
DOCS = ROOT / "docs" / "reproducibility.md"
MNIST_SPLIT = ROOT.parent / "shared" / "data" / "mnist"

Objective = Callable[[int], gv.Objective]  # the training set's size -> objective


class Family(NamedTuple):
    """How a family is built and trained: its prior and posterior (factories, so each run gets
    fresh parts), its objective, whether it uses the KL warm-up, whether it is conditional."""

    prior: Callable[[], Any]
    objective: Objective
    warmup: bool
    conditional: bool
    posterior: Callable[[], Any] = lambda: "gaussian"
    model: Callable[[bool], Any] | None = None  # another model than Burda's VAE (conditional -> model)


def _iaf() -> Any:
    # Kingma et al.'s IAF on Burda's network: 2 steps, a MADE as wide as the encoder, the encoder's context h
    return gv.posteriors.IAFPosterior(steps=2, hidden=(200,), context_dim=50)


FAMILIES: dict[str, Family] = {
    "vae": Family(lambda: "normal", lambda n: gv.ELBO(), False, False),
    "vae-warmup": Family(lambda: "normal", lambda n: gv.ELBO(), True, False),
    "iwae-5": Family(lambda: "normal", lambda n: gv.IWAE(k=5), False, False),
    "iwae-50": Family(lambda: "normal", lambda n: gv.IWAE(k=50), False, False),
    "vamp": Family(lambda: gv.priors.VampPrior(500), lambda n: gv.ELBO(), True, False),
    "mog": Family(lambda: gv.priors.MixturePrior(10), lambda n: gv.ELBO(), True, False),
    "cvae": Family(lambda: "normal", lambda n: gv.ELBO(), False, True),
    "conditional": Family(lambda: "conditional", lambda n: gv.ELBO(), True, True),
    "beta-tcvae": Family(lambda: "normal", lambda n: gv.BetaTCVAE(beta=6.0, dataset_size=n), False, False),
    "iaf": Family(lambda: "normal", lambda n: gv.ELBO(), False, False, _iaf),
    "iaf-warmup": Family(lambda: "normal", lambda n: gv.ELBO(), True, False, _iaf),
    # a learned prior: with the warm-up, as the VampPrior and the MoG (without it, the KL settles at ~3 nats)
    "flow-prior": Family(lambda: gv.flows.FlowPrior(steps=2, hidden=(200,)), lambda n: gv.ELBO(), True, False),
    "hierarchical": Family(lambda: "normal", lambda n: gv.ELBO(), True, False, model=build_hierarchical),
}
BASELINE = {False: "vae", True: "cvae"}


# ---------------------------------------------------------------------------------------------
# the JSON file: rows keyed by what makes them comparable, replaced when run again


def load(path: Path) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    return {"rows": [], "semi_supervised": [], "bayes_classifier": [], "sample_quality": []}


def record(path: Path, section: str, row: dict[str, Any], key: Sequence[str]) -> dict[str, Any]:
    """Add ``row`` to ``section`` of the file, replacing the row with the same ``key`` fields, and
    return the whole document. The file is read again under a lock just before the write, so runs
    in parallel each keep their rows; the write is atomic, so a killed run leaves the file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        document = load(path)
        rows = document.setdefault(section, [])
        same = [i for i, r in enumerate(rows) if all(r.get(k) == row.get(k) for k in key)]
        if same:
            rows[same[0]] = row
        else:
            rows.append(row)
        atomic_write(path, (json.dumps(document, indent=1) + "\n").encode())
    return document


def command_line(argv: Sequence[str]) -> str:
    """The command as run, less where its output went (``--out``, ``--docs``)."""
    kept: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--out", "--docs"):
            skip = True
        elif not a.startswith(("--out=", "--docs=")):
            kept.append(a)
    return "python benchmarks/reproduce.py " + " ".join(shlex.quote(a) for a in kept)


def machine() -> str:
    cores, threads = os.cpu_count(), torch.get_num_threads()
    return f"{platform.machine()}, {cores} CPU cores, torch {torch.__version__}, {threads} thread(s)"


# ---------------------------------------------------------------------------------------------
# data


def likelihood_data(
    name: str, root: str | None, limit: int | None
) -> tuple[gv.data.ImageDataset, gv.data.ImageDataset]:
    """(training images, held-out images) of one of the table's datasets."""
    if name == "mnist-8k":
        mnist = gv.data.MNIST(root=root or MNIST_SPLIT, split="test")
        train, test = mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))
    elif name == "fashion-mnist":
        train, test = gv.data.FashionMNIST(root=root, split="train"), gv.data.FashionMNIST(root=root, split="test")
    elif name == "mnist-full":
        train, test = gv.data.MNIST(root=root, split="train"), gv.data.MNIST(root=root, split="test")
    else:
        raise SystemExit(f"error: --dataset: expected mnist-8k, fashion-mnist or mnist-full, got {name!r}")
    if limit is not None:
        train, test = train.subset(slice(0, limit)), test.subset(slice(0, limit))
    return train, test


# ---------------------------------------------------------------------------------------------
# likelihood rows


def regime(args: argparse.Namespace, warmup: bool) -> dict[str, Any]:
    return {
        "architecture": "MLP 784-200-200-50 tanh, Bernoulli (Burda et al.)",
        "optimizer": "Adam" + (" on unit-norm gradients (AdamNormGrad)" if args.normalize_gradients else ""),
        "lr": args.lr,
        "prior_lr": args.prior_lr,
        "batch_size": args.batch_size,
        "kl_warmup_epochs": args.warmup_epochs if warmup else 0,
        "binarisation": "dynamic (train), one fixed draw (test)",
    }


def train_family(family: str, train: gv.data.ImageDataset, args: argparse.Namespace) -> tuple[gv.VAE, Any, float]:
    prior, objective, warmup, conditional, posterior, builder = FAMILIES[family]
    torch.manual_seed(args.seed)
    model = builder(conditional) if builder else build("normal", conditional, posterior=posterior())
    spec = prior()
    if spec != "normal":
        model._attach_prior(spec)  # after build(): the prior's parameters keep their own initialisation
    callbacks = [gv.training.KLWarmup(epochs=args.warmup_epochs)] if warmup and args.warmup_epochs else []
    lr: float | dict[str, float] = args.lr
    if args.prior_lr is not None and spec != "normal":
        lr = {"prior": args.prior_lr, "default": args.lr}
    trainer = gv.Trainer(
        model,
        objective(len(train)),
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=lr,
        normalize_gradients=args.normalize_gradients,
        device="cpu",
        seed=args.seed,
        quiet=True,
        callbacks=callbacks,
    )
    started = time.perf_counter()
    history = trainer.fit(train.binarized("sample"))
    return model, history, time.perf_counter() - started


def parts(model: Any) -> dict[str, str]:
    """One line for each part a family changes: the posterior (or the hierarchy's levels) and the prior."""
    prior = f"{type(model.prior).__name__}({model.prior.extra_repr()})"
    if isinstance(model, gv.HierarchicalVAE):
        return {
            "levels": f"HierarchicalVAE(latent_dims={tuple(model.latent_dims)}, hidden={model.hidden})",
            "prior": prior,
        }
    return {"posterior": f"{type(model.q).__name__}({model.q.extra_repr()})", "prior": prior}


def score(model: gv.VAE, test: gv.data.ImageDataset, k: int) -> dict[str, Any]:
    torch.manual_seed(1)
    iw = gv.evaluation.nll(model, test, k=k, batch_size=100)
    torch.manual_seed(1)
    elbo = gv.evaluation.nll(model, test, k=1, batch_size=100)
    return {
        "iw_nll": iw.nats,
        "iw_nll_sem": float(iw.per_sample.std() / iw.per_sample.numel() ** 0.5),
        "elbo": -elbo.nats,
        "neg_elbo": elbo.nats,
        "active_units": active_units(model, test).count,
        **({"active_units_per_level": model.active_units(test)} if isinstance(model, gv.HierarchicalVAE) else {}),
        "iw_nll_per_image": [round(float(v), 3) for v in iw.per_sample],
    }


def run_likelihood(args: argparse.Namespace, argv: Sequence[str]) -> None:
    train, test = likelihood_data(args.dataset, args.root, args.limit)
    held_out = fixed_binary(test.subset(slice(0, args.test_images)) if args.test_images else test)
    for family in args.family:
        print(f"{args.dataset}: {family}, {args.epochs} epochs ...", flush=True)
        model, history, seconds = train_family(family, train, args)
        row = {
            "family": family,
            "dataset": args.dataset,
            "epochs": args.epochs,
            "k": args.k,
            "images": len(held_out),
            "training_images": len(train),
            "seed": args.seed,
            "regime": regime(args, FAMILIES[family].warmup),
            "parts": parts(model),
            **score(model, held_out, args.k),
            "seconds_per_epoch": seconds / args.epochs,
            "train_total_last": history.last["train_total"],
            "machine": machine(),
            "command": command_line(argv),
        }
        if family == "beta-tcvae":
            row["objective"] = repr(gv.BetaTCVAE(beta=6.0, dataset_size=len(train)))
        record(
            args.out, "rows", row, ("family", "dataset", "training_images", "epochs", "seed", "regime", "k", "images")
        )
        print(
            f"  IW-NLL {row['iw_nll']:.2f} ± {row['iw_nll_sem']:.2f}, -ELBO {row['neg_elbo']:.2f}, "
            f"AU {row['active_units']}, {row['seconds_per_epoch']:.1f} s/epoch",
            flush=True,
        )


# ---------------------------------------------------------------------------------------------
# disentanglement (MIG), semi-supervised M2, Bayes-rule classification


def run_mig(args: argparse.Namespace, argv: Sequence[str]) -> None:
    n_train, n_test = (args.limit, args.limit) if args.limit else (20_000, 5000)
    train, test = gv.data.SyntheticDigits(n_train, seed=0), gv.data.SyntheticDigits(n_test, seed=1)
    for family in ("vae", "beta-tcvae"):
        scores, rows = [], []
        for seed in args.seeds:
            torch.manual_seed(seed)
            model = build("normal", False, latent_dim=10)
            objective = FAMILIES[family].objective(n_train)
            trainer = gv.Trainer(
                model, objective, max_epochs=args.epochs, batch_size=100, device="cpu", seed=seed, quiet=True
            )
            started = time.perf_counter()
            trainer.fit(train.images)
            seconds = time.perf_counter() - started
            scores.append(mig(model, test.images, test.factors).score)
            rows.append(seconds / args.epochs)
            print(f"  synthetic-digits {family} seed {seed}: MIG {scores[-1]:.4f}", flush=True)
        row = {
            "family": family,
            "dataset": "synthetic-digits",
            "epochs": args.epochs,
            "training_images": n_train,
            "images": n_test,
            "seeds": list(args.seeds),
            "mig": scores,
            "regime": {"architecture": "MLP 784-200-200-10 tanh, Bernoulli", "lr": 1e-3, "batch_size": 100},
            "seconds_per_epoch": sum(rows) / len(rows),
            "machine": machine(),
            "command": command_line(argv),
        }
        record(args.out, "rows", row, ("family", "dataset", "training_images", "epochs"))


def run_semi(args: argparse.Namespace, argv: Sequence[str]) -> None:
    from m2_recipe import run as m2_run  # the recipe's networks and weighting, one place

    for labels in args.labels:
        accuracy, labels_only, seconds, curves, draws = [], [], [], [], []
        for draw in args.draws:
            settings = argparse.Namespace(
                mnist=args.root or str(MNIST_SPLIT),
                epochs=args.epochs,
                labels=labels,
                draw=draw,
                latent=args.latent,
                hidden=args.hidden,
                dropout=0.5,
                baseline_epochs=args.baseline_epochs,
                quick=bool(args.limit),
            )
            result = m2_run(settings, f"{args.weighting}:{args.alpha}")
            accuracy.append(result["m2_accuracy"])
            labels_only.append(result["labels_only_accuracy"])
            seconds.append(result["m2_seconds"] / args.epochs)
            curves.append([round(a, 4) for a in result["m2_accuracy_per_epoch"]])
            draws.append(draw)
            # written after every draw (the same command's row grows), so a stopped run keeps its draws
            row = semi_row(args, argv, labels, draws, accuracy, labels_only, seconds, curves)
            record(
                args.out,
                "semi_supervised",
                row,
                ("dataset", "training_images", "labels", "epochs", "recipe", "command"),
            )


def semi_row(
    args: argparse.Namespace,
    argv: Sequence[str],
    labels: int,
    draws: list[int],
    accuracy: list[float],
    labels_only: list[float],
    seconds: list[float],
    curves: list[list[float]],
) -> dict[str, Any]:
    return {
        "dataset": "mnist-8k",
        "training_images": 600 if args.limit else 8000,
        "labels": labels,
        "draws": list(draws),
        "accuracy": accuracy,
        "accuracy_per_epoch": curves,
        "labels_only": labels_only,
        "epochs": args.epochs,
        "recipe": {
            "weighting": args.weighting,
            "alpha": args.alpha,
            "latent": args.latent,
            "hidden": args.hidden,
            "labelled_share": 0.5,
            "classifier": "ConvClassifier(dropout=0.5)",
        },
        "seconds_per_epoch": sum(seconds) / len(seconds),
        "machine": machine(),
        "command": command_line(argv),
    }


def run_bayes(args: argparse.Namespace, argv: Sequence[str]) -> None:
    train, test = likelihood_data("mnist-8k", args.root, args.limit)
    for latent in args.latent:
        for epochs in args.epochs:
            torch.manual_seed(args.seed)
            model = gv.presets.seed_cvae(latent_dim=latent)
            trainer = gv.Trainer(model, max_epochs=epochs, batch_size=100, device="cpu", seed=args.seed, quiet=True)
            started = time.perf_counter()
            trainer.fit(train)
            seconds = time.perf_counter() - started
            torch.manual_seed(1)
            predicted = gv.evaluation.classify(model, test, k=args.k).predictions
            accuracy = float((predicted == test.labels).float().mean())
            print(f"  CVAE latent {latent}, {epochs} epochs: Bayes-rule accuracy {accuracy:.4f}", flush=True)
            row = {
                "dataset": "mnist-8k",
                "latent_size": latent,
                "epochs": epochs,
                "k": args.k,
                "accuracy": accuracy,
                "model": "gv.presets.seed_cvae (the course notebook's CVAE)",
                "seconds_per_epoch": seconds / epochs,
                "machine": machine(),
                "command": command_line(argv),
            }
            record(args.out, "bayes_classifier", row, ("dataset", "latent_size", "epochs", "k"))


def run_samples(args: argparse.Namespace, argv: Sequence[str]) -> None:
    """Record the rows of ``benchmarks/sample_quality.py`` output files, each row with the
    command and machine of its file (the runs take hours, so they are run by that script and
    recorded here rather than run again)."""
    for path in args.files:
        try:
            result = json.loads(Path(path).read_text())
            rows, command, where = result["rows"], result["command"], result["machine"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SystemExit(f"error: {path}: not an output of benchmarks/sample_quality.py ({error})") from None
        for row in rows:
            record(args.out, "sample_quality", {**row, "command": command, "machine": where},
                   ("dataset", "family", "latent_dim", "epochs", "sampler"))  # fmt: skip


# ---------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--out", type=Path, default=RESULTS, help="the JSON file (default %(default)s)")
        q.add_argument("--docs", type=Path, default=DOCS, help="the docs page written from it")
        q.add_argument("--root", default=None, help="the dataset's folder")
        q.add_argument("--limit", type=int, default=None, help="first N images of each split (a smoke test)")
        q.add_argument("--threads", type=int, default=1)
        q.add_argument("--seed", type=int, default=0)

    q = sub.add_parser("likelihood", help="families by IW-NLL")
    common(q)
    q.add_argument("--family", nargs="+", required=True, choices=[f for f in FAMILIES if f != "beta-tcvae"])
    q.add_argument("--dataset", default="mnist-8k", choices=["mnist-8k", "fashion-mnist", "mnist-full"])
    q.add_argument("--epochs", type=int, default=100)
    q.add_argument("--k", type=int, default=None, help="importance samples (default 1000; 5000 for mnist-full)")
    q.add_argument(
        "--test-images", type=int, default=None, help="held-out images scored (default 500; all for mnist-full)"
    )
    q.add_argument("--lr", type=float, default=1e-3)
    q.add_argument("--prior-lr", type=float, default=None, help="learning rate of the prior's parameters")
    q.add_argument("--batch-size", type=int, default=100)
    q.add_argument("--warmup-epochs", type=int, default=None, help="KL warm-up (default 30%% of the epochs)")
    q.add_argument("--normalize-gradients", action="store_true")
    q = sub.add_parser("mig", help="β-TCVAE against the VAE by the MIG")
    common(q)
    q.add_argument("--epochs", type=int, default=20)
    q.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    q = sub.add_parser("semi", help="M2 against labels only")
    common(q)
    q.add_argument("--labels", type=int, nargs="+", default=[100])
    q.add_argument("--draws", type=int, nargs="+", default=[0, 1, 2])
    q.add_argument("--epochs", type=int, default=10)
    q.add_argument("--alpha", type=float, default=5.0)
    q.add_argument("--weighting", default="batch", choices=["batch", "paper"])
    q.add_argument("--latent", type=int, default=4)
    q.add_argument("--hidden", type=int, default=256)
    q.add_argument("--baseline-epochs", type=int, default=300)
    q = sub.add_parser("bayes", help="the CVAE's Bayes-rule classifier")
    common(q)
    q.add_argument("--latent", type=int, nargs="+", default=[2])
    q.add_argument("--epochs", type=int, nargs="+", default=[10])
    q.add_argument("--k", type=int, default=100)
    q = sub.add_parser("samples", help="record benchmarks/sample_quality.py's rows")
    common(q)
    q.add_argument("files", nargs="+", type=Path, help="JSON files written by benchmarks/sample_quality.py --json")
    q = sub.add_parser("docs", help="only rewrite the docs page")
    common(q)
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.command == "likelihood":
        full = args.dataset == "mnist-full"
        args.k = args.k or (5000 if full else 1000)
        args.test_images = args.test_images if args.test_images is not None else (None if full else 500)
        args.warmup_epochs = args.warmup_epochs if args.warmup_epochs is not None else round(0.3 * args.epochs)
    runners = {"likelihood": run_likelihood, "mig": run_mig, "semi": run_semi, "bayes": run_bayes,
               "samples": run_samples}  # fmt: skip
    if args.command in runners:
        runners[args.command](args, argv)
    write_docs(load(args.out), args.docs)
    print(f"wrote {args.out} and {args.docs}")


if __name__ == "__main__":
    main()
