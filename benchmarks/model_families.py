"""Model families by composition: priors × objectives × conditioning, compared by IW-NLL.

Burda et al.'s (2015) one-layer architecture: MLP 784-200-200 (tanh) encoder, 50-D latent, mirrored
decoder, Bernoulli likelihood on binarised images (dynamically, a fresh Bernoulli draw per batch,
for training; one fixed draw, seed 0, of the held-out images for evaluation). Trained with Adam
(learning rate 1e-3, batches of 100) on

- MNIST 8k/2k: the first 8,000 images of the MNIST test split for training, the last 2,000 held out;
- Fashion-MNIST: the 60,000 training images, the 10,000 test images held out;

as a VAE, IWAE k = 5 and k = 50, with a VampPrior (K = 500) and a mixture prior (K = 10), and the
conditional counterparts (a CVAE, the label concatenated to the encoder's and the decoder's input,
with each of those and with the conditional prior p(z | y)). Reported: the importance-weighted NLL
with k = 1,000 on the first ``--test-images`` held-out images (−log p(x); −log p(x | y) for the
conditional models), the negative ELBO (k = 1) on the same images, the active units (Burda et al.,
posterior-mean variance > 0.01) and seconds per epoch.

Then disentanglement on SyntheticDigits (20,000 training images, seed 0; 5,000 held out, seed 1,
grey images): a VAE and a β-TCVAE (β = 6), 10-D latent, the same MLP, scored by the MIG against the
known style factors (``SyntheticDigits.factors``), for ``--seeds`` seeds each.

    python benchmarks/model_families.py --mnist-root ../shared/data/mnist            # the full run (about an hour)
    python benchmarks/model_families.py --mnist-root ../shared/data/mnist --quick    # a smoke test

Results go to benchmarks/results/model_families.json and .txt (written after every model, so an
interrupted run keeps what it has; ``--resume`` skips the runs already in the JSON file).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import genvae as gv
from genvae.latent_metrics import active_units, mig

RESULTS = Path(__file__).resolve().parent / "results"

# name -> (prior, objective factory, KL warm-up); each also runs as a CVAE with the same prior.
# The VAE and the IWAE as Burda et al. trained them (no warm-up; the IWAE bound has no KL weight);
# the learnable priors with the KL warm-up that Tomczak & Welling used for theirs (without it the
# VampPrior's encoder stays uninformative: measured, AU 0); the VAE with the same warm-up as a control.
Family = tuple[str, Callable[[], gv.Objective], bool]
FAMILIES: dict[str, Family] = {
    "VAE": ("normal", gv.ELBO, False),
    "VAE + warm-up": ("normal", gv.ELBO, True),
    "IWAE k=5": ("normal", lambda: gv.IWAE(k=5), False),
    "IWAE k=50": ("normal", lambda: gv.IWAE(k=50), False),
    "VampPrior K=500": ("vamp", gv.ELBO, True),
    "MoG prior K=10": ("mog", gv.ELBO, True),
}
CONDITIONAL_ONLY: dict[str, Family] = {"conditional prior": ("conditional", gv.ELBO, True)}


def build(prior: str, conditional: bool, latent_dim: int = 50, posterior: Any = "gaussian") -> gv.VAE:
    """Burda et al.'s one-layer model (a CVAE with the label concatenated when ``conditional``),
    its linear layers initialised as Glorot & Bengio's for tanh (Burda et al.'s heuristic); with
    PyTorch's default initialisation this tanh network stays on the mean-image plateau (z unused)
    for the first few hundred steps, which is all of a short run."""
    cond = {"condition_dim": 10} if conditional else {}
    enc = gv.encoders.MLPEncoder((1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
    dec = gv.decoders.MLPDecoder(latent_dim, (1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
    if conditional:
        model = gv.ConditionalVAE(enc, dec, latent_dim=latent_dim, num_classes=10, prior=prior, posterior=posterior)
    else:
        model = gv.VAE(enc, dec, latent_dim=latent_dim, prior=prior, posterior=posterior)
    return glorot_tanh(model)


def glorot_tanh(model: Any) -> Any:
    """Burda et al.'s initialisation of the tanh network (encoder, decoder, the posterior's heads);
    other parts (a flow, a learned prior, a hierarchy's ladder) keep their own."""
    for name, layer in model.named_modules():
        if isinstance(layer, torch.nn.Linear) and name.split(".")[0] in (
            "encoder",
            "decoder",
            "mean_head",
            "logvar_head",
        ):
            torch.nn.init.xavier_uniform_(layer.weight, gain=torch.nn.init.calculate_gain("tanh"))
            torch.nn.init.zeros_(layer.bias)
    return model


def build_hierarchical(conditional: bool, latent_dims: tuple[int, ...] = (50, 20)) -> Any:
    """Burda et al.'s network as the two ends of a Ladder VAE: the encoder's features feed the
    bottom-up path, the decoder maps z_1 (as large as the VAE's z) to the image; z_2 above it."""
    cond = {"condition_dim": 10} if conditional else {}
    enc = gv.encoders.MLPEncoder((1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
    dec = gv.decoders.MLPDecoder(latent_dims[0], (1, 28, 28), hidden=(200, 200), activation="tanh", **cond)
    classes = {"num_classes": 10} if conditional else {}
    return glorot_tanh(gv.HierarchicalVAE(enc, dec, latent_dims=latent_dims, hidden=200, **classes))


def fixed_binary(data: gv.data.ImageDataset) -> gv.data.ImageDataset:
    """One Bernoulli draw of the held-out images (seed 0), the same for every model."""
    images = torch.bernoulli(data.images, generator=torch.Generator().manual_seed(0))
    return gv.data.ImageDataset(images, data.labels, num_classes=10, name=data.name + "-binary")


def datasets(args: argparse.Namespace) -> dict[str, tuple[gv.data.ImageDataset, gv.data.ImageDataset, int]]:
    """name -> (training data, sampled-binarised; held-out images, fixed binary; epochs)."""
    out = {}
    if "mnist" in args.datasets:
        mnist = gv.data.MNIST(root=args.mnist_root, split="test")
        out["MNIST 8k/2k"] = (mnist.subset(slice(0, 8000)), mnist.subset(slice(8000, 10000)), args.epochs_mnist)
    if "fashion" in args.datasets and not args.quick:
        fashion = (gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test"), args.epochs_fashion)
        out["Fashion-MNIST"] = fashion
    limit_train = 1000 if args.quick else None
    return {
        name: (
            (train.subset(slice(0, limit_train)) if limit_train else train).binarized("sample"),
            fixed_binary(test.subset(slice(0, args.test_images))),
            epochs,
        )
        for name, (train, test, epochs) in out.items()
    }


def families() -> list[tuple[str, Family, bool]]:
    runs = [(name, family, False) for name, family in FAMILIES.items()]
    runs += [
        ("CVAE" + name[3:] if name.startswith("VAE") else f"CVAE {name}", family, True)
        for name, family in FAMILIES.items()
    ]
    runs += [(f"CVAE {name}", family, True) for name, family in CONDITIONAL_ONLY.items()]
    return runs


def run_family(name: str, family: Family, conditional: bool, data: Any, args: argparse.Namespace) -> dict[str, Any]:
    train, test, epochs = data
    prior, make, warmup = family
    torch.manual_seed(args.seed)
    model = build(prior, conditional)
    objective = make()
    callbacks = [gv.training.KLWarmup(epochs=args.warmup * epochs)] if warmup else []
    trainer = gv.Trainer(model, objective, max_epochs=epochs, batch_size=args.batch_size, lr=args.lr, device="cpu",
                         seed=args.seed, quiet=True, callbacks=callbacks)  # fmt: skip
    history = trainer.fit(train)  # an unconditional model ignores the labels
    torch.manual_seed(1)
    iw = gv.evaluation.nll(model, test, k=args.k_eval, batch_size=100)
    torch.manual_seed(1)
    elbo = gv.evaluation.nll(model, test, k=1, batch_size=100)
    return {
        "model": name,
        "prior": prior,
        "objective": repr(objective),
        "kl_warmup_epochs": args.warmup * epochs if warmup else 0,
        "conditional": conditional,
        "epochs": epochs,
        "iw_nll": iw.nats,
        "iw_nll_sem": float(iw.per_sample.std() / iw.per_sample.numel() ** 0.5),
        "iw_nll_per_image": [round(float(v), 3) for v in iw.per_sample],
        "neg_elbo": elbo.nats,
        "active_units": active_units(model, test).count,
        "seconds_per_epoch": sum(history["time"]) / len(history),
        "train_total_per_epoch": history["train_total"],
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def disentanglement(args: argparse.Namespace) -> list[dict[str, Any]]:
    """VAE vs β-TCVAE on SyntheticDigits, MIG against the style factors."""
    n_train, n_test = (2000, 500) if args.quick else (20_000, 5000)
    train, test = gv.data.SyntheticDigits(n_train, seed=0), gv.data.SyntheticDigits(n_test, seed=1)
    args.disentanglement_data = (
        f"{n_train} training images, seed 0 / {n_test} held out, seed 1; {len(test.factors)} style factors"
    )
    results = []
    for seed in range(args.seeds):
        for name, make in (("VAE", gv.ELBO), ("β-TCVAE β=6", lambda: gv.BetaTCVAE(beta=6.0, dataset_size=n_train))):
            torch.manual_seed(seed)
            model = build("normal", False, latent_dim=10)
            trainer = gv.Trainer(
                model, make(), max_epochs=args.epochs_mig, batch_size=100, device="cpu", seed=seed, quiet=True
            )
            history = trainer.fit(train.images)
            score = mig(model, test.images, test.factors)
            results.append({
                "model": name, "seed": seed, "epochs": args.epochs_mig, "mig": score.score,
                "mig_per_factor": score.per_factor, "active_units": active_units(model, test.images).count,
                "train_total": history.last["train_total"], "seconds_per_epoch": sum(history["time"]) / len(history),
            })  # fmt: skip
            print(f"  SyntheticDigits {name} seed {seed}: MIG {score.score:.4f}", flush=True)
    return results


def paired_gap(run: dict[str, Any], baseline: dict[str, Any] | None) -> str:
    """The baseline's IW-NLL minus this run's, ± the standard error of the per-image differences."""
    if baseline is None or baseline is run:
        return ""
    diff = torch.tensor(baseline["iw_nll_per_image"]) - torch.tensor(run["iw_nll_per_image"])
    return f"{float(diff.mean()):+8.2f} ± {float(diff.std() / diff.numel() ** 0.5):.2f}"


def table(document: dict[str, Any]) -> str:
    lines = [f"Model families ({document['command']}); threads {document['threads']}, {document['machine']}", ""]
    for dataset, runs in document["families"].items():
        if not runs:
            continue
        first = runs[0]
        lines.append(
            f"{dataset}: {first.get('epochs')} epochs, IW-NLL k={document['k_eval']} on {document['test_images']} "
            "held-out images (nats; conditional models: -log p(x | y)); gain: the (C)VAE's IW-NLL minus the model's"
        )
        lines.append(f"{'model':<28}{'IW-NLL':>9}{'± sem':>7}{'gain vs (C)VAE':>18}{'-ELBO':>9}{'AU':>5}{'s/epoch':>9}")
        baselines = {r["conditional"]: r for r in runs if r["model"] in ("VAE", "CVAE")}
        for r in runs:
            gain = paired_gap(r, baselines.get(r["conditional"]))
            lines.append(
                f"{r['model']:<28}{r['iw_nll']:9.2f}{r['iw_nll_sem']:7.2f}{gain:>18}"
                f"{r['neg_elbo']:9.2f}{r['active_units']:5d}{r['seconds_per_epoch']:9.1f}"
            )
        lines.append("")
    if document.get("disentanglement"):
        sizes = document.get("disentanglement_data", "")
        lines.append(f"SyntheticDigits (grey, {sizes}): MIG against the style factors, 10-D latent")
        for r in document["disentanglement"]:
            lines.append(
                f"{r['model']:<16} seed {r['seed']}  MIG {r['mig']:.4f}  AU {r['active_units']:2d}  "
                f"{r['epochs']} epochs, {r['seconds_per_epoch']:.1f} s/epoch"
            )
    return "\n".join(lines) + "\n"


def save(document: dict[str, Any], stem: Path) -> None:
    stem.with_suffix(".json").write_text(json.dumps(document, indent=2) + "\n")
    stem.with_suffix(".txt").write_text(table(document))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small data, 1 epoch, k = 50: a smoke test")
    parser.add_argument("--epochs-mnist", type=int, default=10)
    parser.add_argument("--epochs-fashion", type=int, default=1)
    parser.add_argument("--epochs-mig", type=int, default=20)
    parser.add_argument("--test-images", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=float, default=0.3, help="KL warm-up, as a fraction of the epochs")
    parser.add_argument("--k-eval", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=2, help="seeds of the disentanglement comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", default=None, help="model names to run (default: all)")
    parser.add_argument("--datasets", nargs="+", choices=["mnist", "fashion"], default=["mnist", "fashion"])
    parser.add_argument("--skip-mig", action="store_true")
    # One thread: on this shared 2-core machine, 2 threads were measured 20x slower per step under load.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mnist-root", default=None, help="a folder with the MNIST test split (t10k files)")
    parser.add_argument("--out", type=Path, default=None, help="results stem (default results/model_families)")
    parser.add_argument("--resume", action="store_true", help="keep the runs already in the results file")
    args = parser.parse_args()
    if args.quick:
        args.epochs_mnist = args.epochs_fashion = args.epochs_mig = 1
        args.test_images, args.k_eval, args.seeds = min(args.test_images, 100), min(args.k_eval, 50), 1
    torch.set_num_threads(args.threads)
    stem = args.out or RESULTS / ("model_families_quick" if args.quick else "model_families")
    stem.parent.mkdir(parents=True, exist_ok=True)
    command = "python benchmarks/model_families.py " + " ".join(
        a for a in __import__("sys").argv[1:] if a != "--resume"
    )
    document: dict[str, Any] = {
        "command": command.strip(), "threads": args.threads, "k_eval": args.k_eval, "test_images": args.test_images,
        "machine": f"{platform.machine()}, torch {torch.__version__}", "families": {}, "disentanglement": [],
    }  # fmt: skip
    if args.resume and stem.with_suffix(".json").exists():
        old = json.loads(stem.with_suffix(".json").read_text())
        document["families"], document["disentanglement"] = old["families"], old.get("disentanglement", [])
        document["disentanglement_data"] = old.get("disentanglement_data", "")
    start = time.perf_counter()
    for dataset, data in datasets(args).items():
        runs = document["families"].setdefault(dataset, [])
        done = {r["model"] for r in runs}
        for name, family, conditional in families():
            if name in done or (args.only is not None and name not in args.only):
                continue
            print(f"{dataset}: {name} ...", flush=True)
            runs.append(run_family(name, family, conditional, data, args))
            r = runs[-1]
            summary = f"IW-NLL {r['iw_nll']:.2f}, -ELBO {r['neg_elbo']:.2f}, AU {r['active_units']}"
            print(
                f"  {summary}, {r['seconds_per_epoch']:.1f} s/epoch ({time.perf_counter() - start:.0f} s)", flush=True
            )
            save(document, stem)
    if not args.skip_mig and not document["disentanglement"]:
        document["disentanglement"] = disentanglement(args)
        document["disentanglement_data"] = args.disentanglement_data
    document["seconds_total"] = time.perf_counter() - start
    save(document, stem)
    print(table(document))


if __name__ == "__main__":
    main()
