"""Training throughput of the notebook's VAE and CVAE: a plain PyTorch loop, genvae's Trainer
with its defaults, genvae with faster settings, and Pythae's trainer.

Each (method, model, repetition) runs in its own process, interleaved (a, b, c, ..., a, b, c, ...),
so peak memory (max RSS) is per method and drift in the machine's speed hits all alike. Every run
trains on full Fashion-MNIST (60,000 images), batch size 32, Adam 1e-3, the same initial weights:
a short warm-up (which includes torch.compile's compilation), then one timed epoch.

    python benchmarks/train_throughput.py [--reps 3] [--pythae-python /path/to/python] [--json out.json]

Then the model families (IWAE k=50, VampPrior, M2, β-TCVAE, the conditional prior) against the
VAE: seconds per epoch-equivalent, FLOPs per sample and GFLOP/s, from
``benchmarks/family_throughput.py`` (``--families ""`` leaves them out).

Pythae runs when ``import pythae`` works in the interpreter given by ``--pythae-python``
(default: this one). Training FLOPs per sample come from ``torch.utils.flop_counter``; the
achieved GFLOP/s is set against a large float32 matmul measured on the same machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

GENVAE: dict[str, dict[str, object]] = {
    "genvae-default": {},  # fused Adam, contiguous layout (genvae.training.devices)
    "genvae-channels-last": {"channels_last": True},  # opt-in: oneDNN's layout for the convolutions
    "genvae-unfused": {"fused": False},
    "genvae-compile": {"compile": True},
}
# glibc raises its mmap threshold after a large block is freed, and from then on serves the
# per-step buffers from the heap instead of mapping and faulting fresh pages each time. Whether
# that happened depends on what a process did before (genvae's one-off check of the whole
# dataset frees such a block; the plain loop never does), which alone made a 2x difference
# here. Every worker therefore runs with the same fixed thresholds (the trim threshold too, or freed
# heap pages go back to the system after every step); --system-malloc measures without them.
FIXED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(256 * 2**20)}
WARMUP_STEPS = 200


SAMPLES = 60_000  # the timed epoch's images (--samples: fewer, for a quick run on a busy machine)


def fashion() -> tuple[torch.Tensor, torch.Tensor]:
    import genvae as gv

    train = gv.data.FashionMNIST(split="train")
    return train.images[:SAMPLES], train.labels[:SAMPLES]


def initial_model(kind: str) -> torch.nn.Module:
    import genvae as gv

    torch.manual_seed(0)
    return gv.presets.seed_vae() if kind == "vae" else gv.presets.seed_cvae()


def run_plain(kind: str) -> dict[str, float]:
    from notebook_models import NotebookVAE, copy_weights, plain_epoch
    from torch.utils.data import DataLoader, TensorDataset

    images, labels = fashion()
    plain = NotebookVAE(2, 0 if kind == "vae" else 10)
    copy_weights(initial_model(kind), plain)
    generator = torch.Generator().manual_seed(0)
    loader = DataLoader(TensorDataset(images, labels), batch_size=32, shuffle=True, generator=generator)
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)
    plain_epoch(plain, loader, optimizer, max_steps=WARMUP_STEPS)
    seconds, loss, seen = plain_epoch(plain, loader, optimizer)
    return {"seconds": seconds, "samples": seen, "train_loss": loss}


def run_genvae(kind: str, settings: dict[str, object]) -> dict[str, float]:
    import genvae as gv

    images, labels = fashion()
    model = initial_model(kind)
    trainer = gv.Trainer(model, lr=1e-3, batch_size=32, max_epochs=1, device="cpu", seed=0, **settings)  # type: ignore[arg-type]
    trainer.fit((images[: 32 * WARMUP_STEPS], labels[: 32 * WARMUP_STEPS]))
    trainer.max_epochs = 2
    trainer.fit((images, labels))
    last = trainer.history.last
    return {"seconds": last["time"], "samples": len(images), "train_loss": last["train_total"]}


def run_pythae() -> dict[str, float]:
    from pythae.data.datasets import BaseDataset
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder
    from pythae.trainers import BaseTrainer, BaseTrainerConfig
    from pythae.trainers.training_callbacks import TrainingCallback

    genvae_model = initial_model("vae")

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.body, self.mean, self.logvar = genvae_model.encoder, genvae_model.mean_head, genvae_model.logvar_head

        def forward(self, x: torch.Tensor) -> ModelOutput:
            h = self.body(x)
            return ModelOutput(embedding=self.mean(h), log_covariance=self.logvar(h))

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.body = genvae_model.decoder

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=torch.sigmoid(self.body(z)))

    class EpochTimer(TrainingCallback):
        def __init__(self) -> None:
            self.times: list[float] = []
            self.start = 0.0

        def on_epoch_begin(self, training_config: object, **kwargs: object) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, training_config: object, **kwargs: object) -> None:
            self.times.append(time.perf_counter() - self.start)

    images, _ = fashion()
    model = VAE(VAEConfig(input_dim=(1, 28, 28), latent_dim=2, reconstruction_loss="bce"), Encoder(), Decoder())
    timer = EpochTimer()
    config = BaseTrainerConfig(
        output_dir="/tmp/genvae-bench-pythae", num_epochs=2, per_device_train_batch_size=32, learning_rate=1e-3,
        optimizer_cls="Adam", steps_saving=None, no_cuda=True, seed=0,
    )  # fmt: skip
    # Pythae's per-sample data pipeline is slow on CPU: time an epoch of a fifth of the data and
    # report throughput (samples per second); seconds per epoch are scaled to the full 60,000.
    images = images[: len(images) // 5]
    dataset = BaseDataset(images, torch.zeros(len(images)))
    BaseTrainer(model, dataset, training_config=config, callbacks=[timer]).train()
    return {"seconds": timer.times[-1] * 5, "samples": 5 * len(images), "train_loss": float("nan")}


def worker(method: str, kind: str, samples: int) -> None:
    global SAMPLES
    SAMPLES = samples
    torch.manual_seed(0)
    if method == "plain":
        result = run_plain(kind)
    elif method == "pythae":
        result = run_pythae()
    else:
        result = run_genvae(kind, GENVAE[method])
    result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def flops_per_sample(kind: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    import genvae as gv

    model = initial_model(kind)
    x, y = torch.rand(32, 1, 28, 28), torch.arange(32) % 10
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(x, y) if kind == "cvae" else model(x)
        gv.ELBO()(out, x).loss.backward()
    return counter.get_total_flops() / 32


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def paired(kind: str, rounds: int, chunk: int = 10) -> dict[str, float]:
    """Seconds per step of the plain loop and of each genvae setting, measured in one process in
    interleaved chunks of ``chunk`` steps (plain, default, ..., plain, default, ...): the least
    time of each method's chunks over ``rounds`` rounds. On a machine busy with other jobs this
    is far steadier than whole epochs in separate processes: a burst of load hits one chunk, and
    the least chunk of each method is one that ran undisturbed."""
    from notebook_models import NotebookVAE, copy_weights, plain_epoch
    from torch.utils.data import DataLoader, TensorDataset

    import genvae as gv

    images, labels = fashion()
    methods = {m: GENVAE[m] for m in ("genvae-default", "genvae-channels-last", "genvae-unfused")}
    trainers = {}
    for method, settings in methods.items():
        trainer = gv.Trainer(initial_model(kind), batch_size=32, max_epochs=1, device="cpu", seed=0, quiet=True,
                             **settings)  # type: ignore[arg-type]  # fmt: skip
        trainers[method] = trainer
    plain = NotebookVAE(2, 0 if kind == "vae" else 10)
    copy_weights(initial_model(kind), plain)
    optimizer = torch.optim.Adam(plain.parameters(), lr=1e-3)
    best = dict.fromkeys(["plain", *methods], float("inf"))
    for r in range(rounds + 1):  # round 0 warms up
        start = (r * chunk * 32) % (len(images) - chunk * 32)
        x, y = images[start : start + chunk * 32], labels[start : start + chunk * 32]
        loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
        seconds = plain_epoch(plain, loader, optimizer)[0]
        best["plain"] = min(best["plain"], seconds / chunk) if r else best["plain"]
        for method, trainer in trainers.items():
            trainer.max_epochs += 1
            trainer.fit((x, y))
            if r:
                best[method] = min(best[method], trainer.history.last["time"] / chunk)
    return best


def run_all(args: argparse.Namespace) -> dict[tuple[str, str], list[dict[str, float]]]:
    here = Path(__file__).resolve().parent
    has_pythae = subprocess.run([args.pythae_python, "-c", "import pythae"], capture_output=True).returncode == 0
    methods = [m for m in args.methods.split(",") if m != "pythae" or has_pythae]
    if "pythae" in args.methods and not has_pythae:
        print("pythae: not importable with --pythae-python; skipped")
    env = {"PYTHONPATH": f"{here}:{here.parent / 'src'}", "PATH": "/usr/bin:/bin"}
    if not args.system_malloc:
        env.update(FIXED_MALLOC)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    runs: dict[tuple[str, str], list[dict[str, float]]] = {}
    for rep in range(args.reps):
        for kind in args.models.split(","):
            for method in methods:
                if method == "pythae" and kind != "vae":
                    continue  # Pythae has no conditional VAE
                python = args.pythae_python if method == "pythae" else sys.executable
                command = [python, __file__, "--worker", method, kind, "--samples", str(args.samples)]
                done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
                lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
                if done.returncode != 0 or not lines:
                    print(f"{method} {kind}: failed\n{done.stderr[-2000:]}")
                    continue
                result = json.loads(lines[-1][7:])
                runs.setdefault((method, kind), []).append(result)
                print(
                    f"rep {rep + 1} {kind:4s} {method:28s} {result['seconds']:6.2f}s  "
                    f"loss {result['train_loss']:7.2f}  rss {result['max_rss_mb']:6.0f} MB",
                    flush=True,
                )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--models", default="vae,cvae")
    parser.add_argument("--methods", default="plain," + ",".join(GENVAE) + ",pythae")
    parser.add_argument("--pythae-python", default=sys.executable)
    parser.add_argument("--json", default=None)
    parser.add_argument("--system-malloc", action="store_true", help="leave glibc's mmap threshold dynamic")
    parser.add_argument("--samples", type=int, default=SAMPLES, help="images in the timed epoch (default: all)")
    parser.add_argument("--paired", type=int, default=0, help="rounds of the paired, interleaved measurement")
    parser.add_argument("--stat", choices=("median", "min"), default="median", help="of the repetitions' seconds")
    parser.add_argument("--threads", type=int, default=0, help="torch threads per run (default: torch's)")
    parser.add_argument("--families", default="vae,cvae,iwae-50,vamp-500,beta-tcvae,m2,cond-prior")
    parser.add_argument("--family-steps", type=int, default=100, help="timed steps per family")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "MODEL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker, args.samples)
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the family runs' too
        torch.set_num_threads(args.threads)

    runs = run_all(args)
    pick = min if args.stat == "min" else statistics.median  # the fastest repetition: least disturbed by other jobs
    peak = matmul_peak_gflops()
    print(f"\nlarge-matmul peak on this machine: {peak:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    summary: dict[str, object] = {"matmul_peak_gflops": peak, "samples_per_run": args.samples,
                                  "threads": torch.get_num_threads(), "statistic": args.stat}  # fmt: skip
    for kind in args.models.split(","):
        flops = flops_per_sample(kind)
        plain = runs.get(("plain", kind), [{"seconds": float("nan")}])
        base = pick(r["seconds"] for r in plain)
        print(f"\n{kind}: {flops / 1e6:.2f} MFLOP per training sample (forward + backward)")
        print(f"{'method':28s} {'s/epoch':>8s} {'samples/s':>10s} {'vs plain':>9s} {'GFLOP/s':>8s} {'% peak':>7s} "
              f"{'loss':>8s} {'max RSS MB':>10s}")  # fmt: skip
        for (method, model_kind), results in runs.items():
            if model_kind != kind:
                continue
            seconds = pick(r["seconds"] for r in results)
            rate = results[0]["samples"] / seconds
            achieved = rate * flops / 1e9
            loss = statistics.median(r["train_loss"] for r in results)
            rss = max(r["max_rss_mb"] for r in results)
            summary[f"{kind}/{method}"] = {
                "seconds_per_epoch": seconds, "samples_per_second": rate, "speedup_vs_plain": base / seconds,
                "gflops": achieved, "fraction_of_peak": achieved / peak, "train_loss": loss, "max_rss_mb": rss,
                "reps": len(results), "flops_per_sample": flops,
            }  # fmt: skip
            print(f"{method:28s} {seconds:8.2f} {rate:10.0f} {base / seconds:8.3f}x {achieved:8.2f} "
                  f"{100 * achieved / peak:6.1f}% {loss:8.2f} {rss:10.0f}")  # fmt: skip
    for kind in args.models.split(",") if args.paired else ():
        best = paired(kind, args.paired)
        summary[f"{kind}/paired"] = {
            m: {"seconds_per_step": v, "speedup_vs_plain": best["plain"] / v} for m, v in best.items()
        }
        print(f"\n{kind}, paired chunks ({args.paired} rounds of 10 steps, least chunk):")
        for method, value in best.items():
            print(f"{method:28s} {1e3 * value:8.2f} ms/step {best['plain'] / value:8.3f}x")
    if args.families:
        import family_throughput

        family_args = ["--families", args.families, "--reps", str(args.reps), "--steps", str(args.family_steps),
                       "--stat", args.stat]  # fmt: skip
        summary["families"] = family_throughput.main(family_args)
    if args.json:
        summary["command"] = " ".join(["python", *sys.argv])
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
