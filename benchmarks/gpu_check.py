"""One-shot device check: genvae's training against the plain PyTorch loop, IW-NLL throughput, and
the device's training steps against the CPU's, in one table and one JSON file.

On a CUDA machine (under 4 minutes on a datacenter GPU): the notebook's plain loop (a
``DataLoader`` over the images, each batch moved to the GPU), genvae's ``Trainer`` with its
defaults, and with the fastest settings (bf16 autocast and channels-last; ``--compile`` adds
``torch.compile``), for the seed VAE and CVAE on full Fashion-MNIST at batch sizes 32 and 256: one
timed epoch each after a short warm-up, with the peak GPU memory. Then the IW-NLL throughput of
:func:`genvae.evaluation.nll` (1,000 test images, k = 1,000), and a correctness check: the seed
VAE from the same initial weights trained a few steps on the CPU (plain settings: no fused Adam,
contiguous layout) and on the device (genvae's defaults), the reparameterisation noise drawn on
the CPU from one seed for both, must give the same losses to a tolerance (TF32 convolutions on a
GPU round to about 1e-3).

Without CUDA (or with ``--tiny``) the same runs are tiny: a few hundred random images, a few
steps, on the CPU; the correctness check then sets the defaults against the plain settings.

    python benchmarks/gpu_check.py [--tiny] [--compile] [--json gpu_check.json]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from notebook_models import NotebookVAE, copy_weights, loss_function

import genvae as gv

PLAIN_SETTINGS = {"fused": False, "channels_last": False}


def fast_settings(device: torch.device, compile_: bool) -> dict[str, Any]:
    """The fastest settings to try on ``device``: bf16 autocast and channels-last on a GPU (and
    ``torch.compile`` when asked); on the CPU what was measured fastest there (the defaults)."""
    settings: dict[str, Any] = {"amp": "bf16", "channels_last": True} if device.type == "cuda" else {}
    return settings | ({"compile": True} if compile_ else {})


def training_data(tiny: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training images, their labels, and held-out images: full Fashion-MNIST, or 128 random
    images (and 8 held out) for ``tiny``."""
    if tiny:
        g = torch.Generator().manual_seed(0)
        images = torch.rand(136, 1, 28, 28, generator=g)
        return images[:128], torch.randint(10, (128,), generator=g), images[128:]
    train, test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    return train.images, train.labels, test.images[:1000]


def seed_model(kind: str) -> Any:
    torch.manual_seed(0)
    return gv.presets.seed_vae() if kind == "vae" else gv.presets.seed_cvae()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def plain_epoch(
    kind: str, data: tuple[torch.Tensor, torch.Tensor], batch: int, device: torch.device, warmup: int
) -> dict[str, Any]:
    """The notebook's loop: a DataLoader over host tensors, each batch moved to ``device``."""
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, TensorDataset

    images, labels = data
    plain = NotebookVAE(2, 0 if kind == "vae" else 10)
    copy_weights(seed_model(kind), plain)
    plain.to(device)
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)
    loader = DataLoader(
        TensorDataset(images, labels), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(0)
    )

    def run(max_steps: int | None) -> float:
        total = 0.0
        for step, (x, y) in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            x = x.to(device)
            onehot = F.one_hot(y, 10).float().to(device) if kind == "cvae" else None
            optimizer.zero_grad()
            recon, mean, logvar = plain(x, onehot)
            loss, _, _ = loss_function(recon, x, mean, logvar)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        return total / len(images)

    run(warmup)
    _sync(device)
    _peak_reset(device)
    start = time.perf_counter()
    loss = run(None)
    _sync(device)
    return {"seconds": time.perf_counter() - start, "train_loss": loss, "peak_mb": _peak_mb(device)}


def genvae_epoch(kind: str, data: tuple[torch.Tensor, torch.Tensor], batch: int, device: torch.device, warmup: int,
                 settings: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """genvae's Trainer: a warm-up fit of ``warmup`` batches (compilation included), one timed epoch."""
    images, labels = data
    trainer = gv.Trainer(
        seed_model(kind), batch_size=batch, max_epochs=1, device=device, seed=0, quiet=True, **settings
    )
    trainer.fit((images[: batch * warmup], labels[: batch * warmup]))
    trainer.max_epochs = 2
    _sync(device)
    _peak_reset(device)
    trainer.fit((images, labels))
    last = trainer.history.last
    return {"seconds": last["time"], "train_loss": last["train_total"], "peak_mb": _peak_mb(device)}


def nll_throughput(held_out: torch.Tensor, device: torch.device, k: int) -> dict[str, Any]:
    """Images per second of the IW-NLL estimate with ``k`` importance samples (after a warm-up)."""
    model = seed_model("vae").to(device)
    x = (held_out > 0.5).float()
    gv.evaluation.nll(model, x[:2], k=k, progress=False)
    _sync(device)
    start = time.perf_counter()
    result = gv.evaluation.nll(model, x, k=k, progress=False)
    _sync(device)
    seconds = time.perf_counter() - start
    value = float(result.nats)
    return {"images": len(x), "k": k, "seconds": seconds, "images_per_second": len(x) / seconds, "nll": value}


@contextlib.contextmanager
def noise_from(generator: torch.Generator) -> Iterator[None]:
    """``torch.randn_like`` draws on the CPU from ``generator`` and moves the draw to the tensor's
    device: the reparameterisation noise is then the same on every device."""
    original = torch.randn_like

    def randn_like(t: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        dtype = kwargs.get("dtype") or t.dtype
        return torch.randn(t.shape, generator=generator, dtype=dtype).to(t.device)

    torch.randn_like = randn_like  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.randn_like = original  # type: ignore[assignment]


class StepLosses(gv.training.Callback):
    """Records each training step's loss."""

    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_batch_end(self, trainer: Any, step: int, terms: Any) -> None:
        self.losses.append(float(terms.loss.detach()))


def step_losses(model: Any, data: torch.Tensor, device: torch.device, settings: dict[str, Any]) -> list[float]:
    spy = StepLosses()
    trainer = gv.Trainer(model, batch_size=32, max_epochs=1, device=device, shuffle=False, quiet=True,
                         callbacks=[spy], **settings)  # fmt: skip
    with noise_from(torch.Generator().manual_seed(0)):
        trainer.fit(data)
    return spy.losses


def correctness(images: torch.Tensor, device: torch.device, steps: int) -> dict[str, Any]:
    """The seed VAE trained ``steps`` steps on the CPU with the plain settings and on ``device``
    with the defaults, from the same weights and noise: the largest relative difference of the
    step losses against the tolerance."""
    x = (images[: 32 * steps] > 0.5).float()
    initial = seed_model("vae")
    reference = step_losses(copy.deepcopy(initial), x, torch.device("cpu"), PLAIN_SETTINGS)
    candidate = step_losses(copy.deepcopy(initial), x, device, {})
    worst = max(abs(a - b) / abs(a) for a, b in zip(reference, candidate, strict=True))
    tolerance = 5e-3 if device.type == "cuda" else 1e-4
    return {"device": str(device), "reference": "cpu, plain settings", "steps": steps, "cpu_losses": reference,
            "device_losses": candidate, "max_relative_difference": worst, "tolerance": tolerance,
            "passed": bool(worst <= tolerance)}  # fmt: skip


def throughput(
    args: argparse.Namespace, device: torch.device, data: tuple[torch.Tensor, torch.Tensor]
) -> list[dict[str, Any]]:
    rows = []
    warmup = 1 if args.tiny else 20
    methods: dict[str, dict[str, Any] | None] = {
        "plain": None, "genvae-default": {}, "genvae-fast": fast_settings(device, args.compile)
    }  # fmt: skip
    for kind in ("vae", "cvae"):
        for batch in (32, 256) if not args.tiny else (32, 64):
            plain_seconds = float("nan")
            for method, settings in methods.items():
                if settings is None:
                    result = plain_epoch(kind, data, batch, device, warmup)
                    plain_seconds = result["seconds"]
                else:
                    result = genvae_epoch(kind, data, batch, device, warmup, settings)
                result |= {"model": kind, "batch": batch, "method": method, "settings": settings,
                           "samples_per_second": len(data[0]) / result["seconds"],
                           "speedup_vs_plain": plain_seconds / result["seconds"]}  # fmt: skip
                rows.append(result)
                print(
                    f"  {kind:4s} batch {batch:3d} {method:15s} {result['seconds']:7.2f}s", file=sys.stderr, flush=True
                )
    return rows


def print_table(report: dict[str, Any]) -> None:
    print(f"\ndevice: {report['device']} ({report['device_name']}), torch {report['torch']}, tiny={report['tiny']}")
    print(f"{'model':5s} {'batch':>5s} {'method':15s} {'s/epoch':>8s} {'samples/s':>10s} {'vs plain':>8s} "
          f"{'peak MiB':>8s} {'loss':>8s}")  # fmt: skip
    for row in report["throughput"]:
        peak = "-" if row["peak_mb"] is None else f"{row['peak_mb']:.0f}"
        print(f"{row['model']:5s} {row['batch']:5d} {row['method']:15s} {row['seconds']:8.2f} "
              f"{row['samples_per_second']:10.0f} {row['speedup_vs_plain']:7.2f}x {peak:>8s} "
              f"{row['train_loss']:8.2f}")  # fmt: skip
    nll = report["nll"]
    print(
        f"\nIW-NLL (k={nll['k']}): {nll['images_per_second']:.1f} images/s "
        f"({nll['images']} images, {nll['seconds']:.2f}s)"
    )
    check = report["correctness"]
    verdict = "passed" if check["passed"] else "FAILED"
    print(f"correctness ({check['device']} vs {check['reference']}, {check['steps']} steps): max relative difference "
          f"{check['max_relative_difference']:.2e}, tolerance {check['tolerance']:.0e}: {verdict}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny CPU form (automatic without CUDA)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile to the fastest settings")
    parser.add_argument("--json", default=None, help="write the report here")
    args = parser.parse_args(argv)
    cuda = torch.cuda.is_available()
    args.tiny = args.tiny or not cuda
    device = torch.device("cuda" if cuda and not args.tiny else "cpu")
    started = time.perf_counter()
    images, labels, held_out = training_data(args.tiny)
    report: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]), "device": str(device), "tiny": args.tiny,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__, "genvae": gv.__version__,
    }  # fmt: skip
    report["throughput"] = throughput(args, device, (images, labels))
    report["nll"] = nll_throughput(held_out, device, k=20 if args.tiny else 1000)
    report["correctness"] = correctness(images, device, steps=3 if args.tiny else 10)
    report["seconds"] = time.perf_counter() - started
    print_table(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, allow_nan=True) + "\n")
    return report


if __name__ == "__main__":
    main()
