"""Datasets: MNIST and Fashion-MNIST from IDX files, SyntheticDigits, and the ImageDataset they share.

Every dataset gives ``images`` ``(N, 1, H, W)`` float32 in [0, 1] and ``labels`` int64, works as a
torch ``Dataset``, and can be binarised (``.binarized(0.5)`` or ``.binarized("sample")``).
"""

from typing import Any, Protocol

from genvae.data.base import ImageDataset, sample_binary
from genvae.data.files import DownloadError
from genvae.data.idx import IDXError, IDXHeader, read_idx, read_idx_header, write_idx
from genvae.data.inputs import as_tensors
from genvae.data.mnist import MNIST, DatasetNotFoundError, FashionMNIST
from genvae.data.partial import UNLABELLED, PartiallyLabeledDataset, partially_labeled
from genvae.data.synthetic import Style, SyntheticDigits
from genvae.registry import Registry, UnknownNameError

#: SyntheticDigits split sizes and seeds, the same as MNIST's split sizes.
SYNTHETIC_SPLITS = {"train": (60_000, 0), "test": (10_000, 1)}


class DatasetLoader(Protocol):
    """What a :data:`datasets` entry is: ``(split, *, root=None, download=False, limit=None)`` ->
    anything :func:`as_tensors` accepts (an :class:`ImageDataset`, a tensor pair, a torch Dataset).
    With ``limit``, only the first ``limit`` examples are wanted (read only those where possible)."""

    def __call__(
        self, split: str, *, root: str | None = None, download: bool = False, limit: int | None = None
    ) -> Any: ...


#: The datasets a run can name (``genvae train --dataset NAME``, ``TrainConfig.dataset``).
#: Register your own with ``@gv.data.datasets.register("mine")`` on a :class:`DatasetLoader`.
datasets: Registry[DatasetLoader] = Registry("datasets")


@datasets.register("mnist")
def _mnist(split: str, *, root: str | None = None, download: bool = False, limit: int | None = None) -> ImageDataset:
    return MNIST(root, split, download, limit=limit)  # reads only the first `limit` images


@datasets.register("fashion-mnist")
def _fashion_mnist(
    split: str, *, root: str | None = None, download: bool = False, limit: int | None = None
) -> ImageDataset:
    return FashionMNIST(root, split, download, limit=limit)


@datasets.register("synthetic-digits")
def _synthetic_digits(
    split: str, *, root: str | None = None, download: bool = False, limit: int | None = None
) -> ImageDataset:
    if split not in SYNTHETIC_SPLITS:
        raise ValueError(f"split: expected one of 'train', 'test', got {split!r}")
    n, seed = SYNTHETIC_SPLITS[split]
    return SyntheticDigits(min(n, limit or n), seed=seed)  # a prefix of the full set, rendered alone


#: The built-in dataset names (the :data:`datasets` registry may hold more).
DATASETS = ("mnist", "fashion-mnist", "synthetic-digits")


def load_dataset(
    name: str, split: str = "train", root: str | None = None, download: bool = False, limit: int | None = None
) -> ImageDataset:
    """A dataset of the :data:`datasets` registry by name, as an :class:`ImageDataset`: the built-in
    ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic-digits"`` have 60,000 training and 10,000 test
    images (SyntheticDigits with disjoint seeds); with ``limit``, only the first ``limit`` images,
    and only those are read from disk (or drawn).

    Example:
        >>> load_dataset("synthetic-digits", "test").images.shape
        torch.Size([10000, 1, 28, 28])
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected a positive integer or None, got {limit!r}")
    if not isinstance(name, str) or name not in datasets:
        raise UnknownNameError(f"name: expected one of {', '.join(datasets.names())}, got {name!r}")
    loader = datasets.get(name)
    data = loader(split, root=root, download=download, limit=limit)
    if isinstance(data, ImageDataset):
        return data
    images, labels = as_tensors(data, argument=f"datasets[{name!r}]", limit=limit)
    if labels is None:
        raise ValueError(f"datasets[{name!r}]: expected images with their labels, got images alone")
    return ImageDataset(images, labels, name=name)


__all__ = [
    "DATASETS",
    "MNIST",
    "UNLABELLED",
    "DatasetLoader",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNIST",
    "IDXError",
    "IDXHeader",
    "ImageDataset",
    "PartiallyLabeledDataset",
    "Style",
    "SyntheticDigits",
    "as_tensors",
    "datasets",
    "load_dataset",
    "partially_labeled",
    "read_idx",
    "read_idx_header",
    "sample_binary",
    "write_idx",
]
