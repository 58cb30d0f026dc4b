"""Importance-weighted NLL (k = 1,000) of the notebook's VAE on 10,000 Fashion-MNIST test images:
images per second and peak memory.

    python benchmarks/eval_throughput.py [--images 10000] [--k 1000] [--chunk 4096] [--json out.json]

The model is trained for one epoch first (the speed does not depend on the weights, but the
estimate is more meaningful on a trained model). Peak memory is the process's max RSS, measured
in a separate process for the evaluation alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

import torch

import genvae as gv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    train, test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    torch.manual_seed(0)
    model = gv.presets.seed_vae()
    gv.Trainer(model, max_epochs=1, device="cpu", seed=0).fit(train)
    data = test.subset(slice(0, args.images))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch.manual_seed(0)
    start = time.perf_counter()
    result = gv.evaluation.nll(model, data, k=args.k, batch_size=args.batch_size, chunk=args.chunk)
    seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = {
        "images": len(data), "k": args.k, "chunk": args.chunk, "seconds": seconds,
        "images_per_second": len(data) / seconds, "decoded_latents_per_second": len(data) * args.k / seconds,
        "nll_nats": result.nats, "bits_per_dim": result.bits_per_dim,
        "max_rss_mb_before": rss_before, "max_rss_mb_after": rss_after, "threads": torch.get_num_threads(),
    }  # fmt: skip
    print(
        f"IW-NLL k={args.k} on {len(data)} images: {seconds:.1f}s, {summary['images_per_second']:.1f} images/s "
        f"({summary['decoded_latents_per_second']:.0f} latents/s); {result.nats:.2f} nats "
        f"({result.bits_per_dim:.4f} bits/dim); max RSS {rss_before:.0f} MB before, {rss_after:.0f} MB after"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
