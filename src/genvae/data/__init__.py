"""Datasets: MNIST and Fashion-MNIST from IDX files, SyntheticDigits, and the ImageDataset they share.

Every dataset gives ``images`` ``(N, 1, H, W)`` float32 in [0, 1] and ``labels`` int64, works as a
torch ``Dataset``, and can be binarised (``.binarized(0.5)`` or ``.binarized("sample")``).
"""

from genvae.data.base import ImageDataset, sample_binary
from genvae.data.files import DownloadError
from genvae.data.idx import IDXError, IDXHeader, read_idx, read_idx_header, write_idx
from genvae.data.inputs import as_tensors
from genvae.data.mnist import MNIST, DatasetNotFoundError, FashionMNIST
from genvae.data.partial import UNLABELLED, PartiallyLabeledDataset, partially_labeled
from genvae.data.synthetic import Style, SyntheticDigits

#: Dataset names accepted by :func:`load_dataset` and the command line.
DATASETS = ("mnist", "fashion-mnist", "synthetic-digits")
#: SyntheticDigits split sizes and seeds, the same as MNIST's split sizes.
SYNTHETIC_SPLITS = {"train": (60_000, 0), "test": (10_000, 1)}


def load_dataset(
    name: str, split: str = "train", root: str | None = None, download: bool = False, limit: int | None = None
) -> ImageDataset:
    """A dataset by name: ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic-digits"`` (60,000
    training and 10,000 test images, disjoint seeds); with ``limit``, only its first ``limit`` images,
    and only those are read from disk (or drawn).

    Example:
        >>> load_dataset("synthetic-digits", "test").images.shape
        torch.Size([10000, 1, 28, 28])
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected a positive integer or None, got {limit!r}")
    if name == "mnist":
        return MNIST(root, split, download, limit=limit)  # reads only the first `limit` images
    if name == "fashion-mnist":
        return FashionMNIST(root, split, download, limit=limit)
    if name == "synthetic-digits":
        if split not in SYNTHETIC_SPLITS:
            raise ValueError(f"split: expected one of 'train', 'test', got {split!r}")
        n, seed = SYNTHETIC_SPLITS[split]
        return SyntheticDigits(min(n, limit or n), seed=seed)  # a prefix of the full set, rendered alone
    raise KeyError(f"name: expected one of {', '.join(DATASETS)}, got {name!r}")


__all__ = [
    "DATASETS",
    "MNIST",
    "UNLABELLED",
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
    "load_dataset",
    "partially_labeled",
    "read_idx",
    "read_idx_header",
    "sample_binary",
    "write_idx",
]
