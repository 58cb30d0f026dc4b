"""Posteriors q(z | x), or q(z | x, c) for a conditional model: the registry and the built-ins.

The encoder and the model's two heads give a diagonal Gaussian q₀(z | x) = N(mean, exp(logvar))
(``model.posterior(x, c)``, as always); the model's posterior part (``gv.VAE(...,
posterior="iaf")``: a registered name or a :class:`Posterior` object, kept as ``model.q``) turns
it into reparameterised draws and their log-density log q(z | x):

- ``"gaussian"``: q₀ itself, the default. Its KL against a Gaussian prior is analytic.
- ``"iaf"``: q₀ followed by an inverse autoregressive flow (Kingma et al., 2016;
  :class:`~genvae.flows.InverseAutoregressiveFlow`): a more flexible q whose log-density is still
  exact, so the ELBO uses the Monte-Carlo KL ``log q(z | x) − log p(z)`` and the IW-NLL stays an
  unbiased estimate of p(x) under the importance weights. Options: ``steps`` (depth), ``hidden``
  (width) and ``context_dim`` (a context h computed from the encoder's features, as in the paper).

Every objective and every evaluation draws through the part: ``model.posterior_params(x, c)``
(the encoder, once), then ``model.sample_posterior(params, samples)`` gives ``z`` and
``log q(z | x)``; a forward pass puts both in the :class:`~genvae.VAEOutput`
(``out.z``, ``out.log_q``).

Example:
    >>> import torch, genvae as gv
    >>> enc = gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,))
    >>> dec = gv.decoders.MLPDecoder(3, (1, 4, 4), hidden=(8,))
    >>> model = gv.VAE(enc, dec, latent_dim=3, posterior=gv.posteriors.IAFPosterior(steps=2, hidden=(16,)))
    >>> out = model(torch.rand(5, 1, 4, 4))
    >>> out.z.shape, out.log_q.shape
    (torch.Size([5, 3]), torch.Size([5]))
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genvae._layers import activation as make_activation
from genvae._layers import int_sequence
from genvae._memory import arguments_named
from genvae._validation import check_positive_int
from genvae.flows import InverseAutoregressiveFlow
from genvae.gaussian import log_normal, reparameterize
from genvae.registry import Registry

__all__ = [
    "GaussianPosterior",
    "IAFPosterior",
    "Posterior",
    "PosteriorParams",
    "as_posterior",
    "get",
    "names",
    "register",
    "registry",
]

registry: Registry[type[nn.Module]] = Registry("posteriors", record_config=True)
register = registry.register
get = registry.get
names = registry.names


@dataclass
class PosteriorParams:
    """What the encoder gives for a batch: the Gaussian q₀'s ``mean`` and ``logvar``, each
    ``(batch, latent_dim)``, and the encoder's ``features`` ``(batch, feature_dim)`` (a flow's
    context)."""

    mean: torch.Tensor
    logvar: torch.Tensor
    features: torch.Tensor


class Posterior(nn.Module):
    """Base class of posterior parts.

    A subclass implements :meth:`rsample` (and :meth:`location`), and creates its parameters in
    :meth:`build`, called once the model's sizes are known.

    Attributes:
        latent_dim: the size of z (0 until the part is attached to a model).
        feature_dim: the size of the encoder's features.
        gaussian: q(z | x) is the diagonal Gaussian ``N(mean, exp(logvar))`` itself, so closed forms
            (the analytic KL, β-TCVAE's estimates of q(z)) apply.
    """

    gaussian = False

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 0
        self.feature_dim = 0

    def attach(self, latent_dim: int, feature_dim: int) -> None:
        """Called by the model that owns this part, once, when the model is built."""
        if self.latent_dim:
            raise ValueError(
                f"posterior: expected a {type(self).__name__} of its own for this model, got one attached to "
                "another model already (build one posterior object per model)"
            )
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.feature_dim = check_positive_int("feature_dim", feature_dim)
        self.build()

    def build(self) -> None:
        """Create the part's parameters (the base class has none)."""

    def rsample(self, params: PosteriorParams, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws ``z ~ q(z | x)`` and their ``log q(z | x)``: ``z`` is ``(batch,
        latent_dim)``, or ``(samples, batch, latent_dim)`` with ``samples``; ``log q`` is
        ``z.shape[:-1]`` (summed over the latent dimensions)."""
        raise NotImplementedError

    def location(self, params: PosteriorParams) -> torch.Tensor:
        """A deterministic code of each input, ``(batch, latent_dim)``: what a reconstruction decodes."""
        return params.mean

    def _base(self, params: PosteriorParams, samples: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws of the Gaussian q₀ and their log-density."""
        mean, logvar = params.mean, params.logvar
        shape = mean.shape if samples is None else (samples, *mean.shape)
        # randn_like, as reparameterize draws: a tool that seeds or replaces it reaches every posterior
        z = reparameterize(mean, logvar, torch.randn_like(mean if samples is None else mean.expand(shape)))
        return z, log_normal(z, mean, logvar)

    def extra_repr(self) -> str:
        """The latent size, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}"


@register("gaussian")
class GaussianPosterior(Posterior):
    """q(z | x) = N(mean, exp(logvar)), the diagonal Gaussian of the encoder's heads (the default).

    Example:
        >>> import torch
        >>> q = GaussianPosterior()
        >>> params = PosteriorParams(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 8))
        >>> z, log_q = q.rsample(params, samples=4)
        >>> z.shape, log_q.shape
        (torch.Size([4, 2, 3]), torch.Size([4, 2]))
    """

    gaussian = True

    def rsample(self, params: PosteriorParams, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``mean + ε·exp(logvar / 2)`` and ``log N(z; mean, exp(logvar))``."""
        return self._base(params, samples)


@register("iaf")
class IAFPosterior(Posterior):
    """q₀ followed by an inverse autoregressive flow (Kingma et al., 2016): ``steps`` updates
    ``z ← σ·z + (1 − σ)·m``, with ``(m, σ)`` from a MADE of z (and of the context h), the
    dimensions reversed between steps. ``log q(z_T | x) = log q₀(z_0 | x) − Σ_t Σ_d log σ_t,d``.

    Each step starts near the identity (σ ≈ 0.88, m = 0), so a new model starts close to its
    Gaussian posterior.

    Args:
        steps: the number of flow steps (the depth).
        hidden: the widths of the hidden layers of each step's MADE (the width).
        context_dim: the size of the context h, a linear map of the encoder's features fed to
            every step (0: no context).
        activation: the MADEs' activation.
    """

    def __init__(
        self, steps: int = 2, hidden: Sequence[int] = (64,), context_dim: int = 0, activation: str = "elu"
    ) -> None:
        super().__init__()
        self.steps = check_positive_int("steps", steps)
        self.hidden = int_sequence("hidden", hidden, allow_empty=False)
        self.context_dim = check_positive_int("context_dim", context_dim, allow_zero=True)
        make_activation(activation)  # an unknown name is an error here, not when the model is built
        self.activation = activation

    def build(self) -> None:
        """Create the flow (and the context map)."""
        with arguments_named(
            context_features=("context_dim", self.context_dim)
        ):  # the flow's name for this part's argument
            self.flow = InverseAutoregressiveFlow(
                self.latent_dim, self.steps, self.hidden, self.context_dim, self.activation
            )
        if self.context_dim:
            self.context = nn.Linear(self.feature_dim, self.context_dim)

    def _context(self, params: PosteriorParams) -> torch.Tensor | None:
        return self.context(params.features) if self.context_dim else None

    def rsample(self, params: PosteriorParams, samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws of q₀ pushed through the flow, and their log-density."""
        z0, log_q0 = self._base(params, samples)
        z, log_det = self.flow(z0, self._context(params))
        return z, log_q0 - log_det

    def location(self, params: PosteriorParams) -> torch.Tensor:
        """The flow's image of q₀'s mean."""
        return self.flow(params.mean, self._context(params))[0]

    def extra_repr(self) -> str:
        """The latent size and the flow's shape, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}, steps={self.steps}, hidden={self.hidden}, context_dim={self.context_dim}"


def as_posterior(spec: Any) -> Posterior:
    """A registered name or a :class:`Posterior` object as a posterior part (unattached)."""
    part = registry.resolve(spec, argument="posterior")
    if not isinstance(part, Posterior):
        got = type(part).__name__ if not isinstance(spec, str) else f"{spec!r} ({type(part).__name__})"
        raise TypeError(f"posterior: expected a registered name ({', '.join(names())}) or a Posterior, got {got}")
    return part
