"""Which figures the report draws for a run, and what each caption says to look for.

Every run gets its loss curves (when it has a training history) and reconstructions; a model
with a Gaussian latent its latent scatter, samples and traversals, a run with at least two latent
dimensions its latent manifolds (one per label for a conditional model), a conditional model its
label swaps, a semi-supervised model its classifier's confusion matrix. Which apply is read from
the run's :class:`~genvae.report.kinds.RunKind`; the samplers' rows and a VQ-VAE's codebook are
drawn by :mod:`genvae.report.sample_figures`.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any, cast

from genvae import viz
from genvae.data import ImageDataset
from genvae.models import VAE, ConditionalVAE
from genvae.report.kinds import RunKind
from genvae.report.settings import ReportSettings
from genvae.training.state import History

__all__ = ["ReportFigure", "choose_figures", "png"]


@dataclass
class ReportFigure:
    """One figure of a run: its anchor key, title, what to look for, the PNG (base64).

    Attributes:
        key: the figure's anchor within its run (``"loss"``, ``"scatter"``, ``"manifold-label-3"``...).
        title: its title (plain text).
        look_for: its caption: what to look for.
        png: the image, a base64 PNG.
        wide: whether it spans the whole row of the grid.
    """

    key: str
    title: str
    look_for: str
    png: str
    wide: bool = False


def png(fig: Any, dpi: int = 100) -> str:
    """The figure as a base64 PNG. A figure shown in a grid cell is drawn about 5 inches wide, so
    that its text reads like the page's; a detailed image takes a higher ``dpi``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_LOOK = {
    "loss": "Look for train and test curves that fall and level off together (a test curve that turns "
    "up is overfitting); the KL panel shows how many nats the code carries.",
    "loss-codes": "Look for train and test curves that fall and level off together; the KL panel is the "
    "constant n · log K of a uniform prior over the code maps, so only the reconstruction moves the total.",
    "manifold": "Look for smooth changes between neighbouring cells and every class somewhere on the grid: "
    "each class's area is the share of latent space the decoder gives it.",
    "manifold-quantile": "Each cell holds equal prior mass, so this is what sampling the prior gives: "
    "blurry cells are prior mass the decoder maps to no clear class.",
    "manifold-label": "Look for the same style (slant, width, thickness) at the same place in every "
    "label's grid: z holds the style, the label the class (10.6e).",
    "scatter": "Look for separate clusters (z holds the class: 10.5b) or overlapping colours (z left the "
    "class to the label: 10.6g), and for a round cloud centred on 0, about ±2 wide, like N(0, I) (10.5g–h).",
    "scatter-learned": "Look for separate clusters (z holds the class: 10.5b) or overlapping colours (z left "
    "the class to the label: 10.6g), and for the cloud to sit where the prior's mass is: a learned prior "
    "need not be round or centred on 0, so compare with the manifold's axes (the prior's central 95%).",
    "scatter-conditional": "Look for overlapping colours (z left the class to the label: 10.6g): under a "
    "conditional prior p(z | y) each label's codes sit around that label's prior mean, not around 0.",
    "reconstructions": "Look for each reconstruction (bottom) keeping the class of its input (top); "
    "blur is what a small code costs.",
    "reconstructions-codes": "Each input (top) decoded from its own code map (bottom): look for the class and "
    "the stroke kept; lost detail is what a small codebook costs.",
    "samples": "Look for recognisable images of several classes; shapeless blobs are prior mass the "
    "decoder maps to no class.",
    "samples-cvae": "Look for each row showing its label and each column keeping one style down the rows.",
    "label-swap": "Look for each row keeping its input's style while the class follows the column (10.6i).",
    "traversal": "Look for one property changing at a time along each row (one latent dimension swept).",
    "confusion": "Look for a dark diagonal; off-diagonal cells are the classes the classifier q(y | x) mixes up.",
}


def choose_figures(
    model: Any, kind: RunKind, history: History, test: ImageDataset, settings: ReportSettings
) -> list[ReportFigure]:
    """The figures of a run, drawn, in the order the report shows them (a VQ-VAE's: its loss
    curves and reconstructions)."""
    shown: list[ReportFigure] = []
    if len(history):
        curves = png(viz.loss_curves(history), 80)
        bound = viz.history_bound(history)  # named when the total is not the ELBO
        title = (
            "Loss curves (per-sample nats)"
            if bound == "negative ELBO"
            else f"Loss curves (per-sample nats; total is the {bound})"
        )
        shown.append(
            ReportFigure("loss", title, _LOOK["loss" if not kind.discrete else "loss-codes"], curves, wide=True)
        )
    if kind.discrete:
        recon = png(viz.reconstructions(model, test, n=12), 80)
        look = _LOOK["reconstructions-codes"]
        return [*shown, ReportFigure("reconstructions", "Reconstructions from the codes", look, recon, wide=True)]
    if model.latent_dim >= 2:
        shown += _manifolds(model, kind, test)
    scatter = viz.latent_scatter(model, test.subset(slice(0, settings.eval_size)), figsize=(5.5, 4.6))
    title = "Posterior means of test images, coloured by label"
    shown.append(ReportFigure("scatter", title, _LOOK[_scatter_caption(model)], png(scatter, 120)))
    recon = png(viz.reconstructions(model, test, n=12), 80)
    shown.append(ReportFigure("reconstructions", "Reconstructions", _LOOK["reconstructions"], recon, wide=True))
    shown += _sample_figures(model, kind, test)
    if kind.semi_supervised:
        n = min(settings.eval_size, len(test))
        names = _class_names(test, kind.classes)
        matrix = png(viz.confusion(model, test.subset(slice(0, n)), classes=names, figsize=(5.5, 5)), 110)
        title = f"Confusion matrix of the classifier q(y | x), {n} test images"
        shown.append(ReportFigure("confusion", title, _LOOK["confusion"], matrix))
    return shown


def _class_names(test: ImageDataset, k: int) -> list[str]:
    return [test.classes[i] if i < len(test.classes) else str(i) for i in range(k)]


def _scatter_caption(model: VAE) -> str:
    """The scatter's caption for the model's prior: only N(0, I) promises a round cloud at 0."""
    if model.prior.conditional:
        return "scatter-conditional"
    return "scatter" if viz.prior_range(model) == [(-2.0, 2.0)] * 2 else "scatter-learned"


def _range_note(model: VAE, y: int | None = None) -> str:
    """What the manifold's grid spans, for the model's prior (see :func:`genvae.viz.prior_range`)."""
    if model.prior.conditional:
        return " The grid spans the central 95% of this label's prior p(z | y) in each dimension."
    spans = viz.prior_range(model, y)
    if spans == [(-2.0, 2.0)] * 2:
        return " The grid spans ±2 in each dimension, the central 95% of the prior N(0, I)."
    shown = ", ".join(f"z[{d}] from {low:.1f} to {high:.1f}" for d, (low, high) in enumerate(spans))
    return f" The grid spans the central 95% of the learned prior ({shown}), not ±2: its mass sits there."


def _manifolds(model: VAE, kind: RunKind, test: ImageDataset) -> list[ReportFigure]:
    size = (5.0, 5.0)  # a grid cell's width; the decoded images are drawn at 160 dpi to stay sharp
    if not kind.conditional:
        linear = png(viz.latent_manifold(model, figsize=size), 160)
        quantile = png(viz.latent_manifold(model, grid="quantile", figsize=size), 160)
        note = _range_note(model)
        return [
            ReportFigure("manifold", "Latent manifold (linear grid)", _LOOK["manifold"] + note, linear),
            ReportFigure(
                "manifold-quantile", "Latent manifold (quantile grid)", _LOOK["manifold-quantile"] + note, quantile
            ),
        ]
    shown = []
    for label, name in enumerate(_class_names(test, kind.classes)):
        fig = viz.latent_manifold(model, y=label, n=15, figsize=(3.2, 3.2))  # a cell of the finer grid
        look = "Compare with the other labels' grids."
        if label == 0:
            look = _LOOK["manifold-label"] + _range_note(model, label)
        title = f"Latent manifold for label {label} ({name})"
        shown.append(ReportFigure(f"manifold-label-{label}", title, look, png(fig, 150)))
    return shown


def _sample_figures(model: VAE, kind: RunKind, test: ImageDataset) -> list[ReportFigure]:
    rows = min(model.latent_dim, 10)  # the traversal's rows: one per latent dimension
    if kind.conditional:
        samples = png(viz.samples(model, n=12, figsize=(6.0, 5.5)), 130)
        conditional = cast(ConditionalVAE, model)  # kind.conditional says it is one
        swaps = png(viz.label_swap(conditional, test.images[:8], test.labels[:8], figsize=(6.0, 4.6)), 130)
        sweep = png(viz.traversal(model, y=0, figsize=(6.0, 0.7 * rows + 0.5)), 130)
        return [
            ReportFigure("samples", "Samples: one row per label, one z per column", _LOOK["samples-cvae"], samples),
            ReportFigure(
                "label-swap", "Label swaps: each input's z decoded under every label", _LOOK["label-swap"], swaps
            ),
            ReportFigure("traversal", "Latent traversals (label 0)", _LOOK["traversal"], sweep),
        ]
    samples = png(viz.samples(model, n=12, rows=4), 80)
    sweep = png(viz.traversal(model, figsize=(6.0, 0.7 * rows + 0.5)), 130)
    return [
        ReportFigure("samples", "Samples from the prior", _LOOK["samples"], samples, wide=True),
        ReportFigure("traversal", "Latent traversals", _LOOK["traversal"], sweep),
    ]
