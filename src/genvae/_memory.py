"""The size check before an allocation whose size an argument sets (``n``, ``rows``): a figure's
tiled image, a batch of samples, a batch of prior draws.

A size off by orders of magnitude (``n=10**9``) is refused up front with a one-line ValueError
that names the argument and the memory it would take, instead of an allocator failure after a
long wait, or, on Linux, which overcommits memory, a machine swapping to a standstill until the
OOM killer ends the process.

The bound is the physical memory of the device the allocation lands on (the host's RAM, within
the process's cgroup limit; a GPU's total memory), compared with a lower bound of the bytes
needed: what exceeds it cannot be built however free the machine is, and anything smaller is left
to the allocator, so nothing that could succeed is refused and no budget needs overriding.

A module's parameters are checked the same way (:func:`check_parameters`): every constructor whose
sizes an argument sets (``latent_dim=10**9``, ``hidden=(10**12,)``, a flow of ``steps=10**9``)
counts the parameters its sizes imply before it makes a layer, and a count beyond the memory is
refused with the argument that set the largest size, instead of an allocator error or a loop that
builds modules for hours.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "arguments_named",
    "check_draws",
    "check_fits",
    "check_parameters",
    "check_samples",
    "format_bytes",
    "meta_builds_checked_on",
    "physical_memory",
    "sample_bytes",
]

_CGROUP_LIMITS = (Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))


def physical_memory(device: torch.device | str = "cpu") -> int:
    """Bytes of physical memory on ``device``: a GPU's total memory; for the host its RAM, or the
    process's cgroup limit when lower (a container sees the whole machine's RAM in sysconf)."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).total_memory)
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):  # pragma: no cover - not a POSIX system
        total = 2**40  # unknown: 1 TiB, so only sizes far beyond any machine are refused
    for limit in _CGROUP_LIMITS:
        try:
            text = limit.read_text().strip()
        except OSError:
            continue
        if text.isdigit():
            total = min(total, int(text))
    return int(total)


def format_bytes(size: float) -> str:
    """``3.1e12`` → ``"2.9 TiB"``: binary units, one decimal."""
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.0f} {unit}" if unit == "bytes" else f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def sample_bytes(model: Any, dtype: torch.dtype | None = None) -> tuple[int, str]:
    """A lower bound of the bytes one decoded sample of ``model`` takes (its image in ``dtype``,
    default the model's, and its latent vector) and how to name the samples in a message
    (``"samples of 1×28×28 float32"``). A model that does not fix its input shape counts its
    latent vector only."""
    dtype = dtype or model.dtype
    itemsize = torch.empty((), dtype=dtype).element_size()
    latent = int(model.latent_dim) * torch.empty((), dtype=model.dtype).element_size()
    shape: Sequence[int] | None = model.input_shape
    name = str(dtype).removeprefix("torch.")
    if shape is None:
        return latent, f"latent vectors of {model.latent_dim} {name}"
    return math.prod(shape) * itemsize + latent, f"samples of {'×'.join(map(str, shape))} {name}"


def check_fits(
    name: str, given: Any, count: int, item_bytes: int, what: str, device: torch.device | str = "cpu"
) -> None:
    """Raise a ValueError naming ``name`` (whose value was ``given``) if ``count`` items of
    ``item_bytes`` each (``what``, e.g. ``"samples of 1×28×28 float32"``) exceed the physical
    memory of ``device`` (see the module's description)."""
    need = count * max(int(item_bytes), 1)
    budget = physical_memory(device)
    if need <= budget:
        return
    where = "this machine's memory" if torch.device(device).type == "cpu" else f"the memory of {device}"
    raise ValueError(
        f"{name}: expected at most {budget // max(int(item_bytes), 1):,} {what} in all ({format_bytes(budget)}, "
        f"{where}), got {given}, which would take {format_bytes(need)}"
    )


def check_samples(model: Any, name: str, given: Any, count: int, *, figure: bool = False) -> None:
    """:func:`check_fits` for ``count`` decoded samples of ``model``: in the model's dtype on its
    device, or with ``figure``, as the float32 pixels of a figure's image in host memory."""
    item, what = sample_bytes(model, torch.float32 if figure else None)
    check_fits(name, given, count, item, what.replace("samples", "images") if figure else what,
               "cpu" if figure else model.device)  # fmt: skip


def check_draws(n: int, latent_dim: int, dtype: torch.dtype, device: torch.device | str) -> None:
    """:func:`check_fits` for ``n`` latent vectors of ``latent_dim`` values in ``dtype`` on ``device``."""
    item = latent_dim * torch.empty((), dtype=dtype).element_size()
    check_fits("n", n, n, item, f"latent vectors of {latent_dim} {str(dtype).removeprefix('torch.')}", device)


#: Parameters up to this many bytes are not compared with the memory (no machine running torch has
#: less), so a normal build reads neither the default device nor the memory's size.
_SMALL = 1 << 30

#: A part's argument names → the argument of the caller's call that set them and its value there.
_NAMES: ContextVar[Mapping[str, tuple[str, Any]] | None] = ContextVar("genvae_argument_names", default=None)


@contextlib.contextmanager
def arguments_named(**names: tuple[str, Any]) -> Iterator[None]:
    """Within the block, :func:`check_parameters` names a part's argument ``key`` as the caller's
    argument ``names[key] = (name, value)`` that set it, with the value the caller was given (a
    ConditionalVAE builds its encoder with ``condition_dim=num_classes``, so a too large
    ``num_classes`` is named as such). Nested blocks compose: the outermost caller's names win,
    being the ones its user wrote."""
    outer = _NAMES.get() or {}
    inner = {key: outer.get(name, (name, value)) for key, (name, value) in names.items()}
    token = _NAMES.set({**outer, **inner})
    try:
        yield
    finally:
        _NAMES.reset(token)


#: Where a build on the ``meta`` device stands in for (see meta_builds_checked_on); None: not checked.
_META_STANDS_FOR: ContextVar[torch.device | None] = ContextVar("genvae_meta_stands_for", default=None)


@contextlib.contextmanager
def meta_builds_checked_on(device: torch.device | str) -> Iterator[None]:
    """Within the block, :func:`check_parameters` checks a build on the ``meta`` device against the
    memory of ``device``: ``genvae train`` checks its settings by building the model on ``meta``
    before reading the data, for the run that will build it on ``device``."""
    token = _META_STANDS_FOR.set(torch.device(device))
    try:
        yield
    finally:
        _META_STANDS_FOR.reset(token)


def check_parameters(owner: str, count: int, **sizes: tuple[Any, int]) -> None:
    """Raise a one-line ValueError if ``count`` parameters in the default dtype exceed the physical
    memory of the default device (where the layers would put them), before any layer is made.

    ``sizes`` maps each argument of ``owner`` (a class name) that sets a size to ``(the value
    given, the size it sets)``; the message names the one that sets the largest size (renamed by
    :func:`arguments_named`). ``count`` must be a lower bound of what the build allocates, so that
    nothing buildable is refused. A build on the ``meta`` device takes no memory and is not checked
    (unless within :func:`meta_builds_checked_on`).
    """
    itemsize = torch.get_default_dtype().itemsize
    need = count * itemsize
    if need <= _SMALL:  # every ordinary build: integer arithmetic only
        return
    device = torch.empty(0).device  # the default device, a `with torch.device(...)` block's included
    if device.type == "meta":
        stands_for = _META_STANDS_FOR.get()
        if stands_for is None:
            return
        device = stands_for
    budget = physical_memory(device)
    if need <= budget:
        return
    name, (given, _) = max(sizes.items(), key=lambda item: item[1][1])
    name, given = (_NAMES.get() or {}).get(name, (name, given))
    where = "this machine's memory" if device.type == "cpu" else f"the memory of {device}"
    dtype = str(torch.get_default_dtype()).removeprefix("torch.")
    raise ValueError(
        f"{name}: expected sizes whose parameters fit in {where} ({format_bytes(budget)}), "
        f"got {given!r}, which needs {format_bytes(need)} of {owner} parameters ({count:,} {dtype})"
    )
