"""Evaluation throughput: genvae's importance-weighted NLL and Bayes-rule classifier against the
estimator genvae had before streaming (kept below as the baseline) and a plain 25-line importance
sampler, on the same model, data and k, interleaved in one process (old, plain, plain channels-last,
genvae, ..., then again), so drift in the machine's speed hits all alike.

The old estimator and the plain samplers run on a copy of the model made of PyTorch's own layers
(``torch_layers``: ``torch.nn.ConvTranspose2d``), which is what genvae's decoders were when the
issue was filed and what a notebook writes; they never enter ``evaluation.inference``, so their
activations stay out of place. ``genvae-torch-layers`` is genvae's ``nll`` on that copy (in-place
activations included), to separate what the product-form transposed convolution gains.

    python benchmarks/eval_throughput.py [--images 20] [--k 1000] [--classify-k 100] [--rounds 3]
        [--threads 2] [--train-size 10000] [--out benchmarks/results/eval_throughput]

Models: the notebook's VAE and CVAE (``gv.presets``) and a 50-dimensional MLP VAE (784-200-200-50),
each trained for one epoch on the first ``--train-size`` Fashion-MNIST training images (the speed
does not depend on the weights; the bf16 error does). Data: the first ``--images`` test images.

Reported per method: images/s (median over rounds), the achieved GFLOP/s (matmul and convolution
FLOPs from ``torch.utils.flop_counter``, times images/s) against the peak of a 4096² float32
matmul measured in each round, the ratio to the old estimator and to the plain sampler in the
same round (median over rounds), and the peak memory that one evaluation adds (peak RSS of a fresh
process beyond its RSS after a small warm-up). The bf16 error is |NLL(bf16) − NLL(float32)| on the
same draws. ``--clock cpu`` times with this process's CPU time instead of the wall clock, for a
machine shared with other work (use it with ``--threads 1``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import genvae as gv
from genvae.gaussian import LOG_2PI, log_normal

# -- the baseline: genvae's estimator before streaming (main at 0dffa20), unchanged ---------------


@torch.no_grad()
def old_log_importance_weights(model: gv.VAE, x: torch.Tensor, c: torch.Tensor | None, k: int, chunk: int = 4096):
    mean, logvar = model.posterior(x, c)
    std = torch.exp(0.5 * logvar)
    batch = x.shape[0]
    per_step = max(1, chunk // batch)
    out = []
    for start in range(0, k, per_step):
        m = min(per_step, k - start)
        eps = torch.randn(m, *mean.shape, device=mean.device, dtype=mean.dtype)
        z = mean + eps * std
        log_q = log_normal(z, mean, logvar)
        flat_z = z.reshape(m * batch, -1)
        flat_c = c.repeat(m, 1) if c is not None else None
        log_p_z = model.prior_log_prob(flat_z, flat_c).reshape(m, batch)
        params = model.decoder_params(flat_z, flat_c)
        x_rep = x.unsqueeze(0).expand(m, *x.shape).reshape(m * batch, *x.shape[1:])
        log_px = model.likelihood.log_prob(x_rep, params).reshape(m, batch, -1).sum(-1)
        out.append((log_px + log_p_z - log_q).T)
    return torch.cat(out, dim=1)


def old_nll(model: gv.VAE, x: torch.Tensor, y: torch.Tensor | None = None, k: int = 1000, batch_size: int = 100):
    model.check_input(x, "data")
    was_training = model.training
    model.eval()
    values = []
    try:
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            c = model.condition(y[i : i + batch_size], xb.shape[0]) if y is not None else None
            log_w = old_log_importance_weights(model, xb, c, k)
            values.append(-(torch.logsumexp(log_w, dim=1) - math.log(k)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(values).double()


def old_classify(cvae: gv.ConditionalVAE, x: torch.Tensor, k: int) -> torch.Tensor:
    classes = cvae.num_classes
    assert classes is not None
    labels = [torch.full((x.shape[0],), j, dtype=torch.long) for j in range(classes)]
    return torch.stack([-old_nll(cvae, x, y, k=k) for y in labels], dim=1) - math.log(classes)


# -- the plain importance sampler the issue measures against --------------------------------------


def plain_nll(model: gv.VAE, x: torch.Tensor, c: torch.Tensor | None = None, k: int = 1000, chunk: int = 8192):
    """Inference mode; one image's k latents decoded in chunks of 8,192; Bernoulli pixels."""
    out = torch.empty(x.shape[0], dtype=torch.float64)
    model.eval()
    with torch.inference_mode():
        mean, logvar = model.posterior(x, c)
        for i in range(x.shape[0]):
            log_w = []
            for start in range(0, k, chunk):
                m = min(chunk, k - start)
                eps = torch.randn(m, mean.shape[1])
                z = mean[i] + eps * torch.exp(0.5 * logvar[i])
                logits = model.decoder(z) if c is None else model.decoder(z, c[i].expand(m, -1))
                bce = F.binary_cross_entropy_with_logits(logits, x[i].expand_as(logits), reduction="none")
                log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(1)
                log_q = -0.5 * (eps.pow(2) + logvar[i] + LOG_2PI).sum(1)
                log_w.append(-bce.flatten(1).sum(1) + log_pz - log_q)
            out[i] = -(torch.logsumexp(torch.cat(log_w), 0) - math.log(k))
    return out


def plain_classify(cvae: gv.ConditionalVAE, x: torch.Tensor, k: int) -> torch.Tensor:
    classes = cvae.num_classes
    assert classes is not None
    eye = torch.eye(classes)
    return torch.stack([-plain_nll(cvae, x, eye[j].expand(x.shape[0], -1), k=k) for j in range(classes)], 1)


# -- set-up ---------------------------------------------------------------------------------------


def mlp_vae() -> gv.VAE:
    """A 50-dimensional MLP VAE, 784-200-200-50 (Burda et al.'s one-layer architecture)."""
    enc = gv.encoders.MLPEncoder((1, 28, 28), hidden=(200, 200), activation="tanh")
    dec = gv.decoders.MLPDecoder(50, (1, 28, 28), hidden=(200, 200), activation="tanh")
    return gv.VAE(enc, dec, latent_dim=50)


BUILDERS: dict[str, Callable[[], gv.VAE]] = {
    "seed_vae": gv.presets.seed_vae,
    "seed_cvae": gv.presets.seed_cvae,
    "mlp_vae": mlp_vae,
}


def trained_models(train_size: int) -> dict[str, gv.VAE]:
    train = gv.data.FashionMNIST(split="train").subset(slice(0, train_size))
    models = {}
    for name, build in BUILDERS.items():
        torch.manual_seed(0)
        model = build()
        gv.Trainer(model, max_epochs=1, device="cpu", seed=0).fit(train)
        models[name] = model.eval()
    return models


_TORCH_COPIES: dict[tuple[int, bool], gv.VAE] = {}


def torch_layers(model: gv.VAE, channels_last: bool = False) -> gv.VAE:
    """A copy of ``model`` (same weights) made of PyTorch's own layers only, as genvae's were when
    the issue was filed: each ``ConvTranspose2d`` subclass replaced by ``torch.nn.ConvTranspose2d``.
    The old estimator and the plain samplers run on it, so genvae's faster layer does not speed up
    the baselines it is measured against. Cached per model."""
    key = (id(model), channels_last)
    if key not in _TORCH_COPIES:
        twin = copy.deepcopy(model).eval()
        for parent in twin.modules():
            for name, child in parent.named_children():
                if isinstance(child, torch.nn.ConvTranspose2d) and type(child) is not torch.nn.ConvTranspose2d:
                    shape = (child.in_channels, child.out_channels, child.kernel_size)
                    layout = (child.stride, child.padding, child.output_padding)
                    plain = torch.nn.ConvTranspose2d(*shape, *layout, dtype=child.weight.dtype)  # type: ignore[misc]
                    plain.load_state_dict(child.state_dict())
                    setattr(parent, name, plain)
        _TORCH_COPIES[key] = twin.to(memory_format=torch.channels_last) if channels_last else twin
    return _TORCH_COPIES[key]


#: The clock every timing reads: wall time, or with ``--clock cpu`` this process's CPU time, which
#: other processes on a shared machine barely disturb (meaningful with ``--threads 1``: with more,
#: threads waiting for each other count too).
CLOCK: Callable[[], float] = time.perf_counter


def matmul_gflops(n: int = 4096) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = min(_seconds(lambda: a @ b) for _ in range(3))
    return 2 * n**3 / best / 1e9


def _seconds(fn: Callable[[], Any]) -> float:
    start = CLOCK()
    fn()
    return CLOCK() - start


def flops_per_image(fn: Callable[[torch.Tensor], Any], x: torch.Tensor) -> float:
    """Matmul and convolution FLOPs of one image's evaluation."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn(x[:1])
    return float(counter.get_total_flops())


# -- the methods, by group (one model, data and k per group) -------------------------------------

Method = Callable[[gv.VAE, torch.Tensor, int], torch.Tensor]


def _genvae_nll(**options: Any) -> Method:
    return lambda model, x, k: gv.evaluation.nll(model, x, k=k, progress=False, **options).per_sample


def _per_class(model: gv.VAE, x: torch.Tensor, k: int) -> torch.Tensor:
    """genvae's nll once per class: what classify did before it batched the classes."""
    classes = model.num_classes  # type: ignore[attr-defined]
    labels = [torch.full((x.shape[0],), j) for j in range(classes)]
    return torch.stack([-gv.evaluation.nll(model, (x, y), k=k, progress=False).per_sample for y in labels], 1)


NLL_METHODS: dict[str, Method] = {
    "old": lambda model, x, k: old_nll(torch_layers(model), x, k=k),
    "plain": lambda model, x, k: plain_nll(torch_layers(model), x, k=k),
    "plain-channels-last": lambda model, x, k: plain_nll(torch_layers(model, channels_last=True), x, k=k),
    "genvae": _genvae_nll(),
    "genvae-torch-layers": lambda model, x, k: _genvae_nll()(torch_layers(model), x, k),
    "genvae-keep-layout": _genvae_nll(memory_format="keep"),
    "genvae-256MiB-chunks": _genvae_nll(memory_budget=256 * 2**20),
    "genvae-bf16": _genvae_nll(bf16=True),
}
CLASSIFY_METHODS: dict[str, Method] = {
    "old": lambda model, x, k: old_classify(torch_layers(model), x, k),  # type: ignore[arg-type]
    "plain": lambda model, x, k: plain_classify(torch_layers(model), x, k),  # type: ignore[arg-type]
    "plain-channels-last": lambda model, x, k: plain_classify(torch_layers(model, channels_last=True), x, k),  # type: ignore[arg-type]
    "genvae": lambda model, x, k: gv.evaluation.classify(model, x, k=k, progress=False).scores,  # type: ignore[arg-type]
    "genvae-per-class": _per_class,
}
MLP_METHODS = {name: NLL_METHODS[name] for name in ("old", "plain", "genvae", "genvae-bf16")}  # no conv layers


def groups(args: argparse.Namespace) -> dict[str, tuple[str, int, dict[str, Method]]]:
    """Group name -> (model name, k, methods)."""
    return {
        f"nll seed_vae k={args.k}": ("seed_vae", args.k, NLL_METHODS),
        f"classify seed_cvae k={args.classify_k}": ("seed_cvae", args.classify_k, CLASSIFY_METHODS),
        f"nll mlp_vae k={args.k}": ("mlp_vae", args.k, MLP_METHODS),
    }


# -- timing, interleaved ---------------------------------------------------------------------------


def run_rounds(args: argparse.Namespace, models: dict[str, gv.VAE], x: torch.Tensor) -> dict[str, Any]:
    times: dict[str, dict[str, list[float]]] = {}
    values: dict[str, dict[str, torch.Tensor]] = {}
    peaks = []
    for r in range(args.rounds):
        peaks.append(matmul_gflops())
        for group, (name, k, methods) in groups(args).items():
            for method, fn in methods.items():
                torch.manual_seed(r)
                start = CLOCK()
                out = fn(models[name], x, k)
                times.setdefault(group, {}).setdefault(method, []).append(CLOCK() - start)
                if r == 0:
                    values.setdefault(group, {})[method] = out
                print(f"round {r} {group} {method}: {x.shape[0] / times[group][method][-1]:.2f} images/s", flush=True)
    return {"times": times, "values": values, "peaks": peaks}


def summarise(args: argparse.Namespace, models: dict[str, gv.VAE], x: torch.Tensor, run: dict[str, Any]) -> dict:
    peak = statistics.median(run["peaks"])
    out: dict[str, Any] = {"matmul_peak_gflops": peak, "matmul_peaks": run["peaks"], "groups": {}}
    for group, (name, k, methods) in groups(args).items():
        times = run["times"][group]
        flops = flops_per_image(lambda xs, m=methods["genvae"], model=models[name], k=k: m(model, xs, k), x)
        plain = "plain-channels-last" if "plain-channels-last" in times else "plain"
        rows = {}
        for method in methods:
            rate = statistics.median(x.shape[0] / t for t in times[method])
            rows[method] = {
                "images_per_second": rate,
                "gflops": flops * rate / 1e9,
                "fraction_of_matmul_peak": flops * rate / 1e9 / peak,
                "ratio_to_old": statistics.median(a / b for a, b in zip(times["old"], times[method], strict=True)),
                f"ratio_to_{plain}": statistics.median(a / b for a, b in zip(times[plain], times[method], strict=True)),
                "seconds": times[method],
                "mean_value": float(run["values"][group][method].double().mean()),
            }
        out["groups"][group] = {"model": name, "k": k, "flops_per_image": flops, "methods": rows}
        values = run["values"][group]
        if "genvae-bf16" in values:
            diff = values["genvae-bf16"] - values["genvae"]
            errors = {
                "max": float(diff.abs().max()),
                "mean": float(diff.abs().mean()),
                "of_the_mean": float(diff.mean()),
            }
            out["groups"][group]["bf16_error_nats"] = errors
    return out


# -- peak memory, each in a fresh process -------------------------------------------------------------


def _status_mib(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def memory_probe(args: argparse.Namespace) -> None:
    """(In a child process) the peak RSS that one evaluation adds, after a small warm-up. Loading
    the data set peaks higher than a small evaluation, so the peak is reset first (Linux:
    ``clear_refs`` 5) and read from ``VmHWM``."""
    group, method = args.memory.split("|")
    name, _, methods = groups(args)[group]
    torch.manual_seed(0)
    model = BUILDERS[name]().eval()
    x = gv.data.FashionMNIST(split="test").images[: args.images].clone()
    methods[method](model, x[:1], 10)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_mib("VmRSS")
    methods[method](model, x, args.memory_k)
    print(json.dumps({"added_mib": _status_mib("VmHWM") - before, "before_mib": before}))


def measure_memory(args: argparse.Namespace, group: str, method: str, images: int, k: int) -> float:
    command = [sys.executable, __file__, "--memory", f"{group}|{method}", "--images", str(images),
               "--memory-k", str(k), "--k", str(args.k), "--classify-k", str(args.classify_k),
               "--threads", str(args.threads)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=os.environ.copy())
    return float(json.loads(done.stdout.strip().splitlines()[-1])["added_mib"])


def memory_table(args: argparse.Namespace) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for group, (_, k, methods) in groups(args).items():
        table[group] = {m: measure_memory(args, group, m, args.images, k) for m in methods}
        print(f"memory {group}: {table[group]}", flush=True)
    if args.million:
        group = f"nll seed_vae k={args.k}"
        table["nll seed_vae k=1000000, one image"] = {
            m: measure_memory(args, group, m, 1, 1_000_000) for m in ("old", "genvae")
        }
        print(f"memory k=10^6: {table['nll seed_vae k=1000000, one image']}", flush=True)
    return table


# -- report -----------------------------------------------------------------------------------------


def text_report(summary: dict[str, Any]) -> str:
    s = summary["settings"]
    lines = [
        f"Evaluation throughput, {s['images']} Fashion-MNIST test images, {s['rounds']} interleaved rounds, "
        f"{s['threads']} threads, {s['clock']} clock, torch {s['torch']}; load average {s['load_before']} before, "
        f"{s['load_after']} after.",
        f"Command: {s['command']}",
        f"Matmul peak (4096² float32, median of rounds): {summary['matmul_peak_gflops']:.1f} GFLOP/s "
        f"(rounds: {', '.join(f'{p:.1f}' for p in summary['matmul_peaks'])}).",
    ]
    for group, g in summary["groups"].items():
        lines += ["", f"{group} ({g['flops_per_image'] / 1e9:.2f} GFLOP per image)",
                  f"{'method':<22}{'images/s':>10}{'GFLOP/s':>9}{'% peak':>8}{'× old':>8}{'× plain':>9}"
                  f"{'MiB added':>11}{'mean':>10}"]  # fmt: skip
        memory = summary["memory_mib_added"].get(group, {})
        for method, row in g["methods"].items():
            plain = next(v for key, v in row.items() if key.startswith("ratio_to_plain"))
            mib = f"{memory[method]:.0f}" if method in memory else "-"
            lines.append(
                f"{method:<22}{row['images_per_second']:>10.2f}{row['gflops']:>9.1f}"
                f"{100 * row['fraction_of_matmul_peak']:>7.1f}%{row['ratio_to_old']:>8.2f}{plain:>9.2f}"
                f"{mib:>11}{row['mean_value']:>10.2f}"
            )
        if "bf16_error_nats" in g:
            e = g["bf16_error_nats"]
            lines.append(f"bf16 error (same draws): max {e['max']:.4f}, mean {e['mean']:.4f} nats per image; "
                         f"of the mean {e['of_the_mean']:+.4f} nats")  # fmt: skip
    for group, row in summary["memory_mib_added"].items():
        if group not in summary["groups"]:
            lines += ["", f"Peak memory added, {group}: " + ", ".join(f"{m} {v:.0f} MiB" for m, v in row.items())]
    lines += [
        "",
        "× old, × plain: median over rounds of the time ratio in the same round (plain: the channels-last",
        "plain sampler where there is one). MiB added: peak RSS of a fresh process beyond its warm-up.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--classify-k", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--train-size", type=int, default=10_000)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    parser.add_argument("--million", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure the memory of k = 10^6 on one image (minutes)")  # fmt: skip
    parser.add_argument("--out", default="benchmarks/results/eval_throughput")
    parser.add_argument("--memory", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--memory-k", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.memory:
        memory_probe(args)
        return
    load_before = os.getloadavg()
    models = trained_models(args.train_size)
    x = gv.data.FashionMNIST(split="test").images[: args.images].clone()
    summary = summarise(args, models, x, run_rounds(args, models, x))
    summary["memory_mib_added"] = memory_table(args)
    summary["settings"] = {
        "images": args.images, "k": args.k, "classify_k": args.classify_k, "rounds": args.rounds,
        "threads": args.threads, "clock": args.clock, "train_size": args.train_size, "torch": torch.__version__,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
        "command": "python " + " ".join(sys.argv),
    }  # fmt: skip
    text = text_report(summary)
    print(text)
    Path(args.out + ".json").write_text(json.dumps(summary, indent=2) + "\n")
    Path(args.out + ".txt").write_text(text)


if __name__ == "__main__":
    main()
