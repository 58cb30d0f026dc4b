"""Which device a :class:`~genvae.Trainer` runs on, and what is measured fastest there.

The Trainer's speed settings left at ``None`` follow rules that ``benchmarks/train_throughput.py``
measured (the seed VAE and CVAE against the notebook's plain loop, full Fashion-MNIST, batch 32):

- **fused Adam** (:func:`fused_adam_by_default`): on the CPU and on CUDA.
- **channels-last memory format** stays opt-in (``channels_last=True``). On a 2-core CPU oneDNN's
  channels-last kernels trained the seed models 1.05× (VAE) and 1.24× (CVAE) faster in the median of
  three epochs, 1.09× and 1.02× in paired interleaved chunks (``--paired``), and even with one
  thread (1.00×, 0.97×); but the Trainer converts the user's model in place, whose outputs then
  differ in the last bits from a saved and loaded copy's. A gain within this machine's noise does
  not pay for that (``benchmarks/gpu_check.py`` measures it on a GPU).

The rules depend on the model and the device only, not on a timing taken at the start of a fit,
so a seeded run and its resumed continuation take the same steps on the same machine.
"""

from __future__ import annotations

import torch

__all__ = ["fused_adam_by_default", "resolve_device"]

# Where the fused Adam kernel was measured faster for the notebook's models
# (benchmarks/train_throughput.py); elsewhere the default implementation.
_FUSED_BY_DEFAULT = {"cuda": True, "cpu": True}


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` is CUDA when available, else the CPU; anything else must name a device this
    machine has, or a one-line ``ValueError`` says why it cannot be used."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}") from None
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            why = "this PyTorch build has no CUDA support" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"device: {str(device)!r} is not available ({why}); use 'cpu' or 'auto'")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device: expected a GPU index below {torch.cuda.device_count()} (the GPUs visible), "
                f"got {str(device)!r}"
            )
    elif resolved.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device: {str(device)!r} is not available on this machine; use 'cpu' or 'auto'")
    elif resolved.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {str(device)!r}")
    return resolved


def fused_adam_by_default(device: torch.device) -> bool:
    """Whether the default optimiser uses the fused Adam kernel on ``device``."""
    return _FUSED_BY_DEFAULT.get(device.type, False)
