"""MNIST and Fashion-MNIST from their IDX files: found locally, or downloaded when asked.

Example:
    >>> import genvae as gv
    >>> test = gv.data.MNIST(root="../shared/data/mnist", split="test")  # doctest: +SKIP
    >>> test.images.shape, test.labels.shape                               # doctest: +SKIP
    (torch.Size([10000, 1, 28, 28]), torch.Size([10000]))
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from genvae.data.base import ImageDataset
from genvae.data.files import download, download_dir, find_file, search_dirs
from genvae.data.idx import MAX_ITEMS, IDXError, check_header, read_idx, read_idx_header

__all__ = ["MNIST", "DatasetNotFoundError", "FashionMNIST"]


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are in none of the searched folders (and no download was asked for).

    The message ends with how to download them in the words of the API that raised it
    (``download=True``); a front end that spells the option otherwise (the command line's
    ``--download``) re-raises :meth:`with_option`.

    Attributes:
        missing: what is missing, and the folders searched.
        option: how the caller asks for a download.
    """

    def __init__(self, missing: str, option: str = "download=True") -> None:
        super().__init__(f"{missing}; pass {option} to fetch it, or put the file in one of these folders")
        self.missing, self.option = missing, option

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.missing, self.option)

    def with_option(self, option: str) -> DatasetNotFoundError:
        """The same error, naming ``option`` (``"--download"``) as the way to download."""
        return type(self)(self.missing, option)


class _IDXImages(ImageDataset):
    """A dataset stored as a pair of IDX files per split (images uint8 N×H×W, labels uint8 N).

    Both headers are checked (image shape, type, count at most ``MAX_ITEMS``, equal counts, room in
    the file) before any data is read, and only the first ``limit`` items are read when asked.
    """

    NAME: ClassVar[str]
    FILES: ClassVar[dict[str, tuple[str, str]]]  # split -> (images file, labels file)
    MD5: ClassVar[dict[str, str]]  # name of the .gz file -> MD5
    MIRRORS: ClassVar[tuple[str, ...]]
    CLASSES: ClassVar[tuple[str, ...]]
    #: The shape of one image; a file announcing another is refused before it is read.
    IMAGE_SHAPE: ClassVar[tuple[int, ...]] = (28, 28)
    #: The most images a file may announce (the real splits hold 60,000 and 10,000).
    MAX_ITEMS: ClassVar[int] = MAX_ITEMS

    def __init__(
        self,
        root: str | os.PathLike[str] | None = None,
        split: str = "train",
        download: bool = False,
        *,
        limit: int | None = None,
        mirrors: Sequence[str] | None = None,
        progress: bool | None = None,
    ) -> None:
        if split not in self.FILES:
            raise ValueError(f"split: expected one of {', '.join(map(repr, self.FILES))}, got {split!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValueError(f"limit: expected a positive integer or None, got {limit!r}")
        paths = [self._locate(name, root, download, mirrors, progress) for name in self.FILES[split]]
        self._check_headers(paths[0], paths[1])
        images = read_idx(paths[0], limit=limit, shape=self.IMAGE_SHAPE, dtype=np.uint8)
        labels = read_idx(paths[1], limit=limit, shape=(), dtype=np.uint8)
        if labels.size and int(labels.max()) >= len(self.CLASSES):
            raise IDXError(f"{paths[1]}: expected labels in [0, {len(self.CLASSES) - 1}], got {int(labels.max())}")
        self.split = split
        self.paths = paths
        super().__init__(
            torch.from_numpy(images).unsqueeze(1).float().div_(255.0),
            torch.from_numpy(labels.astype(np.int64)),
            num_classes=len(self.CLASSES),
            classes=self.CLASSES,
            name=f"{self.NAME}-{split}",
        )

    @classmethod
    def _check_headers(cls, images: Path, labels: Path) -> None:
        """Both files' headers against the expected shapes and each other, before reading any data."""
        image_header, label_header = read_idx_header(images), read_idx_header(labels)
        check_header(images, image_header, shape=cls.IMAGE_SHAPE, dtype=np.uint8, max_items=cls.MAX_ITEMS)
        check_header(labels, label_header, shape=(), dtype=np.uint8, max_items=cls.MAX_ITEMS)
        if label_header.shape[0] != image_header.shape[0]:
            raise IDXError(
                f"{labels}: expected {image_header.shape[0]:,} labels to match {images.name}, "
                f"the header claims {label_header.shape[0]:,}"
            )

    @classmethod
    def _locate(
        cls,
        filename: str,
        root: str | os.PathLike[str] | None,
        fetch: bool,
        mirrors: Sequence[str] | None,
        progress: bool | None,
    ) -> Path:
        dirs = search_dirs(cls.NAME, root)
        found = find_file(filename, dirs)
        if found is not None:
            return found
        if fetch:
            name = filename + ".gz"
            return download(
                name, mirrors or cls.MIRRORS, cls.MD5[name], download_dir(cls.NAME, root), progress=progress
            )
        raise DatasetNotFoundError(
            f"{cls.NAME}: {filename}(.gz) is in none of the folders searched ({', '.join(map(str, dirs))})"
        )

    @classmethod
    def available(cls, root: str | os.PathLike[str] | None = None, split: str = "train") -> bool:
        """Whether the files of ``split`` can be found without downloading."""
        return all(find_file(f, search_dirs(cls.NAME, root)) is not None for f in cls.FILES[split])


_SPLIT_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MNIST(_IDXImages):
    """The MNIST handwritten digits (LeCun et al.): 60,000 training and 10,000 test images, 28×28.

    Args:
        root: a folder to search first (and to download into).
        split: ``"train"`` or ``"test"``.
        download: fetch missing files from the mirrors (verified by MD5, written atomically).
        limit: read only the first ``limit`` images and labels (the rest of the files is not read).
        mirrors: base URLs to use instead of the built-in list.
        progress: show a download progress bar (default: when stderr is a terminal).
    """

    NAME = "mnist"
    FILES = _SPLIT_FILES
    MD5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    }
    MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
    CLASSES = tuple(str(i) for i in range(10))


class FashionMNIST(_IDXImages):
    """Fashion-MNIST (Xiao et al., 2017): 28×28 grey images of ten kinds of clothing, in MNIST's format.

    Arguments as for :class:`MNIST`. On Debian, ``apt-get install dataset-fashion-mnist`` puts the
    files where genvae finds them.
    """

    NAME = "fashion-mnist"
    FILES = _SPLIT_FILES
    MD5: ClassVar[dict[str, str]] = {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    }
    MIRRORS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
