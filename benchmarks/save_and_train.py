"""Time ``gv.save`` / ``gv.load`` of the notebook's models and a small ``genvae train`` run.

    python benchmarks/save_and_train.py [--repeats 30] [--train-repeats 3] [--label NAME] [--json out.json]

``gv.save`` is timed over an existing model directory (the common case: a run saving again),
``gv.load`` on the directory it wrote; each figure is the median of ``--repeats`` calls, in
wall-clock and in CPU time. ``--train-repeats 0`` times only save and load. ``genvae
train`` is timed end to end as a user runs it (a fresh process: import, data, 2 epochs on 2,000
SyntheticDigits, publication of the run), the median of ``--train-repeats`` runs, one thread.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import genvae as gv

TRAIN = ["--dataset", "synthetic-digits", "--train-size", "2000", "--test-size", "500", "--epochs", "2",
         "--quiet", "--no-report", "--device", "cpu"]  # fmt: skip


def median_seconds(call: Any, repeats: int) -> tuple[float, float]:
    """The median wall-clock and CPU seconds of ``repeats`` calls (CPU time: this process's, which
    a busy machine disturbs less; it leaves out waiting for the disk, such as a save's fsync)."""
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus)


def time_model(model: torch.nn.Module, repeats: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        gv.save(model, folder)
        with torch.no_grad():  # a changed model, so every save writes new weights
            for p in model.parameters():
                p.add_(0.01)
        save, save_cpu = median_seconds(lambda: gv.save(model, folder), repeats)
        load, load_cpu = median_seconds(lambda: gv.load(folder), repeats)
    return {"save_ms": save * 1e3, "load_ms": load * 1e3, "save_cpu_ms": save_cpu * 1e3, "load_cpu_ms": load_cpu * 1e3}


def time_train(repeats: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as folder:
            env["XDG_CACHE_HOME"] = str(Path(folder) / "cache")
            command = [sys.executable, "-m", "genvae", "train", *TRAIN, "--out", str(Path(folder) / "run")]
            start = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--train-repeats", type=int, default=3)
    parser.add_argument("--label", default="")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    summary: dict[str, Any] = {"label": args.label, "repeats": args.repeats, "train_repeats": args.train_repeats}
    for name, model in (("seed_vae", gv.presets.seed_vae()), ("seed_cvae", gv.presets.seed_cvae())):
        summary[name] = time_model(model, args.repeats)
        figures = summary[name]
        print(f"{name}: gv.save {figures['save_ms']:.1f} ms (CPU {figures['save_cpu_ms']:.1f}), "
              f"gv.load {figures['load_ms']:.1f} ms (CPU {figures['load_cpu_ms']:.1f})")  # fmt: skip
    if args.train_repeats:  # 0: only save and load
        summary["train_seconds"] = time_train(args.train_repeats)
        print(f"genvae train {' '.join(TRAIN)}: {summary['train_seconds']:.2f} s (median of {args.train_repeats})")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
