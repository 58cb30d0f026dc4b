"""One way in: :func:`as_tensors` turns whatever a user passes into ``(images, labels)`` tensors.

Every entry point (the Trainer, evaluation, the figures, the report) takes its data through this
module, so they all accept the same things and say the same thing when they cannot:

- a tensor or a numpy array of inputs;
- an ``(inputs, labels)`` pair of tensors, numpy arrays or lists;
- an :class:`~genvae.data.ImageDataset`, a ``TensorDataset``, or any map-style ``Dataset`` whose
  items are ``x`` or ``(x, y)``;
- a ``DataLoader`` (its batches are concatenated).

Floating-point inputs are cast to the dtype asked for (the model's); integer images (``uint8``) are
refused with the hint to divide by 255, because a VAE's likelihood needs values in [0, 1].

Example:
    >>> import numpy as np, torch
    >>> from genvae.data import as_tensors
    >>> x, y = as_tensors((np.zeros((4, 1, 2, 2), np.float32), [0, 1, 0, 1]), dtype=torch.float64)
    >>> x.dtype, y.tolist()
    (torch.float64, [0, 1, 0, 1])
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from genvae._validation import fmt_shape
from genvae.data.base import ImageDataset

__all__ = ["EXPECTED_INPUTS", "as_batch", "as_tensors", "is_streamed", "loader_batches"]

#: What every entry point accepts, for error messages.
EXPECTED_INPUTS = (
    "a tensor or numpy array of inputs, an (inputs, labels) pair, an ImageDataset, a Dataset or a DataLoader"
)

Pair = tuple[torch.Tensor, torch.Tensor | None]


def is_streamed(data: Any) -> bool:
    """Whether ``data`` is read batch by batch (a ``DataLoader`` or a ``Dataset`` that is not held
    in memory as tensors) rather than as whole tensors."""
    if isinstance(data, DataLoader):
        return True
    return isinstance(data, Dataset) and not isinstance(data, ImageDataset | TensorDataset)


def as_tensors(
    data: Any,
    *,
    argument: str = "data",
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
    limit: int | None = None,
    labels_argument: str | None = None,
) -> Pair:
    """``(inputs, labels or None)`` from any accepted kind of data (see the module docstring).

    Args:
        data: the data.
        argument: the argument's name, for error messages.
        dtype: floating-point inputs (and float labels) are cast to it (default: kept).
        device: where the tensors go (default: where they are).
        limit: keep only the first ``limit`` samples (a Dataset or DataLoader is read no further).
        labels_argument: the labels' name for error messages, when the caller took them as an
            argument of their own (``y``); default: ``argument``'s labels.
    """
    x, y = _pair(data, argument, limit, labels_argument or f"{argument} labels")
    if limit is not None:
        x, y = x[:limit], (y[:limit] if y is not None else None)
    return _normalised(x, y, argument, dtype, device, labels_argument)


def loader_batches(loader: DataLoader[Any]) -> Iterator[Any]:
    """Iterate a DataLoader without disturbing the global random state: starting an iteration
    draws a seed for the workers from it, which would make results depend on how the data came in."""
    with torch.random.fork_rng(devices=[]):
        iterator = iter(loader)
    yield from iterator


def as_batch(item: Any, *, argument: str = "data", dtype: torch.dtype | None = None, device: Any = None) -> Pair:
    """One collated batch (a tensor, or a ``[x, y, ...]`` list from a DataLoader) as ``(x, y)``."""
    if isinstance(item, list | tuple):
        if not item:
            raise ValueError(f"{argument}: expected batches of inputs or (inputs, labels), got an empty batch")
        x, y = item[0], (item[1] if len(item) > 1 else None)
    else:
        x, y = item, None
    return _normalised(_tensor(x, argument), _labels(y, f"{argument} labels"), argument, dtype, device)


def _pair(data: Any, argument: str, limit: int | None, labels: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    if isinstance(data, ImageDataset):
        return data.images, data.labels
    if isinstance(data, TensorDataset):
        tensors = data.tensors
        return tensors[0], (tensors[1] if len(tensors) > 1 else None)
    if isinstance(data, torch.Tensor | np.ndarray):
        return _tensor(data, argument), None
    if isinstance(data, tuple | list) and len(data) == 2 and _array_like(data[0]):
        return _tensor(data[0], argument), _labels(data[1], labels)
    if isinstance(data, DataLoader):
        return _concatenate(loader_batches(data), argument, limit)
    if isinstance(data, Dataset):
        if not hasattr(data, "__len__"):
            raise TypeError(f"{argument}: expected a map-style Dataset with a length, got {type(data).__name__}")
        n = len(data) if limit is None else min(limit, len(data))
        return _concatenate((_collate_one(data[i]) for i in range(n)), argument, None)
    if isinstance(data, tuple | list):
        kinds = ", ".join(type(v).__name__ for v in data[:3])
        raise TypeError(f"{argument}: expected {EXPECTED_INPUTS}, got a {type(data).__name__} of {kinds}")
    raise TypeError(f"{argument}: expected {EXPECTED_INPUTS}, got {type(data).__name__}")


def _array_like(value: Any) -> bool:
    return isinstance(value, torch.Tensor | np.ndarray)


def _collate_one(item: Any) -> Any:
    """A Dataset item as a batch of one: ``x`` or ``[x, y]`` with a leading dimension."""
    if isinstance(item, list | tuple):
        return [torch.as_tensor(v).unsqueeze(0) if v is not None else None for v in item[:2]]
    return torch.as_tensor(item).unsqueeze(0)


def _concatenate(batches: Iterable[Any], argument: str, limit: int | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    xs: list[torch.Tensor] = []
    ys: list[torch.Tensor] = []
    seen = 0
    for item in batches:
        x, y = as_batch(item, argument=argument)
        xs.append(x)
        if y is not None:
            ys.append(y)
        seen += x.shape[0]
        if limit is not None and seen >= limit:  # read no further than asked
            break
    if not xs:
        raise ValueError(f"{argument}: expected a non-empty dataset, got 0 samples")
    if ys and len(ys) != len(xs):
        raise ValueError(f"{argument}: expected labels with every batch or with none, got them with some")
    return torch.cat(xs), (torch.cat(ys) if ys else None)


def _tensor(value: Any, argument: str) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":  # torch.from_numpy's own error names no argument
            kinds = {"O": "Python objects", "U": "strings", "S": "byte strings"}
            got = kinds.get(value.dtype.kind, f"dtype {value.dtype}")
            raise TypeError(f"{argument}: expected a numeric array, got a numpy array of {got}")
        return torch.from_numpy(np.ascontiguousarray(value))
    raise TypeError(f"{argument}: expected a tensor or a numpy array of inputs, got {type(value).__name__}")


def _labels(value: Any, name: str) -> torch.Tensor | None:
    """Labels as a tensor; ``name`` is what error messages call them (``"data labels"``, ``"y"``)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        try:
            return torch.as_tensor(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(
                f"{name}: expected labels as numbers, got a {type(value).__name__} of other values"
            ) from None
    return _tensor(value, name)


def _normalised(
    x: torch.Tensor,
    y: torch.Tensor | None,
    argument: str,
    dtype: torch.dtype | None,
    device: Any,
    labels: str | None = None,
) -> Pair:
    if x.dtype == torch.bool or x.is_complex():
        raise TypeError(f"{argument}: expected floating-point inputs, got dtype {x.dtype}")
    if not x.is_floating_point():
        raise TypeError(
            f"{argument}: expected floating-point inputs in [0, 1], got dtype {x.dtype}; "
            "for images stored as integers 0–255 pass x.float() / 255"
        )
    if x.dim() < 2 or x.shape[0] == 0:
        raise ValueError(f"{argument}: expected a non-empty batch of inputs (N, ...), got shape {fmt_shape(x.shape)}")
    if y is not None:
        if y.dim() == 0 or y.shape[0] != x.shape[0]:
            got = fmt_shape(y.shape)
            raise ValueError(
                f"{labels or argument}: expected one label per input ({x.shape[0]}), got labels of shape {got}"
            )
        if y.dtype == torch.bool or y.is_complex():
            raise TypeError(
                f"{labels or argument}: expected integer class indices or float vectors as labels, got {y.dtype}"
            )
        if y.is_floating_point() and dtype is not None:
            y = y.to(dtype)
        elif not y.is_floating_point():
            y = y.long()
    if dtype is not None:
        x = x.to(dtype)
    if device is not None:
        x = x.to(device)
        y = y.to(device) if y is not None else None
    return x, y
