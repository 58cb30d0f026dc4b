"""The in-memory image dataset every genvae dataset is: ``images`` and ``labels`` tensors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from genvae._validation import fmt_shape

__all__ = ["ImageDataset", "sample_binary"]


def sample_binary(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Binary images drawn as ``Bernoulli(pixel)``: the "sampled binarisation" of grey images in [0, 1]
    (a fresh draw on every call, so every epoch sees new binary images)."""
    return torch.bernoulli(x, generator=generator)


class ImageDataset(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Images ``(N, C, H, W)`` float32 in [0, 1] with integer labels ``(N,)``.

    It is a torch ``Dataset`` (``dataset[i]`` is ``(image, label)``), and the :class:`~genvae.Trainer`
    batches it by index directly on the device, without per-sample calls.

    Args:
        images: float tensor ``(N, C, H, W)`` with values in [0, 1].
        labels: integer tensor ``(N,)``.
        num_classes: number of classes (default: ``labels.max() + 1``).
        classes: optional class names.
        name: a short name for reports.
        binarize: ``None``; ``"sample"`` to draw binary images ``~ Bernoulli(pixel)`` anew for
            every batch (so every epoch sees fresh samples). For a fixed threshold use
            :meth:`binarized`.

    Example:
        >>> import torch
        >>> ds = ImageDataset(torch.rand(10, 1, 4, 4), torch.arange(10) % 3)
        >>> len(ds), ds.num_classes, ds.image_shape
        (10, 3, (1, 4, 4))
        >>> bool(((ds.binarized(0.5).images == 0) | (ds.binarized(0.5).images == 1)).all())
        True
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int | None = None,
        classes: Sequence[str] | None = None,
        name: str = "images",
        binarize: str | None = None,
    ) -> None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point():
            got = (
                fmt_shape(images.shape) + f" {images.dtype}"
                if isinstance(images, torch.Tensor)
                else type(images).__name__
            )
            raise ValueError(f"images: expected a float tensor of shape (N, C, H, W), got {got}")
        if not isinstance(labels, torch.Tensor) or labels.shape != images.shape[:1] or labels.is_floating_point():
            got = (
                fmt_shape(labels.shape) + f" {labels.dtype}"
                if isinstance(labels, torch.Tensor)
                else type(labels).__name__
            )
            raise ValueError(f"labels: expected an integer tensor of shape ({images.shape[0]},), got {got}")
        if binarize not in (None, "sample"):
            raise ValueError(
                f"binarize: expected None or 'sample' (use .binarized(t) for a threshold), got {binarize!r}"
            )
        self.images = images
        self.labels = labels.long()
        self.num_classes = int(num_classes) if num_classes is not None else int(labels.max()) + 1 if len(labels) else 0
        self.classes = list(classes) if classes is not None else [str(i) for i in range(self.num_classes)]
        self.name = name
        self.binarize = binarize

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The shape of one image, ``(channels, height, width)``."""
        c, h, w = self.images.shape[1:]
        return (int(c), int(h), int(w))

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self.images[index]
        return (sample_binary(image) if self.binarize == "sample" else image), self.labels[index]

    def batch(
        self, index: torch.Tensor | slice, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Images and labels at ``index``, binarised by sampling if this dataset samples."""
        x = self.images[index]
        return (sample_binary(x, generator) if self.binarize == "sample" else x), self.labels[index]

    def _like(self, images: torch.Tensor, labels: torch.Tensor, **changes: Any) -> ImageDataset:
        kwargs: dict[str, Any] = {
            "num_classes": self.num_classes,
            "classes": self.classes,
            "name": self.name,
            "binarize": self.binarize,
        }
        kwargs.update(changes)
        return ImageDataset(images, labels, **kwargs)

    def binarized(self, threshold: float | str = 0.5) -> ImageDataset:
        """A binary copy: pixels ``> threshold`` become 1, or with ``"sample"`` each batch draws
        ``Bernoulli(pixel)`` anew."""
        if threshold == "sample":
            return self._like(self.images, self.labels, binarize="sample")
        if isinstance(threshold, bool) or not isinstance(threshold, int | float) or not 0 <= threshold < 1:
            raise ValueError(f"threshold: expected a number in [0, 1) or 'sample', got {threshold!r}")
        return self._like((self.images > threshold).to(self.images.dtype), self.labels, binarize=None)

    def subset(self, index: torch.Tensor | slice | Sequence[int]) -> ImageDataset:
        """The images at ``index`` (e.g. ``slice(0, 8000)``), as a dataset of the same kind."""
        if isinstance(index, Sequence):
            index = torch.as_tensor(index, dtype=torch.long)
        return self._like(self.images[index], self.labels[index])

    def to(self, device: torch.device | str) -> ImageDataset:
        """The same dataset with its tensors on ``device``."""
        return self._like(self.images.to(device), self.labels.to(device))

    def __repr__(self) -> str:
        extra = f", binarize={self.binarize!r}" if self.binarize else ""
        return f"{type(self).__name__}({self.name!r}, n={len(self)}, image_shape={self.image_shape}{extra})"
