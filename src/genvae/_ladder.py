"""The pieces of the Ladder VAE (Sønderby et al., 2016) that :mod:`genvae.hierarchical` builds on:
the bottom-up pass's result (:class:`HierarchicalParams`), one level of the top-down pass
(:class:`Level`), the precision-weighted :func:`merge`, the top-down network p(z_i | z_{i+1}, c)
and the forward pass's output, :class:`HierarchicalOutput` (re-exported by
:mod:`genvae.hierarchical`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from genvae._layers import activation as make_activation
from genvae.conditioners import first_layer
from genvae.gaussian import kl_gaussians_per_dim, log_normal
from genvae.outputs import VAEOutput

__all__ = ["HierarchicalOutput", "HierarchicalParams", "Level", "TopDown", "merge"]


@dataclass
class HierarchicalParams:
    """The bottom-up pass of a batch: each level's Gaussian estimate ``means[i]``, ``logvars[i]``
    ``(batch, latent_dims[i])`` (level 1 first), the encoder's ``features`` and the condition ``c``
    (None for an unconditional model), which the top-down pass needs."""

    means: list[torch.Tensor]
    logvars: list[torch.Tensor]
    features: torch.Tensor
    c: torch.Tensor | None = None


@dataclass
class Level:
    """One level of a top-down pass: the draw ``z``, its posterior ``N(mean, exp(logvar))`` and its
    prior given the level above, ``N(prior_mean, exp(prior_logvar))`` (None for the top level,
    whose prior is the model's :attr:`~HierarchicalVAE.prior`)."""

    z: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    prior_mean: torch.Tensor | None = None
    prior_logvar: torch.Tensor | None = None

    def log_q(self) -> torch.Tensor:
        """log q(z_i | ·) of the draw, summed over the level's dimensions."""
        return log_normal(self.z, self.mean, self.logvar)


@dataclass
class HierarchicalOutput(VAEOutput):
    """What :class:`HierarchicalVAE`'s forward pass returns: a :class:`~genvae.VAEOutput` whose
    ``z``, ``mean`` and ``logvar`` join every level (level 1 first), with the levels themselves.

    ``log_q`` is Σ_i log q(z_i | ·) at the drawn z's; :meth:`log_prior` is
    ``log p(z_L) + Σ_{i<L} log p(z_i | z_{i+1})``; :meth:`kl_levels` gives each level's KL and
    :meth:`kl` their total. ``gaussian_posterior`` is False: q over all levels is not one diagonal
    Gaussian (closed forms over the whole z, as β-TCVAE's, do not apply).

    Attributes:
        levels: the top-down pass, level 1 first (:class:`Level`).
        draws: the number of z drawn per input with ``model(x, samples=k)``, else None.
    """

    levels: list[Level] = field(default_factory=list)
    draws: int | None = None

    @property
    def samples(self) -> int | None:
        """The number of z drawn per input when the forward pass drew several (None for one)."""
        return self.draws

    def log_prior(self) -> torch.Tensor:
        """log p(z_1, …, z_L) (given c) of the drawn z's: the top prior's log-density plus each
        lower level's Gaussian log p(z_i | z_{i+1}), shape ``z.shape[:-1]``."""
        top = self.levels[-1]
        total = self.prior.log_prob(top.z, self.c) if self.prior is not None else log_normal(top.z)
        for level in self.levels[:-1]:
            total = total + log_normal(level.z, level.prior_mean, level.prior_logvar)
        return total

    def kl_levels(self, per_dimension: bool = False) -> list[torch.Tensor]:
        """Each level's KL term, level 1 first, per input ``(batch,)``: below the top, the analytic
        KL(q(z_i | z_{i+1}, x) ‖ p(z_i | z_{i+1})) of two Gaussians at the drawn z_{i+1} (a
        one-sample estimate of the level's expected KL); at the top, the prior's KL (analytic for
        ``"normal"`` and ``"conditional"``, the one-sample estimate ``log q − log p`` otherwise).

        With ``per_dimension``, each level's values per latent dimension, ``(batch, latent_dims[i])``,
        where they exist (the top level's with a Monte-Carlo prior stay ``(batch,)``)."""
        values = [
            kl_gaussians_per_dim(level.mean, level.logvar, level.prior_mean, level.prior_logvar)
            for level in self.levels[:-1]
            if level.prior_mean is not None and level.prior_logvar is not None
        ]
        top = self.levels[-1]
        values.append(self.prior.kl(top.mean, top.logvar, top.z, self.c) if self.prior is not None else top.log_q())
        if per_dimension:
            return values
        return [v.sum(-1) if v.dim() > top.z.dim() - 1 else v for v in values]

    def kl(self) -> torch.Tensor:
        """The KL term of the ELBO, per input: the levels' KLs per latent dimension joined,
        ``(batch, latent_dim)``, when the top prior's KL is analytic (so free bits apply per
        dimension), else their sum per input, ``(batch,)``."""
        values = self.kl_levels(per_dimension=True)
        if all(v.dim() == self.z.dim() for v in values):
            return torch.cat(values, dim=-1)
        return torch.stack(self.kl_levels()).sum(0)


class TopDown(nn.Module):
    """p(z_i | z_{i+1}, c): a hidden layer (conditioned by the conditioner in a conditional model)
    and one linear head giving the mean and log-variance."""

    def __init__(self, above: int, below: int, hidden: int, activation: str, condition_dim: int, conditioner: Any):
        super().__init__()
        self.first = first_layer(lambda extra: nn.Linear(above + extra, hidden), (above,), (hidden,),
                                 condition_dim, conditioner)  # fmt: skip
        self.act = make_activation(activation)
        self.head = nn.Linear(hidden, 2 * below)
        self.conditioned = condition_dim > 0

    def forward(self, z: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        lead = z.shape[:-1]
        flat = z.reshape(-1, z.shape[-1])
        if self.conditioned:  # the condition repeated over any leading sample dimension
            flat_c = c.repeat(flat.shape[0] // c.shape[0], 1)  # type: ignore[union-attr]
            h = self.first(flat, flat_c)
        else:
            h = self.first(flat)
        mean, logvar = self.head(self.act(h)).chunk(2, dim=-1)
        return mean.reshape(*lead, -1), logvar.reshape(*lead, -1)


def merge(
    mean: torch.Tensor, logvar: torch.Tensor, prior_mean: torch.Tensor, prior_logvar: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """The precision-weighted merge of two Gaussian estimates (the Ladder VAE's posterior):
    ``logvar_q = −log(e^−logvar + e^−prior_logvar)``, ``mean_q = w·mean + (1 − w)·prior_mean`` with
    ``w = σ(prior_logvar − logvar)``, the bottom-up estimate's share of the precision.

    Example:
        >>> import torch
        >>> m, lv = merge(torch.tensor([2.0]), torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([0.0]))
        >>> m, lv.exp()
        (tensor([1.]), tensor([0.5000]))
    """
    weight = torch.sigmoid(prior_logvar - logvar)
    merged_logvar = -torch.logaddexp(-logvar, -prior_logvar)
    return weight * mean + (1 - weight) * prior_mean, merged_logvar
