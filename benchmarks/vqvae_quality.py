"""Issue 25's VQ-VAE figures: reconstruction error of the VQ-VAE against the VAE at the same
training budget, and the cost of training and of sampling through the learned code prior.

Both models are the notebook's networks: ``gv.presets.seed_vae`` (latent size ``--latent``) and
``gv.presets.seed_vqvae`` (a 7×7 map of codes, ``--codebook-size`` codes of ``--code-dim``, EMA
codebook), trained with the same optimiser (Adam, ``--lr``), batch size and epochs on the same
images (grey levels, Bernoulli likelihood, as in the notebook). Reconstructions are deterministic:
the VAE decodes its posterior mean, the VQ-VAE its own codes. Figures on the held-out images:
per-image binary cross-entropy in nats (summed over the 784 pixels) and the mean squared error per
pixel; seconds per training epoch; for the VQ-VAE's ``CodeSampler`` (a causal transformer over the
49 codes), its fitting time and the seconds per 1,000 samples (drawn and decoded).

    python benchmarks/vqvae_quality.py --epochs 10                      # MNIST 8k/2k split
    python benchmarks/vqvae_quality.py --dataset fashion-mnist --epochs 10
    python benchmarks/vqvae_quality.py --epochs 1 --limit 2000 --prior-epochs 2   # a quick look

Datasets as in ``benchmarks/reproduce.py``: ``mnist-8k`` (the first 8,000 images of the MNIST test
split to train, the last 2,000 held out) and ``fashion-mnist`` (60,000 / 10,000). The JSON written
to ``--out`` holds the command that produced it.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import genvae as gv
from genvae.samplers.code import CodeSampler

ROOT = Path(__file__).resolve().parents[1]
MNIST_SPLIT = ROOT.parent / "shared" / "data" / "mnist"


def data(name: str, limit: int | None) -> tuple[gv.data.ImageDataset, gv.data.ImageDataset]:
    """(training images, held-out images)."""
    if name == "mnist-8k":
        mnist = gv.data.MNIST(root=MNIST_SPLIT, split="test")
        train, test = mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))
    else:
        train, test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    if limit is not None:
        train, test = train.subset(slice(0, limit)), test.subset(slice(0, limit))
    return train, test


@torch.no_grad()
def reconstruction_error(model: Any, images: torch.Tensor, batch: int = 500) -> dict[str, float]:
    """Per-image BCE (nats) and per-pixel MSE of deterministic reconstructions."""
    bce, sse = 0.0, 0.0
    model.eval()
    for i in range(0, images.shape[0], batch):
        x = images[i : i + batch]
        recon = model.reconstruct(x).clamp(1e-7, 1 - 1e-7)
        bce += float(F.binary_cross_entropy(recon, x, reduction="sum"))
        sse += float((recon - x).pow(2).sum())
    n = images.shape[0]
    return {"bce_nats_per_image": bce / n, "mse_per_pixel": sse / (n * images[0].numel())}


def train(model: torch.nn.Module, images: torch.Tensor, args: argparse.Namespace) -> tuple[float, dict[str, float]]:
    """Train; the seconds per epoch and the last epoch's figures."""
    trainer = gv.Trainer(model, max_epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         quiet=True)  # fmt: skip
    start = time.perf_counter()
    history = trainer.fit(images)
    return (time.perf_counter() - start) / args.epochs, dict(history.last)


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    train_set, test_set = data(args.dataset, args.limit)
    x_train, _ = gv.data.as_tensors(train_set)
    x_test, _ = gv.data.as_tensors(test_set)
    rows: dict[str, Any] = {}
    torch.manual_seed(args.seed)
    vae = gv.presets.seed_vae(latent_dim=args.latent)
    seconds, last = train(vae, x_train, args)
    rows["vae"] = {"parameters": _size(vae), "seconds_per_epoch": seconds, "train_total": last["train_total"],
                   **reconstruction_error(vae, x_test)}  # fmt: skip
    torch.manual_seed(args.seed)
    vq = gv.presets.seed_vqvae(codebook_size=args.codebook_size, code_dim=args.code_dim)
    seconds, last = train(vq, x_train, args)
    rows["vqvae"] = {"parameters": _size(vq), "seconds_per_epoch": seconds, "train_total": last["train_total"],
                     "perplexity": last["train_perplexity"], "usage": last["train_usage"],
                     **reconstruction_error(vq, x_test)}  # fmt: skip
    sampler = CodeSampler(vq)
    start = time.perf_counter()
    sampler.fit(x_train, epochs=args.prior_epochs, batch_size=256)
    fit_seconds = time.perf_counter() - start
    codes = sampler.encode(x_test)
    start = time.perf_counter()
    sampler.sample(1000, generator=torch.Generator().manual_seed(args.seed))
    rows["code_sampler"] = {
        "parameters": _size(sampler.prior),
        "fit_seconds": fit_seconds,
        "prior_epochs": args.prior_epochs,
        "seconds_per_1000_samples": time.perf_counter() - start,
        "test_code_nll_nats": float(-sampler.log_prob(codes[:1000]).mean()),
        "uniform_code_nll_nats": 49 * float(torch.log(torch.tensor(float(args.codebook_size)))),
    }
    return {
        "command": "python benchmarks/vqvae_quality.py " + " ".join(shlex.quote(a) for a in argv if a),
        "dataset": args.dataset,
        "train_images": x_train.shape[0],
        "test_images": x_test.shape[0],
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "rows": rows,
    }


def _size(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--dataset", default="mnist-8k", choices=["mnist-8k", "fashion-mnist"])
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--latent", type=int, default=2, help="the VAE's latent size")
    p.add_argument("--codebook-size", type=int, default=64)
    p.add_argument("--code-dim", type=int, default=8)
    p.add_argument("--prior-epochs", type=int, default=10, help="epochs of the code prior")
    p.add_argument("--limit", type=int, default=None, help="use only this many training and held-out images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="the JSON file to write (default: print only)")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    shown = [a for i, a in enumerate(argv) if a != "--out" and (i == 0 or argv[i - 1] != "--out")]
    result = run(args, shown)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
