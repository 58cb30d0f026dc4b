"""What a forward pass returns: :class:`VAEOutput` (re-exported as ``gv.VAEOutput`` and
``genvae.models.VAEOutput``).

The objectives and the evaluation ask the output, not the model's parts: ``out.log_prob(x)``
(log p(x | z)), ``out.log_q`` (log q(z | x) of the drawn z), :meth:`VAEOutput.log_prior`
(log p(z)) and :meth:`VAEOutput.kl` (the KL term of the ELBO). A model with another structure
(several latent levels, say) gives an output that answers the same questions.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from genvae.gaussian import kl_per_dim, log_normal
from genvae.likelihoods import Likelihood
from genvae.priors import Prior

__all__ = ["VAEOutput"]


@dataclass
class VAEOutput:
    """What a forward pass returns.

    Attributes:
        params: the decoder's raw output (logits for a Bernoulli likelihood).
        mean: means of the Gaussian posterior q₀(z | x), ``(batch, latent_dim)`` (before a flow,
            for a flow posterior).
        logvar: its log-variances, ``(batch, latent_dim)``.
        z: the reparameterised sample that was decoded, ``(batch, latent_dim)``; with
            ``model(x, samples=k)``, ``k`` samples per input, ``(k, batch, latent_dim)``, and
            ``params`` then has the same leading sample dimension.
        likelihood: the model's likelihood, which interprets ``params``.
        c: the condition vectors of a conditional model (None otherwise).
        prior: the model's prior, which gives the KL term and log p(z) (None: N(0, I)).
        log_q: log q(z | x) of each drawn z, summed over the latent dimensions, ``z.shape[:-1]``
            (computed from ``mean`` and ``logvar`` when not given).
        gaussian_posterior: q(z | x) is the diagonal Gaussian ``N(mean, exp(logvar))`` (the
            ``"gaussian"`` posterior), so its KL may be analytic; false for a flow posterior.
    """

    params: torch.Tensor
    mean: torch.Tensor
    logvar: torch.Tensor
    z: torch.Tensor
    likelihood: Likelihood
    c: torch.Tensor | None = None
    prior: Prior | None = None
    log_q: torch.Tensor = None  # type: ignore[assignment]  # filled in __post_init__ when not given
    gaussian_posterior: bool = True

    def __post_init__(self) -> None:
        if self.log_q is None:
            self.log_q = log_normal(self.z, self.mean, self.logvar)

    @property
    def recon(self) -> torch.Tensor:
        """The reconstruction in data space: the likelihood's mean (probabilities for Bernoulli)."""
        return self.likelihood.mean(self.params)

    @property
    def samples(self) -> int | None:
        """The number of z drawn per input when the forward pass drew several (None for one)."""
        return int(self.z.shape[0]) if self.z.dim() > self.mean.dim() else None

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise log p(x | z) under the decoded distribution (``x`` is broadcast over the
        sample dimension of a multi-sample output)."""
        if self.samples is not None and x.dim() == self.params.dim() - 1:
            x = x.unsqueeze(0).expand_as(self.params)
        return self.likelihood.log_prob(x, self.params)

    def log_prior(self) -> torch.Tensor:
        """log p(z) (log p(z | c)) of each drawn z under the model's prior, ``z.shape[:-1]``."""
        return self.prior.log_prob(self.z, self.c) if self.prior is not None else log_normal(self.z)

    def kl(self) -> torch.Tensor:
        """The KL term of the ELBO, per input: with the Gaussian posterior, the prior's
        KL(q(z | x) ‖ p(z)) (analytic per latent dimension, ``(batch, latent_dim)``, for the normal
        and conditional priors; the Monte-Carlo estimate per input otherwise); with a flow
        posterior, the Monte-Carlo estimate ``log q(z | x) − log p(z)`` at the drawn z, ``(batch,)``."""
        if not self.gaussian_posterior:
            return self.log_q - self.log_prior()
        if self.prior is None:
            return kl_per_dim(self.mean, self.logvar)
        return self.prior.kl(self.mean, self.logvar, self.z, self.c)
