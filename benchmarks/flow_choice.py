"""Writing the two flows in genvae or taking them from zuko: speed, exactness and weight.

Times genvae's MAF (the ``"flow"`` prior's log-density) and IAF (the ``"iaf"`` posterior's draw
with its log-determinant) against zuko's MAF and its inverse (zuko's IAF: ``LazyInverse`` of a
``MaskedAutoregressiveTransform``), each with 2 steps, MADE hidden layers (64, 64), latent 32,
batch 128: the forward pass with the log-determinant, and the same with its backward pass (a
training step's share), median CPU time over ``--rounds`` interleaved rounds of ``--repeats``
calls, one thread. Exactness: the mass of each flow's density (perturbed weights) on a fine 2-D
grid, and the round-trip error of inverting it. Weight: zuko's installed size and line count.

    python benchmarks/flow_choice.py [--rounds 5] [--repeats 50] [--out benchmarks/results/flow_choice.json]

Needs ``pip install zuko`` (not a genvae dependency).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from genvae import flows
from genvae.gaussian import log_normal

LATENT, BATCH, STEPS, HIDDEN = 32, 128, 2, (64, 64)


def zuko_flows(latent: int, hidden: tuple[int, ...] = HIDDEN) -> tuple[torch.nn.Module, torch.nn.Module]:
    import zuko

    maf = zuko.flows.MAF(latent, 0, transforms=STEPS, hidden_features=hidden)
    transforms = [
        zuko.flows.LazyInverse(zuko.flows.MaskedAutoregressiveTransform(latent, 0, hidden_features=hidden))
        for _ in range(STEPS)
    ]
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(latent), torch.ones(latent), buffer=True
    )
    return maf, zuko.flows.Flow(transforms, base)


def cases(latent: int) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    """Each case: a function of a batch z returning a scalar (its summed log-density)."""
    maf = flows.MaskedAutoregressiveFlow(latent, STEPS, HIDDEN)
    iaf = flows.InverseAutoregressiveFlow(latent, STEPS, HIDDEN)
    z_maf, z_iaf = zuko_flows(latent)

    def genvae_maf(z: torch.Tensor) -> torch.Tensor:
        u, log_det = maf(z)
        return (log_normal(u) + log_det).sum()

    def genvae_iaf(z: torch.Tensor) -> torch.Tensor:
        out, log_det = iaf(z)
        return (log_normal(z) - log_det).sum() + out.sum() * 0

    def zuko_maf(z: torch.Tensor) -> torch.Tensor:
        return z_maf().log_prob(z).sum()

    def zuko_iaf(z: torch.Tensor) -> torch.Tensor:
        dist = z_iaf()
        out, log_det = dist.transform.inv.call_and_ladj(z)  # the sampling direction: u → z
        return (log_normal(z) - log_det).sum() + out.sum() * 0

    return {"genvae_maf": genvae_maf, "zuko_maf": zuko_maf, "genvae_iaf": genvae_iaf, "zuko_iaf": zuko_iaf}


def timed(fn: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, repeats: int, backward: bool) -> float:
    start = time.process_time()
    for _ in range(repeats):
        value = fn(z.requires_grad_(backward))
        if backward:
            value.backward()
    return (time.process_time() - start) / repeats * 1e6


def mass_on_grid(log_prob: Callable[[torch.Tensor], torch.Tensor], half: float = 18.0, n: int = 1001) -> float:
    axis = torch.linspace(-half, half, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    with torch.no_grad():
        return float(log_prob(zz).exp().sum() * (axis[1] - axis[0]) ** 2)


def perturbed(module: torch.nn.Module) -> torch.nn.Module:
    g = torch.Generator().manual_seed(0)
    module = module.double()
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def exactness() -> dict[str, float]:
    torch.manual_seed(0)
    maf = perturbed(flows.MaskedAutoregressiveFlow(2, STEPS, (8,)))
    z_maf = perturbed(zuko_flows(2, (8,))[0])
    z = torch.randn(256, 32, dtype=torch.float64)
    big = perturbed(flows.MaskedAutoregressiveFlow(32, STEPS, HIDDEN))
    z_big = perturbed(zuko_flows(32)[0])
    with torch.no_grad():
        genvae_roundtrip = float((big.inverse(big(z)[0]) - z).abs().max())
        dist = z_big()
        zuko_roundtrip = float((dist.transform.inv(dist.transform(z)) - z).abs().max())
        # what the grid cannot see: the share of the flow's own draws outside the box
        outside = float((z_maf().sample((100_000,)).abs() > 18.0).any(1).double().mean())
        draws = maf.inverse(torch.randn(100_000, 2, dtype=torch.float64))
        own_outside = float((draws.abs() > 18.0).any(1).double().mean())
    return {
        "genvae_maf_mass_2d": mass_on_grid(lambda v: log_normal(maf(v)[0]) + maf(v)[1]),
        "genvae_maf_share_of_draws_outside_the_grid": own_outside,
        "zuko_maf_mass_2d": mass_on_grid(lambda v: z_maf().log_prob(v)),
        "zuko_maf_share_of_draws_outside_the_grid": outside,
        "genvae_maf_roundtrip_max_error_32d": genvae_roundtrip,
        "zuko_maf_roundtrip_max_error_32d": zuko_roundtrip,
    }


def weight() -> dict[str, float]:
    import zuko

    root = Path(zuko.__file__).parent
    files = list(root.rglob("*.py"))
    own = Path(flows.__file__)
    return {
        "zuko_version": zuko.__version__,  # type: ignore[dict-item]
        "zuko_installed_kib": sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 1024,
        "zuko_python_lines": sum(len(f.read_text().splitlines()) for f in files),
        "genvae_flows_lines": len(own.read_text().splitlines()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    fns = cases(LATENT)
    z = torch.randn(BATCH, LATENT)
    times: dict[str, list[float]] = {f"{name}_{kind}": [] for name in fns for kind in ("forward", "backward")}
    for fn in fns.values():  # warm-up
        timed(fn, z, 3, True)
    for _ in range(args.rounds):
        for name, fn in fns.items():
            times[f"{name}_forward"].append(timed(fn, z.detach(), args.repeats, False))
            times[f"{name}_backward"].append(timed(fn, z.detach(), args.repeats, True))
    result = {
        "setting": {"latent": LATENT, "batch": BATCH, "steps": STEPS, "hidden": HIDDEN, "threads": 1},
        "microseconds_per_call_median": {k: round(statistics.median(v), 1) for k, v in times.items()},
        "exactness": exactness(),
        "weight": weight(),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
