"""The demo: the course notebook's VAE and CVAE trained on the best data available, with one report.

``genvae demo`` runs :func:`demo`; each model is a run of :func:`genvae.experiment.train_run`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from genvae.experiment import TrainConfig, choose_dataset, load_splits, train_run
from genvae.report import ReportSettings, write_report
from genvae.runs import RunDir
from genvae.training.distributed import is_main_process

__all__ = ["DEMO_RUNS", "QUICK_REPORT", "demo"]

#: Small evaluation sizes, for a quick report (``genvae demo --quick``, ``genvae train --quick-report``).
QUICK_REPORT = ReportSettings(
    eval_size=200,
    probe_size=1000,
    k=10,
    classify_k=5,
    classify_size=100,
    code_epochs=2,
    feature_epochs=1,
    quality_size=200,
)


#: The demo's runs: the notebook's VAE and CVAE with a 2-D latent space, and the VAE with an 8-D
#: one, so the report can answer the notebook's question 10.4c (what a larger latent space does).
DEMO_RUNS = {
    "vae": ("vae", 2, "the notebook's VAE, latent size 2"),
    "cvae": ("cvae", 2, "the notebook's conditional VAE, latent size 2"),
    "vae-8d": ("vae", 8, "the notebook's VAE, latent size 8 (for question 10.4c)"),
}


def demo(out: str, epochs: int, quick: bool, root: str | None, download: bool, overwrite: bool = False) -> None:
    """Train the notebook's VAE and CVAE (and the VAE with latent size 8) on the best data
    available and write their report."""
    choice = choose_dataset(root, download)
    _say(f"genvae demo: data: {choice.summary}")
    runs = {name: Path(out) / name for name in DEMO_RUNS}
    report = Path(out) / "report.html"  # the demo's own report, beside its run directories
    _say(f"genvae demo: runs in {out}: {', '.join(runs)}; report {report} (written at the end)")
    base = TrainConfig(dataset=choice.name, data_root=root, epochs=epochs)
    if quick:
        base.epochs, base.train_size, base.test_size = 1, 2000, 500
    data = load_splits(base)
    for name, run in runs.items():
        model, latent_dim, what = DEMO_RUNS[name]
        config = dataclasses.replace(base, model=model, latent_dim=latent_dim)
        _say(f"== {name}: {what}")
        train_run(config, run, data=data, notes={"dataset_choice": choice.details}, overwrite=overwrite)
        if not is_main_process():
            continue
        test = RunDir(run).metrics()["test"]
        _say(
            f"   test: {test['total']:.2f} nats per image (recon {test['recon']:.2f} + KL {test['kl']:.2f}); "
            f"written to {run}"
        )
    if is_main_process():  # under torchrun, rank 0 alone writes the report, as it alone speaks
        _say("== report: evaluating the models and drawing their figures")
        write_report(list(runs.values()), report, QUICK_REPORT if quick else None)
        _say(f"genvae demo: wrote {report}")


def _say(line: str) -> None:
    """Print one line of the demo's progress; under torchrun, rank 0 alone speaks."""
    if is_main_process():
        print(line, flush=True)
