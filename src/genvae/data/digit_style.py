"""Measurements of the style of digit images: position, size, slant, stroke width and intensities.

They are what :class:`~genvae.data.SyntheticDigits` is calibrated on, against the MNIST test split
(:data:`MNIST_TEST_STYLE` holds that split's figures, so the comparison runs without the data).

Example:
    >>> import torch
    >>> image = torch.zeros(1, 1, 28, 28)
    >>> image[0, 0, 4:24, 13:16] = 1.0                  # a vertical bar, 3 pixels wide, 20 high
    >>> m = style_measures(image)
    >>> [round(float(m[k][0]), 2) for k in ("centre_x", "height", "width", "thickness")]
    [14.0, 20.0, 3.0, 2.61]
"""

from __future__ import annotations

import torch

__all__ = ["MNIST_TEST_STYLE", "style_measures", "style_summary"]

#: Pixels above this count for the bounding box.
BOX_THRESHOLD = 0.1

#: ``style_summary`` of the 10,000 MNIST test images (``t10k``, official checksums), as measured by
#: ``benchmarks/synthetic_realism.py``; means and standard deviations of the per-image measures.
MNIST_TEST_STYLE: dict[str, float] = {
    "mean_intensity": 0.1325,
    "zero_fraction": 0.8072,
    "ink_fraction": 0.1342,
    "saturated_fraction": 0.0580,
    "centre_x_mean": 14.008,
    "centre_x_sd": 0.291,
    "centre_y_mean": 13.993,
    "centre_y_sd": 0.288,
    "height_mean": 19.740,
    "height_sd": 1.005,
    "width_mean": 15.374,
    "width_sd": 3.864,
    "slant_mean": 0.094,
    "slant_sd": 0.264,
    "thickness_mean": 2.081,
    "thickness_sd": 0.528,
}


def _extent(any_ink: torch.Tensor) -> torch.Tensor:
    """Number of rows (or columns) from the first to the last that hold ink; 0 for none."""
    index = torch.arange(any_ink.shape[1]).expand_as(any_ink)
    first = torch.where(any_ink, index, any_ink.shape[1]).amin(1)
    last = torch.where(any_ink, index, -1).amax(1)
    return (last - first + 1).clamp_min(0).double()


def style_measures(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-image measures of grey images ``(N, 1, H, W)`` in [0, 1], each a float64 ``(N,)`` tensor:

    - ``centre_x``, ``centre_y``: centre of mass, pixel indices (MNIST centres it at about 14);
    - ``height``, ``width``: bounding box of the pixels above :data:`BOX_THRESHOLD`;
    - ``slant``: horizontal shear from the second moments, ``-μ11 / μ02`` (positive leans right);
    - ``thickness``: stroke width, ``2 · ink / perimeter`` with the perimeter measured as the total
      variation (exact for long strokes of uniform width);
    - ``intensity``: mean pixel value.
    """
    if images.dim() != 4 or images.shape[1] != 1:
        raise ValueError(f"images: expected a tensor of shape (N, 1, H, W), got {tuple(images.shape)}")
    x = images[:, 0].double()
    rows = torch.arange(x.shape[1], dtype=x.dtype)
    cols = torch.arange(x.shape[2], dtype=x.dtype)
    mass = x.sum((1, 2)).clamp_min(1e-12)
    cy = (x.sum(2) * rows).sum(1) / mass
    cx = (x.sum(1) * cols).sum(1) / mass
    dy = rows.view(1, -1, 1) - cy.view(-1, 1, 1)
    dx = cols.view(1, 1, -1) - cx.view(-1, 1, 1)
    mu02 = (x * dy**2).sum((1, 2)) / mass
    mu11 = (x * dx * dy).sum((1, 2)) / mass
    ink = x > BOX_THRESHOLD
    variation = (x[:, 1:] - x[:, :-1]).abs().sum((1, 2)) + (x[:, :, 1:] - x[:, :, :-1]).abs().sum((1, 2))
    return {
        "centre_x": cx,
        "centre_y": cy,
        "height": _extent(ink.any(2)),
        "width": _extent(ink.any(1)),
        "slant": -mu11 / mu02.clamp_min(1e-12),
        "thickness": 2 * mass / variation.clamp_min(1e-12),
        "intensity": x.mean((1, 2)),
    }


def style_summary(images: torch.Tensor) -> dict[str, float | list[float]]:
    """Figures of a set of images: the fractions of pixels that are zero (below half a grey level),
    ink (> 0.5) and saturated (> 0.99), the mean intensity, the mean and standard deviation of each
    :func:`style_measures` measure (``height_mean``, ``height_sd``, ...), and ``histogram``: the
    fraction of all pixels in each tenth of (0, 1]."""
    x = images.double()
    summary: dict[str, float | list[float]] = {
        "mean_intensity": float(x.mean()),
        "zero_fraction": float((x < 0.5 / 255).double().mean()),
        "ink_fraction": float((x > 0.5).double().mean()),
        "saturated_fraction": float((x > 0.99).double().mean()),
    }
    for name, values in style_measures(images).items():
        if name != "intensity":
            summary[f"{name}_mean"], summary[f"{name}_sd"] = float(values.mean()), float(values.std())
    nonzero = x[x >= 0.5 / 255].float()
    summary["histogram"] = (torch.histc(nonzero, bins=10, min=0, max=1) / x.numel()).tolist()
    return summary
