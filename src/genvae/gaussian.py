"""Diagonal-Gaussian formulas used across genvae, each written once.

- :func:`log_normal`: log N(z; mean, diag(exp(logvar))), summed over the last dimension.
- :func:`kl_per_dim`: KL(N(mean, exp(logvar)) ‖ N(0, 1)) per dimension, in closed form.
- :func:`reparameterize`: ``mean + eps · exp(logvar / 2)``.

Example:
    >>> import torch
    >>> from genvae.gaussian import log_normal
    >>> round(float(log_normal(torch.zeros(1, 2))), 6)  # −log(2π)
    -1.837877
"""

from __future__ import annotations

import math

import torch

__all__ = ["LOG_2PI", "kl_per_dim", "log_normal", "reparameterize"]

#: log(2π), the normaliser of the unit Gaussian density.
LOG_2PI = math.log(2 * math.pi)


def log_normal(z: torch.Tensor, mean: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))) summed over the last dimension; ``mean`` and ``logvar``
    default to the standard normal and broadcast against ``z``."""
    if mean is None and logvar is None:
        return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
    centred = z if mean is None else z - mean
    if logvar is None:
        return -0.5 * (centred.pow(2) + LOG_2PI).sum(-1)
    return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar + LOG_2PI).sum(-1)


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, 1)) elementwise: ``0.5 · (mean² + exp(logvar) − 1 − logvar)``."""
    # expm1(logvar) − logvar rather than exp(logvar) − 1 − logvar: the latter cancels to a
    # negative number for tiny log-variances (exp(1e-54) rounds to 1).
    return 0.5 * (mean.pow(2) + (torch.expm1(logvar) - logvar))


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """``mean + eps · exp(logvar / 2)`` with ``eps ~ N(0, I)`` (drawn when not given)."""
    if eps is None:
        eps = torch.randn_like(mean)
    return mean + eps * torch.exp(0.5 * logvar)
