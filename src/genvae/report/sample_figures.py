"""The report's figures of samplers and codes: a row of samples per sampler, and a VQ-VAE's
samples from its code prior and its codebook's use.

A VQ-VAE's run gets "samples" (its code prior's row above a row of uniformly drawn code maps, the
prior it trained under) and "codebook" (perplexity and usage per epoch, and how often each code
occurs in the held-out maps); a model with a Gaussian latent gets "samplers" when the report
draws from more than its own prior (``genvae report --sampler gmm``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from genvae import viz
from genvae.report.codes import CodeEvaluation
from genvae.report.figures import ReportFigure, png
from genvae.report.kinds import RunKind
from genvae.report.sampling import FittedSamplers, sampler_rows
from genvae.training.state import History

__all__ = ["sample_figures"]

_NAMES = {"prior": "prior p(z)", "gmm": "GMM on posterior means", "code": "code prior"}

_LOOK = {
    "samplers": "One row per sampler, each fitted on the run's training images and seeded alike: look for rows "
    "of recognisable images; a fitted sampler (a Gaussian mixture on the posterior means) draws where the "
    "encoder puts the data, so its row is often sharper than the prior's.",
    "samples-codes": "Top: code maps drawn from a small autoregressive prior fitted to the training images' "
    "codes, decoded; bottom: code maps drawn uniformly, the prior the VQ-VAE trained under. Look for "
    "recognisable images on top and noise below: a VQ-VAE's samples need a learned code prior.",
    "codebook": "Left: the codebook's perplexity (the number of equally used codes with the same entropy) per "
    "epoch, with the share of codes each batch used; right: how often each code occurs in the held-out "
    "code maps, most used first. Look for many codes in use; a few codes taking most of the mass is "
    "codebook collapse.",
}


def _row_name(name: str) -> str:
    return _NAMES.get(name, name)


def _rows_png(rows: list[tuple[str, torch.Tensor]], kind: RunKind) -> str:
    """The rows of images in one figure, each named on the left."""
    from matplotlib.figure import Figure

    n = max(images.shape[0] for _, images in rows)
    fig = Figure(figsize=(0.6 * n + 1.6, 0.75 * len(rows) + 0.5), layout="constrained")
    ax = fig.add_subplot()
    padded = [torch.cat([im, im.new_ones(n - im.shape[0], *im.shape[1:])]) for _, im in rows]
    image = viz.tile(torch.stack(padded))
    ax.imshow(image, cmap="Greys_r" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")
    size = image.shape[0] // len(rows)
    ax.set_yticks(np.arange(size // 2, len(rows) * size, size), [_row_name(name) for name, _ in rows])
    width = image.shape[1] // n
    if kind.conditional and kind.classes:
        ax.set_xticks(np.arange(width // 2, n * width, width), [str(c) for c in range(n)])
        ax.set_xlabel("label")
    else:
        ax.set_xticks([])
    return png(fig, 110)


def _skipped_note(samplers: FittedSamplers, kind: RunKind) -> str:
    notes = [f"{name} does not apply to a {kind.title} ({why})" for name, why in samplers.skipped.items()]
    return (" Not shown: " + "; ".join(notes) + ".") if notes else ""


def _codebook_png(history: History, figures: CodeEvaluation) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, MaxNLocator

    fig = Figure(figsize=(10, 3.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    for split, style in (("train", "-"), ("val", "--")):
        if f"{split}_perplexity" in history:
            left.plot(history["epoch"], history[f"{split}_perplexity"], style, marker="o", label=f"{split} perplexity")
    left.set_xlabel("epoch")
    epochs = list(history["epoch"])
    left.xaxis.set_major_locator(MaxNLocator(integer=True) if len(epochs) > 1 else FixedLocator(epochs))
    left.set_ylabel(f"perplexity (of K = {figures.codebook_size})")
    if "val_usage" in history or "train_usage" in history:
        usage = left.twinx()
        key = "val_usage" if "val_usage" in history else "train_usage"
        usage.plot(history["epoch"], history[key], ":", marker="s", color="grey", label=key.replace("_", " "))
        usage.set_ylim(0, 1.05)
        usage.set_ylabel("share of codes used")
    left.legend(loc="lower right")
    counts = sorted(figures.counts, reverse=True)
    right.bar(range(len(counts)), counts, width=1.0)
    right.set_xlabel("codes, most used first")
    right.set_ylabel(f"occurrences in {figures.images} held-out maps")
    return png(fig, 90)


def _code_figures(model: Any, kind: RunKind, history: History, figures: CodeEvaluation, samplers: FittedSamplers,
                  seed: int) -> list[ReportFigure]:  # fmt: skip
    rows = sampler_rows(samplers, kind, seed=seed)
    y = torch.arange(kind.classes) if kind.conditional and kind.classes else None
    count = kind.classes if y is not None else 12
    uniform = model.sample(count, y, generator=torch.Generator().manual_seed(seed)).detach().cpu()
    rows.append(("uniform codes", uniform))
    title = "Samples: the code prior's, and uniform code maps" + (", one per label" if y is not None else "")
    look = _LOOK["samples-codes"] + _skipped_note(samplers, kind)
    shown = [ReportFigure("samples", title, look, _rows_png(rows, kind), wide=True)]
    book = "Codebook use: perplexity per epoch, and each code's share of the held-out maps"
    shown.append(ReportFigure("codebook", book, _LOOK["codebook"], _codebook_png(history, figures), wide=True))
    return shown


def sample_figures(
    model: Any, kind: RunKind, history: History, evaluation: Any, samplers: FittedSamplers, seed: int = 0
) -> list[ReportFigure]:
    """The figures of a run's samplers (and a VQ-VAE's codebook), drawn: shown after the
    figures of :func:`~genvae.report.figures.choose_figures`."""
    if kind.discrete:
        return _code_figures(model, kind, history, evaluation, samplers, seed)
    if len(samplers.fitted) + len(samplers.skipped) < 2:  # the prior alone: the samples figure shows it
        return []
    rows = sampler_rows(samplers, kind, seed=seed)
    title = "Samples per sampler" + (", one per label" if kind.conditional and kind.classes else "")
    look = _LOOK["samplers"] + _skipped_note(samplers, kind)
    return [ReportFigure("samplers", title, look, _rows_png(rows, kind), wide=True)]
