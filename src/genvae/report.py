"""The HTML report of one or more run directories: one self-contained file, images embedded.

For each run it shows the configuration, the metrics, the loss curves and every figure that
applies to the model (manifold, per-class manifolds for a conditional model, latent scatter,
reconstructions, samples, label swaps, traversals), and the evaluation figures: importance-
weighted NLL, the latent linear probe, the prior match and, for a conditional model, its
Bayes-rule accuracy. Those figures are also written to ``evaluation.json`` in each run. Runs are
read through :class:`genvae.runs.RunDir`; a run that diverged says so.

    >>> from genvae.report import write_report          # doctest: +SKIP
    >>> write_report(["runs/demo/vae"], "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genvae import evaluation, viz
from genvae._io import atomic_write
from genvae.data import ImageDataset, load_dataset
from genvae.models import VAE, ConditionalVAE
from genvae.runs import STATUS_COMPLETE, RunDir
from genvae.training.state import History

__all__ = ["ReportSettings", "evaluate_run", "write_report"]


@dataclass
class ReportSettings:
    """How much evaluation a report does (more is slower and more precise).

    Attributes:
        eval_size: test images used by the estimates and the scatter plot.
        probe_size: training images the latent probe fits on.
        k: importance samples per image for the NLL.
        classify_k: importance samples per image and class for the CVAE's Bayes-rule accuracy.
        classify_size: test images classified.
    """

    eval_size: int = 1000
    probe_size: int = 5000
    k: int = 100
    classify_k: int = 20
    classify_size: int = 500


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _data_for(config: dict[str, Any], split: str, limit: int) -> ImageDataset:
    size_key = "test_size" if split == "test" else "train_size"
    limit = min(limit, config.get(size_key) or limit)
    return load_dataset(config["dataset"], split, config.get("data_root"), False, limit)


def evaluate_run(
    model: VAE, train: ImageDataset, test: ImageDataset, settings: ReportSettings, seed: int = 0
) -> dict[str, Any]:
    """The evaluation figures the report shows (also what ``evaluation.json`` holds)."""
    torch.manual_seed(seed)
    test_eval = test.subset(slice(0, settings.eval_size))
    result = evaluation.nll(model, test_eval, k=settings.k)
    one_sample = evaluation.nll(model, test_eval, k=1)  # the negative ELBO, on the same images
    figures: dict[str, Any] = {
        "elbo_nats": one_sample.nats,
        "nll_nats": result.nats,
        "nll_bits_per_dim": result.bits_per_dim,
        "nll_k": settings.k,
        "nll_images": len(test_eval),
        "latent_probe_accuracy": evaluation.latent_probe(model, train.subset(slice(0, settings.probe_size)), test_eval),
    }
    match = evaluation.prior_match(model, test_eval)
    figures["prior_match"] = {
        "mean": match.mean.tolist(),
        "covariance": match.covariance.tolist(),
        "kl_moment_matched": match.kl_moment_matched,
        "ks_statistic": match.ks_statistic.tolist(),
    }
    if isinstance(model, ConditionalVAE):
        n = settings.classify_size
        predicted = evaluation.classify(model, test.images[:n], k=settings.classify_k)
        figures["bayes_accuracy"] = predicted.accuracy(test.labels[:n])
        figures["bayes_k"], figures["bayes_images"] = settings.classify_k, min(n, len(test))
    return figures


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _section(run: RunDir, settings: ReportSettings, data: tuple[ImageDataset, ImageDataset] | None) -> str:
    config, metrics, history = run.config(), run.metrics(), run.history()
    model = run.load_model()
    model.eval()
    if data is not None:
        train, test = data
    else:
        train = _data_for(config, "train", settings.probe_size)
        test = _data_for(config, "test", max(settings.eval_size, settings.classify_size))
    figures = evaluate_run(model, train, test, settings, seed=int(config.get("seed", 0)))
    run.write_evaluation(figures)
    shown = _figures(model, history, test, settings)
    images = "".join(_figure_html(title, fig) for title, fig in shown)
    kind = "Conditional VAE" if isinstance(model, ConditionalVAE) else "VAE"
    return (
        f"<section><h2>{html.escape(kind)}: {html.escape(str(run.path))}</h2>{_status_html(metrics)}"
        f"<h3>Metrics</h3>{_table(_summary(metrics, figures, isinstance(model, ConditionalVAE)))}"
        f"<h3>Configuration</h3>{_table(config)}"
        f"<h3>Training</h3>{_table({k: v for k, v in metrics.items() if k not in ('train', 'test')})}"
        f"<h3>Figures</h3>{images}</section>"
    )


def _status_html(metrics: dict[str, Any]) -> str:
    """A line saying what happened when the run did not simply finish (e.g. it diverged)."""
    status = metrics.get("status", STATUS_COMPLETE)
    if status == STATUS_COMPLETE:
        return ""
    reason = metrics.get("stop_reason") or status
    return f"<p><strong>Training {html.escape(str(status))}:</strong> {html.escape(str(reason))}</p>"


def _figures(model: VAE, history: History, test: ImageDataset, settings: ReportSettings) -> list[tuple[str, Any]]:
    shown: list[tuple[str, Any]] = []
    if len(history):
        shown.append(("Loss curves (per-sample nats)", viz.loss_curves(history)))
    if model.latent_dim >= 2:
        if isinstance(model, ConditionalVAE):
            for label in range(model.num_classes or 0):
                name = test.classes[label] if label < len(test.classes) else str(label)
                shown.append(
                    (
                        f"Latent manifold for label {label} ({name})",
                        viz.latent_manifold(model, y=label, n=15, figsize=(5, 5)),
                    )
                )
        else:
            shown.append(("Latent manifold (linear grid)", viz.latent_manifold(model)))
            shown.append(("Latent manifold (quantile grid)", viz.latent_manifold(model, grid="quantile")))
    scatter_data = test.subset(slice(0, settings.eval_size))
    shown.append(("Posterior means of test images, coloured by label", viz.latent_scatter(model, scatter_data)))
    shown.append(("Reconstructions", viz.reconstructions(model, test, n=12)))
    return shown + _sample_figures(model, test)


def _sample_figures(model: VAE, test: ImageDataset) -> list[tuple[str, Any]]:
    if isinstance(model, ConditionalVAE):
        return [
            ("Samples: one row per label, one z per column", viz.samples(model, n=12)),
            (
                "Label swaps: each input's z decoded under every label",
                viz.label_swap(model, test.images[:8], test.labels[:8]),
            ),
            ("Latent traversals (label 0)", viz.traversal(model, y=0)),
        ]
    return [("Samples from the prior", viz.samples(model, n=12, rows=4)), ("Latent traversals", viz.traversal(model))]


def _summary(metrics: dict[str, Any], figures: dict[str, Any], conditional: bool) -> dict[str, Any]:
    test = metrics.get("test", {})
    summary = {
        "test negative ELBO, whole test set (nats/image)": test.get("total"),
        "test reconstruction": test.get("recon"),
        "test KL": test.get("kl"),
        f"negative ELBO, the same {figures['nll_images']} images (nats)": figures["elbo_nats"],
        f"IW-NLL, k={figures['nll_k']}, {figures['nll_images']} images (nats)": figures["nll_nats"],
        "IW-NLL (bits/dim)": figures["nll_bits_per_dim"],
        "latent linear probe accuracy": figures["latent_probe_accuracy"],
        "prior match: KL of moment-matched Gaussian (nats)": figures["prior_match"]["kl_moment_matched"],
        "prior match: aggregate mean": figures["prior_match"]["mean"],
        "prior match: KS statistic per dimension": figures["prior_match"]["ks_statistic"],
    }
    if conditional:
        summary[f"Bayes-rule accuracy, k={figures['bayes_k']}, {figures['bayes_images']} images"] = figures[
            "bayes_accuracy"
        ]
    return summary


def _figure_html(title: str, fig: Any) -> str:
    caption = html.escape(title)
    image = f'<img alt="{caption}" src="data:image/png;base64,{_png(fig)}">'
    return f"<figure>{image}<figcaption>{caption}</figcaption></figure>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; }
th { background: #f4f4f4; font-weight: 600; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 100%; }
figcaption { font-size: 0.9em; color: #555; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
"""


def write_report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: ReportSettings | None = None,
    data: tuple[ImageDataset, ImageDataset] | None = None,
) -> Path:
    """Write one self-contained HTML report of ``runs`` (run directories written by
    ``genvae train``) to ``out``. Returns the path.

    The evaluation uses each run's own dataset (from its ``config.json``), or ``data``, a
    ``(train, test)`` pair, when given."""
    settings = settings or ReportSettings()
    dirs = [RunDir(r) for r in runs]
    for run in dirs:
        run.require_published()
    sections = "".join(_section(run, settings, data) for run in dirs)
    from genvae import __version__

    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>genvae report</title><style>{_STYLE}</style></head><body>"
        f"<h1>genvae report</h1><p>genvae {__version__}. Losses are per-sample averages in nats; the "
        "negative ELBO is reconstruction + KL with one sampled z per image; the IW-NLL is the "
        "importance-weighted estimate of −log p(x) (log p(x | y) for a conditional model).</p>"
        f"{sections}</body></html>"
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, document.encode())
    return target
