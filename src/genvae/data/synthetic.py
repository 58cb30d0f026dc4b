"""SyntheticDigits: handwriting-like digits drawn offline from pen-stroke skeletons, calibrated
against MNIST, with known style factors.

How one image is made (every step batched; sizes for 28×28 images, scaled with ``image_size``):

1. a digit, and one of its written forms (:mod:`genvae.data.digit_strokes`: an open or closed 4, a
   2 with or without a loop, ...);
2. its control points moved by a smooth random deformation field (``elastic``) and a little
   independent noise (``jitter``), then widened (``aspect``), sheared (``slant``) and rotated
   (``rotation``);
3. the strokes sampled densely along their splines and scaled as MNIST's digits were: the longer
   side of the bounding box fills a box of :attr:`Style.box` pixels, the centre of mass at (14, 14);
4. the ink: each sampled point spreads a small Gaussian, and the summed density gives the distance
   to the pen's path (exact for a straight stroke, slightly less where strokes cross). A pixel's
   intensity is the overlap of a pen ``thickness`` pixels wide with an aperture ``softness`` pixels
   wide, smoothed: the anti-aliased, not always saturated edges of MNIST's scans. The pen's pressure, hence
   the stroke's width, varies along its path (``pressure``);
5. intensities rounded to multiples of 1/255 (MNIST is 8-bit), and the image moved by whole pixels
   so that its centre of mass lies within half a pixel of the centre, as in MNIST.

The style ranges (:class:`Style`) are calibrated against the MNIST test split: stroke width, size,
slant (per digit), position, the intensity histogram and the mean image; ``benchmarks/
synthetic_realism.py`` measures them and how well a classifier trained on these digits reads real
ones.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genvae.data.base import ImageDataset
from genvae.data.digit_strokes import Skeletons, skeletons

__all__ = ["FACTORS", "Style", "SyntheticDigits"]

#: The style factors of each image (``SyntheticDigits.factors``), in order, with their meaning.
FACTORS = {
    "variant": "which written form of its digit (index into digit_strokes.VARIANTS[digit])",
    "slant": "horizontal shear, x shift per unit of height (positive leans right)",
    "rotation": "rotation in degrees (positive counter-clockwise)",
    "aspect": "width multiplier of the skeleton before size normalisation",
    "thickness": "pen width in pixels of a 28-pixel image",
    "softness": "width in pixels of the aperture that anti-aliases the edges (wider: softer, greyer)",
    "elastic": "amplitude of the smooth deformation of the skeleton, in digit heights",
    "pressure": "amplitude of the pen-width variation along the path (the width times exp(±pressure))",
    "jitter": "standard deviation of the independent noise on each control point, in digit heights",
    "shift_x": "centre of mass minus the image centre, pixels (within ±0.5, as in MNIST)",
    "shift_y": "centre of mass minus the image centre, pixels (within ±0.5, as in MNIST)",
}
_TRUNCATE = 2.5  # normal draws are cut at ±2.5 standard deviations
_BLOCK = 256
_PEN_SIGMA = 0.6  # pixels (at 28): the Gaussian each sampled point spreads; below the pen width
# The deformation field: sinusoids of these (x, y) frequencies in the unit box, random amplitudes and phases.
_FIELD = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [1.0, -1.0], [2.0, 0.0], [0.0, 2.0]]) * math.pi


@dataclass(frozen=True)
class Style:
    """The distributions of the style factors (defaults calibrated against MNIST's test split).

    Normal draws are truncated at ±2.5 standard deviations; log-normal ones are ``median ·
    exp(sd · truncated normal)``. :meth:`ranges` gives the bounds of every factor.

    Attributes:
        digit_slant: mean slant of each digit 0–9 (a skeleton's own lean differs per digit).
        digit_aspect: median width multiplier of each digit 0–9.
        slant_sd: standard deviation of the slant around its digit's mean.
        rotation_sd: standard deviation of the rotation, degrees.
        aspect_sd: standard deviation of the log width multiplier.
        thickness: median pen width, pixels at 28; ``thickness_sd`` the sd of its log.
        softness: range of the edge aperture, pixels at 28 (uniform).
        elastic: largest deformation amplitude (uniform from 0), digit heights.
        pressure: largest pen-width variation amplitude (uniform from 0).
        jitter: range of the control-point noise (uniform), digit heights.
        box: pixels (at 28) that the longer side of a digit's skeleton plus its pen width fills.
    """

    digit_slant: tuple[float, ...] = (0.223, 0.224, 0.009, 0.049, 0.225, 0.281, -0.04, -0.011, 0.139, 0.171)
    digit_aspect: tuple[float, ...] = (1.219, 1.183, 1.191, 1.022, 1.012, 1.125, 1.192, 1.066, 1.038, 0.949)
    slant_sd: float = 0.21
    rotation_sd: float = 6.0
    aspect_sd: float = 0.12
    thickness: float = 2.4
    thickness_sd: float = 0.27
    softness: tuple[float, float] = (1.0, 1.5)
    elastic: float = 0.2
    pressure: float = 0.25
    jitter: tuple[float, float] = (0.01, 0.03)
    box: float = 19.8

    def __post_init__(self) -> None:
        for name in ("digit_slant", "digit_aspect"):
            if len(getattr(self, name)) != 10:
                raise ValueError(f"{name}: expected 10 values (one per digit), got {len(getattr(self, name))}")

    def ranges(self) -> dict[str, tuple[float, float]]:
        """The smallest and largest value each factor can take (``variant`` and the shifts included)."""
        t = _TRUNCATE
        return {
            "variant": (0, max(len(v) for v in _variants()) - 1),
            "slant": (min(self.digit_slant) - t * self.slant_sd, max(self.digit_slant) + t * self.slant_sd),
            "rotation": (-t * self.rotation_sd, t * self.rotation_sd),
            "aspect": (
                min(self.digit_aspect) * math.exp(-t * self.aspect_sd),
                max(self.digit_aspect) * math.exp(t * self.aspect_sd),
            ),
            "thickness": (
                self.thickness * math.exp(-t * self.thickness_sd),
                self.thickness * math.exp(t * self.thickness_sd),
            ),
            "softness": self.softness,
            "elastic": (0.0, self.elastic),
            "pressure": (0.0, self.pressure),
            "jitter": self.jitter,
            "shift_x": (-0.5, 0.5),
            "shift_y": (-0.5, 0.5),
        }


def _variants() -> list[list[int]]:
    skel = skeletons()
    return [torch.nonzero(skel.digit == d).flatten().tolist() for d in range(10)]


def _pick_templates(skel: Skeletons, labels: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Index into ``skel`` of a variant of each label, drawn by the variants' weights (inverse CDF of ``u``)."""
    rows = _variants()
    width = max(len(r) for r in rows)
    cumulative = torch.full((10, width), math.inf)
    for d, row in enumerate(rows):
        cumulative[d, : len(row) - 1] = torch.cumsum(skel.weight[row], 0)[:-1]  # the last variant takes the rest
    first = torch.tensor([row[0] for row in rows])
    return first[labels] + (cumulative[labels] < u.unsqueeze(1)).sum(1)


@dataclass
class _Noise:
    """The random draws of a block that are not style factors: they vary an image without a name."""

    control: torch.Tensor  # (n, C, 2) standard normal, scaled by the jitter
    field_amplitude: torch.Tensor  # (n, 2, F) standard normal
    field_phase: torch.Tensor  # (n, 2, F) uniform in [0, 2π)
    pressure_frequency: torch.Tensor  # (n,) cycles along the path
    pressure_phase: torch.Tensor  # (n,)
    centre: torch.Tensor  # (n, 2) uniform in [-0.5, 0.5): where the centre of mass is aimed


def _draw(style: Style, seed: int, block: int) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor], _Noise]:
    """Labels, variant indices into :func:`skeletons`, style factors and noise of one block."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + block)
    n, skel = _BLOCK, skeletons()

    def normal() -> torch.Tensor:
        return torch.randn(n, generator=gen).clamp_(-_TRUNCATE, _TRUNCATE)

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        return bounds[0] + (bounds[1] - bounds[0]) * torch.rand(n, generator=gen)

    labels = torch.randint(0, 10, (n,), generator=gen)
    templates = _pick_templates(skel, labels, torch.rand(n, generator=gen))
    factors = {
        "variant": skel.variant[templates],
        "slant": torch.tensor(style.digit_slant)[labels] + style.slant_sd * normal(),
        "rotation": style.rotation_sd * normal(),
        "aspect": torch.tensor(style.digit_aspect)[labels] * torch.exp(style.aspect_sd * normal()),
        "thickness": style.thickness * torch.exp(style.thickness_sd * normal()),
        "softness": uniform(style.softness),
        "elastic": uniform((0.0, style.elastic)),
        "pressure": uniform((0.0, style.pressure)),
        "jitter": uniform(style.jitter),
    }
    noise = _Noise(
        control=torch.randn(n, skel.control.shape[1], 2, generator=gen),
        field_amplitude=torch.randn(n, 2, len(_FIELD), generator=gen),
        field_phase=2 * math.pi * torch.rand(n, 2, len(_FIELD), generator=gen),
        pressure_frequency=uniform((0.5, 2.0)),
        pressure_phase=torch.rand(n, generator=gen),
        centre=torch.rand(n, 2, generator=gen) - 0.5,
    )
    return labels, templates, factors, noise


def _deform(control: torch.Tensor, factors: dict[str, torch.Tensor], noise: _Noise) -> torch.Tensor:
    """Control points ``(n, C, 2)`` (unit box, y up) deformed, widened, sheared and rotated, in
    image orientation (y down)."""
    jitter, elastic = factors["jitter"].view(-1, 1, 1), factors["elastic"].view(-1, 1, 1)
    waves = torch.sin((control @ _FIELD.T).unsqueeze(2) + noise.field_phase.unsqueeze(1))  # (n, C, 2, F)
    field = (waves * noise.field_amplitude.unsqueeze(1)).sum(-1) / math.sqrt(len(_FIELD))
    points = control + elastic * field + jitter * noise.control
    x = points[..., 0] * factors["aspect"].unsqueeze(1) + factors["slant"].unsqueeze(1) * points[..., 1]
    y = points[..., 1]
    angle = torch.deg2rad(factors["rotation"]).unsqueeze(1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.stack([x * cos - y * sin, -(x * sin + y * cos)], dim=-1)


def _sample(skel: Skeletons, templates: torch.Tensor, control: torch.Tensor) -> torch.Tensor:
    """Points ``(n, M, 2)`` sampled along the strokes: each sample's spline map times its control points."""
    return torch.bmm(skel.spline[templates], control)


def _place(
    points: torch.Tensor,
    skel: Skeletons,
    templates: torch.Tensor,
    factors: dict[str, torch.Tensor],
    noise: _Noise,
    box: float,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Points moved to pixels as MNIST placed its digits (bounding box scaled to ``box``, centre of
    mass aimed at the centre), and the ink density each point lays down."""
    px, sigma = size / 28, _PEN_SIGMA * size / 28
    valid = skel.valid[templates].unsqueeze(-1)
    low = torch.where(valid, points, math.inf).amin(1)
    high = torch.where(valid, points, -math.inf).amax(1)
    thickness = factors["thickness"] * px
    points = (points - low.unsqueeze(1)) * ((box * px - thickness) / (high - low).amax(1)).view(-1, 1, 1)
    # Each point stands for half of each of its segments: a line's density is then uniform.
    segments = (points[:, 1:] - points[:, :-1]).norm(dim=-1) * skel.joined[templates]
    length = F.pad(segments, (1, 0)) / 2 + F.pad(segments, (0, 1)) / 2
    position = torch.linspace(0, 1, points.shape[1])
    cycles = noise.pressure_frequency.unsqueeze(1) * position + noise.pressure_phase.unsqueeze(1)
    half = thickness.unsqueeze(1) / 2
    local = half * torch.exp(factors["pressure"].unsqueeze(1) * torch.sin(2 * math.pi * cycles))  # pen half-width
    # Density × k moves a line's edge from h to sqrt(h² + 2σ² log k) (see _ink): k that gives the local width.
    log_k = (local**2 - half**2) / (2 * sigma**2)
    mass = length * local  # the ink each point lays: the centre of mass follows without rendering twice
    centre = (points * mass.unsqueeze(-1)).sum(1) / mass.sum(1, keepdim=True).clamp_min(1e-12)
    points = points - centre.unsqueeze(1) + (size / 2 + noise.centre).unsqueeze(1)
    return points, length * torch.exp(log_k)


def _ink(points: torch.Tensor, density: torch.Tensor, factors: dict[str, torch.Tensor], size: int) -> torch.Tensor:
    """Images ``(n, size, size)`` of the pen's path through ``points`` (each laying ``density``)."""
    px = size / 28
    sigma = _PEN_SIGMA * px
    grid = torch.arange(size, dtype=points.dtype)
    # A separable Gaussian per point; exponents floored at -40 so that products of two stay normal
    # floats (denormals are slow, and the floor is far beyond any pen's edge).
    g = (grid - points.unsqueeze(-1)).square_().mul_(-0.5 / sigma**2).clamp_min_(-40.0).exp_()  # (n, M, 2, size)
    total = (g[:, :, 1] * density.unsqueeze(-1)).transpose(1, 2) @ g[:, :, 0]  # (n, rows, cols)
    # A straight line of unit density sums to √(2π)σ·exp(-d²/2σ²) at distance d: invert for d.
    reference = math.log(math.sqrt(2 * math.pi) * sigma)
    distance = total.clamp_min_(1e-30).log_().neg_().add_(reference).clamp_min_(0).mul_(2).sqrt_().mul_(sigma)
    half = (factors["thickness"] * px / 2).view(-1, 1, 1)
    aperture = (factors["softness"] * px).view(-1, 1, 1)
    # The overlap of the pen's cross-section [-h, h] with an aperture [d - a/2, d + a/2], over a,
    # through a smoothstep: steeper mid-greys and softer tails, MNIST's intensity histogram.
    overlap = torch.minimum(distance + aperture / 2, half) - torch.maximum(distance - aperture / 2, -half)
    u = overlap.clamp_(min=0).div_(aperture)
    return (u * u * (3 - 2 * u)).mul_(255).round_().div_(255)  # 8-bit levels, as MNIST's


_PAD = 3  # the most whole pixels an image is moved to centre its mass


def _centre_of_mass(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centre of mass (x, y) of each image ``(n, H, W)``, in pixel indices."""
    coords = torch.arange(images.shape[-1], dtype=images.dtype)
    mass = images.sum((1, 2)).clamp_min(1e-12)
    return (images.sum(1) * coords).sum(1) / mass, (images.sum(2) * coords).sum(1) / mass


def _centre_on_pixels(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``images`` (n, H, W) moved by whole pixels so that each centre of mass is within half a pixel
    of the centre (MNIST's placement); also the remaining offsets x and y."""
    n, size = images.shape[0], images.shape[-1]
    centre_x, centre_y = _centre_of_mass(images)
    dy = torch.round(size / 2 - centre_y).clamp(-_PAD, _PAD).long()
    dx = torch.round(size / 2 - centre_x).clamp(-_PAD, _PAD).long()
    index = torch.arange(size) + _PAD
    rows = (index - dy.unsqueeze(1)).view(n, size, 1)
    cols = (index - dx.unsqueeze(1)).view(n, 1, size)
    moved = F.pad(images, (_PAD,) * 4)[torch.arange(n).view(n, 1, 1), rows, cols]
    centre_x, centre_y = _centre_of_mass(moved)  # measured again: ink moved past an edge is lost
    return moved, centre_x - size / 2, centre_y - size / 2


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Draw on one thread: the many mid-sized tensor operations gain little from more threads and lose
    much when the cores are shared (measured on 2 busy cores: 20,000 images in 2.5 s on one thread,
    57 s on two). It also makes the images the same whatever the caller's thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _render_block(
    style: Style, seed: int, block: int, size: int
) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """Images ``(B, 1, size, size)``, labels and factors of one whole block (always the whole block, so
    that every image is computed alike however many of the block a dataset keeps)."""
    labels, templates, factors, noise = _draw(style, seed, block)
    skel = skeletons()
    control = _deform(skel.control[templates], factors, noise)
    points, density = _place(_sample(skel, templates, control), skel, templates, factors, noise, style.box, size)
    images, factors["shift_x"], factors["shift_y"] = _centre_on_pixels(_ink(points, density, factors, size))
    return images.unsqueeze(1), labels, factors


class SyntheticDigits(ImageDataset):
    """``n`` handwriting-like digit images drawn from pen-stroke skeletons, with their style factors.

    Deterministic for a given ``seed``; the first ``k`` images of a set of ``n`` are the set of
    ``k`` (bit for bit); 60,000 images in a few seconds (drawn on one thread, whatever
    ``torch.get_num_threads()`` says). Needs only torch.

    Args:
        n: number of images.
        seed: seed of the random digits and styles.
        image_size: height and width of the square images (sizes in :class:`Style` are for 28 and scale).
        style: the distributions of the style factors (default: calibrated against MNIST).

    Attributes:
        factors: a dict of ``(n,)`` tensors, one per style factor (see :data:`FACTORS` for the
            meanings, :meth:`Style.ranges` for the ranges): ``variant``, ``slant``, ``rotation``,
            ``aspect``, ``thickness``, ``softness``, ``elastic``, ``pressure``, ``jitter``,
            ``shift_x``, ``shift_y``.
        style: the :class:`Style` drawn from.

    Example:
        >>> ds = SyntheticDigits(100, seed=1)
        >>> ds.images.shape, torch.equal(ds.images[:10], SyntheticDigits(10, seed=1).images)
        (torch.Size([100, 1, 28, 28]), True)
        >>> list(ds.factors) == list(FACTORS)
        True
    """

    def __init__(self, n: int, seed: int = 0, image_size: int = 28, style: Style | None = None) -> None:
        for name, value in (("n", n), ("image_size", image_size), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(
                    f"{name}: expected a {'non-negative' if name == 'seed' else 'positive'} integer, got {value!r}"
                )
        if image_size < 8:
            raise ValueError(f"image_size: expected at least 8 pixels, got {image_size}")
        self.style = style if style is not None else Style()
        images = torch.empty(n, 1, image_size, image_size)
        labels = torch.empty(n, dtype=torch.long)
        parts: list[dict[str, torch.Tensor]] = []
        # Each block of draws has its own generator and is rendered whole, so a smaller set is a prefix of a larger one.
        with _one_thread():
            for block in range(math.ceil(n / _BLOCK)):
                keep = slice(block * _BLOCK, min(n, (block + 1) * _BLOCK))
                block_images, block_labels, block_factors = _render_block(self.style, seed, block, image_size)
                count = keep.stop - keep.start
                images[keep], labels[keep] = block_images[:count], block_labels[:count]
                parts.append({k: v[:count] for k, v in block_factors.items()})
        self.factors = {k: torch.cat([p[k] for p in parts]) for k in FACTORS}
        self.seed = seed
        super().__init__(images, labels, num_classes=10, name=f"synthetic-digits-{n}-seed{seed}")
