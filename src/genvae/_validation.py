"""Argument checks shared by the public entry points.

Every message has the same form: ``"<argument>: expected <what>, got <what was given>"``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

__all__ = [
    "NonFiniteWeightsError",
    "as_size_tuple",
    "check_condition_size",
    "check_finite",
    "check_finite_number",
    "check_labels",
    "check_non_negative",
    "check_positive_int",
    "check_range",
    "check_tensor",
    "fmt_shape",
    "tracing",
]


def tracing() -> bool:
    """True while torch traces, compiles or exports the caller (``torch.jit.trace``,
    ``torch.compile``, ``torch.export``): input checks that read values (a host sync, data-dependent
    control flow) cannot be recorded in a graph, so the entry points skip them then and run them
    eagerly otherwise."""
    compiler = getattr(torch, "compiler", None)
    for probe in ("is_compiling", "is_exporting"):
        check = getattr(compiler, probe, None)
        if check is not None and check():
            return True
    return bool(torch.jit.is_tracing())  # type: ignore[attr-defined]  # not in torch.jit.__all__


def fmt_shape(shape: Sequence[int | str]) -> str:
    items = [str(s) for s in shape]
    return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"


def check_tensor(name: str, value: Any, *, floating: bool = False) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(value).__name__}")
    if floating and not value.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {value.dtype}")
    if value.dim() > 0 and value.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch, got shape {fmt_shape(value.shape)}")
    return value


_CHUNK = 1 << 22  # elements checked at once: isfinite's temporaries stay under ~40 MB


def check_finite(name: str, value: torch.Tensor) -> None:
    """Raise a ValueError naming ``name`` if ``value`` holds NaN or inf.

    One reduction and one host sync for a batch; a whole dataset is checked in chunks, because
    ``isfinite`` makes temporaries (a float copy and masks) larger than the data itself.
    """
    flat = value.reshape(-1)
    for chunk in flat.split(_CHUNK) if flat.numel() > _CHUNK else (flat,):
        if not bool(torch.isfinite(chunk).all()):
            bad = "NaN" if bool(torch.isnan(value).any()) else "inf"
            raise ValueError(f"{name}: expected finite values, got {bad} in a tensor of shape {fmt_shape(value.shape)}")


def check_range(name: str, value: torch.Tensor, low: float | None = None, high: float | None = None) -> None:
    """Raise a ValueError naming ``name`` if ``value`` holds NaN, inf or (with bounds) values
    outside ``[low, high]``; values in [0, 255] outside [0, 1] get the hint to divide by 255.

    One ``aminmax`` per chunk serves both checks (NaN propagates through it), so a whole data set
    costs one pass and a host sync per 4M values.
    """
    flat = value.detach().reshape(-1)
    if flat.numel() == 0:
        return
    lows, highs = [], []
    for chunk in flat.split(_CHUNK) if flat.numel() > _CHUNK else (flat,):
        lo, hi = torch.aminmax(chunk)
        lows.append(lo)
        highs.append(hi)
    lo_, hi_ = float(torch.stack(lows).min()), float(torch.stack(highs).max())
    if not (math.isfinite(lo_) and math.isfinite(hi_)):
        check_finite(name, value)  # names NaN or inf
    if (low is not None and lo_ < low) or (high is not None and hi_ > high):
        hint = "; images stored as 0–255 need x / 255" if lo_ >= 0 and 1 < hi_ <= 255 else ""
        bounds = f"[{'-inf' if low is None else f'{low:g}'}, {'inf' if high is None else f'{high:g}'}]"
        raise ValueError(f"{name}: expected values in {bounds}, got values from {lo_:g} to {hi_:g}{hint}")


def check_positive_int(name: str, value: Any, *, allow_zero: bool = False) -> int:
    low = 0 if allow_zero else 1
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        what = "a non-negative integer" if allow_zero else "a positive integer"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return value


def check_condition_size(num_classes: int | None, condition_dim: int | None) -> tuple[int | None, int]:
    """``(num_classes, condition_dim)`` of a model's condition, checked: each positive where given,
    equal where both are; the condition's length is ``condition_dim``, else ``num_classes``, else 0
    (no condition)."""
    if num_classes is not None:
        check_positive_int("num_classes", num_classes)
    if condition_dim is not None:
        check_positive_int("condition_dim", condition_dim)
    if num_classes is not None and condition_dim is not None and num_classes != condition_dim:
        raise ValueError(
            f"condition_dim: expected condition_dim equal to num_classes ({num_classes}) or None, got {condition_dim}"
        )
    return num_classes, condition_dim if condition_dim is not None else (num_classes or 0)


def as_size_tuple(name: str, value: Any, length: int) -> tuple[int, ...]:
    """An int or a sequence of ``length`` positive ints, as a tuple (``28`` → ``(28, 28)``)."""
    items = [value] * length if isinstance(value, int) and not isinstance(value, bool) else list(value)
    if len(items) != length:
        raise ValueError(f"{name}: expected an int or {length} ints, got {value!r}")
    for item in items:
        check_positive_int(name, item)
    return tuple(items)


def check_finite_number(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite int or float (not a bool); else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return float(value)


def check_non_negative(name: str, value: Any) -> float:
    """``value`` as a float if it is a finite number ≥ 0 (not a bool); else a ValueError naming ``name``.

    The one check behind every weight, threshold, rate and tolerance that may be zero."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


def as_labels(name: str, y: Any) -> Any:
    """Labels as a model takes them: a tensor as given; an int as a one-element tensor; a list or
    tuple (of ints, or of float condition vectors) as the tensor it holds, so ``y=[1, 2, 3]`` works
    wherever ``y=torch.tensor([1, 2, 3])`` does. Anything else is returned as given, for the
    caller's own check to name; a list that is no tensor (ragged, strings) is a TypeError."""
    if isinstance(y, int) and not isinstance(y, bool):
        return torch.tensor([y])
    if isinstance(y, list | tuple):
        try:
            return torch.as_tensor(y)
        except (TypeError, ValueError, RuntimeError) as err:
            raise TypeError(
                f"{name}: expected a tensor, an int, or a list of labels or condition vectors, got a "
                f"{type(y).__name__} that does not form a tensor ({' '.join(str(err).split())})"
            ) from None
    return y


def check_labels(
    name: str,
    labels: torch.Tensor,
    num_classes: int,
    *,
    unlabelled: int | None = None,
    what: str = "class indices",
    note: str = "",
) -> None:
    """Raise a ValueError naming ``name`` unless every value of the integer tensor ``labels`` is a
    class index in ``[0, num_classes − 1]`` (or, when given, the marker ``unlabelled``, e.g. −1).
    ``what`` names the values in the message and ``note`` follows the range there.

    One host sync (``aminmax``) for the whole tensor; an empty tensor passes. The message names the
    first offending bound: the smallest value when it is too small, else the largest."""
    if labels.numel() == 0:
        return
    low_bound = 0 if unlabelled is None else min(0, unlabelled)
    lo, hi = (int(v) for v in torch.aminmax(labels))
    if lo < low_bound or hi >= num_classes:
        accepted = f" or {unlabelled} (unlabelled)" if unlabelled is not None else ""
        raise ValueError(
            f"{name}: expected {what} in [0, {num_classes - 1}]{accepted}{note}, got {lo if lo < low_bound else hi}"
        )


class NonFiniteWeightsError(ValueError):
    """A model with NaN or inf weights was not saved. The message ends with how to save it anyway
    in the words of the API that raised it (``allow_non_finite=True`` for :func:`genvae.save`); a
    caller that has no such option (publishing a run) re-raises :meth:`with_option` ``(None)``."""

    def __init__(self, key: str, option: str | None = "allow_non_finite=True") -> None:
        hint = f" (pass {option} to save it anyway)" if option else ""
        super().__init__(f"model: {key}: expected finite weights, got NaN or inf; a diverged model is not saved{hint}")
        self.key, self.option = key, option

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.key, self.option)

    def with_option(self, option: str | None) -> NonFiniteWeightsError:
        """The same error, naming ``option`` as the way to save anyway (None: there is none)."""
        return type(self)(self.key, option)
