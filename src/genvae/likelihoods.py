"""Likelihoods p(x | z): how the decoder's raw parameters become a distribution over the data.

- ``"bernoulli"`` (default): the decoder gives logits; ``mean`` is ``sigmoid(logits)``, the
  pixel probabilities. Its negative log-likelihood is the binary cross-entropy, computed from
  logits, which is also what the notebook used for grey-level MNIST.
- ``"continuous_bernoulli"``: the properly normalised density for data in [0, 1]
  (Loaiza-Ganem & Cunningham, 2019); the decoder gives logits.
- ``"gaussian"``: the decoder gives the mean; the scale is fixed (``scale=``) or learned
  (``learn_scale=True``, one scalar).

Example:
    >>> import torch, genvae as gv
    >>> lik = gv.likelihoods.get("bernoulli")()
    >>> logits = torch.zeros(2, 1, 2, 2)
    >>> lik.mean(logits).unique()
    tensor([0.5000])
    >>> float(lik.log_prob(torch.ones(2, 1, 2, 2), logits).sum(dim=(1, 2, 3))[0])  # 4·log(1/2)
    -2.7725887298583984
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from genvae._validation import check_range
from genvae.registry import Registry

__all__ = [
    "Bernoulli",
    "ContinuousBernoulli",
    "Gaussian",
    "Likelihood",
    "get",
    "names",
    "register",
    "registry",
]

registry: Registry[type[Likelihood]] = Registry("likelihoods", record_config=True)
register = registry.register
get = registry.get
names = registry.names


class Likelihood(nn.Module, ABC):
    """The contract for p(x | z), given the decoder's raw parameters ``params`` (one tensor of the
    data's shape, batch first).

    Attributes:
        support: the interval data must lie in, ``(low, high)``, or None for the whole real line.
            Data outside it is refused by :meth:`check_data` (a Bernoulli fed 0–255 pixels would
            train silently to nonsense).
    """

    support: tuple[float, float] | None = None

    def check_data(self, x: torch.Tensor, argument: str = "x") -> None:
        """Raise a ValueError naming ``argument`` when ``x`` holds NaN, inf or values outside
        :attr:`support` (one pass over ``x`` and one host sync)."""
        low, high = self.support if self.support is not None else (None, None)
        check_range(argument, x, low, high)

    @abstractmethod
    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Elementwise log-density of ``x``, the shape of ``x`` (sum it for a per-sample value)."""

    @abstractmethod
    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The data-space mean E[x | z] (probabilities for a Bernoulli)."""

    @abstractmethod
    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """The full ``torch.distributions`` object, one event per sample."""

    def sample(self, params: torch.Tensor) -> torch.Tensor:
        """A draw from p(x | z)."""
        return self.distribution(params).sample()


@register("bernoulli")
class Bernoulli(Likelihood):
    """Independent Bernoulli pixels parameterised by logits (data in [0, 1]: grey levels are
    treated as probabilities, as the notebook did)."""

    support = (0.0, 1.0)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """``x·log σ(l) + (1 − x)·log(1 − σ(l))`` for logits ``l``, elementwise: the negative binary
        cross-entropy, computed from the logits.
        """
        return -F.binary_cross_entropy_with_logits(params, x, reduction="none")

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The pixel probabilities ``sigmoid(params)``."""
        return torch.sigmoid(params)

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """Independent ``torch.distributions.Bernoulli`` pixels with these logits, one event per sample."""
        return D.Independent(D.Bernoulli(logits=params, validate_args=False), params.dim() - 1)


@register("continuous_bernoulli")
class ContinuousBernoulli(Likelihood):
    """The continuous Bernoulli density on [0, 1], parameterised by logits."""

    support = (0.0, 1.0)

    def _dist(self, params: torch.Tensor) -> D.ContinuousBernoulli:
        return D.ContinuousBernoulli(logits=params, validate_args=False)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The normalised continuous Bernoulli log-density of ``x`` under these logits, elementwise."""
        return self._dist(params).log_prob(x)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """The continuous Bernoulli mean, which is not ``sigmoid(params)`` (except at logit 0)."""
        return self._dist(params).mean

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """Independent ``torch.distributions.ContinuousBernoulli`` pixels, one event per sample."""
        return D.Independent(self._dist(params), params.dim() - 1)


@register("gaussian")
class Gaussian(Likelihood):
    """Independent Gaussian pixels with the decoder's output as mean.

    Args:
        scale: the standard deviation (its starting value when learned).
        learn_scale: learn one scalar log-scale with the model.
    """

    def __init__(self, scale: float = 1.0, learn_scale: bool = False) -> None:
        super().__init__()
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale: expected a positive finite number, got {scale!r}")
        log_scale = torch.tensor(math.log(scale))
        if learn_scale:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def log_prob(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """The Gaussian log-density of ``x`` around mean ``params`` with the likelihood's scale,
        elementwise.
        """
        log_scale = self.log_scale.to(params.dtype)
        return -0.5 * ((x - params) * torch.exp(-log_scale)) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)

    def mean(self, params: torch.Tensor) -> torch.Tensor:
        """``params`` itself: the decoder gives the mean."""
        return params

    def distribution(self, params: torch.Tensor) -> D.Distribution:
        """Independent ``torch.distributions.Normal`` pixels with mean ``params`` and the likelihood's
        scale, one event per sample.
        """
        scale = torch.exp(self.log_scale.to(params.dtype)).expand_as(params)
        return D.Independent(D.Normal(params, scale, validate_args=False), params.dim() - 1)
