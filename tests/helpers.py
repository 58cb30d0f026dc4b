"""Builders used by several test modules (fixtures are in conftest.py): one small model, its data,
the peak-memory probe, a full disk for chosen files, and the wait on another process's event."""

from __future__ import annotations

import fnmatch
import json
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import torch

import genvae as gv

#: The longest a test waits for another process: only a real hang reaches it (a loaded machine is
#: slower, never this slow). Tests wait on events (a FIFO, a pidfd, a pipe), and on this only as a
#: safety net, so they do not fail when other jobs share the machine.
SAFETY_TIMEOUT = 600.0


def wait_for_fifo(fifo: str | os.PathLike[str], pid: int) -> None:
    """Block until process ``pid`` writes to (or opens) the FIFO ``fifo``, its "I am there" event,
    or fail at once if it ends first: ``select`` wakes on either, the FIFO turning readable or the
    process's pidfd when it exits. No clock but :data:`SAFETY_TIMEOUT`."""
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # lets the process's open for writing go through
    try:
        exited = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([reader, exited], [], [], SAFETY_TIMEOUT)
        finally:
            os.close(exited)
        assert reader in ready, (
            f"process {pid} ended before it reached the point the test waits for"
            if ready
            else f"process {pid} did not reach the point the test waits for in {SAFETY_TIMEOUT:.0f} s: a hang"
        )
    finally:
        os.close(reader)


def build(arch: dict[str, Any]) -> gv.VAE:
    """A model from an ``architectures()`` draw."""
    c, s, latent, classes = arch["channels"], arch["size"], arch["latent"], arch["classes"]
    cond = {"condition_dim": classes, "conditioner": arch["conditioner"]}
    act, w = arch["activation"], arch["width"]
    if arch["kind"] == "mlp":
        enc = gv.encoders.MLPEncoder((c, s, s), hidden=(w, w), activation=act, **cond)
        dec = gv.decoders.MLPDecoder(latent, (c, s, s), hidden=(w,), activation=act, **cond)
    else:
        enc = gv.encoders.ConvEncoder(c, s, channels=(w, 4), hidden=(w,), activation=act, **cond)
        dec = gv.decoders.ConvDecoder(latent, c, s, channels=(4, w), activation=act, **cond)
    if classes:
        return gv.ConditionalVAE(enc, dec, latent_dim=latent, num_classes=classes, likelihood=arch["likelihood"])
    return gv.VAE(enc, dec, latent_dim=latent, likelihood=arch["likelihood"])


def batch_for(model: gv.VAE, n: int = 3) -> tuple[torch.Tensor, torch.Tensor | None]:
    shape = model.input_shape
    assert shape is not None
    x = torch.rand(n, *shape)
    y = torch.arange(n) % model.num_classes if model.conditional else None
    return x, y


def mean_logvar(seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """A (5, 3) float64 posterior mean and log-variance drawn from a seeded generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)


def tiny_vae(
    prior: Any = "normal",
    conditional: bool = False,
    latent: int = 2,
    *,
    shape: tuple[int, ...] = (1, 6, 6),
    hidden: int = 16,
    dtype: torch.dtype | None = None,
    seed: int | None = 0,
    posterior: Any = "gaussian",
) -> gv.VAE:
    """A small all-MLP VAE (or a CVAE over 3 classes) on ``shape`` images, one ``hidden`` layer each
    way. ``seed`` seeds torch just before the layers are built (None: the caller's random state)."""
    if seed is not None:
        torch.manual_seed(seed)
    cond = {"condition_dim": 3} if conditional else {}
    enc = gv.encoders.MLPEncoder(shape, hidden=(hidden,), **cond)
    dec = gv.decoders.MLPDecoder(latent, shape, hidden=(hidden,), **cond)
    if conditional:
        model: gv.VAE = gv.ConditionalVAE(enc, dec, latent_dim=latent, num_classes=3, prior=prior, posterior=posterior)
    else:
        model = gv.VAE(enc, dec, latent_dim=latent, prior=prior, posterior=posterior)
    return model if dtype is None else model.to(dtype)


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    """A detached copy of each of ``model``'s parameters, to compare weights before and after."""
    return [p.detach().clone() for p in model.parameters()]


def tiny_data(n: int = 10, shape: tuple[int, ...] = (1, 6, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` seeded uniform images of ``shape`` and labels cycling over 3 classes."""
    g = torch.Generator().manual_seed(1)
    return torch.rand(n, *shape, generator=g), torch.arange(n) % 3


MEASURE = """
import json, resource, torch, genvae as gv
from torch import nn
torch.set_num_threads(1)  # small tensors: a second thread only waits for a busy core

def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

{setup}
{warm_up}
before = peak_mb()
{run}
print(json.dumps({{"before": before, "after": peak_mb()}}))
"""


def added_mb(setup: str, warm_up: str, run: str) -> float:
    """Peak RSS added by ``run`` in a fresh process, after ``setup`` and a small ``warm_up`` that
    loads the same code paths (so only what ``run`` itself holds is counted)."""
    code = MEASURE.format(setup=textwrap.dedent(setup), warm_up=warm_up, run=run)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=SAFETY_TIMEOUT
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["after"] - figures["before"])


class FullDisk:
    """A real full disk for the files named ``names`` (or matching them, ``weights-*``), without root
    or a mount: while installed (as ``os.open``), opening such a file for writing creates it as
    usual but returns a descriptor of ``/dev/full``, on which the kernel answers every write with
    ``ENOSPC``. A name also matches the temporary files written on its behalf (``.NAME.*``:
    ``atomic_write``'s, a download's); the first
    ``skip`` matching opens pass (so the disk fills at, say, the second epoch's checkpoint).
    ``tempfile.mkstemp`` and genvae's writers open files through ``os.open``."""

    def __init__(self, names: tuple[str, ...], skip: int = 0) -> None:
        self.names, self.skip, self.hits = names, skip, 0
        self._open: Callable[..., int] = os.open

    def free(self) -> None:
        """Space again: every write from now on succeeds."""
        self.names = ()

    def matches(self, path: Any) -> bool:
        name = os.path.basename(os.fsdecode(path))
        return any(fnmatch.fnmatchcase(name, n) or fnmatch.fnmatchcase(name, f".{n}.*") for n in self.names)

    def __call__(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        fd = self._open(path, flags, mode, dir_fd=dir_fd)
        if not flags & (os.O_WRONLY | os.O_RDWR) or not self.matches(path):
            return fd
        self.hits += 1
        if self.hits <= self.skip:
            return fd
        os.close(fd)  # the file stays, empty, as on a disk that filled at its first byte
        return self._open("/dev/full", os.O_WRONLY | (flags & getattr(os, "O_CLOEXEC", 0)))
