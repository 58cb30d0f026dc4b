"""Turning what a user passes to ``fit``/``evaluate`` into batches ``(x, y)`` on the device.

In-memory data (tensors, numpy arrays, ``(inputs, labels)`` pairs, an
:class:`~genvae.data.ImageDataset`, a ``TensorDataset``) goes through
:func:`genvae.data.as_tensors`, is moved to the device once and batched by indexing with a
permutation: no per-sample ``__getitem__`` and no collation. Other ``Dataset``\\ s go through a
``DataLoader``; a ``DataLoader`` is used as it is; each of their batches goes through
:func:`genvae.data.inputs.as_batch`, the same conversion.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from genvae.data.base import sample_binary
from genvae.data.inputs import as_batch, as_tensors, is_streamed, loader_batches

__all__ = ["Batches", "as_batches", "check_all", "checked_once"]

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
        self.prechecked = False  # set by the Trainer once it has checked the whole data

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    #: ``epoch_order(n, batch_size, generator) -> permutation``: the data's own shuffling (e.g. to
    #: put labelled inputs in every batch of partly labelled data); None: a uniform permutation.
    epoch_order: Any = None

    def _order(self, n: int) -> torch.Tensor:
        if self.epoch_order is not None:
            order = torch.as_tensor(self.epoch_order(n, self.batch_size, self.generator), dtype=torch.long)
            if order.shape != (n,):
                raise ValueError(f"epoch_order: expected a permutation of {n} indices, got shape {tuple(order.shape)}")
        else:
            order = torch.randperm(n, generator=self.generator)
        return order.to(self.x.device)

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        n, b = self.num_samples, self.batch_size
        order = self._order(n) if self.shuffle else None
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
                x = sample_binary(x)
            yield x, (self.y[index] if self.y is not None else None)


class LoaderBatches(Batches):
    def __init__(self, loader: DataLoader[Any], device: torch.device, dtype: torch.dtype | None, argument: str) -> None:
        self.loader, self.device, self.dtype, self.argument = loader, device, dtype, argument
        self._epoch = 0
        dataset = loader.dataset
        self.num_samples = len(dataset) if hasattr(dataset, "__len__") else 0

    def __len__(self) -> int:
        return len(self.loader)

    def iterate(self, start_step: int = 0) -> Iterator[Batch]:
        sampler = self.loader.sampler
        if isinstance(sampler, DistributedSampler):  # a new order each epoch, the same on every rank
            sampler.set_epoch(self._epoch)
            self._epoch += 1
        for step, item in enumerate(loader_batches(self.loader)):
            if step < start_step:  # the loader draws its order as usual; skip what was done
                continue
            # the same conversion and messages as in-memory data, batch by batch
            yield as_batch(item, argument=self.argument, dtype=self.dtype, device=self.device)


def as_batches(
    data: Any,
    *,
    argument: str,
    batch_size: int,
    device: torch.device,
    shuffle: bool,
    generator: torch.Generator,
    drop_last: bool = False,
    dtype: torch.dtype | None = None,
    rank: int = 0,
    world_size: int = 1,
) -> Batches:
    """Batches for ``data`` (anything :func:`genvae.data.as_tensors` takes).

    Tensors, pairs, ImageDatasets and TensorDatasets are held on the device and batched by index
    (in the order of the data's ``epoch_order(n, batch_size, generator)`` method when it has one);
    other Datasets and DataLoaders are read batch by batch. With ``world_size > 1`` each batch is
    this rank's share of a global batch of ``batch_size``.
    """
    if isinstance(data, DataLoader):
        if world_size > 1:
            raise ValueError(
                f"{argument}: expected tensors, an ImageDataset or a Dataset under torchrun (genvae shards them "
                "between the ranks), got a DataLoader"
            )
        return LoaderBatches(data, device, dtype, argument)
    if is_streamed(data):
        return LoaderBatches(
            _loader(data, argument, batch_size, shuffle, drop_last, generator, rank, world_size),
            device,
            dtype,
            argument,
        )
    x, y = as_tensors(data, argument=argument, dtype=dtype)
    sample_binary = getattr(data, "binarize", None) == "sample"
    batches = TensorBatches(x, y, batch_size, device, shuffle, drop_last, generator, sample_binary, rank, world_size)
    batches.epoch_order = getattr(data, "epoch_order", None)  # a dataset that shuffles itself
    return batches


def _loader(
    data: Dataset[Any],
    argument: str,
    batch_size: int,
    shuffle: bool,
    drop_last: bool,
    generator: torch.Generator,
    rank: int,
    world_size: int,
) -> DataLoader[Any]:
    if hasattr(data, "__len__") and len(data) == 0:
        raise ValueError(f"{argument}: expected a non-empty dataset, got 0 samples")
    if world_size > 1:
        seed = int(generator.initial_seed())
        sampler: DistributedSampler[Any] = DistributedSampler(
            data, world_size, rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        return DataLoader(data, batch_size=batch_size // world_size, sampler=sampler, drop_last=drop_last)
    return DataLoader(data, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator)


def check_all(model: Any, batches: TensorBatches, argument: str) -> None:
    """Check in-memory data once as a whole against ``model`` (shape, finiteness, the
    likelihood's range, every label), so the training steps need not check each batch."""
    check_input = getattr(model, "check_input", None)
    if check_input is not None:
        check_input(batches.x, argument)
    if getattr(model, "conditional", False):
        if batches.y is None:
            raise ValueError(
                f"{argument}: expected labels for a conditional model: pass (inputs, labels) or a "
                "dataset with labels, got inputs only"
            )
        model.condition(batches.y, batches.y.shape[0])  # checks every label once: range, shape, dtype
    batches.prechecked = check_input is not None


@contextlib.contextmanager
def checked_once(model: Any, batches: Batches) -> Iterator[None]:
    """Skip ``model``'s per-batch input checks for data that was checked as a whole."""
    previous = getattr(model, "check_inputs", None)
    if batches.prechecked and previous is not None:
        model.check_inputs = False
    try:
        yield
    finally:
        if previous is not None:
            model.check_inputs = previous
