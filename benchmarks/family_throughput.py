"""Training cost of each model family against the VAE's: seconds per epoch-equivalent, training
FLOPs per sample and the achieved GFLOP/s, with genvae's Trainer and its defaults.

The families, on the notebook's networks (``--arch seed``, batch 32, as
``benchmarks/train_throughput.py``) or Burda et al.'s MLP (``--arch mlp``: 784-200-200 tanh,
50-D latent, batch 100, as ``benchmarks/model_families.py``):

- ``vae``: the ELBO (the reference for the GFLOP/s ratio); ``cvae``: the conditional VAE;
- ``iwae-50``: the IWAE bound with k = 50 importance samples (one decoder pass over k·batch rows);
- ``vamp-500``: the VampPrior with K = 500 pseudo-inputs (their posteriors once per step);
- ``beta-tcvae``: β-TCVAE (β = 6; the batch² × latent pairwise densities);
- ``m2``: the semi-supervised VAE, every class enumerated for the unlabelled half of each batch;
- ``cond-prior``: the conditional VAE with the learned conditional prior p(z | y).

Each family runs in its own process (warm-up steps, then ``--steps`` timed steps on full
Fashion-MNIST, or random binary images with ``--random-data``); seconds are scaled to an epoch of
60,000 images. FLOPs (matmuls and convolutions: ``torch.utils.flop_counter``) are counted on
one batch, forward and backward, through the objective's own ``compute``. ``--profile`` prints
the operators that take the time (``torch.profiler``), family by family.

    python benchmarks/family_throughput.py [--reps 1] [--steps 100] [--json out.json] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

FAMILIES = ("vae", "cvae", "iwae-50", "vamp-500", "beta-tcvae", "m2", "cond-prior")
EPOCH = 60_000
WARMUP_STEPS = 20
# the allocator's thresholds fixed, as in benchmarks/train_throughput.py (see there why)
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}


def build(family: str, arch: str) -> tuple[torch.nn.Module, Any]:
    """The model and the objective of ``family`` (seeded: the same initial weights every run)."""
    import genvae as gv
    from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE, seed_m2

    torch.manual_seed(0)
    conditional = family in ("cvae", "m2", "cond-prior")
    prior: Any = {"vamp-500": gv.priors.VampPrior(500), "cond-prior": "conditional"}.get(family, "normal")
    if family == "m2":
        model: Any = seed_m2() if arch == "seed" else SemiSupervisedVAE("mlp", "mlp", "mlp", latent_dim=50)
    elif arch == "seed":
        model = gv.presets.seed_cvae(prior=prior) if conditional else gv.presets.seed_vae(prior=prior)
    else:
        cond = {"condition_dim": 10} if conditional else {}
        enc = gv.encoders.MLPEncoder((1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
        dec = gv.decoders.MLPDecoder(50, (1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
        kind = gv.ConditionalVAE if conditional else gv.VAE
        extra = {"num_classes": 10} if conditional else {}
        model = kind(enc, dec, latent_dim=50, prior=prior, **extra)
    objective = {
        "iwae-50": lambda: gv.IWAE(k=50),
        "beta-tcvae": lambda: gv.BetaTCVAE(beta=6.0, dataset_size=EPOCH),
        "m2": SemiSupervisedELBO,
    }.get(family, gv.ELBO)()
    return model, objective


def batch_size(arch: str) -> int:
    return 32 if arch == "seed" else 100


def data(family: str, n: int, random_data: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` binary training images and their labels (M2: every other label −1, unlabelled)."""
    if random_data:
        g = torch.Generator().manual_seed(0)
        images = (torch.rand(n, 1, 28, 28, generator=g) > 0.5).float()
        labels = torch.randint(10, (n,), generator=g)
    else:
        import genvae as gv

        train = gv.data.FashionMNIST(split="train")
        images, labels = (train.images[:n] > 0.5).float(), train.labels[:n].clone()
    if family == "m2":
        labels[1::2] = -1
    return images, labels


def flops_per_sample(family: str, arch: str) -> float:
    """Training FLOPs (forward and backward of the objective) per sample, on one batch."""
    from torch.utils.flop_counter import FlopCounterMode

    model, objective = build(family, arch)
    b = batch_size(arch)
    x, y = data(family, b, random_data=True)
    conditional = getattr(model, "conditional", False)
    counter = FlopCounterMode(display=False)

    def forward(x_: torch.Tensor, y_: torch.Tensor, **kwargs: Any) -> Any:
        return model(x_, y_, **kwargs) if conditional else model(x_, **kwargs)

    with counter:
        objective.compute(forward, x, y).loss.backward()
    return counter.get_total_flops() / b


def worker(family: str, arch: str, steps: int, random_data: bool, profile: bool) -> dict[str, float]:
    import genvae as gv

    model, objective = build(family, arch)
    b = batch_size(arch)
    x, y = data(family, b * (WARMUP_STEPS + steps), random_data)
    trainer = gv.Trainer(model, objective, batch_size=b, max_epochs=1, device="cpu", seed=0, quiet=True)
    trainer.fit((x[: b * WARMUP_STEPS], y[: b * WARMUP_STEPS]))
    trainer.max_epochs = 2
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            trainer.fit((x[b * WARMUP_STEPS :], y[b * WARMUP_STEPS :]))
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15), file=sys.stderr)
    else:
        trainer.fit((x[b * WARMUP_STEPS :], y[b * WARMUP_STEPS :]))
    seconds = trainer.history.last["time"]
    return {"seconds_per_epoch": seconds * EPOCH / (b * steps), "train_loss": trainer.history.last["train_loss"]}


def paired(
    families: list[str], arch: str, rounds: int, random_data: bool, chunk: int = 5
) -> dict[str, list[dict[str, float]]]:
    """Every family's Trainer in one process, run in interleaved chunks of ``chunk`` steps (vae,
    cvae, iwae-50, ..., vae, cvae, ...): the least time of each family's chunks over ``rounds``
    rounds (after a warm-up round), as seconds per epoch. On a machine busy with other jobs this
    is far steadier than separate processes: a burst of load hits one chunk only."""
    import genvae as gv

    b, windows = batch_size(arch), 6
    trainers, datasets = {}, {}
    for family in families:
        model, objective = build(family, arch)
        datasets[family] = data(family, b * chunk * windows, random_data)
        trainers[family] = gv.Trainer(model, objective, batch_size=b, max_epochs=1, device="cpu", seed=0,
                                      quiet=True)  # fmt: skip
    best = dict.fromkeys(families, float("inf"))
    loss = dict.fromkeys(families, float("nan"))
    for r in range(rounds + 1):  # round 0 warms up
        lo, hi = (r % windows) * b * chunk, (r % windows + 1) * b * chunk
        for family, trainer in trainers.items():
            x, y = datasets[family]
            trainer.max_epochs = trainer.state.epoch + 1
            trainer.fit((x[lo:hi], y[lo:hi]))
            if r:
                best[family] = min(best[family], trainer.history.last["time"] / (chunk * b) * EPOCH)
                loss[family] = trainer.history.last["train_loss"]
    return {f: [{"seconds_per_epoch": best[f], "train_loss": loss[f]}] for f in families}


def run_all(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    here = Path(__file__).resolve()
    runs: dict[str, list[dict[str, float]]] = {}
    for rep in range(args.reps):
        for family in args.families.split(","):
            command = [sys.executable, str(here), "--worker", family, "--arch", args.arch, "--steps", str(args.steps)]
            command += ["--random-data"] * args.random_data + ["--profile"] * args.profile
            done = subprocess.run(command, capture_output=True, text=True, check=False, env=os.environ | FIXED_MALLOC)
            lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
            if args.profile:
                print(f"--- {family}\n{done.stderr[-6000:]}")
            if done.returncode != 0 or not lines:
                print(f"{family}: failed\n{done.stderr[-2000:]}")
                continue
            result = json.loads(lines[-1][7:])
            runs.setdefault(family, []).append(result)
            print(f"rep {rep + 1} {family:12s} {result['seconds_per_epoch']:8.2f} s/epoch", flush=True)
    return runs


def summarise(runs: dict[str, list[dict[str, float]]], arch: str, stat: str = "median") -> dict[str, dict[str, float]]:
    """Per family: the median (or least) seconds per epoch, FLOPs per sample, GFLOP/s and its
    ratio to the VAE's."""
    table: dict[str, dict[str, float]] = {}
    pick = min if stat == "min" else statistics.median
    for family, results in runs.items():
        seconds = pick(r["seconds_per_epoch"] for r in results)
        flops = flops_per_sample(family, arch)
        table[family] = {
            "seconds_per_epoch": seconds, "flops_per_sample": flops, "gflops": flops * EPOCH / seconds / 1e9,
            "train_loss": statistics.median(r["train_loss"] for r in results), "reps": len(results),
        }  # fmt: skip
    reference = table.get("vae", {}).get("gflops", float("nan"))
    for row in table.values():
        row["gflops_vs_vae"] = row["gflops"] / reference
        row["seconds_vs_vae"] = row["seconds_per_epoch"] / table.get("vae", {}).get("seconds_per_epoch", float("nan"))
    return table


def print_table(table: dict[str, dict[str, float]], arch: str) -> None:
    print(f"\nfamilies ({arch} networks, batch {batch_size(arch)}, genvae.Trainer defaults, CPU):")
    print(f"{'family':12s} {'s/epoch':>8s} {'vs VAE':>7s} {'MFLOP/sample':>13s} {'GFLOP/s':>8s} {'vs VAE':>7s}")
    for family, row in table.items():
        mflops, share = row["flops_per_sample"] / 1e6, 100 * row["gflops_vs_vae"]
        print(f"{family:12s} {row['seconds_per_epoch']:8.2f} {row['seconds_vs_vae']:6.2f}x "
              f"{mflops:13.2f} {row['gflops']:8.2f} {share:6.0f}%")  # fmt: skip


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]] | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--arch", choices=("seed", "mlp"), default="seed")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per family")
    parser.add_argument("--random-data", action="store_true", help="random binary images, not Fashion-MNIST")
    parser.add_argument("--paired", type=int, default=0, help="rounds of the paired, interleaved measurement")
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="of the repetitions' seconds")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's top operators")
    parser.add_argument("--json", default=None)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        result = worker(args.worker, args.arch, args.steps, args.random_data, args.profile)
        print("RESULT " + json.dumps(result), flush=True)
        return None
    families = args.families.split(",")
    runs = paired(families, args.arch, args.paired, args.random_data) if args.paired else run_all(args)
    table = summarise(runs, args.arch, args.stat)
    print_table(table, args.arch)
    if args.json:
        Path(args.json).write_text(json.dumps({"command": " ".join(sys.argv), "families": table}, indent=2) + "\n")
    return table


if __name__ == "__main__":
    main()
