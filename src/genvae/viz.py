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

from genvae._validation import check_positive_int
from genvae.evaluation import data_tensors, posterior_means
from genvae.models import VAE, ConditionalVAE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from genvae.training.state import History

__all__ = [
    "label_swap",
    "latent_manifold",
    "latent_scatter",
    "loss_curves",
    "manifold_grid",
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


def _grid_values(n: int, scale: float, grid: str) -> np.ndarray:
    if grid == "linear":
        return np.linspace(-scale, scale, n)
    if grid == "quantile":
        # equally spaced in probability between Φ(−scale) and Φ(scale), mapped back by Φ⁻¹
        normal = torch.distributions.Normal(0.0, 1.0)
        low = float(normal.cdf(torch.tensor(-scale)))
        probs = torch.linspace(low, 1 - low, n, dtype=torch.float64)
        return normal.icdf(probs).numpy()
    raise ValueError(f"grid: expected 'linear' or 'quantile', got {grid!r}")


@torch.no_grad()
def manifold_grid(
    model: VAE,
    y: Any = None,
    n: int = 31,
    scale: float = 2.0,
    grid: str = "linear",
    dims: tuple[int, int] = (0, 1),
    fixed: torch.Tensor | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The decoded latent grid behind :func:`latent_manifold`: ``(image, grid_x, grid_y)``.

    Row ``i`` of the tiled image decodes ``z[dims[1]] = grid_y[i]`` (top row the largest),
    column ``j`` decodes ``z[dims[0]] = grid_x[j]``; other dimensions are ``fixed`` (default 0).
    """
    check_positive_int("n", n)
    if not scale > 0:
        raise ValueError(f"scale: expected a positive number, got {scale!r}")
    d = model.latent_dim
    if d < 2:
        raise ValueError(f"model: expected a latent space of at least 2 dimensions for a manifold, got {d}")
    if len(dims) != 2 or dims[0] == dims[1] or not all(0 <= k < d for k in dims):
        raise ValueError(f"dims: expected two different latent dimensions in [0, {d - 1}], got {dims!r}")
    grid_x = _grid_values(n, scale, grid)
    grid_y = grid_x[::-1].copy()
    base = torch.zeros(d) if fixed is None else torch.as_tensor(fixed, dtype=torch.float32).reshape(d)
    z = base.repeat(n * n, 1)
    gy, gx = np.meshgrid(grid_y, grid_x, indexing="ij")
    z[:, dims[0]] = torch.from_numpy(gx.reshape(-1)).float()
    z[:, dims[1]] = torch.from_numpy(gy.reshape(-1)).float()
    was_training = model.training
    model.eval()
    try:
        images = model.decode(z.to(model.device), y)
    finally:
        model.train(was_training)
    return tile(images.reshape(n, n, *images.shape[1:])), grid_x, grid_y


def latent_manifold(
    model: VAE,
    y: Any = None,
    n: int = 31,
    scale: float = 2.0,
    grid: str = "linear",
    dims: tuple[int, int] = (0, 1),
    fixed: torch.Tensor | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] = (8, 8),
) -> Figure:
    """Decode an ``n``×``n`` grid of latent points (the notebook's ``plot_latent``; with ``y`` for a
    conditional model, ``plot_latent_cvae``). ``grid="quantile"`` spaces the points by the inverse
    normal CDF, so each cell holds equal prior mass. For latent sizes above 2, ``dims`` picks the
    two dimensions shown and ``fixed`` sets the others (default 0)."""
    image, grid_x, grid_y = manifold_grid(model, y, n, scale, grid, dims, fixed)
    fig, ax = _figure(ax, figsize)
    _show(ax, image)
    size = image.shape[0] // n
    ticks = np.arange(size // 2, n * size, size)
    step = max(1, n // 8)
    ax.set_xticks(ticks[::step], [f"{v:.1f}" for v in grid_x[::step]])
    ax.set_yticks(ticks[::step], [f"{v:.1f}" for v in grid_y[::step]])
    ax.set_xlabel(f"z[{dims[0]}]")
    ax.set_ylabel(f"z[{dims[1]}]")
    if y is not None:
        ax.set_title(f"label {y}")
    return fig


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
    """Posterior means of the first ``n`` images of ``data``, coloured by label, with a colour bar
    (the notebook's ``scatterplot_latent``). A conditional model encodes each image with its own
    label. Latent sizes above 2 are projected on their first two principal components."""
    check_positive_int("n", n)
    x, y = data_tensors(data)
    x, y = x[:n], (y[:n] if y is not None else None)
    z, labels = posterior_means(model, (x, y) if y is not None else x)
    points, (xlabel, ylabel) = _project(z.double())
    fig, ax = _figure(ax, figsize)
    if labels is None:
        ax.scatter(points[:, 0], points[:, 1], s=4, alpha=0.6)
    else:
        k = int(getattr(model, "num_classes", None) or int(labels.max()) + 1)
        import matplotlib

        cmap = matplotlib.colormaps["jet"].resampled(k)
        dots = ax.scatter(
            points[:, 0], points[:, 1], c=labels.numpy(), cmap=cmap, s=4, alpha=0.8, vmin=-0.5, vmax=k - 0.5
        )
        fig.colorbar(dots, ax=ax, ticks=np.arange(k))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return fig


@torch.no_grad()
def reconstructions(
    model: VAE, data: Any, n: int = 10, ax: Axes | None = None, figsize: tuple[float, float] = (10, 2.2)
) -> Figure:
    """The first ``n`` images (top row) above their reconstructions from the posterior mean."""
    check_positive_int("n", n)
    x, y = data_tensors(data)
    x = x[:n].to(model.device)
    recon = model.reconstruct(x, y[:n] if model.conditional and y is not None else None)
    fig, ax = _figure(ax, figsize)
    _show(ax, tile(torch.stack([x, recon])))
    ax.set_axis_off()
    ax.set_title("originals (top) and reconstructions (bottom)")
    return fig


@torch.no_grad()
def samples(
    model: VAE,
    n: int = 10,
    classes: Sequence[int] | None = None,
    rows: int = 1,
    seed: int = 0,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """New images from the prior: ``rows`` rows of ``n``. For a conditional model: one row per
    class (``classes``, default all), one shared z per column, so the style stays constant down
    a column and only the label changes."""
    check_positive_int("n", n)
    check_positive_int("rows", rows)
    gen = torch.Generator().manual_seed(seed)
    if isinstance(model, ConditionalVAE):
        labels = list(classes) if classes is not None else list(range(model.num_classes or 0))
        z = torch.randn(n, model.latent_dim, generator=gen).to(model.device)
        images = torch.stack([model.decode(z, c) for c in labels])
        fig, ax = _figure(ax, figsize or (n, len(labels)))
        _show(ax, tile(images))
        size = images.shape[-2]
        ax.set_yticks(np.arange(size // 2, len(labels) * size, size), [str(c) for c in labels])
        ax.set_xticks([])
        ax.set_ylabel("label")
        ax.set_xlabel("one z per column")
        return fig
    z = torch.randn(rows * n, model.latent_dim, generator=gen).to(model.device)
    images = model.decode(z)
    fig, ax = _figure(ax, figsize or (n, 1.1 * rows))
    _show(ax, tile(images.reshape(rows, n, *images.shape[1:])))
    ax.set_axis_off()
    return fig


@torch.no_grad()
def label_swap(
    cvae: ConditionalVAE,
    x: torch.Tensor,
    y: torch.Tensor,
    classes: Sequence[int] | None = None,
    ax: Axes | None = None,
    figsize: tuple[float, float] | None = None,
) -> Figure:
    """Each input (first column) encoded with its label, then decoded under every label
    (the notebook's question 10.6i: same style, other content)."""
    from genvae import evaluation

    if not isinstance(cvae, ConditionalVAE):
        raise TypeError(f"cvae: expected a ConditionalVAE, got {type(cvae).__name__}")
    targets = list(classes) if classes is not None else list(range(cvae.num_classes or 0))
    x = x.to(cvae.device)
    swapped = [evaluation.label_swap(cvae, x, y, c) for c in targets]
    images = torch.stack([x, *swapped], dim=1)  # (inputs, 1 + classes, C, H, W)
    fig, ax = _figure(ax, figsize or (len(targets) + 1, x.shape[0]))
    _show(ax, tile(images))
    size = images.shape[-1]
    ax.set_xticks(np.arange(size // 2, (len(targets) + 1) * size, size), ["input", *map(str, targets)])
    ax.set_yticks([])
    ax.set_xlabel("decoded under label")
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
    base = torch.zeros(d) if z is None else torch.as_tensor(z, dtype=torch.float32).reshape(d)
    values = torch.linspace(-span, span, n)
    rows = []
    for k in chosen:
        zs = base.repeat(n, 1)
        zs[:, k] = values
        rows.append(model.decode(zs.to(model.device), y))
    images = torch.stack(rows)
    fig, ax = _figure(ax, figsize or (n, len(chosen) * 1.1))
    _show(ax, tile(images))
    size = images.shape[-1]
    ax.set_yticks(np.arange(size // 2, len(chosen) * size, size), [f"z[{k}]" for k in chosen])
    ax.set_xticks(np.arange(size // 2, n * size, size), [f"{v:.1f}" for v in values.tolist()])
    return fig


def loss_curves(history: History, ax: Axes | None = None, figsize: tuple[float, float] = (12, 3.6)) -> Figure:
    """Train and validation total, reconstruction and KL per epoch (the notebook's live plot);
    three panels, or every line on ``ax`` when one is given."""
    from matplotlib.ticker import MaxNLocator

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
                axis.plot(epochs, history[key], style, marker="o", label=f"{split} {term}")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("nats per sample")
        axis.legend()
    return fig  # type: ignore[return-value]
