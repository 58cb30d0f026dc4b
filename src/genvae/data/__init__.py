"""Datasets: MNIST and Fashion-MNIST from IDX files, SyntheticDigits, and the ImageDataset they share.

Every dataset gives ``images`` ``(N, 1, H, W)`` float32 in [0, 1] and ``labels`` int64, works as a
torch ``Dataset``, and can be binarised (``.binarized(0.5)`` or ``.binarized("sample")``).
"""

from genvae.data.base import ImageDataset, sample_binary
from genvae.data.files import DownloadError
from genvae.data.idx import IDXError, read_idx, write_idx
from genvae.data.inputs import as_tensors
from genvae.data.mnist import MNIST, DatasetNotFoundError, FashionMNIST
from genvae.data.synthetic import SyntheticDigits

#: Dataset names accepted by :func:`load_dataset` and the command line.
DATASETS = ("mnist", "fashion-mnist", "synthetic-digits")
#: SyntheticDigits split sizes and seeds, the same as MNIST's split sizes.
SYNTHETIC_SPLITS = {"train": (60_000, 0), "test": (10_000, 1)}


def load_dataset(
    name: str, split: str = "train", root: str | None = None, download: bool = False, limit: int | None = None
) -> ImageDataset:
    """A dataset by name: ``"mnist"``, ``"fashion-mnist"`` or ``"synthetic-digits"`` (60,000
    training and 10,000 test images, disjoint seeds); with ``limit``, only its first ``limit`` images.

    Example:
        >>> load_dataset("synthetic-digits", "test").images.shape
        torch.Size([10000, 1, 28, 28])
    """
    dataset: ImageDataset
    if name == "mnist":
        dataset = MNIST(root, split, download)
    elif name == "fashion-mnist":
        dataset = FashionMNIST(root, split, download)
    elif name == "synthetic-digits":
        if split not in SYNTHETIC_SPLITS:
            raise ValueError(f"split: expected one of 'train', 'test', got {split!r}")
        n, seed = SYNTHETIC_SPLITS[split]
        return SyntheticDigits(min(n, limit or n), seed=seed)  # a prefix of the full set, rendered alone
    else:
        raise KeyError(f"name: expected one of {', '.join(DATASETS)}, got {name!r}")
    return dataset.subset(slice(0, limit)) if limit is not None else dataset


__all__ = [
    "DATASETS",
    "MNIST",
    "DatasetNotFoundError",
    "DownloadError",
    "FashionMNIST",
    "IDXError",
    "ImageDataset",
    "SyntheticDigits",
    "as_tensors",
    "load_dataset",
    "read_idx",
    "sample_binary",
    "write_idx",
]
