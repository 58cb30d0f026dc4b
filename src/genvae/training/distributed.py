"""Running under ``torchrun``: process-group set-up, which rank this is, and reductions.

genvae uses ``torch.distributed`` and DDP, not a scheme of its own. Under
``torchrun --nproc-per-node N`` (which sets ``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK`` and the
rendezvous address), the :class:`~genvae.Trainer` joins the process group (NCCL on GPUs, gloo on
CPUs), wraps the model in ``DistributedDataParallel``, gives each rank its share of every batch
and reduces the epoch's figures across ranks. Logging, checkpoints and reports happen on rank 0.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

__all__ = ["DistributedContext", "context", "is_main_process", "shutdown"]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """True when the run has more than one process (``world_size > 1``)."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only process that runs the rank-zero-only callbacks (progress, logs, checkpoints)."""
        return self.rank == 0

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over the ranks (in place on a copy); itself when not distributed."""
        if not self.enabled:
            return tensor
        reduced = tensor.clone()
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced

    def all_gather_object(self, value: Any) -> list[Any]:
        """Every rank's ``value`` (picklable), in rank order; ``[value]`` when not distributed.
        Every rank must call it, at the same point."""
        if not self.enabled:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        dist.all_gather_object(gathered, value)
        return gathered


def context(device: torch.device | None = None) -> DistributedContext:
    """The current context, joining the process group first when ``torchrun`` started us."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or not dist.is_available():
        return DistributedContext()
    if not dist.is_initialized():
        backend = "nccl" if device is not None and device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    return DistributedContext(rank=dist.get_rank(), world_size=dist.get_world_size(),
                              local_rank=int(os.environ.get("LOCAL_RANK", "0")))  # fmt: skip


def is_main_process() -> bool:
    """True on rank 0, and whenever the process is not part of a distributed run."""
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    """Leave the process group cleanly (all ranks together), if this process joined one.

    Call it at the end of a torchrun script: a rank that exits while another still talks to it
    makes gloo abort the other."""
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free DDP wrappers (their reducers hold the group) before the group goes
        dist.barrier()
        dist.destroy_process_group()
