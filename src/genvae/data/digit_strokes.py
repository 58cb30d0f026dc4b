"""Pen-stroke skeletons of the ten digits: the shapes :class:`~genvae.data.SyntheticDigits` draws.

Each digit has a few variants, the forms people write (an open or a closed 4, a 7 with or without a
bar, a 2 with or without a loop), each with a weight (how often it is drawn among its digit's
variants). A variant is a list of strokes, a stroke a list of control points in a unit box (x to the
right, y up, the digit about 1 high) through which a Catmull-Rom spline passes; a corner is where two
strokes meet. :func:`skeletons` packs every variant into padded tensors with a fixed linear map from
control points to points sampled densely along the strokes, so that deformed control points give
deformed strokes with one matrix product.

Example:
    >>> s = skeletons()
    >>> s.digit.shape == s.variant.shape == (len(s.control),), sorted(set(s.digit.tolist())) == list(range(10))
    (True, True)
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

__all__ = ["VARIANTS", "Skeletons", "catmull_rom", "skeletons"]

Stroke = list[tuple[float, float]]


def _ellipse(
    cx: float, cy: float, rx: float, ry: float, start: float, sweep: float, n: int, tilt: float = 0.0
) -> Stroke:
    """``n`` points on an ellipse from angle ``start`` over ``sweep`` degrees (counter-clockwise),
    sheared by ``tilt`` (x += tilt · y)."""
    points = []
    for i in range(n):
        angle = math.radians(start + sweep * i / (n - 1))
        x, y = rx * math.cos(angle), ry * math.sin(angle)
        points.append((cx + x + tilt * y, cy + y))
    return points


_BAR_7: Stroke = [(0.05, 1.0), (0.4, 1.0), (0.75, 1.0)]
_LOOP_9 = _ellipse(0.4, 0.72, 0.27, 0.27, 10, 360, 11)

#: For each digit, its variants as ``(weight, strokes)``; weights are relative within a digit.
VARIANTS: dict[int, tuple[tuple[float, list[Stroke]], ...]] = {
    0: (
        (0.45, [_ellipse(0.38, 0.5, 0.34, 0.5, 100, 370, 13)]),
        (0.3, [_ellipse(0.3, 0.5, 0.24, 0.5, 95, 365, 12)]),
        (0.25, [_ellipse(0.4, 0.5, 0.36, 0.5, 80, 340, 12, tilt=0.15)]),
    ),
    1: (
        (0.6, [[(0.5, 1.0), (0.5, 0.5), (0.5, 0.0)]]),
        (0.22, [[(0.4, 0.88), (0.5, 1.0)], [(0.5, 1.0), (0.5, 0.5), (0.5, 0.0)]]),
        (0.12, [[(0.55, 1.0), (0.5, 0.5), (0.42, 0.0)]]),
        (0.06, [[(0.3, 0.8), (0.5, 1.0)], [(0.5, 1.0), (0.5, 0.5), (0.5, 0.0)], [(0.28, 0.0), (0.72, 0.0)]]),
    ),
    2: (
        (
            0.45,
            [
                [
                    (0.1, 0.75),
                    (0.25, 0.95),
                    (0.5, 1.0),
                    (0.7, 0.85),
                    (0.72, 0.65),
                    (0.55, 0.4),
                    (0.3, 0.18),
                    (0.06, 0.0),
                ],
                [(0.06, 0.0), (0.4, 0.02), (0.78, 0.0)],
            ],
        ),
        (
            0.3,
            [
                [
                    (0.1, 0.75),
                    (0.25, 0.95),
                    (0.5, 1.0),
                    (0.7, 0.85),
                    (0.72, 0.65),
                    (0.55, 0.4),
                    (0.3, 0.18),
                    (0.12, 0.04),
                    (0.08, 0.12),
                    (0.2, 0.16),
                    (0.35, 0.06),
                    (0.55, 0.0),
                    (0.78, 0.03),
                ]
            ],
        ),
        (
            0.25,
            [
                [(0.12, 0.8), (0.3, 0.98), (0.55, 0.95), (0.62, 0.75), (0.45, 0.45), (0.05, 0.0)],
                [(0.05, 0.0), (0.35, 0.05), (0.7, 0.06)],
            ],
        ),
        (
            0.3,
            [
                [
                    (0.08, 0.72),
                    (0.22, 0.94),
                    (0.48, 1.0),
                    (0.68, 0.85),
                    (0.66, 0.6),
                    (0.5, 0.38),
                    (0.3, 0.18),
                    (0.18, 0.04),
                    (0.06, 0.04),
                    (0.05, 0.18),
                    (0.18, 0.26),
                    (0.3, 0.16),
                    (0.4, 0.04),
                    (0.6, 0.0),
                    (0.82, 0.04),
                ]
            ],
        ),
        (
            0.3,
            [
                [
                    (0.1, 0.75),
                    (0.25, 0.95),
                    (0.5, 1.0),
                    (0.68, 0.85),
                    (0.64, 0.62),
                    (0.48, 0.45),
                    (0.28, 0.3),
                    (0.1, 0.12),
                    (0.15, 0.0),
                    (0.35, 0.02),
                    (0.48, 0.18),
                    (0.42, 0.36),
                    (0.26, 0.3),
                    (0.28, 0.1),
                    (0.5, 0.0),
                    (0.78, 0.04),
                ]
            ],
        ),
    ),
    3: (
        (
            0.5,
            [
                [(0.1, 0.85), (0.3, 1.0), (0.55, 0.98), (0.68, 0.82), (0.6, 0.62), (0.35, 0.52)],
                [(0.35, 0.52), (0.6, 0.45), (0.72, 0.25), (0.6, 0.05), (0.35, 0.0), (0.08, 0.12)],
            ],
        ),
        (
            0.3,
            [
                [
                    (0.1, 0.9),
                    (0.4, 1.0),
                    (0.66, 0.85),
                    (0.5, 0.6),
                    (0.32, 0.52),
                    (0.55, 0.48),
                    (0.72, 0.28),
                    (0.6, 0.06),
                    (0.35, 0.0),
                    (0.06, 0.1),
                ]
            ],
        ),
        (
            0.2,
            [
                [(0.08, 1.0), (0.4, 1.0), (0.7, 1.0)],
                [(0.7, 1.0), (0.5, 0.75), (0.3, 0.55)],
                [(0.3, 0.55), (0.6, 0.48), (0.72, 0.25), (0.58, 0.04), (0.3, 0.0), (0.05, 0.12)],
            ],
        ),
    ),
    4: (
        (
            0.6,
            [
                [(0.2, 1.0), (0.15, 0.7), (0.1, 0.4)],
                [(0.1, 0.4), (0.45, 0.4), (0.8, 0.42)],
                [(0.62, 0.9), (0.6, 0.4), (0.6, 0.0)],
            ],
        ),
        (
            0.25,
            [
                [(0.6, 1.0), (0.3, 0.65), (0.02, 0.3)],
                [(0.02, 0.3), (0.4, 0.3), (0.78, 0.32)],
                [(0.6, 1.0), (0.6, 0.5), (0.6, 0.0)],
            ],
        ),
        (
            0.15,
            [
                [(0.25, 0.95), (0.12, 0.65), (0.05, 0.45)],
                [(0.05, 0.45), (0.4, 0.42), (0.72, 0.48)],
                [(0.55, 1.0), (0.52, 0.5), (0.48, 0.0)],
            ],
        ),
    ),
    5: (
        (
            0.6,
            [
                [(0.15, 0.98), (0.12, 0.75), (0.1, 0.55)],
                [(0.1, 0.55), (0.35, 0.62), (0.6, 0.55), (0.72, 0.32), (0.62, 0.08), (0.38, 0.0), (0.08, 0.1)],
                [(0.15, 0.98), (0.45, 1.0), (0.72, 1.02)],
            ],
        ),
        (
            0.4,
            [
                [(0.7, 1.0), (0.42, 1.0), (0.2, 0.98)],
                [(0.2, 0.98), (0.17, 0.82), (0.14, 0.65)],
                [(0.14, 0.65), (0.4, 0.66), (0.65, 0.52), (0.7, 0.28), (0.55, 0.06), (0.3, 0.0), (0.05, 0.08)],
            ],
        ),
    ),
    6: (
        (
            0.45,
            [
                [
                    (0.6, 1.0),
                    (0.35, 0.85),
                    (0.15, 0.55),
                    (0.1, 0.25),
                    (0.25, 0.02),
                    (0.5, 0.02),
                    (0.65, 0.22),
                    (0.55, 0.45),
                    (0.3, 0.47),
                    (0.12, 0.3),
                ]
            ],
        ),
        (
            0.3,
            [
                [
                    (0.55, 1.0),
                    (0.3, 0.75),
                    (0.18, 0.45),
                    (0.15, 0.2),
                    (0.3, 0.02),
                    (0.55, 0.05),
                    (0.62, 0.25),
                    (0.45, 0.38),
                    (0.25, 0.3),
                ]
            ],
        ),
        (
            0.25,
            [
                [
                    (0.5, 1.0),
                    (0.35, 0.7),
                    (0.2, 0.4),
                    (0.12, 0.2),
                    (0.25, 0.0),
                    (0.55, 0.0),
                    (0.7, 0.2),
                    (0.6, 0.45),
                    (0.35, 0.5),
                    (0.15, 0.35),
                ]
            ],
        ),
    ),
    7: (
        (0.55, [_BAR_7, [(0.75, 1.0), (0.5, 0.5), (0.3, 0.0)]]),
        (0.25, [[(0.05, 0.95), (0.4, 1.0), (0.75, 1.0)], [(0.75, 1.0), (0.55, 0.6), (0.45, 0.3), (0.42, 0.0)]]),
        (0.12, [[(0.05, 0.85), (0.05, 1.0)], _BAR_7, [(0.75, 1.0), (0.55, 0.5), (0.4, 0.0)]]),
        (0.08, [_BAR_7, [(0.75, 1.0), (0.5, 0.5), (0.3, 0.0)], [(0.3, 0.5), (0.72, 0.5)]]),
    ),
    8: (
        (
            0.5,
            [
                [
                    (0.62, 0.9),
                    (0.4, 1.0),
                    (0.15, 0.88),
                    (0.18, 0.65),
                    (0.4, 0.52),
                    (0.65, 0.35),
                    (0.62, 0.1),
                    (0.38, 0.0),
                    (0.12, 0.12),
                    (0.15, 0.35),
                    (0.4, 0.52),
                    (0.6, 0.68),
                    (0.65, 0.88),
                    (0.45, 1.0),
                ]
            ],
        ),
        (0.25, [_ellipse(0.38, 0.76, 0.22, 0.24, 90, 360, 10), _ellipse(0.38, 0.27, 0.3, 0.27, 90, 360, 11)]),
        (
            0.25,
            [
                [
                    (0.55, 0.95),
                    (0.35, 1.0),
                    (0.2, 0.88),
                    (0.28, 0.68),
                    (0.5, 0.55),
                    (0.68, 0.35),
                    (0.6, 0.08),
                    (0.35, 0.0),
                    (0.12, 0.15),
                    (0.22, 0.4),
                    (0.45, 0.6),
                    (0.55, 0.8),
                    (0.5, 0.98),
                ]
            ],
        ),
    ),
    9: (
        (0.55, [_LOOP_9, [(0.66, 0.85), (0.64, 0.4), (0.6, 0.0)]]),
        (0.2, [_LOOP_9, [(0.66, 0.85), (0.62, 0.4), (0.5, 0.05), (0.3, 0.0)]]),
        (
            0.25,
            [
                [
                    (0.7, 0.82),
                    (0.5, 1.0),
                    (0.22, 0.95),
                    (0.1, 0.72),
                    (0.3, 0.5),
                    (0.55, 0.55),
                    (0.7, 0.75),
                    (0.72, 0.95),
                    (0.7, 0.6),
                    (0.66, 0.3),
                    (0.64, 0.0),
                ]
            ],
        ),
        (0.25, [_ellipse(0.38, 0.7, 0.3, 0.22, 0, 360, 11, tilt=0.3), [(0.72, 0.82), (0.62, 0.4), (0.52, 0.0)]]),
    ),
}


def catmull_rom(n_points: int, samples_per_span: list[int]) -> torch.Tensor:
    """The ``(M, n_points)`` matrix taking control points to points on the uniform Catmull-Rom
    spline through them: ``samples_per_span[i]`` points on the span from control point ``i`` to
    ``i + 1`` (the last span also gets its end point). The ends are extended by reflection
    (``P[-1] = 2 P[0] - P[1]``), so a stroke leaves its first and last points along its chords."""
    if n_points < 2 or len(samples_per_span) != n_points - 1:
        raise ValueError(
            f"samples_per_span: expected {n_points - 1} counts for {n_points} points, got {samples_per_span}"
        )
    extend = torch.zeros(n_points + 2, n_points, dtype=torch.float64)
    extend[1:-1] = torch.eye(n_points, dtype=torch.float64)
    extend[0, :2] = torch.tensor([2.0, -1.0], dtype=torch.float64)
    extend[-1, -2:] = torch.tensor([-1.0, 2.0], dtype=torch.float64)
    rows = []
    for span, count in enumerate(samples_per_span):
        last = span == n_points - 2
        t = torch.arange(count + int(last), dtype=torch.float64) / count
        basis = torch.stack(
            [
                (-(t**3) + 2 * t**2 - t) / 2,
                (3 * t**3 - 5 * t**2 + 2) / 2,
                (-3 * t**3 + 4 * t**2 + t) / 2,
                (t**3 - t**2) / 2,
            ],
            dim=1,
        )
        rows.append(basis @ extend[span : span + 4])
    return torch.cat(rows)


@dataclass(frozen=True)
class Skeletons:
    """Every variant of every digit, padded to common sizes (``T`` variants, ``C`` control points,
    ``M`` sampled points).

    Attributes:
        digit: ``(T,)`` the digit each variant draws.
        variant: ``(T,)`` its index among its digit's variants.
        weight: ``(T,)`` its probability among its digit's variants.
        control: ``(T, C, 2)`` control points (zero padding).
        spline: ``(T, M, C)`` control points → sampled points (zero rows for padding).
        joined: ``(T, M - 1)`` whether sampled points ``m`` and ``m + 1`` lie on the same stroke.
        valid: ``(T, M)`` whether sampled point ``m`` exists.
    """

    digit: torch.Tensor
    variant: torch.Tensor
    weight: torch.Tensor
    control: torch.Tensor
    spline: torch.Tensor
    joined: torch.Tensor
    valid: torch.Tensor


def _stroke_map(stroke: Stroke, spacing: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A stroke's control points (a 2-point stroke gets its midpoint, so it can bend) and its spline map."""
    points = torch.tensor(stroke, dtype=torch.float64)
    if len(points) == 2:
        points = torch.stack([points[0], points.mean(0), points[1]])
    lengths = (points[1:] - points[:-1]).norm(dim=1).tolist()
    return points, catmull_rom(len(points), [max(2, math.ceil(length / spacing)) for length in lengths])


@functools.lru_cache(maxsize=4)
def skeletons(spacing: float = 0.045) -> Skeletons:
    """All variants packed as :class:`Skeletons`, sampled every ``spacing`` (in digit heights,
    before deformation) along each stroke."""
    entries = []
    for digit in range(10):
        total = sum(weight for weight, _ in VARIANTS[digit])
        for index, (weight, strokes) in enumerate(VARIANTS[digit]):
            entries.append((digit, index, weight / total, [_stroke_map(s, spacing) for s in strokes]))
    n_control = max(sum(len(p) for p, _ in maps) for *_, maps in entries)
    n_points = max(sum(len(w) for _, w in maps) for *_, maps in entries)
    control = torch.zeros(len(entries), n_control, 2)
    spline = torch.zeros(len(entries), n_points, n_control)
    joined = torch.zeros(len(entries), n_points - 1, dtype=torch.bool)
    valid = torch.zeros(len(entries), n_points, dtype=torch.bool)
    for t, (*_, maps) in enumerate(entries):
        c = m = 0
        for points, weights in maps:
            control[t, c : c + len(points)] = points.float()
            spline[t, m : m + len(weights), c : c + len(points)] = weights.float()
            joined[t, m : m + len(weights) - 1] = True
            valid[t, m : m + len(weights)] = True
            c, m = c + len(points), m + len(weights)
    return Skeletons(
        digit=torch.tensor([e[0] for e in entries]),
        variant=torch.tensor([e[1] for e in entries]),
        weight=torch.tensor([e[2] for e in entries]),
        control=control,
        spline=spline,
        joined=joined,
        valid=valid,
    )
