"""Issue 4's figures: the notebook's VAE and CVAE (latent size 2) on full Fashion-MNIST and on
the MNIST test split (its first 8,000 images to train, its last 2,000 to evaluate).

For each: test negative ELBO, importance-weighted NLL (k = 1,000), the CVAE's Bayes-rule accuracy,
the latent-probe accuracy of VAE and CVAE, the prior-match figures, and an HTML report with every
figure. Evaluation uses 2,000 images (the MNIST evaluation split; the first 2,000 Fashion-MNIST test
images), to keep k = 1,000 affordable on a CPU.

    python benchmarks/latent_space_figures.py --out runs/issue4 [--epochs 10] [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import genvae as gv
from genvae.experiment import TrainConfig, train_run
from genvae.report import ReportSettings, write_report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/issue4")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--mnist", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"))
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--classify-k", type=int, default=100)
    parser.add_argument("--eval-size", type=int, default=2000)
    args = parser.parse_args()
    out = Path(args.out)

    mnist = gv.data.MNIST(args.mnist, split="test")
    fashion_train, fashion_test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    experiments = {
        "fashion-mnist": (fashion_train, fashion_test.subset(slice(0, args.eval_size))),
        "mnist-test-split": (mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000))),
    }
    settings = ReportSettings(
        eval_size=args.eval_size, probe_size=10_000, k=args.k, classify_k=args.classify_k, classify_size=args.eval_size
    )
    summary: dict[str, dict[str, object]] = {}
    for name, (train, test) in experiments.items():
        runs = []
        for kind in ("vae", "cvae"):
            config = TrainConfig(model=kind, dataset=name.split("-test")[0], epochs=args.epochs, seed=0)
            run = train_run(config, out / name / kind, data=(train, test), notes={"data": name}, quiet=True)
            runs.append(run)
            print(f"{name} {kind}: trained", flush=True)
        write_report(runs, out / name / "report.html", settings, data=(train, test))
        for kind, run in zip(("vae", "cvae"), runs, strict=True):
            metrics = json.loads((run / "metrics.json").read_text())
            figures = json.loads((run / "evaluation.json").read_text())
            summary[f"{name}/{kind}"] = {"test": metrics["test"], **figures}
            elbo = metrics["test"]["total"]
            line = (
                f"{name:17s} {kind:4s}  ELBO {elbo:7.2f}  IW-NLL(k={args.k}) {figures['nll_nats']:7.2f}"
                f" ({figures['nll_bits_per_dim']:.4f} bits/dim)  probe {figures['latent_probe_accuracy']:.3f}"
                f"  prior KL {figures['prior_match']['kl_moment_matched']:.3f}"
                f"  KS {', '.join(f'{v:.3f}' for v in figures['prior_match']['ks_statistic'])}"
            )
            if "bayes_accuracy" in figures:
                line += f"  Bayes acc (k={figures['bayes_k']}) {figures['bayes_accuracy']:.3f}"
            print(line, flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
