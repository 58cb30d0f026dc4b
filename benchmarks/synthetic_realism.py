"""Issue 15: how much SyntheticDigits look like MNIST, measured against the real MNIST test split.

1. Style statistics (``genvae.data.digit_style``) of 10,000 synthetic and the 10,000 real test
   images: intensities and their histogram, centre of mass, bounding box, slant, stroke width; per
   digit width and slant; the distance between the mean images.
2. Generation speed: 60,000 images as a user calls it (SyntheticDigits draws on one thread), best of 3.
3. Train on synthetic, test on real (TSTR): a small CNN (two 5×5 conv layers, 16 and 32 channels,
   max-pooling, a 64-unit layer; 0.1 M parameters) trained for 2 epochs on 60,000 SyntheticDigits
   (seed 0; Adam, one-cycle learning rate up to 3e-3, batch 128) and tested on the 10,000 real images.
4. The seed VAE (``gv.presets.seed_vae(latent_dim=2)``, ``gv.Trainer``, 10 epochs, batch 32, seed 0)
   trained on 8,000 SyntheticDigits and on MNIST 8k (the first 8,000 test images): latent-probe
   accuracies (``gv.evaluation.latent_probe``; the real model probed on MNIST 8k → the last 2,000;
   the synthetic model probed on its own 8,000 → 2,000 held-out synthetic (seed 1) and → the real
   2,000, and on MNIST 8k → the real 2,000), and whether reconstructions keep their class: the TSTR
   CNN reading the synthetic model's reconstructions of the 2,000 held-out synthetic digits (and, for
   reference, the real model's reconstructions of the real 2,000; and the synthetic model's with a
   16-dimensional latent space, to show what the 2-D bottleneck loses).
5. ``--before-src SRC``: items 1–3 also for the SyntheticDigits of another checkout's ``src``
   (``git worktree add /tmp/genvae-before <commit>``), run in a subprocess, for a before/after table.
6. ``--calibrate``: fit ``Style.digit_slant`` and ``Style.digit_aspect`` so that each digit's mean
   slant and bounding-box width match MNIST's, and print them (they are the defaults in ``Style``).

Results go to ``benchmarks/results/synthetic_realism.{json,txt}`` (``--quick``: a smoke test on small
sizes, written to ``synthetic_realism_quick.*``).

    python benchmarks/synthetic_realism.py [--quick] [--before-src /tmp/genvae-before/src] [--calibrate]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import genvae as gv
from genvae.data.digit_style import style_measures, style_summary
from genvae.data.synthetic import Style, SyntheticDigits

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"
if not MNIST_DIR.is_dir():  # a worktree sits one level deeper than the main checkout
    MNIST_DIR = ROOT.parents[1] / "shared" / "data" / "mnist"


@dataclasses.dataclass
class Sizes:
    stats: int = 10_000
    speed: int = 60_000
    tstr_train: int = 60_000
    tstr_epochs: int = 2
    vae_train: int = 8_000
    vae_test: int = 2_000
    vae_epochs: int = 10


QUICK = Sizes(stats=2_000, speed=6_000, tstr_train=3_000, tstr_epochs=1, vae_train=1_000, vae_test=500, vae_epochs=1)


# -- statistics ----------------------------------------------------------------------------------


def per_digit(images: torch.Tensor, labels: torch.Tensor) -> dict[str, list[float]]:
    measures = style_measures(images)
    return {
        f"{name}_{stat}": [round(float(getattr(measures[name][labels == d], stat)()), 3) for d in range(10)]
        for name in ("width", "height", "slant", "thickness")
        for stat in ("mean", "std")
    }


def compare(images: torch.Tensor, labels: torch.Tensor, real: gv.data.ImageDataset) -> dict[str, Any]:
    summary, reference = style_summary(images), style_summary(real.images)
    mean, real_mean = images.mean(0).flatten(), real.images.mean(0).flatten()
    histogram_l1 = sum(abs(a - b) for a, b in zip(summary["histogram"], reference["histogram"], strict=True))  # type: ignore[arg-type]
    return {
        "summary": summary,
        "per_digit": per_digit(images, labels),
        "mean_image_l2": float((mean - real_mean).norm()),
        "mean_image_correlation": float(torch.corrcoef(torch.stack([mean, real_mean]))[0, 1]),
        "histogram_l1": float(histogram_l1) + abs(float(summary["zero_fraction"]) - float(reference["zero_fraction"])),  # type: ignore[arg-type]
    }


# -- speed ---------------------------------------------------------------------------------------


def generation_seconds(n: int, repeats: int = 3) -> float:
    """Best of ``repeats`` wall times of SyntheticDigits(n) as a user calls it (it draws on one thread)."""
    SyntheticDigits(10)  # caches the skeletons
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        SyntheticDigits(n, seed=0)
        times.append(time.perf_counter() - start)
    return min(times)


BEFORE_SCRIPT = """
import sys, time, torch
sys.path.insert(0, sys.argv[1])
import genvae
n = int(sys.argv[2])
genvae.data.SyntheticDigits(10)
times = []
for _ in range(3):
    start = time.perf_counter(); ds = genvae.data.SyntheticDigits(n, seed=0); times.append(time.perf_counter() - start)
torch.save({"images": ds.images, "labels": ds.labels, "seconds": min(times), "file": genvae.__file__}, sys.argv[3])
"""


def generate_elsewhere(src: str, n: int) -> dict[str, Any]:
    """SyntheticDigits(n, seed=0) of the genvae in ``src``, made in a fresh process (torch's default
    threads), with its best time of 3."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "digits.pt")
        subprocess.run([sys.executable, "-c", BEFORE_SCRIPT, src, str(n), out], check=True)
        return torch.load(out)


# -- train on synthetic, test on real ------------------------------------------------------------


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )  # fmt: skip


def train_cnn(images: torch.Tensor, labels: torch.Tensor, epochs: int, seed: int = 0, batch: int = 128) -> nn.Module:
    torch.manual_seed(seed)
    net = small_cnn()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    steps = epochs * -(-len(images) // batch)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    order = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for index in torch.randperm(len(images), generator=order).split(batch):
            loss = F.cross_entropy(net(images[index]), labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
    return net.eval()


@torch.no_grad()
def predict(net: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(chunk).argmax(1) for chunk in images.split(1000)])


def tstr(
    images: torch.Tensor, labels: torch.Tensor, real: gv.data.ImageDataset, epochs: int
) -> tuple[dict[str, Any], nn.Module]:
    start = time.perf_counter()
    net = train_cnn(images, labels, epochs)
    seconds = time.perf_counter() - start
    predicted = predict(net, real.images)
    confusion = torch.zeros(10, 10, dtype=torch.long)
    confusion.index_put_((real.labels, predicted), torch.ones_like(predicted), accumulate=True)
    result = {
        "accuracy": float((predicted == real.labels).double().mean()),
        "per_digit_accuracy": [round(float(confusion[d, d] / confusion[d].sum()), 4) for d in range(10)],
        "confusion": confusion.tolist(),
        "train_images": len(images),
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
    }
    return result, net


# -- the seed VAE --------------------------------------------------------------------------------


def train_vae(
    data: gv.data.ImageDataset, val: gv.data.ImageDataset, epochs: int, latent_dim: int = 2
) -> tuple[Any, float]:
    torch.manual_seed(0)
    model = gv.presets.seed_vae(latent_dim=latent_dim)
    start = time.perf_counter()
    gv.Trainer(model, max_epochs=epochs, batch_size=32, seed=0, device="cpu").fit(data, val)
    return model.eval(), time.perf_counter() - start


def reconstruction_accuracy(model: Any, net: nn.Module, data: gv.data.ImageDataset) -> float:
    with torch.no_grad():
        recon = torch.cat([model.reconstruct(chunk) for chunk in data.images.split(500)])
    return float((predict(net, recon) == data.labels).double().mean())


def vae_figures(sizes: Sizes, real: gv.data.ImageDataset, net: nn.Module) -> dict[str, Any]:
    n, m = sizes.vae_train, sizes.vae_test
    real_train, real_test = real.subset(slice(0, n)), real.subset(slice(len(real) - m, len(real)))
    synth_train, synth_test = SyntheticDigits(n, seed=0), SyntheticDigits(m, seed=1)
    real_model, real_seconds = train_vae(real_train, real_test, sizes.vae_epochs)
    synth_model, synth_seconds = train_vae(synth_train, synth_test, sizes.vae_epochs)
    probe = gv.evaluation.latent_probe
    figures = {
        "train_images": n,
        "test_images": m,
        "epochs": sizes.vae_epochs,
        "real_model_probe_real": probe(real_model, real_train, real_test),
        "synthetic_model_probe_synthetic": probe(synth_model, synth_train, synth_test),
        "synthetic_model_probe_fit_synthetic_test_real": probe(synth_model, synth_train, real_test),
        "synthetic_model_probe_real": probe(synth_model, real_train, real_test),
        "synthetic_model_reconstructions_read_by_tstr_cnn": reconstruction_accuracy(synth_model, net, synth_test),
        "real_model_reconstructions_read_by_tstr_cnn": reconstruction_accuracy(real_model, net, real_test),
        "tstr_cnn_on_held_out_synthetic": float((predict(net, synth_test.images) == synth_test.labels).double().mean()),
        "train_seconds": {"real": round(real_seconds, 1), "synthetic": round(synth_seconds, 1)},
    }
    figures["probe_gap"] = figures["real_model_probe_real"] - figures["synthetic_model_probe_synthetic"]
    # The same with a 16-dimensional latent space: how much of the class the 2-D bottleneck loses.
    wide, figures["train_seconds"]["synthetic_latent16"] = train_vae(synth_train, synth_test, sizes.vae_epochs, 16)
    figures["synthetic_model_latent16_reconstructions_read_by_tstr_cnn"] = reconstruction_accuracy(
        wide, net, synth_test
    )
    return figures


# -- calibration ---------------------------------------------------------------------------------


def calibrate(real: gv.data.ImageDataset, n: int, rounds: int = 3) -> Style:
    """Style with ``digit_aspect`` and ``digit_slant`` fitted to MNIST's per-digit mean width and slant."""
    target = per_digit(real.images, real.labels)
    style = Style()
    for i in range(rounds):
        digits = SyntheticDigits(n, seed=3, style=style)
        got = per_digit(digits.images, digits.labels)
        aspect = [
            a * t / g for a, t, g in zip(style.digit_aspect, target["width_mean"], got["width_mean"], strict=True)
        ]
        slant = [s + t - g for s, t, g in zip(style.digit_slant, target["slant_mean"], got["slant_mean"], strict=True)]
        error = max(abs(t - g) for t, g in zip(target["width_mean"], got["width_mean"], strict=True))
        print(f"calibration round {i}: largest per-digit width error {error:.2f} px", flush=True)
        style = dataclasses.replace(
            style, digit_aspect=tuple(round(a, 3) for a in aspect), digit_slant=tuple(round(s, 3) for s in slant)
        )
    return style


# -- the run -------------------------------------------------------------------------------------

ROWS = (
    "mean_intensity", "zero_fraction", "ink_fraction", "saturated_fraction", "centre_x_mean", "centre_x_sd",
    "centre_y_mean", "centre_y_sd", "height_mean", "height_sd", "width_mean", "width_sd", "slant_mean", "slant_sd",
    "thickness_mean", "thickness_sd",
)  # fmt: skip


def report_lines(results: dict[str, Any]) -> list[str]:
    cols = [("MNIST test", results["mnist"]), ("synthetic", results["after"]["statistics"])]
    if "before" in results:
        cols.append(("synthetic before", results["before"]["statistics"]))
    lines = [f"command: {results['command']}", f"machine: {results['machine']}", ""]
    lines.append(f"{'statistic':22s}" + "".join(f"{name:>18s}" for name, _ in cols))
    for row in ROWS:
        lines.append(f"{row:22s}" + "".join(f"{c['summary'][row]:18.4f}" for _, c in cols))
    for row in ("histogram_l1", "mean_image_l2", "mean_image_correlation"):
        lines.append(f"{row:22s}" + "".join(f"{c.get(row, 0.0):18.4f}" for _, c in cols))
    for name, c in cols:
        lines.append(f"histogram {name:17s} " + " ".join(f"{v:.4f}" for v in c["summary"]["histogram"]))
    for key in ("width_mean", "slant_mean"):
        for name, c in cols:
            lines.append(f"per digit {key} {name:17s} " + " ".join(f"{v:6.2f}" for v in c["per_digit"][key]))
    lines.append("")
    for key in ("after", "before"):
        if key in results:
            speed = results[key]["speed"]
            lines.append(f"generation {key:6s}: {speed['images']:,} images in {speed['seconds']:.2f} s (best of 3)")
    for key in ("after", "before"):
        if key in results:
            t = results[key]["tstr"]
            lines.append(
                f"TSTR {key:6s}: {t['accuracy']:.4f} on the {sum(map(sum, t['confusion'])):,} real test images "
                f"(CNN trained {t['epochs']} epochs on {t['train_images']:,} synthetic, {t['train_seconds']} s); "
                f"per digit " + " ".join(f"{a:.3f}" for a in t["per_digit_accuracy"])
            )
    vae = results["after"].get("vae")
    if vae:
        lines.append("")
        lines.append(
            f"seed VAE, latent 2, {vae['epochs']} epochs on {vae['train_images']:,} images (batch 32, seed 0):"
        )
        for key, value in vae.items():
            if isinstance(value, float):
                lines.append(f"  {key:52s} {value:.4f}")
        lines.append(f"  training seconds: {vae['train_seconds']}")
    lines.append("")
    lines += [f"goal {name}: {'met' if ok else 'NOT met'}" for name, ok in results["goals"].items()]
    return lines


def measure_generator(images: torch.Tensor, labels: torch.Tensor, real: Any, sizes: Sizes) -> dict[str, Any]:
    result = {"statistics": compare(images[: sizes.stats], labels[: sizes.stats], real)}
    result["tstr"], net = tstr(images[: sizes.tstr_train], labels[: sizes.tstr_train], real, sizes.tstr_epochs)
    print(f"TSTR {result['tstr']['accuracy']:.4f}", flush=True)
    return result | {"net": net}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke test on small sizes")
    parser.add_argument("--before-src", help="also measure the SyntheticDigits of this src folder")
    parser.add_argument("--calibrate", action="store_true", help="fit and print the per-digit style means")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (default 1)")
    parser.add_argument("--mnist", default=str(MNIST_DIR))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    real = gv.data.MNIST(root=args.mnist, split="test")
    if args.calibrate:
        style = calibrate(real, sizes.stats)
        print(f"digit_aspect = {style.digit_aspect}\ndigit_slant = {style.digit_slant}")
        return
    load_before = os.getloadavg()
    speed = {
        "images": sizes.speed,
        "seconds": generation_seconds(sizes.speed),
        "torch_threads": torch.get_num_threads(),
    }
    print(f"generation: {speed}", flush=True)
    torch.set_num_threads(args.threads)
    digits = SyntheticDigits(max(sizes.tstr_train, sizes.stats), seed=0)
    after = measure_generator(digits.images, digits.labels, real, sizes) | {"speed": speed}
    after["vae"] = vae_figures(sizes, real, after.pop("net"))
    results: dict[str, Any] = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"training on {args.threads} thread(s); load average (1 min) {load_before[0]:.1f} at the start",
        "mnist": compare(real.images, real.labels, real),
        "after": after,
    }
    if args.before_src:
        old = generate_elsewhere(args.before_src, max(sizes.tstr_train, sizes.stats))
        results["before"] = measure_generator(old["images"], old["labels"], real, sizes)
        results["before"].pop("net")
        results["before"]["speed"] = {
            "images": len(old["images"]),
            "seconds": old["seconds"],
            "src": old["file"],
        }
    vae = after["vae"]
    results["machine"] += f", {os.getloadavg()[0]:.1f} at the end"
    results["goals"] = {
        "TSTR accuracy >= 0.90": after["tstr"]["accuracy"] >= 0.90,
        "probe within 0.1 of the real model's": abs(vae["probe_gap"]) <= 0.1,
        "reconstructions read as their class >= 0.80": vae["synthetic_model_reconstructions_read_by_tstr_cnn"] >= 0.80,
    }
    stem = Path(args.out) / ("synthetic_realism_quick" if args.quick else "synthetic_realism")
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = "\n".join(report_lines(results)) + "\n"
    stem.with_suffix(".txt").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
