"""Issue 21's M2 recipe: the semi-supervised VAE weighted as in Kingma et al. (each image's bound
once an epoch, the cross-entropy α·N/n_l: ``SemiSupervisedELBO(weighting="paper")``, the default)
against the labels-only baseline (``genvae.semisupervised.train_labels_only``), on the MNIST 8k/2k
split (the first 8,000 images of the MNIST test split to train, the last 2,000 to test).

The networks are those of ``benchmarks/semi_supervised.py`` (MLP encoder and decoder, ``--hidden``
units, latent size ``--latent``; ``ConvClassifier`` with dropout ``--dropout``); the labelled
images are oversampled to half of every batch (``labelled_share=0.5``), which the paper weighting
undoes. One process per ``--recipe`` (``WEIGHTING:ALPHA``), one thread each, in parallel.

    python benchmarks/m2_recipe.py --mnist ../shared/data/mnist --epochs 10 --recipe paper:0.1 paper:1
    python benchmarks/m2_recipe.py --mnist ../shared/data/mnist --epochs 10 --recipe paper:10 batch:5 --append
    python benchmarks/m2_recipe.py --mnist ../shared/data/mnist --quick     # a smoke test

Results: ``benchmarks/results/m2_recipe.json`` (``--out`` to change), with the command.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import torch

import genvae as gv
from genvae.classifiers import ConvClassifier
from genvae.data.partial import partially_labeled
from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE, accuracy, train_labels_only

ROOT = Path(__file__).resolve().parents[1]


def split(args: argparse.Namespace) -> tuple[gv.data.ImageDataset, gv.data.ImageDataset]:
    """The MNIST 8k/2k split (small subsets with ``--quick``)."""
    mnist = gv.data.MNIST(args.mnist, split="test")
    train, test = mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))
    if args.quick:
        train, test = train.subset(slice(0, 600)), test.subset(slice(0, 300))
    return train, test


def model(args: argparse.Namespace) -> SemiSupervisedVAE:
    """M2 with MLP encoder and decoder and a convolutional classifier."""
    cond = {"condition_dim": 10}
    return SemiSupervisedVAE(
        gv.encoders.MLPEncoder((1, 28, 28), hidden=(args.hidden,), **cond),
        gv.decoders.MLPDecoder(args.latent, (1, 28, 28), hidden=(args.hidden,), **cond),
        ConvClassifier(10, dropout=args.dropout),
        latent_dim=args.latent,
        num_classes=10,
    )


def run(args: argparse.Namespace, recipe: str) -> dict[str, Any]:
    """M2 with this recipe (``weighting:alpha``), and the labels-only baseline from the same
    initial classifier (one thread)."""
    weighting, alpha = recipe.split(":")[0], float(recipe.split(":")[1])
    torch.set_num_threads(1)
    train, test = split(args)
    data = partially_labeled(train, args.labels, seed=args.draw, labelled_share=0.5)
    torch.manual_seed(args.draw)
    m2 = model(args)
    start_classifier = ConvClassifier(10, dropout=args.dropout)
    start_classifier.load_state_dict(m2.classifier.state_dict())
    trainer = gv.Trainer(
        m2,
        SemiSupervisedELBO(alpha=alpha, weighting=weighting),
        max_epochs=args.epochs,
        batch_size=64,
        seed=args.draw,
        quiet=True,
    )
    started = time.perf_counter()
    history = trainer.fit(data, test)
    seconds = time.perf_counter() - started
    baseline = train_labels_only(start_classifier, data, test, epochs=args.baseline_epochs, seed=args.draw)
    result = {
        "alpha": alpha,
        "weighting": weighting,
        "m2_accuracy": accuracy(m2, test),
        "m2_accuracy_per_epoch": history["val_accuracy"],
        "labels_only_accuracy": baseline,
        "m2_seconds": seconds,
    }
    print(json.dumps(result), flush=True)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist", default=str(ROOT.parent / "shared" / "data" / "mnist"))
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--recipe", nargs="+", default=["paper:0.1"], help="WEIGHTING:ALPHA, one run each")
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--draw", type=int, default=0)
    parser.add_argument("--latent", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--baseline-epochs", type=int, default=300)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--append", action="store_true", help="add this round to the results file's rounds")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "m2_recipe.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=len(args.recipe)) as pool:
        results = list(pool.map(run, [args] * len(args.recipe), args.recipe))
    round_ = {
        "command": "python benchmarks/" + Path(__file__).name + " " + " ".join(sys.argv[1:] if argv is None else argv),
        "data": "mnist-8k (first 8,000 MNIST test images to train, last 2,000 to test)",
        "labels": args.labels,
        "draws": [args.draw],
        "epochs": args.epochs,
        "settings": {k: v for k, v in vars(args).items() if k not in ("out", "recipe", "append")},
        "machine": f"2 shared CPU cores, torch {torch.__version__}, one thread per run",
        "wall_seconds": time.perf_counter() - started,
        "runs": results,
    }
    out = Path(args.out)
    earlier = json.loads(out.read_text())["rounds"] if args.append and out.exists() else []
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rounds": [*earlier, round_]}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
