"""SyntheticDigits: digit images rendered offline from the fonts matplotlib ships, with known
style factors.

Each glyph (10 digits × several fonts) is rendered once, at twice the output resolution; every
sample is then that glyph thickened or thinned, rotated, scaled, sheared and moved by one batched
affine resampling (``grid_sample``), and averaged down to the output size. The style factors of
each sample are returned with it, so a latent space can be compared with the true factors.
"""

from __future__ import annotations

import functools
import math
import os

import torch
import torch.nn.functional as F

from genvae.data.base import ImageDataset

__all__ = ["SyntheticDigits"]

#: Font files from matplotlib's own ``mpl-data/fonts/ttf``: sans, serif, monospace, STIX, Computer Modern.
FONTS = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSerif.ttf",
    "DejaVuSansMono.ttf",
    "STIXGeneral.ttf",
    "cmr10.ttf",
)
#: Stroke thickness levels: 0 is the font's own stroke, each further level one 3×3 dilation of
#: the double-size glyph (about half a pixel more stroke on each side in the output).
THICKNESS = (0, 1, 2, 3)

# Ranges of the uniformly drawn style factors.
ROTATION_DEG = (-25.0, 25.0)
SCALE = (0.75, 1.1)
SHEAR = (-0.35, 0.35)
SHIFT = (-0.12, 0.12)  # fraction of the image's half-width


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError(
            "SyntheticDigits renders digits with matplotlib's fonts; install it with `pip install genvae[viz]`"
        ) from None


@functools.lru_cache(maxsize=4)
def glyphs(size: int) -> torch.Tensor:
    """Templates ``(len(FONTS), 10, len(THICKNESS), size, size)`` in [0, 1]: each digit in each
    font, centred, its height 70% of the square, at each stroke thickness."""
    _require_matplotlib()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.font_manager import FontProperties
    from matplotlib.patches import PathPatch
    from matplotlib.textpath import TextPath
    from matplotlib.transforms import Affine2D

    font_dir = os.path.join(os.path.dirname(matplotlib.__file__), "mpl-data", "fonts", "ttf")
    out = torch.zeros(len(FONTS), 10, size, size)
    for f, font in enumerate(FONTS):
        prop = FontProperties(fname=os.path.join(font_dir, font))
        for digit in range(10):
            path = TextPath((0, 0), str(digit), size=1, prop=prop)
            box = path.get_extents()
            scale = 0.7 / box.height
            to_unit = (
                Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2).scale(scale).translate(0.5, 0.5)
            )
            fig = Figure(figsize=(1, 1), dpi=size)
            canvas = FigureCanvasAgg(fig)
            ax = fig.add_axes((0, 0, 1, 1))
            ax.set_axis_off()
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.add_patch(PathPatch(to_unit.transform_path(path), facecolor="black", edgecolor="none"))
            canvas.draw()
            rgba = torch.frombuffer(bytearray(canvas.buffer_rgba()), dtype=torch.uint8).view(size, size, 4)
            out[f, digit] = 1.0 - rgba[..., 0].float() / 255.0
    levels = []
    for level in THICKNESS:
        t = out.view(-1, 1, size, size)
        for _ in range(level):
            t = F.max_pool2d(t, 3, 1, 1)
        levels.append(t.view(len(FONTS), 10, size, size))
    return torch.stack(levels, dim=2)


_BLOCK = 1024


def _draw(seed: int, block: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Labels and style factors of one block of samples."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + block)

    def uniform(bounds: tuple[float, float]) -> torch.Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(_BLOCK, generator=gen)

    labels = torch.randint(0, 10, (_BLOCK,), generator=gen)
    factors = {
        "font": torch.randint(0, len(FONTS), (_BLOCK,), generator=gen),
        "thickness": torch.tensor(THICKNESS)[torch.randint(0, len(THICKNESS), (_BLOCK,), generator=gen)],
        "rotation": uniform(ROTATION_DEG),
        "scale": uniform(SCALE),
        "shear": uniform(SHEAR),
        "shift_x": uniform(SHIFT),
        "shift_y": uniform(SHIFT),
    }
    return labels, factors


class SyntheticDigits(ImageDataset):
    """``n`` digit images rendered from matplotlib's fonts with random style, and their style factors.

    Deterministic for a given ``seed``, and the first ``k`` images of a set of ``n`` are the set
    of ``k``; vectorised (60,000 images take a few seconds).

    Args:
        n: number of images.
        seed: seed of the random style and label draws.
        image_size: height and width of the square images.

    Attributes:
        factors: a dict of ``(n,)`` tensors: ``rotation`` (degrees), ``scale``, ``shear``,
            ``thickness`` (level: 0 the font's stroke … 3 bold), ``shift_x``, ``shift_y`` (fractions of the
            half-width), ``font`` (index into :data:`FONTS`).

    Example:
        >>> ds = SyntheticDigits(100, seed=1)
        >>> ds.images.shape, ds.labels[:5].tolist() == SyntheticDigits(100, seed=1).labels[:5].tolist()
        (torch.Size([100, 1, 28, 28]), True)
        >>> sorted(ds.factors)
        ['font', 'rotation', 'scale', 'shear', 'shift_x', 'shift_y', 'thickness']
    """

    def __init__(self, n: int, seed: int = 0, image_size: int = 28) -> None:
        for name, value in (("n", n), ("image_size", image_size)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        if image_size < 8:
            raise ValueError(f"image_size: expected at least 8 pixels, got {image_size}")
        # Draws come in blocks of _BLOCK samples, each from its own generator, so that the first k
        # images of SyntheticDigits(n) are SyntheticDigits(k): a smaller set is a prefix of a larger one.
        blocks = [_draw(seed, b) for b in range(math.ceil(n / _BLOCK))]
        labels = torch.cat([b[0] for b in blocks])[:n]
        factors = {k: torch.cat([b[1][k] for b in blocks])[:n] for k in blocks[0][1]}
        images = self._render(labels, factors, image_size)
        self.factors = factors
        self.seed = seed
        super().__init__(images, labels, num_classes=10, name=f"synthetic-digits-{n}-seed{seed}")

    @staticmethod
    def _render(labels: torch.Tensor, factors: dict[str, torch.Tensor], size: int) -> torch.Tensor:
        hi = 2 * size  # render at twice the size, then average 2×2 blocks: anti-aliasing
        templates = glyphs(hi).view(-1, 1, hi, hi)
        index = (factors["font"] * 10 + labels) * len(THICKNESS) + (factors["thickness"] - THICKNESS[0])
        # The forward map M = shift · rotation · shear · scale takes glyph coordinates to image
        # coordinates; grid_sample needs the inverse, image → glyph.
        angle = factors["rotation"] * (math.pi / 180)
        cos, sin, shear, scale = torch.cos(angle), torch.sin(angle), factors["shear"], factors["scale"]
        a = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
        a = a @ torch.stack(
            [torch.stack([scale, shear * scale], -1), torch.stack([torch.zeros_like(scale), scale], -1)], -2
        )
        inverse = torch.linalg.inv(a)
        shift = torch.stack([factors["shift_x"], factors["shift_y"]], -1)
        theta = torch.cat([inverse, -(inverse @ shift.unsqueeze(-1))], dim=-1)
        out = torch.empty(len(labels), 1, size, size)
        for start in range(0, len(labels), 4096):  # bounded memory
            sl = slice(start, start + 4096)
            grid = F.affine_grid(theta[sl], [theta[sl].shape[0], 1, hi, hi], align_corners=False)
            sampled = F.grid_sample(templates[index[sl]], grid, align_corners=False)
            out[sl] = F.avg_pool2d(sampled, 2).clamp_(0, 1)
        return out
