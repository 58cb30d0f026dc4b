"""Sample quality of a VAE: samples from its prior against samples from a Gaussian mixture fitted
to its posterior means (Ghosh et al., 2020), scored by the Fréchet distance and k-NN precision and
recall in the features of a classifier trained on the same data (``genvae.sample_quality``).

For each dataset: train the notebook's convolutional VAE (``gv.presets.seed_vae``, Bernoulli
likelihood on the grey images) for ``--epochs``; train the feature network on the training
images; fit each sampler on the training images; draw as many samples as there are held-out
images; score them against the held-out images. Seconds per training epoch, per sampler fit and
per 1,000 samples are recorded, and the VAE's reconstruction error on the held-out images (the
figure a VQ-VAE row is compared on at the same budget).

    # the short regime (what a helper ran; minutes on one CPU thread)
    python benchmarks/sample_quality.py --dataset mnist-8k --epochs 10 --threads 1 --json out.json
    # the longer one: both datasets
    python benchmarks/sample_quality.py --dataset mnist-8k fashion-mnist --epochs 50 --json out.json
    # a smoke test (seconds): a slice of the data, 1 epoch
    python benchmarks/sample_quality.py --quick --dataset synthetic --json /tmp/sq.json

Datasets: ``mnist-8k`` (the first 8,000 images of the MNIST test split to train, the last 2,000
held out, as in ``benchmarks/reproduce.py``), ``fashion-mnist`` (60,000 / 10,000), ``synthetic``
(SyntheticDigits, 2,000 / 500, for smoke tests). The figures compare samplers within this setup
only (see the caveat in ``genvae.sample_quality``).

VQ-VAE rows: ``--family vqvae`` trains ``gv.presets.seed_vqvae`` at the same budget and scores
samples through its learned code prior. Each family's held-out bound is recorded under its own
name: the VAE's negative ELBO (``neg_elbo``, one draw per image) and its importance-weighted NLL
(``iw_nll``, ``--iw-k`` draws); the VQ-VAE's negative ELBO under its code prior (``neg_elbo``:
the reconstruction term of its own codes plus −log p(codes) under the fitted prior, the one-hot
posterior having no entropy). All in nats per image, the Bernoulli likelihood on grey levels.

    # the rows of the reproducibility table (about 25 min and 2 h on one CPU thread), recorded with
    # python benchmarks/reproduce.py samples benchmarks/results/sample_quality_*.json
    python benchmarks/sample_quality.py --dataset mnist-8k --family vae vqvae --epochs 50 --prior-epochs 30 \
        --threads 1 --json benchmarks/results/sample_quality_mnist8k.json
    python benchmarks/sample_quality.py --dataset mnist-8k --family vae --latent 392 --epochs 50 --threads 1 \
        --json benchmarks/results/sample_quality_mnist8k_vae392.json
    python benchmarks/sample_quality.py --dataset fashion-mnist --family vae vqvae --epochs 30 --prior-epochs 15 \
        --threads 1 --json benchmarks/results/sample_quality_fashion.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import genvae as gv

ROOT = Path(__file__).resolve().parents[1]
MNIST_SPLIT = ROOT.parent / "shared" / "data" / "mnist"
FASHION = Path("/usr/share/datasets/fashion-mnist")


def load(name: str, root: str | None, quick: bool) -> tuple[gv.data.ImageDataset, gv.data.ImageDataset]:
    """(training images, held-out images) of one dataset, a slice of each with ``quick``."""
    if name == "mnist-8k":
        mnist = gv.data.MNIST(root=root or MNIST_SPLIT, split="test")
        train, test = mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))
    elif name == "fashion-mnist":
        where = root or (FASHION if FASHION.exists() else None)
        train, test = gv.data.FashionMNIST(root=where, split="train"), gv.data.FashionMNIST(root=where, split="test")
    elif name == "synthetic":
        train, test = gv.data.SyntheticDigits(2000, seed=0), gv.data.SyntheticDigits(500, seed=1)
    else:
        raise SystemExit(f"error: --dataset: expected mnist-8k, fashion-mnist or synthetic, got {name!r}")
    if quick:
        train, test = train.subset(slice(0, 1000)), test.subset(slice(0, 300))
    return train, test


# ---------------------------------------------------------------------------------------------
# families: each trains a model and names its samplers

Family = Callable[[gv.data.ImageDataset, argparse.Namespace], tuple[Any, dict[str, Any], dict[str, float]]]


def train_vae(train: gv.data.ImageDataset, args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """The notebook's VAE trained for ``args.epochs``; samplers: its prior and a GMM."""
    torch.manual_seed(args.seed)
    model = gv.presets.seed_vae(latent_dim=args.latent)
    trainer = gv.Trainer(
        model, max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
        quiet=True,
    )  # fmt: skip
    started = time.perf_counter()
    trainer.fit(train)
    seconds = time.perf_counter() - started
    samplers = {
        "prior": gv.samplers.PriorSampler(model),
        "gmm": gv.samplers.GaussianMixtureSampler(model, components=args.components, seed=args.seed),
    }
    return model, samplers, {"seconds_per_epoch": seconds / args.epochs}


def train_vqvae(train: gv.data.ImageDataset, args: argparse.Namespace) -> tuple[Any, dict[str, Any], dict[str, float]]:
    """The notebook's networks as a VQ-VAE (``gv.presets.seed_vqvae``: a 7×7 map of codes, EMA
    codebook) trained like :func:`train_vae` (same optimiser, batch size and epochs); sampler: its
    learned code prior (``gv.samplers.CodeSampler``, fitted for ``--prior-epochs``)."""
    torch.manual_seed(args.seed)
    model = gv.presets.seed_vqvae(codebook_size=args.codebook_size, code_dim=args.code_dim)
    trainer = gv.Trainer(
        model, max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
        quiet=True,
    )  # fmt: skip
    started = time.perf_counter()
    history = trainer.fit(train)
    seconds = time.perf_counter() - started
    sampler = _PriorEpochs(gv.samplers.CodeSampler(model), args.prior_epochs)
    timing = {"seconds_per_epoch": seconds / args.epochs, "perplexity": history.last["train_perplexity"],
              "usage": history.last["train_usage"]}  # fmt: skip
    return model, {"code": sampler}, timing


class _PriorEpochs:
    """A CodeSampler whose ``fit`` runs ``epochs`` (score_samplers fits every sampler alike)."""

    def __init__(self, sampler: Any, epochs: int) -> None:
        self.sampler, self.epochs, self.model = sampler, epochs, sampler.model

    def fit(self, data: Any, progress: bool = False) -> Any:
        return self.sampler.fit(data, epochs=self.epochs, progress=progress)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.sampler.sample(n, generator=generator)


FAMILIES: dict[str, Family] = {"vae": train_vae, "vqvae": train_vqvae}


# ---------------------------------------------------------------------------------------------
# scoring


@torch.no_grad()
def recon_bce(model: Any, test: gv.data.ImageDataset) -> float:
    """Mean binary cross-entropy (nats per image) of the held-out images against the decoded
    posterior means: the reconstruction error the families are compared on."""
    total = 0.0
    with gv.inference.eval_mode(model):
        for i in range(0, len(test), 500):
            x = test.images[i : i + 500].to(model.device)
            recon = model.reconstruct(x).clamp(1e-6, 1 - 1e-6)
            total += float(torch.nn.functional.binary_cross_entropy(recon, x, reduction="sum"))
    return total / len(test)


def score_samplers(
    samplers: dict[str, Any], train: gv.data.ImageDataset, test: gv.data.ImageDataset, features: Any, k: int, seed: int
) -> list[dict[str, Any]]:
    """Fit each sampler on ``train``, draw ``len(test)`` samples and score them against ``test``."""
    rows = []
    for name, sampler in samplers.items():
        started = time.perf_counter()
        sampler.fit(train, progress=False)
        fitted = time.perf_counter()
        samples = sampler.sample(len(test), generator=torch.Generator(device=sampler.model.device).manual_seed(seed))
        drawn = time.perf_counter()
        row = quality_row(name, test, samples.cpu(), features, k)
        per_1000 = (drawn - fitted) / len(test) * 1000
        rows.append({**row, "fit_seconds": fitted - started, "seconds_per_1000_samples": per_1000})
    return rows


@torch.no_grad()
def bounds(
    family: str, model: Any, samplers: dict[str, Any], test: gv.data.ImageDataset, iw_k: int, recon: float
) -> dict[str, float]:
    """Held-out bounds on −log p(x), nats per image, each under its own name (module docstring);
    ``recon`` is :func:`recon_bce` of ``test``, which the VQ-VAE's bound adds to its codes' NLL."""
    if family == "vqvae":
        code_sampler = samplers["code"].sampler
        codes = code_sampler.encode(test.images)
        code_nll = float(
            -torch.cat([code_sampler.log_prob(codes[i : i + 500]) for i in range(0, len(codes), 500)]).mean()
        )
        return {"code_nll": code_nll, "neg_elbo": recon + code_nll}
    elbo = gv.evaluation.nll(model, test.images, k=1, progress=False)
    iw = gv.evaluation.nll(model, test.images, k=iw_k, progress=False)
    return {"neg_elbo": elbo.nats, "iw_nll": iw.nats, "iw_k": float(iw_k)}


def bounds_only(row: dict[str, Any]) -> dict[str, float]:
    return {key: row[key] for key in ("neg_elbo", "iw_nll", "code_nll") if key in row}


def _size(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def quality_row(name: str, real: Any, generated: Any, features: Any, k: int) -> dict[str, Any]:
    quality = gv.sample_quality.sample_quality(real, generated, features, k=k, progress=False)
    print(f"  {name:15s} FD {quality.frechet_distance:8.3f}  P {quality.precision:.3f}  R {quality.recall:.3f}")
    return {"sampler": name, **{key: getattr(quality, key) for key in ("frechet_distance", "precision", "recall")},
            "k": k, "real": quality.real, "generated": quality.generated}  # fmt: skip


def reference_rows(
    model: Any, train: gv.data.ImageDataset, test: gv.data.ImageDataset, features: Any, k: int
) -> list[dict[str, Any]]:
    """The scale of the figures: training images against the held-out ones (what a perfect
    sampler reaches), and the model's reconstructions of training images (what its decoder can)."""
    images = train.images[: len(test)]
    with torch.no_grad(), gv.inference.eval_mode(model):
        chunks = [model.reconstruct(images[i : i + 500].to(model.device)).cpu() for i in range(0, len(images), 500)]
    return [
        quality_row("training images", test, images, features, k),
        quality_row("reconstructions", test, torch.cat(chunks), features, k),
    ]


def run_dataset(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    train, test = load(name, args.root, args.quick)
    print(f"{name}: {len(train)} training images, {len(test)} held out", flush=True)
    features = gv.sample_quality.feature_network(train, epochs=args.feature_epochs, seed=args.seed, device=args.device)
    accuracy = gv.classification.accuracy(features.classifier, test)
    print(f"  feature network: held-out accuracy {accuracy:.3f}", flush=True)
    rows = []
    for family in args.family:
        model, samplers, timing = FAMILIES[family](train, args)
        common = {
            "dataset": name,
            "family": family,
            "training_images": len(train),
            "epochs": args.epochs,
            "latent_dim": args.latent,
            "recon_bce": recon_bce(model, test),
            "feature_accuracy": accuracy,
            **timing,
        }
        if family == "vqvae":
            common.update(latent_dim=None, codebook_size=args.codebook_size, code_dim=args.code_dim,
                          prior_epochs=args.prior_epochs, parameters=_size(model))  # fmt: skip
        else:
            common["parameters"] = _size(model)
        print(f"  {family}: {timing['seconds_per_epoch']:.1f} s/epoch, recon BCE {common['recon_bce']:.2f}", flush=True)
        scored = reference_rows(model, train, test, features, args.k) + score_samplers(
            samplers, train, test, features, args.k, args.seed
        )
        common.update(bounds(family, model, samplers, test, args.iw_k, common["recon_bce"]))
        print("  " + ", ".join(f"{key} {value:.2f}" for key, value in bounds_only(common).items()), flush=True)
        rows += [{**common, **row} for row in scored]
    return rows


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", nargs="+", default=["mnist-8k"], choices=["mnist-8k", "fashion-mnist", "synthetic"])
    p.add_argument("--family", nargs="+", default=["vae"], choices=sorted(FAMILIES))
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--latent", type=int, default=16, help="latent size of the VAE")
    p.add_argument("--codebook-size", type=int, default=64, help="codes of the VQ-VAE")
    p.add_argument("--code-dim", type=int, default=8, help="size of each VQ-VAE code")
    p.add_argument("--prior-epochs", type=int, default=10, help="epochs of the VQ-VAE's code prior")
    p.add_argument("--components", type=int, default=10, help="Gaussians of the GMM sampler")
    p.add_argument("--feature-epochs", type=int, default=5, help="epochs of the feature network")
    p.add_argument("--iw-k", type=int, default=100, help="importance samples of the VAE's IW-NLL")
    p.add_argument("--k", type=int, default=3, help="the neighbour of precision and recall")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--root", default=None, help="the dataset's folder (default: the usual ones)")
    p.add_argument("--quick", action="store_true", help="a smoke test: 1,000 / 300 images, 1 epoch each")
    p.add_argument("--json", required=True, help="where to write the rows (JSON)")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.feature_epochs = 1, 1
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [row for name in args.dataset for row in run_dataset(name, args)]
    result = {
        "command": shlex.join(["python", "benchmarks/sample_quality.py", *argv]),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} thread(s), device {args.device}",
        "genvae": gv.__version__,
        "rows": rows,
    }
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
