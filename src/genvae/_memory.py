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
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

__all__ = ["check_draws", "check_fits", "check_samples", "format_bytes", "physical_memory", "sample_bytes"]

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
