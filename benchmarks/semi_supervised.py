"""Issue 14's figures: learning from a few labels with the semi-supervised VAE (M2).

Test accuracy with 100 and 1,000 labels (balanced, three label draws each) on the MNIST 8k/2k
partition (the first 8,000 images of the MNIST test split to train, the last 2,000 to test) and on
full Fashion-MNIST (60,000 training images, the 10,000 test images), for

- M2: ``SemiSupervisedVAE`` trained with ``SemiSupervisedELBO`` on every training image, the
  unknown labels −1 (``partially_labeled``, labelled images oversampled to ``--share`` of each batch);
- labels only: the same classifier (same architecture, same initialisation) trained on the labelled
  images alone, with cross-entropy;
- M1 probe: a linear classifier (``gv.evaluation.latent_probe``) fitted on the labelled images'
  posterior means under a VAE trained on every training image (one VAE per data set, the same
  MLPs with latent size ``--m1-latent``).

Also the seconds per epoch of M2 and of the VAE. The generative networks are MLPs (``--hidden``
units, latent size ``--latent``) rather than the notebook's convolutions, and the classifier is
``ConvClassifier`` (dropout ``--dropout``): M2 runs its conditional VAE once per class for every
unlabelled image (ten times a CVAE's work), and this runs on two shared CPU cores.

    python benchmarks/semi_supervised.py                # the full benchmark (hours on 2 CPU cores)
    python benchmarks/semi_supervised.py --quick        # a smoke test: small subsets, one draw, one epoch

Results: ``benchmarks/results/semi_supervised.json`` and ``.txt`` (``--out`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import genvae as gv
from genvae.classifiers import ConvClassifier
from genvae.data.partial import partially_labeled
from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE, accuracy

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Settings:
    """Everything a run depends on (recorded in the results)."""

    epochs: dict[str, int]
    vae_epochs: dict[str, int]
    labels: list[int]
    draws: int
    latent: int
    m1_latent: int
    hidden: int
    alpha: float
    share: float
    dropout: float
    batch_size: int
    lr: float
    baseline_steps: int
    quick: bool
    mnist: str


def datasets(settings: Settings) -> dict[str, tuple[gv.data.ImageDataset, gv.data.ImageDataset]]:
    """Training and test images of each data set (grey levels in [0, 1], as the notebook uses them)."""
    quick = settings.quick
    mnist = gv.data.MNIST(settings.mnist, split="test")
    fashion_train, fashion_test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    sets = {
        "mnist-8k": (mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))),
        "fashion-mnist": (fashion_train, fashion_test),
    }
    if quick:
        sets = {k: (train.subset(slice(0, 1000)), test.subset(slice(0, 500))) for k, (train, test) in sets.items()}
    return sets


def classifier(settings: Settings) -> ConvClassifier:
    return ConvClassifier(10, dropout=settings.dropout)


def m2_model(settings: Settings) -> SemiSupervisedVAE:
    cond = {"condition_dim": 10}
    return SemiSupervisedVAE(
        gv.encoders.MLPEncoder((1, 28, 28), hidden=(settings.hidden,), **cond),
        gv.decoders.MLPDecoder(settings.latent, (1, 28, 28), hidden=(settings.hidden,), **cond),
        classifier(settings),
        latent_dim=settings.latent,
        num_classes=10,
    )


def run_draw(name: str, n_labels: int, draw: int, settings: Settings) -> dict[str, Any]:
    """M2 and the labels-only classifier for one label draw (in a worker process, one thread)."""
    torch.set_num_threads(1)
    train, test = datasets(settings)[name]
    labelled = partially_labeled(train, n_labels, seed=draw)
    only_labelled = train.subset(labelled.labelled.nonzero().squeeze(1))
    torch.manual_seed(draw)
    model = m2_model(settings)
    baseline_init = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    trainer = gv.Trainer(
        model,
        SemiSupervisedELBO(alpha=settings.alpha),
        max_epochs=settings.epochs[name],
        batch_size=settings.batch_size,
        lr=settings.lr,
        seed=draw,
        quiet=True,
    )
    history = trainer.fit(partially_labeled(train, n_labels, seed=draw, labelled_share=settings.share), test)
    baseline = classifier(settings)
    baseline.load_state_dict(baseline_init)  # the same initial classifier as M2's
    result = {
        "data": name,
        "labels": n_labels,
        "draw": draw,
        "m2_accuracy": accuracy(model, test),
        "m2_accuracy_per_epoch": history["val_accuracy"],
        "m2_seconds_per_epoch": history["time"],
        "m2_train_total_per_epoch": history["train_total"],
        "labels_only_accuracy": _labels_only_from(baseline, settings, only_labelled, test),
    }
    print(
        f"{name} {n_labels} labels, draw {draw}: M2 {result['m2_accuracy']:.4f}, labels only "
        f"{result['labels_only_accuracy']:.4f} ({statistics.mean(history['time']):.0f} s/epoch)",
        flush=True,
    )
    return result


def _labels_only_from(
    model: ConvClassifier, settings: Settings, train: gv.data.ImageDataset, test: gv.data.ImageDataset
) -> float:
    """Train ``model`` with cross-entropy on the labelled images alone (Adam, minibatches of at
    most 100, ``baseline_steps`` steps); its test accuracy."""
    x, y = train.images, train.labels
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(0)
    batch = min(100, x.shape[0])
    for _ in range(settings.baseline_steps):
        index = torch.randperm(x.shape[0], generator=generator)[:batch]
        loss = F.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return accuracy(model, test)


def run_m1(name: str, settings: Settings) -> dict[str, Any]:
    """A VAE on every training image; a linear probe on its posterior means for each label draw."""
    torch.set_num_threads(1)
    train, test = datasets(settings)[name]
    torch.manual_seed(0)
    vae = gv.VAE(
        gv.encoders.MLPEncoder((1, 28, 28), hidden=(settings.hidden,)),
        gv.decoders.MLPDecoder(settings.m1_latent, (1, 28, 28), hidden=(settings.hidden,)),
        latent_dim=settings.m1_latent,
    )
    trainer = gv.Trainer(vae, max_epochs=settings.vae_epochs[name], batch_size=settings.batch_size, seed=0, quiet=True)
    history = trainer.fit(train)
    probes: dict[str, list[float]] = {}
    for n_labels in settings.labels:
        probes[str(n_labels)] = []
        for draw in range(settings.draws):
            labelled = partially_labeled(train, n_labels, seed=draw)
            subset = train.subset(labelled.labelled.nonzero().squeeze(1))
            probes[str(n_labels)].append(gv.evaluation.latent_probe(vae, subset, test))
    print(f"{name}: M1 probe {probes}", flush=True)
    return {"data": name, "m1_probe": probes, "vae_seconds_per_epoch": history["time"]}


def summarise(results: list[dict[str, Any]], m1: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for name in sorted({r["data"] for r in results}):
        for n_labels in sorted({r["labels"] for r in results if r["data"] == name}):
            runs = [r for r in results if r["data"] == name and r["labels"] == n_labels]
            row: dict[str, Any] = {"data": name, "labels": n_labels, "draws": len(runs)}
            for key in ("m2_accuracy", "labels_only_accuracy"):
                values = [r[key] for r in runs]
                row[key] = _mean_sd(values)
            if name in m1:
                row["m1_probe_accuracy"] = _mean_sd(m1[name]["m1_probe"][str(n_labels)])
                row["vae_seconds_per_epoch"] = statistics.mean(m1[name]["vae_seconds_per_epoch"])
            row["m2_seconds_per_epoch"] = statistics.mean(t for r in runs for t in r["m2_seconds_per_epoch"])
            rows.append(row)
    return rows


def _mean_sd(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def table(rows: list[dict[str, Any]]) -> str:
    def cell(stat: dict[str, float] | None) -> str:
        return "—" if stat is None else f"{100 * stat['mean']:5.1f} ± {100 * stat['sd']:3.1f}"

    lines = [
        f"{'data':14s} {'labels':>6s}  {'M2 (%)':>12s}  {'labels only':>12s}  {'M1 probe':>12s}  "
        f"{'M2 − labels only':>16s}  {'M2 s/epoch':>10s}  {'VAE s/epoch':>11s}"
    ]
    for r in rows:
        gain = 100 * (r["m2_accuracy"]["mean"] - r["labels_only_accuracy"]["mean"])
        lines.append(
            f"{r['data']:14s} {r['labels']:6d}  {cell(r['m2_accuracy']):>12s}  {cell(r['labels_only_accuracy']):>12s}  "
            f"{cell(r.get('m1_probe_accuracy')):>12s}  {gain:+15.1f}   {r['m2_seconds_per_epoch']:10.0f}  "
            f"{r.get('vae_seconds_per_epoch', math.nan):11.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small subsets, one draw, one epoch")
    parser.add_argument("--data", nargs="+", default=["mnist-8k", "fashion-mnist"])
    parser.add_argument("--labels", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--draws", type=int, default=3)
    parser.add_argument("--mnist-epochs", type=int, default=10)
    parser.add_argument("--fashion-epochs", type=int, default=3)
    parser.add_argument("--latent", type=int, default=4)
    parser.add_argument("--m1-latent", type=int, default=16, help="latent size of the M1 probe's VAE")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--alpha", type=float, default=5.0)
    parser.add_argument("--share", type=float, default=0.5)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--baseline-steps", type=int, default=500)
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"), help="MNIST folder")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes, one thread each")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "semi_supervised"))
    args = parser.parse_args()
    epochs = {"mnist-8k": args.mnist_epochs, "fashion-mnist": args.fashion_epochs}
    settings = Settings(
        epochs=epochs,
        vae_epochs=epochs,
        labels=[100] if args.quick else args.labels,
        draws=1 if args.quick else args.draws,
        latent=args.latent,
        m1_latent=args.m1_latent,
        hidden=args.hidden,
        alpha=args.alpha,
        share=args.share,
        dropout=args.dropout,
        batch_size=args.batch_size,
        lr=args.lr,
        baseline_steps=50 if args.quick else args.baseline_steps,
        quick=args.quick,
        mnist=args.mnist,
    )
    if args.quick:
        settings.epochs = settings.vae_epochs = {k: 1 for k in epochs}
    started = time.perf_counter()
    results: list[dict[str, Any]] = []
    m1: dict[str, dict[str, Any]] = {}
    out = Path(args.out)
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        jobs = [pool.submit(run_m1, name, settings) for name in args.data]
        jobs += [
            pool.submit(run_draw, name, n, draw, settings)
            for name in args.data
            for n in settings.labels
            for draw in range(settings.draws)
        ]
        for job in as_completed(jobs):
            result = job.result()
            if "m1_probe" in result:
                m1[result["data"]] = result
            else:
                results.append(result)
            write(out, settings, results, m1, time.perf_counter() - started)
    print(table(summarise(results, m1)))


def write(out: Path, settings: Settings, results: list[dict[str, Any]], m1: dict[str, Any], seconds: float) -> None:
    """The results so far (rewritten after every finished job, so an interrupted run keeps them)."""
    rows = summarise(results, m1)
    document = {
        "command": " ".join(["python", *sys.argv]),
        "settings": asdict(settings),
        "machine": f"{os.cpu_count()} CPU cores, torch {torch.__version__}, one thread per worker process",
        "wall_seconds": seconds,
        "summary": rows,
        "runs": sorted(results, key=lambda r: (r["data"], r["labels"], r["draw"])),
        "m1": m1,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    out.with_suffix(".txt").write_text(
        f"{document['command']}\n{json.dumps(asdict(settings))}\n\n"
        f"Test accuracy, mean ± sd over label draws (%):\n{table(rows)}\n"
    )


if __name__ == "__main__":
    main()
