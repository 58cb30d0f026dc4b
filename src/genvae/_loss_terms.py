"""The loss terms that objectives name, and their registry (see :mod:`genvae.losses`, which
re-exports every name here: ``gv.losses.register``, ``gv.losses.kl_normal``, ...).

Kept apart from the objectives so that :mod:`genvae.losses` stays one module per idea: the
per-sample terms here, the objectives that weigh and sum them there.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from genvae._validation import check_finite
from genvae.gaussian import kl_per_dim, log_normal_dims
from genvae.likelihoods import Bernoulli
from genvae.models import VAEOutput
from genvae.priors import GaussianPrior
from genvae.registry import Registry

__all__ = ["LossTerm", "bce", "get", "kl", "kl_mc", "kl_normal", "mse", "names", "nll", "register", "registry",
           "resolve_term", "term_name"]  # fmt: skip

LossTerm = Callable[[VAEOutput, torch.Tensor], torch.Tensor]

registry: Registry[LossTerm] = Registry("losses")
register = registry.register
get = registry.get
names = registry.names


def kl_normal(mean: torch.Tensor, logvar: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Analytic KL(N(mean, exp(logvar)) ‖ N(0, I)) for diagonal Gaussians, the last dimension being
    the latent one.

    ``0.5 · (mean² + exp(logvar) − 1 − logvar)`` per dimension (Kingma & Welling, 2014, app. B).

    Args:
        mean, logvar: tensors of the same shape ``(..., latent_dim)``; integer tensors are
            converted to floating point.
        reduction: ``"mean"`` (the notebook's: sum over latent dimensions, mean over the batch),
            ``"sum"`` (over everything), ``"none"`` (per sample: sum over latent dimensions only)
            or ``"dims"`` (elementwise, no reduction).

    Example:
        >>> import torch, genvae as gv
        >>> gv.losses.kl_normal(torch.tensor([[0]]), torch.tensor([[0]]))
        tensor(0.)
    """
    if not isinstance(mean, torch.Tensor) or not isinstance(logvar, torch.Tensor):
        raise TypeError(f"mean, logvar: expected tensors, got {type(mean).__name__} and {type(logvar).__name__}")
    if mean.shape != logvar.shape:
        raise ValueError(f"logvar: expected the shape of mean {tuple(mean.shape)}, got {tuple(logvar.shape)}")
    if not mean.is_floating_point():
        mean = mean.to(torch.get_default_dtype())
    if not logvar.is_floating_point():
        logvar = logvar.to(torch.get_default_dtype())
    check_finite("mean", mean)
    check_finite("logvar", logvar)
    per_dim = kl_per_dim(mean, logvar)
    if reduction == "dims":
        return per_dim
    if reduction == "none":
        return per_dim.sum(-1)
    if reduction == "mean":
        per_sample = per_dim.sum(-1)
        return per_sample.mean() if per_sample.dim() else per_sample
    if reduction == "sum":
        return per_dim.sum()
    raise ValueError(f"reduction: expected 'mean', 'sum', 'none' or 'dims', got {reduction!r}")


@register("nll")
def nll(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """−log p(x | z) per element under the model's likelihood."""
    return -out.log_prob(x)


@register("bce")
def bce(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per element, from the logits (``binary_cross_entropy_with_logits``)."""
    if not isinstance(out.likelihood, Bernoulli):
        raise ValueError(
            "reconstruction: the 'bce' term expects logits from a Bernoulli likelihood, got a model "
            f"with a {type(out.likelihood).__name__} likelihood; use 'nll' for its own likelihood"
        )
    return F.binary_cross_entropy_with_logits(out.params, x, reduction="none")


@register("mse")
def mse(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """Squared error per element between the reconstruction's mean and ``x``."""
    return (out.recon - x).pow(2)


@register("kl")
def kl(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """KL(q(z | x) ‖ p(z)) as the output gives it (:meth:`~genvae.VAEOutput.kl`): with the
    Gaussian posterior, analytic per latent dimension, ``(batch, latent_dim)``, where the prior has
    a closed form (normal, conditional), else the one-sample Monte-Carlo estimate per sample,
    ``(batch,)``; with a flow posterior, the Monte-Carlo estimate ``log q − log p`` per sample."""
    # no finiteness check: no host sync in the training step
    return out.kl()


@register("kl_mc")
def kl_mc(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    """One-sample estimate log q(z | x) − log p(z) at the drawn z: per latent dimension for the
    Gaussian posterior and a prior that factorises over them (normal, conditional), else per sample."""
    if not out.gaussian_posterior:
        return out.log_q - out.log_prior()
    log_q = log_normal_dims(out.z, out.mean, out.logvar)
    if out.prior is None:
        return log_q - log_normal_dims(out.z)
    if isinstance(out.prior, GaussianPrior):
        return log_q - out.prior.log_prob_dims(out.z, out.c)
    return log_q.sum(-1) - out.prior.log_prob(out.z, out.c)


def resolve_term(argument: str, spec: Any) -> LossTerm:
    """The loss term ``spec`` names (a registered name) or is (a function ``(out, x) -> per-sample
    values``); a TypeError naming ``argument`` otherwise. Every objective resolves its terms here."""
    term = registry.resolve(spec, argument=argument)
    if not callable(term):
        raise TypeError(
            f"{argument}: expected a registered term name ({', '.join(names())}) or a function "
            f"(out, x) -> per-sample values, got {type(spec).__name__}"
        )
    return term


def term_name(spec: Any) -> str:
    """How a term is recorded in an objective's ``config()``: its registered name, else the
    function's ``__name__``."""
    return spec if isinstance(spec, str) else getattr(spec, "__name__", repr(spec))
