"""Turning what a user passes to ``fit``/``evaluate`` into batches ``(x, y)`` on the device.

In-memory data (a tensor, an ``(images, labels)`` pair, an :class:`~genvae.data.ImageDataset`)
is moved to the device once and batched by indexing with a permutation: no per-sample
``__getitem__`` and no collation. Other ``Dataset``\\ s go through a ``DataLoader``; a
``DataLoader`` is used as it is.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from genvae._validation import check_finite, fmt_shape
from genvae.data.base import ImageDataset

__all__ = ["Batches", "as_batches"]

Batch = tuple[torch.Tensor, torch.Tensor | None]


class Batches:
    """One epoch's worth of batches, re-iterable; ``len()`` is the number of steps."""

    num_samples: int
    #: True when the data was checked once up front, so per-batch input checks can be skipped.
    prechecked: bool = False

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        """The epoch's batches from step ``start_step`` on (the order drawn as for a full epoch)."""
        raise NotImplementedError

    def __iter__(self) -> Iterator[Batch]:
        return self.iterate()

    def __len__(self) -> int:
        raise NotImplementedError


class TensorBatches(Batches):
    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor | None,
        batch_size: int,
        device: torch.device,
        shuffle: bool,
        drop_last: bool,
        generator: torch.Generator,
        sample_binary: bool = False,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.x = x.to(device)
        self.y = y.to(device) if y is not None else None
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.generator = generator
        self.sample_binary = sample_binary
        self.rank, self.world_size = rank, world_size
        self.num_samples = int(x.shape[0])
        self.prechecked = True

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        n, b = self.num_samples, self.batch_size
        order = torch.randperm(n, generator=self.generator).to(self.x.device) if self.shuffle else None
        for i in range(start_step, len(self)):
            index: torch.Tensor | slice = order[i * b : (i + 1) * b] if order is not None else slice(i * b, (i + 1) * b)
            if self.world_size > 1:  # this rank's share of the global batch; every rank drew the same order
                index = (order[i * b : (i + 1) * b] if order is not None else torch.arange(n)[index])[
                    self.rank :: self.world_size
                ]
                if index.numel() == 0:
                    continue
            x = self.x[index]
            if self.sample_binary:
                # fresh binary images every epoch; the draw follows the global RNG like the rest of training
                x = torch.bernoulli(x)
            yield x, (self.y[index] if self.y is not None else None)


class LoaderBatches(Batches):
    def __init__(self, loader: DataLoader[Any], device: torch.device) -> None:
        self.loader, self.device = loader, device
        self._epoch = 0
        dataset = loader.dataset
        self.num_samples = len(dataset) if hasattr(dataset, "__len__") else 0

    def __len__(self) -> int:
        return len(self.loader)

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        non_blocking = self.device.type == "cuda"
        sampler = self.loader.sampler
        if isinstance(sampler, DistributedSampler):  # a new order each epoch, the same on every rank
            sampler.set_epoch(self._epoch)
            self._epoch += 1
        for step, item in enumerate(self.loader):
            if step < start_step:  # the loader draws its order as usual; skip what was done
                continue
            if isinstance(item, list | tuple):
                x, y = item[0], (item[1] if len(item) > 1 else None)
            else:
                x, y = item, None
            yield (
                x.to(self.device, non_blocking=non_blocking),
                y.to(self.device, non_blocking=non_blocking) if isinstance(y, torch.Tensor) else None,
            )


def as_batches(
    data: Any,
    *,
    argument: str,
    batch_size: int,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator,
    drop_last: bool = False,
    input_shape: tuple[int, ...] | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Batches:
    """Batches for ``data`` (a tensor, an ``(x, y)`` pair, an ImageDataset, a Dataset or a DataLoader).

    With ``world_size > 1`` each batch is this rank's share of a global batch of ``batch_size``.
    """
    if isinstance(data, DataLoader):
        if world_size > 1:
            raise ValueError(
                f"{argument}: expected tensors, an ImageDataset or a Dataset under torchrun (genvae shards them "
                "between the ranks), got a DataLoader"
            )
        return LoaderBatches(data, device)
    sample_binary = False
    if isinstance(data, ImageDataset):
        x, y, sample_binary = data.images, data.labels, data.binarize == "sample"
    elif isinstance(data, torch.Tensor):
        x, y = data, None
    elif isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        x, y = data
    elif isinstance(data, Dataset):
        if hasattr(data, "__len__") and len(data) == 0:
            raise ValueError(f"{argument}: expected a non-empty dataset, got 0 samples")
        if world_size > 1:
            seed = int(generator.initial_seed())
            sampler: DistributedSampler[Any] = DistributedSampler(
                data, world_size, rank, shuffle=shuffle, seed=seed, drop_last=drop_last
            )
            loader = DataLoader(data, batch_size=batch_size // world_size, sampler=sampler, drop_last=drop_last)
            return LoaderBatches(loader, device)
        loader = DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)
        return LoaderBatches(loader, device)
    else:
        raise TypeError(
            f"{argument}: expected a tensor, an (images, labels) pair of tensors, a Dataset or a DataLoader, "
            f"got {type(data).__name__}"
        )
    _check_in_memory(argument, x, y, input_shape)
    return TensorBatches(x, y, batch_size, device, shuffle, drop_last, generator, sample_binary, rank, world_size)


def _check_in_memory(argument: str, x: torch.Tensor, y: torch.Tensor | None, shape: tuple[int, ...] | None) -> None:
    """Check the whole of in-memory data once, so the models need not check every batch."""
    if not x.is_floating_point():
        raise TypeError(f"{argument}: expected floating-point images, got dtype {x.dtype}")
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{argument}: expected a non-empty batch of images, got shape {fmt_shape(x.shape)}")
    if shape is not None and tuple(x.shape[1:]) != tuple(shape):
        raise ValueError(f"{argument}: expected images of shape {fmt_shape(('N', *shape))}, got {fmt_shape(x.shape)}")
    check_finite(argument, x)
    if y is not None and y.shape[0] != x.shape[0]:
        raise ValueError(f"{argument}: expected one label per image ({x.shape[0]}), got {y.shape[0]} labels")
