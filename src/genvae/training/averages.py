"""An epoch's figures: batch means summed on the device, weighted by batch size, and averaged
once per epoch (across the ranks under ``torchrun``)."""

from __future__ import annotations

import torch

from genvae.losses import ELBOTerms
from genvae.training.distributed import DistributedContext

__all__ = ["accumulate", "averages"]


def accumulate(sums: dict[str, torch.Tensor], terms: ELBOTerms, n: int, with_loss: bool = False) -> int:
    """Add a batch's per-sample means, weighted by its size ``n``, without waiting for the
    device; returns ``n``. ``total`` is also recorded under its bound's name when that is not the
    ELBO (``iwae``: see :attr:`ELBOTerms.bound <genvae.losses.ELBOTerms>`)."""
    values = {"total": terms.total, "recon": terms.recon, "kl": terms.kl, **terms.extra}
    if terms.bound != "elbo":
        values[terms.bound] = terms.total
    if with_loss:
        values["loss"] = terms.loss
    for key, value in values.items():
        weighted = value.detach().double() * n  # float64: exact enough over a whole epoch
        sums[key] = sums[key] + weighted if key in sums else weighted
    return n


def averages(sums: dict[str, torch.Tensor], count: int, ctx: DistributedContext | None = None) -> dict[str, float]:
    """Per-sample averages; under torchrun, of the sums and counts of every rank."""
    if not sums:
        return {}
    stacked = torch.stack(
        [*sums.values(), torch.tensor(float(count), dtype=torch.float64, device=next(iter(sums.values())).device)]
    )
    if ctx is not None:
        stacked = ctx.all_reduce_sum(stacked)
    values = stacked.cpu()  # one transfer per epoch
    return {k: float(v / values[-1]) for k, v in zip(sums, values[:-1], strict=True)}
