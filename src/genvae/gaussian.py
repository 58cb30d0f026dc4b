"""Diagonal-Gaussian formulas used across genvae, each written once.

- :func:`log_normal_dims`: log N(z; mean, exp(logvar)) per dimension (elementwise).
- :func:`log_normal`: the same summed over the last dimension: log N(z; mean, diag(exp(logvar))).
- :func:`kl_per_dim`: KL(N(mean, exp(logvar)) ‖ N(0, 1)) per dimension, in closed form.
- :func:`kl_gaussians_per_dim`: KL between two diagonal Gaussians per dimension, in closed form.
- :func:`log_normal_mixture`: the log-density of a mixture of diagonal Gaussians, summed over
  the last dimension, without a ``(points, components, dims)`` intermediate.
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

__all__ = [
    "LOG_2PI",
    "kl_gaussians_per_dim",
    "kl_per_dim",
    "log_normal",
    "log_normal_dims",
    "log_normal_mixture",
    "reparameterize",
]

#: log(2π), the normaliser of the unit Gaussian density.
LOG_2PI = math.log(2 * math.pi)


def log_normal_dims(
    z: torch.Tensor, mean: torch.Tensor | None = None, logvar: torch.Tensor | None = None
) -> torch.Tensor:
    """log N(z_d; mean_d, exp(logvar_d)) per dimension (elementwise, the broadcast shape of the
    arguments); ``mean`` and ``logvar`` default to the standard normal (0 and 0)."""
    centred = z if mean is None else z - mean
    if logvar is None:
        return -0.5 * (centred.pow(2) + LOG_2PI)
    return -0.5 * (centred.pow(2) * torch.exp(-logvar) + logvar + LOG_2PI)


def log_normal(z: torch.Tensor, mean: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))) summed over the last dimension; ``mean`` and ``logvar``
    default to the standard normal and broadcast against ``z``."""
    return log_normal_dims(z, mean, logvar).sum(-1)


def kl_per_dim(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(0, 1)) elementwise: ``0.5 · (mean² + exp(logvar) − 1 − logvar)``."""
    # expm1(logvar) − logvar rather than exp(logvar) − 1 − logvar: the latter cancels to a
    # negative number for tiny log-variances (exp(1e-54) rounds to 1).
    return 0.5 * (mean.pow(2) + (torch.expm1(logvar) - logvar))


def kl_gaussians_per_dim(
    mean: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor, prior_logvar: torch.Tensor
) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) ‖ N(prior_mean, exp(prior_logvar))) elementwise:
    ``0.5 · ((exp(logvar) + (mean − prior_mean)²) / exp(prior_logvar) − 1 − logvar + prior_logvar)``."""
    diff = logvar - prior_logvar
    # expm1(diff) − diff, as in kl_per_dim: no cancellation when the variances are nearly equal
    return 0.5 * ((mean - prior_mean).pow(2) * torch.exp(-prior_logvar) + (torch.expm1(diff) - diff))


def log_normal_mixture(
    z: torch.Tensor, means: torch.Tensor, logvars: torch.Tensor, log_weights: torch.Tensor
) -> torch.Tensor:
    """log Σ_k w_k · N(z; means[k], diag(exp(logvars[k]))) for ``z`` of shape ``(..., dims)``, with
    ``means`` and ``logvars`` ``(components, dims)`` and ``log_weights`` ``(components,)``
    (log w_k, summing to 1 in probability). Returns shape ``z.shape[:-1]``.

    The squared distances are expanded into matrix products (``z²·p − 2·z·(μ·p) + μ²·p`` with
    precisions p), so memory is ``points × components``, not ``points × components × dims``: a
    VampPrior with 500 components scores 50,000 latent vectors in a few hundred MB at most."""
    flat = z.reshape(-1, z.shape[-1])
    # centre on the components' average: smaller terms, less cancellation in the expansion
    centre = means.mean(0).detach()
    flat, centred = flat - centre, means - centre
    precision = torch.exp(-logvars)  # (K, D)
    quadratic = (
        flat.pow(2) @ precision.T - 2 * flat @ (centred * precision).T + (centred.pow(2) * precision).sum(-1)  # (N, K)
    )
    log_components = -0.5 * (quadratic + logvars.sum(-1) + z.shape[-1] * LOG_2PI)
    return torch.logsumexp(log_components + log_weights, dim=-1).reshape(z.shape[:-1])


def reparameterize(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
    """``mean + eps · exp(logvar / 2)`` with ``eps ~ N(0, I)`` (drawn when not given)."""
    if eps is None:
        eps = torch.randn_like(mean)
    return mean + eps * torch.exp(0.5 * logvar)
