"""Figures of a model and its latent space, with matplotlib (imported only inside these functions).

Every function returns a ``matplotlib.figure.Figure``, draws on ``ax`` when one is given, and
never calls ``plt.show()``: in a notebook the figure displays itself; in a script, save it with
``fig.savefig(...)``.

Example:
    >>> import genvae as gv
    >>> fig = gv.viz.latent_manifold(gv.presets.seed_vae(), n=5)
    >>> fig.axes[0].get_xlabel()
    'z[0]'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from genvae._grids import normal_grid_values, tile_columns, tile_decoded
from genvae._memory import check_samples
from genvae._validation import check_positive_int
from genvae.data.inputs import as_tensors
from genvae.inference import posterior_means
from genvae.losses import BOUND_LABELS, bound_label
from genvae.models import VAE, ConditionalVAE
from genvae.semisupervised import confusion_matrix

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from genvae.training.state import History

__all__ = [
    "condition_name",
    "confusion",
    "history_bound",
    "label_swap",
    "latent_manifold",
    "latent_scatter",
    "loss_curves",
    "manifold_grid",
    "prior_quantiles",
    "prior_range",
    "reconstructions",
    "samples",
    "tile",
    "traversal",
]


def _figure(ax: Axes | None, figsize: tuple[float, float]) -> tuple[Figure, Axes]:
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("genvae.viz needs matplotlib: pip install 'genvae[viz]'") from None
    if ax is not None:
        return ax.get_figure(), ax  # type: ignore[return-value]
    fig = Figure(figsize=figsize, layout="constrained")
    return fig, fig.add_subplot()


def tile(images: torch.Tensor) -> np.ndarray:
    """Lay out images ``(rows, cols, C, H, W)`` as one array ``(rows·H, cols·W)`` (grey) or
    ``(rows·H, cols·W, 3)`` (colour), row by row."""
    rows, cols, c, h, w = images.shape
    grid = images.detach().cpu().float().permute(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return grid[..., 0].numpy() if c == 1 else grid.clamp(0, 1).numpy()


def _show(ax: Axes, image: np.ndarray) -> None:
    ax.imshow(image, cmap="Greys_r" if image.ndim == 2 else None, vmin=0, vmax=1, interpolation="nearest")


#: Prior draws behind :func:`prior_range` for a prior without closed-form quantiles; the
#: quantiles' standard error is then about 0.01 prior standard deviations.
PRIOR_DRAWS = 20_000
_CENTRAL = (0.025, 0.975)  # the central 95%


def _standard_normal(model: VAE) -> bool:
    """Whether the model's prior is N(0, I) (a Gaussian prior without mean and variance)."""
    gaussian = getattr(model.prior, "gaussian", None)
    return not model.prior.conditional and gaussian is not None and all(v is None for v in gaussian(None))


@torch.no_grad()
def prior_quantiles(model: VAE, probs: Sequence[float], y: Any = None, dims: Sequence[int] = (0, 1)) -> np.ndarray:
    """The prior's ``probs`` quantiles in each of ``dims``, ``(len(probs), len(dims))``: in closed
    form for a Gaussian prior (given ``y`` for a conditional one), else from :data:`PRIOR_DRAWS`
    draws of a generator seeded 0 (the same figure every time)."""
    p, d = torch.as_tensor(list(probs), dtype=torch.float64), model.latent_dim
    gaussian = getattr(model.prior, "gaussian", None)
    if gaussian is not None:  # closed form: mean + σ·Φ⁻¹(p), None standing for 0
        c = model.condition(y, 1) if model.prior.conditional else None
        mean, logvar = (torch.zeros(1, d) if v is None else v.reshape(-1, d)[:1].double().cpu() for v in gaussian(c))
        z = mean + torch.distributions.Normal(0.0, 1.0).icdf(p)[:, None] * (0.5 * logvar).exp()
        return z[:, list(dims)].numpy()
    draws = model.condition(y, PRIOR_DRAWS) if model.prior.conditional else None
    z = model.sample_prior(PRIOR_DRAWS, draws, generator=torch.Generator().manual_seed(0))
    return torch.quantile(z[:, list(dims)].double().cpu(), p, dim=0).numpy()


def prior_range(model: VAE, y: Any = None, dims: Sequence[int] = (0, 1)) -> list[tuple[float, float]]:
    """The default span of :func:`latent_manifold` in each of ``dims``: ``(-2, 2)`` for the
    N(0, I) prior (as always), else the prior's central 95% (its 2.5% and 97.5% quantiles, see
    :func:`prior_quantiles`; given ``y`` for a conditional prior).

    Example:
        >>> import genvae as gv
        >>> gv.viz.prior_range(gv.presets.seed_vae())
        [(-2.0, 2.0), (-2.0, 2.0)]
    """
    if _standard_normal(model):
        return [(-2.0, 2.0)] * len(dims)
    low, high = prior_quantiles(model, _CENTRAL, y, dims)
    return [(float(a), float(b)) for a, b in zip(low, high, strict=True)]


def _axes(model: VAE, y: Any, n: int, scale: float | None, grid: str, dims: tuple[int, int]) -> list[np.ndarray]:
    """Each plotted dimension's grid values: ±``scale`` (or ±2 under N(0, I)) as always, else
    spread over the prior's central 95% (linearly, or at equally spaced prior quantiles)."""
    if scale is not None or _standard_normal(model):
        values = normal_grid_values(n, 2.0 if scale is None else scale, grid)
        return [values, values]
    if grid == "linear":
        return [np.linspace(low, high, n) for low, high in prior_range(model, y, dims)]
    if grid == "quantile":
        return list(prior_quantiles(model, np.linspace(*_CENTRAL, n).tolist(), y, dims).T.copy())
    raise ValueError(f"grid: expected 'linear' or 'quantile', got {grid!r}")


@torch.no_grad()
def manifold_grid(
    model: VAE,
    y: Any = None,
    n: int = 31,
    scale: float | None = None,
    grid: str = "linear",
    dims: tuple[int, int] = (0, 1),
    fixed: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoded latent grid behind :func:`latent_manifold`: ``(image, grid_x, grid_y)``.

    Row ``i`` of the tiled image decodes ``z[dims[1]] = grid_y[i]`` (top row the largest),
    column ``j`` decodes ``z[dims[0]] = grid_x[j]``; other dimensions are ``fixed`` (default 0).
    ``scale=None`` spans the prior's central 95% in each dimension (:func:`prior_range`: ±2
    for N(0, I)); a number spans ±``scale`` whatever the prior.
    """
    check_positive_int("n", n)
    if scale is not None and not scale > 0:
        raise ValueError(f"scale: expected a positive number or None, got {scale!r}")
    d = model.latent_dim
    if d < 2:
        raise ValueError(f"model: expected a latent space of at least 2 dimensions for a manifold, got {d}")
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= k < d for k in dims):
        raise ValueError(f"dims: expected two different latent dimensions in [0, {d - 1}], got {dims!r}")
    check_samples(model, "n", f"{n} (a grid of {n}×{n})", n * n, figure=True)
    grid_x, along_y = _axes(model, y, n, scale, grid, dims)
    grid_y = along_y[::-1].copy()
    base = torch.zeros(d, dtype=torch.float64) if fixed is None else torch.as_tensor(fixed, dtype=torch.float64)
    base = base.reshape(d)
    gy, gx = np.meshgrid(grid_y, grid_x, indexing="ij")
    z = base.repeat(n * n, 1)
    z[:, dims[0]] = torch.from_numpy(gx.reshape(-1))
    z[:, dims[1]] = torch.from_numpy(gy.reshape(-1))
    return tile_decoded(model, z, y, n), grid_x, grid_y


def latent_manifold(
    model: VAE,
    y: Any = None,
    n: int = 31,
    scale: float | None = None,
    grid: str = "linear",
    dims: tuple[int, int] = (0, 1),
    fixed: torch.Tensor | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (8, 8),
) -> Figure:
    """Decode an ``n``×``n`` grid of latent points (the notebook's ``plot_latent``; with ``y`` for a
    conditional model, ``plot_latent_cvae``). The grid spans the prior's central 95% in each
    dimension (:func:`prior_range`: ±2 for N(0, I); for a mixture or VampPrior wherever its
    components sit; for a conditional prior, that of p(z | y)); ``scale`` spans ±``scale``
    instead. ``grid="quantile"`` spaces the points at equally spaced prior quantiles (the inverse
    normal CDF under N(0, I)), so each cell holds equal prior mass in each dimension. For latent
    sizes above 2, ``dims`` picks the two dimensions shown and ``fixed`` sets the others (default 0)."""
    image, grid_x, grid_y = manifold_grid(model, y, n, scale, grid, dims, fixed)
    fig, ax = _figure(ax, figsize)
    _show(ax, image)
    size = image.shape[0] // n
    # at most five ticks per axis, at the grid's ends and evenly between: readable at any n
    chosen = np.unique(np.linspace(0, n - 1, min(n, 5)).round().astype(int))
    ax.set_xticks(chosen * size + size // 2, [f"{grid_x[i]:.1f}" for i in chosen])
    ax.set_yticks(chosen * size + size // 2, [f"{grid_y[i]:.1f}" for i in chosen])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    if y is not None:
        ax.set_title(condition_name(y))
    return fig


def condition_name(y: Any) -> str:
    """A short title for a label or condition: ``"label 3"``, ``"condition (0.5, 1.0, -0.2)"``."""
    if isinstance(y, torch.Tensor) and y.numel() == 1 and not y.is_floating_point():
        y = int(y)
    if isinstance(y, int):
        return f"label {y}"
    values = torch.as_tensor(y).reshape(-1).tolist()
    return "condition (" + ", ".join(f"{v:.3g}" for v in values) + ")"


def _project(z: torch.Tensor) -> tuple[np.ndarray, tuple[str, str]]:
    if z.shape[1] == 2:
        return z.numpy(), ("z[0]", "z[1]")
    if z.shape[1] == 1:
        return torch.cat([z, torch.zeros_like(z)], 1).numpy(), ("z[0]", "")
    centred = z - z.mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ v[:2].T).numpy(), ("principal component 1", "principal component 2")


def latent_scatter(
    model: VAE, data: Any, n: int = 5000, ax: Axes | None = None, figsize: tuple[float, float] = (9, 7.5)
) -> Figure:
    """Posterior means of the first ``n`` inputs of ``data``, coloured by class with a legend
    (the notebook's ``scatterplot_latent``; a qualitative colour map, one colour per class).
    A conditional model encodes each input with its own label. Latent sizes above 2 are
    projected on their first two principal components. Continuous labels are shown on a colour
    bar (their first component)."""
    check_positive_int("n", n)
    z, labels = posterior_means(model, data, limit=n)
    points, (xlabel, ylabel) = _project(z.double())
    fig, ax = _figure(ax, figsize)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
    elif labels.is_floating_point():
        values = labels.reshape(labels.shape[0], -1)[:, 0].double().numpy()
        dots = ax.scatter(points[:, 0], points[:, 1], c=values, cmap="viridis", s=4, alpha=0.8)
        fig.colorbar(dots, ax=ax, label="condition[0]")
    else:
        _class_scatter(ax, points, labels.numpy(), getattr(model, "num_classes", None))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


def _class_scatter(ax: Axes, points: np.ndarray, labels: np.ndarray, num_classes: int | None) -> None:
    import matplotlib

    k = int(num_classes or int(labels.max()) + 1)
    cmap = matplotlib.colormaps["tab10" if k <= 10 else "tab20"]
    for label in range(k):
        mask = labels == label
        if mask.any():
            colour = cmap(label % cmap.N)
            ax.scatter(points[mask, 0], points[mask, 1], s=4, alpha=0.8, color=colour, label=str(label))
    legend = ax.legend(title="label", markerscale=3, fontsize="small", loc="best", ncols=1 if k <= 10 else 2)
    for handle in legend.legend_handles:
        if handle is not None:
            handle.set_alpha(1.0)


@torch.no_grad()
def reconstructions(
    model: VAE, data: Any, n: int = 10, ax: Axes | None = None, figsize: tuple[float, float] = (10, 2.2)
) -> Figure:
    """The first ``n`` inputs (top row) above their reconstructions from the posterior mean."""
    check_positive_int("n", n)
    x, y = as_tensors(data, dtype=model.dtype, device=model.device, limit=n)
    recon = model.reconstruct(x, y if model.conditional else None)
    fig, ax = _figure(ax, figsize)
    _show(ax, tile(torch.stack([x, recon])))
    ax.set_axis_off()
    ax.set_title("originals (top) and reconstructions (bottom)")
    return fig


def _conditions(model: VAE, classes: Sequence[int] | None, conditions: Any, argument: str) -> list[Any]:
    """The labels or condition vectors a per-condition figure shows, one row or column each."""
    if classes is not None and conditions is not None:
        raise ValueError(f"{argument}: expected classes or conditions, got both")
    if conditions is not None:
        rows = torch.as_tensor(conditions, dtype=model.dtype)
        rows = rows.reshape(1, -1) if rows.dim() == 1 else rows
        if rows.dim() != 2 or rows.shape[0] == 0:
            raise ValueError(f"conditions: expected condition vectors (rows, condition_dim), got {tuple(rows.shape)}")
        return list(rows)
    if classes is not None:
        return list(classes)
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        raise ValueError(
            f"conditions: expected condition vectors for a model with continuous conditions "
            f"(condition_dim={getattr(model, 'condition_dim', 0)}), got none; pass conditions=[[...], ...]"
        )
    return list(range(num_classes))


def _row_names(rows: list[Any]) -> list[str]:
    return [str(r) if isinstance(r, int) else condition_name(r).removeprefix("condition ") for r in rows]


def _row_latents(model: VAE, label: Any, n: int, seed: int) -> torch.Tensor:
    """The ``n`` latents of one row of :func:`samples`: the same draws for every row, so a column
    shares its z; under a conditional prior p(z | y), the same noise through each row's p(z | y)."""
    gen = torch.Generator().manual_seed(seed)
    # p(z) depends on y under a conditional prior, and in a conditional hierarchy (its lower levels' p(z_i | z_i+1, y))
    if not getattr(model, "prior_is_conditional", model.prior.conditional):
        return model.sample_prior(n, generator=gen)
    y = torch.full((n,), label) if isinstance(label, int) else torch.as_tensor(label).reshape(1, -1).expand(n, -1)
    return model.sample_prior(n, model.condition(y, n), generator=gen)


@torch.no_grad()
def samples(
    model: VAE,
    n: int = 10,
    classes: Sequence[int] | None = None,
    rows: int = 1,
    seed: int = 0,
    conditions: Any = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """New inputs from the prior: ``rows`` rows of ``n``. For a conditional model: one row per
    class (``classes``, default all) or per condition vector (``conditions``, for a model with
    continuous conditions), one shared z per column, so the style stays constant down a column
    and only the condition changes."""
    check_positive_int("n", n)
    check_positive_int("rows", rows)
    gen = torch.Generator().manual_seed(seed)
    if model.conditional:
        labels = _conditions(model, classes, conditions, "classes")
        check_samples(model, "n", f"{n} for each of {len(labels)} rows", len(labels) * n, figure=True)
        image = np.concatenate([tile_decoded(model, _row_latents(model, c, n, seed), c, n) for c in labels])
        fig, ax = _figure(ax, figsize or (n, len(labels)))
        _show(ax, image)
        size = image.shape[0] // len(labels)
        ax.set_yticks(np.arange(size // 2, len(labels) * size, size), _row_names(labels))
        ax.set_xticks([])
        ax.set_ylabel("label" if conditions is None else "condition")
        ax.set_xlabel("one z per column")
        return fig
    check_samples(model, "n, rows", f"{n} in each of {rows} rows", rows * n, figure=True)
    z = model.sample_prior(rows * n, generator=gen)
    fig, ax = _figure(ax, figsize or (n, 1.1 * rows))
    _show(ax, tile_decoded(model, z, None, n))
    ax.set_axis_off()
    return fig


@torch.no_grad()
def label_swap(
    cvae: ConditionalVAE,
    x: Any,
    y: Any = None,
    classes: Sequence[int] | None = None,
    conditions: Any = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Each input (first column) encoded with its label, then decoded under every label, or
    under each of ``conditions`` for a model with continuous conditions (the notebook's
    question 10.6i: same style, other content). ``x`` may carry its labels (a pair or a dataset)."""
    from genvae import evaluation

    if not cvae.conditional:
        raise TypeError(f"cvae: expected a conditional model (a ConditionalVAE), got {type(cvae).__name__}")
    targets = _conditions(cvae, classes, conditions, "classes")
    images_in, labels_in = as_tensors(x if y is None else (x, y), argument="x", dtype=cvae.dtype, device=cvae.device,
                                      labels_argument=None if y is None else "y")  # fmt: skip
    if labels_in is None:
        raise ValueError("y: expected the inputs' own labels (y=..., or x as an (inputs, labels) pair), got none")
    swapped = (evaluation.label_swap(cvae, images_in, labels_in, c) for c in targets)  # one at a time
    image = tile_columns([images_in, *swapped], len(targets) + 1)
    fig, ax = _figure(ax, figsize or (len(targets) + 1, images_in.shape[0]))
    _show(ax, image)
    size = images_in.shape[-1]
    ax.set_xticks(np.arange(size // 2, (len(targets) + 1) * size, size), ["input", *_row_names(targets)])
    ax.set_yticks([])
    ax.set_xlabel("decoded under label" if conditions is None else "decoded under condition")
    return fig


@torch.no_grad()
def traversal(
    model: VAE,
    dims: Sequence[int] | None = None,
    n: int = 9,
    span: float = 2.5,
    z: torch.Tensor | None = None,
    y: Any = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Sweep each latent dimension in ``dims`` (one row each) from −``span`` to ``span``, the
    others held at ``z`` (default 0)."""
    check_positive_int("n", n)
    if not span > 0:
        raise ValueError(f"span: expected a positive number, got {span!r}")
    d = model.latent_dim
    chosen = list(dims) if dims is not None else list(range(min(d, 10)))
    if not chosen or not all(0 <= k < d for k in chosen):
        raise ValueError(f"dims: expected latent dimensions in [0, {d - 1}], got {dims!r}")
    check_samples(model, "n", f"{n} for each of {len(chosen)} rows", len(chosen) * n, figure=True)
    base = torch.zeros(d, dtype=model.dtype) if z is None else torch.as_tensor(z, dtype=model.dtype).reshape(d)
    values = torch.linspace(-span, span, n, dtype=model.dtype)
    zs = base.repeat(len(chosen), n, 1)  # row r sweeps dimension chosen[r]
    for row, k in enumerate(chosen):
        zs[row, :, k] = values
    image = tile_decoded(model, zs.reshape(len(chosen) * n, d), y, n)
    fig, ax = _figure(ax, figsize or (n, len(chosen) * 1.1))
    _show(ax, image)
    size = image.shape[0] // len(chosen)
    ax.set_yticks(np.arange(size // 2, len(chosen) * size, size), [f"z[{k}]" for k in chosen])
    ax.set_xticks(np.arange(size // 2, n * size, size), [f"{v:.1f}" for v in values.tolist()])
    return fig


def history_bound(history: History) -> str:
    """What a History's ``*_total`` is, in words: the negative ELBO unless the History also
    records it under another bound's name (``train_iwae``: the negative IWAE bound)."""
    for name in BOUND_LABELS:
        if name != "elbo" and (f"train_{name}" in history or f"val_{name}" in history):
            return bound_label(name)
    return bound_label("elbo")


def loss_curves(history: History, ax: Axes | None = None, figsize: tuple[float, float] = (12, 3.6)) -> Figure:
    """Train and validation total, reconstruction and KL per epoch (the notebook's live plot);
    three panels, or every line on ``ax`` when one is given. The total's legend names its bound
    (:func:`history_bound`): "negative IWAE bound" for an IWAE run, not the ELBO."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    epochs = history["epoch"]
    terms = ("total", "recon", "kl")
    if ax is not None:
        fig = ax.get_figure()
        axes = [ax] * 3
    else:
        fig, _ = _figure(None, figsize)
        fig.clear()
        axes = list(fig.subplots(1, 3))
    for term, axis in zip(terms, axes, strict=True):
        for split, style in (("train", "-"), ("val", "--")):
            key = f"{split}_{term}"
            if key in history:
                label = f"{split} {term}" if term != "total" else f"{split} total ({history_bound(history)})"
                axis.plot(epochs, history[key], style, marker="o", label=label)
        axis.set_xlabel("epoch")
        # integer epochs; with a single epoch the locator has no integer range to place, so name it
        axis.xaxis.set_major_locator(MaxNLocator(integer=True) if len(epochs) > 1 else FixedLocator(list(epochs)))
        axis.set_ylabel("nats per sample")
        axis.legend()
    return fig  # type: ignore[return-value]


def confusion(
    classifier: torch.nn.Module,
    data: Any,
    classes: Sequence[str] | None = None,
    normalize: bool = True,
    batch_size: int = 1000,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """The confusion matrix of ``classifier`` (an M2 model or any module returning logits) on
    labelled ``data`` (see :func:`genvae.semisupervised.confusion_matrix`) as a heat map: rows
    are the true classes, columns the predicted ones; with ``normalize`` each row
    shows fractions of its class, otherwise counts. Returns the figure (drawn on ``ax`` if given)."""
    matrix = confusion_matrix(classifier, data, batch_size)
    k = matrix.shape[0]
    names = list(classes) if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"classes: expected {k} class names, got {len(names)}")
    values = (matrix / matrix.sum(1, keepdim=True).clamp_min(1)).numpy() if normalize else matrix.numpy()
    fig, ax = _figure(ax, figsize or (1 + 0.5 * k, 0.8 + 0.5 * k))
    image = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="fraction of the true class" if normalize else "count")
    if k <= 20:  # the numbers stay legible
        for (i, j), value in np.ndenumerate(values):
            text = f"{value:.2f}" if normalize else str(int(value))
            shade = "white" if value > 0.5 * values.max() else "black"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color=shade)
    ax.set_xticks(range(k), names, rotation=90 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"accuracy {float(matrix.trace() / matrix.sum()):.3f}")
    return fig
