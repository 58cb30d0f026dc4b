"""Drawing code maps from ``CodeSampler``'s prior: with cached keys and values (``CodePrior.step``,
what ``CodeSampler.sample_latent`` does) against running the prior over the whole prefix again for
every code (``CodePrior.forward``, what it did before), in one process, interleaved, the least time
of ``--rounds`` rounds each; and the largest difference between the two paths' logits.

    python benchmarks/code_sampler_cache.py --json benchmarks/results/code_sampler_cache.json
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import torch
from torch.nn import functional as F

import genvae as gv
from genvae.samplers.code import CodeSampler


@torch.no_grad()
def draw_full_prefix(sampler: CodeSampler, n: int, generator: torch.Generator) -> torch.Tensor:
    """The uncached loop: the prior over the whole prefix for each new code."""
    codes = torch.empty(n, 0, dtype=torch.long)
    for _ in range(sampler.prior.length):
        probs = F.softmax(sampler.prior(codes)[:, -1].float(), -1)
        codes = torch.cat([codes, torch.multinomial(probs, 1, generator=generator)], 1)
    return codes


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=1000, help="code maps drawn per timing")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", required=True)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sampler = CodeSampler(gv.presets.seed_vqvae())  # a 7×7 map of 64 codes; the default prior
    sampler.fit_codes(torch.randint(0, 64, (256, 7, 7)), epochs=1)
    sampler.prior.eval()
    best = {"cached": float("inf"), "full prefix": float("inf")}
    for _ in range(args.rounds):
        for name in best:
            g = torch.Generator().manual_seed(0)
            start = time.perf_counter()
            if name == "cached":
                sampler.sample_latent(args.n, generator=g)
            else:
                draw_full_prefix(sampler, args.n, g)
            best[name] = min(best[name], time.perf_counter() - start)
    codes = torch.randint(0, 64, (64, 49))
    with torch.no_grad():
        full = sampler.prior(codes)
        cache: list[torch.Tensor] = []
        token = torch.full((64,), 64)
        steps = []
        for position in range(49):
            steps.append(sampler.prior.step(token, position, None, cache))
            token = codes[:, position]
    result = {
        "command": shlex.join(["python", "benchmarks/code_sampler_cache.py", *argv]),
        "machine": f"{platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)",
        "maps": args.n,
        "seconds_per_1000_maps": {k: v / args.n * 1000 for k, v in best.items()},
        "speedup": best["full prefix"] / best["cached"],
        "max_logit_difference": float((full - torch.stack(steps, 1)).abs().max()),
    }
    print(json.dumps(result, indent=2))
    Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
