"""Latent grids for :mod:`genvae.viz`: the N(0, I) grid values of a manifold, and decoding latent
points into one tiled image, chunk by chunk within a memory budget (manifolds, samples,
traversals, label swaps)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from genvae.inference import decode_chunk_size, eval_mode
from genvae.models import VAE

__all__ = ["FIGURE_BUDGET", "canvas", "decode_rows", "normal_grid_values", "pixels", "tile_columns", "tile_decoded"]


def normal_grid_values(n: int, scale: float, grid: str) -> np.ndarray:
    """``n`` values over ±``scale``: evenly spaced (``"linear"``), or equally spaced in N(0, 1)
    probability (``"quantile"``)."""
    if grid == "linear":
        return np.linspace(-scale, scale, n)
    if grid == "quantile":
        # equally spaced in probability between Φ(−scale) and Φ(scale), mapped back by Φ⁻¹
        normal = torch.distributions.Normal(0.0, 1.0)
        low = float(normal.cdf(torch.tensor(-scale)))
        probs = torch.linspace(low, 1 - low, n, dtype=torch.float64)
        return normal.icdf(probs).numpy()
    raise ValueError(f"grid: expected 'linear' or 'quantile', got {grid!r}")


#: Bytes a chunk of decoded figure images may take. A figure holds its whole tiled image, and
#: matplotlib a copy of it (``imshow`` copies and masks its input), so decoding takes little beside:
#: a 200×200 manifold of the seed VAE adds 278 MiB in all, 270 of them the image and its copies.
FIGURE_BUDGET = 8 * 2**20


def decode_rows(model: VAE, z: torch.Tensor, y: Any) -> Iterator[tuple[int, torch.Tensor]]:
    """``(start, images)`` for consecutive chunks of ``z``, decoded in eval mode on the model's
    device, each chunk within :data:`FIGURE_BUDGET` bytes: memory stays bounded whatever the
    grid size."""
    with eval_mode(model):
        step = decode_chunk_size(model, FIGURE_BUDGET, model.condition(y, z.shape[0]))
        for start in range(0, z.shape[0], step):
            yield start, model.decode(z[start : start + step], y)


def canvas(height: int, width: int, channels: int) -> np.ndarray:
    """A blank tiled image: 2-D for grey (contiguous, so ``imshow`` need not copy it) or ``(H, W, C)``."""
    return np.zeros((height, width) if channels == 1 else (height, width, channels), dtype=np.float32)


def pixels(images: torch.Tensor) -> np.ndarray:
    """Images ``(N, C, H, W)`` as ``(N, H, W)`` (grey) or ``(N, H, W, C)`` clipped to [0, 1] (colour)."""
    array = images.detach().cpu().float()
    return array[:, 0].numpy() if array.shape[1] == 1 else array.permute(0, 2, 3, 1).clamp(0, 1).numpy()


def tile_decoded(model: VAE, z: torch.Tensor, y: Any, cols: int) -> np.ndarray:
    """Decode ``z`` (``rows·cols`` points, row by row) chunk by chunk straight into one tiled
    image, so a 1000×1000 grid never holds more than a chunk of decoded tensors at once."""
    out: np.ndarray | None = None
    for start, images in decode_rows(model, z, y):
        c, h, w = images.shape[1:]
        if out is None:
            out = canvas(z.shape[0] // cols * h, cols * w, c)
        for offset, image in enumerate(pixels(images)):
            row, col = divmod(start + offset, cols)
            out[row * h : (row + 1) * h, col * w : (col + 1) * w] = image
    assert out is not None
    return out


def tile_columns(columns: Iterable[torch.Tensor], count: int) -> np.ndarray:
    """Lay out ``count`` batches of images ``(rows, C, H, W)`` side by side, one batch per column,
    each copied into the tiled image as it comes (a generator need not hold them all)."""
    out: np.ndarray | None = None
    for j, images in enumerate(columns):
        rows, c, h, w = images.shape
        if out is None:
            out = canvas(rows * h, count * w, c)
        out[:, j * w : (j + 1) * w] = pixels(images).reshape(rows * h, w, *([c] if c > 1 else []))
    assert out is not None
    return out
