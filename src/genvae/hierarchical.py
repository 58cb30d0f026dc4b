"""Hierarchical latents: :class:`HierarchicalVAE`, the Ladder VAE of Sønderby et al. (2016).

The generative model is a chain of latent levels, ``p(z_L) p(z_{L−1} | z_L) … p(z_1 | z_2) p(x | z_1)``:
the top prior p(z_L) is any registered prior (``"normal"``, ``"mog"``, ``"vamp"``, ``"flow"``,
``"conditional"``), each p(z_i | z_{i+1}) a diagonal Gaussian from a small top-down network, and the
decoder sees z_1. Inference shares the top-down networks: a bottom-up deterministic pass (the
encoder's features, then one small layer per level) gives each level a Gaussian estimate
N(μ̂_i, σ̂²_i); going down, each level's posterior is the precision-weighted merge of that estimate
with the top-down prior at the level above's draw::

    σ_q² = 1 / (σ̂⁻² + σ_p⁻²),    μ_q = σ_q² · (μ̂ σ̂⁻² + μ_p σ_p⁻²)

(the top level's posterior is its bottom-up estimate). In a conditional model the encoder, every
top-down network (through the model's conditioner) and the decoder see the condition c.

The model's z is every level at once, ``[z_1, z_2, …, z_L]`` joined along the last dimension
(:attr:`HierarchicalVAE.latent_dim` is their total size), so every method of :class:`~genvae.VAE`
keeps its meaning: ``prior_log_prob(z)`` is the joint log p(z_1, …, z_L), ``sample_posterior`` draws
all levels top-down and returns the summed log q, ``decoder_params(z)`` decodes the z_1 part, and
the IW-NLL, the IWAE bound and the samplers need nothing new. :meth:`HierarchicalVAE.split_levels`
cuts such a z (or any per-dimension tensor) into its levels.

Example:
    >>> import torch, genvae as gv
    >>> enc = gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,))
    >>> dec = gv.decoders.MLPDecoder(3, (1, 4, 4), hidden=(8,))
    >>> model = gv.HierarchicalVAE(enc, dec, latent_dims=(3, 2), hidden=8)
    >>> out = model(torch.rand(5, 1, 4, 4))
    >>> out.z.shape, [kl.shape for kl in out.kl_levels()]
    (torch.Size([5, 5]), [torch.Size([5]), torch.Size([5])])
    >>> model.sample(2).shape
    torch.Size([2, 1, 4, 4])
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, cast

import torch
from torch import nn

from genvae import decoders, encoders, likelihoods
from genvae._ladder import HierarchicalOutput, HierarchicalParams, Level, TopDown, merge
from genvae._layers import activation as make_activation
from genvae._layers import int_sequence
from genvae._memory import arguments_named, check_parameters
from genvae._seed_networks import seed_decoder, seed_encoder
from genvae._validation import check_condition_size, check_finite_number, check_non_negative, check_positive_int
from genvae.conditioners import Conditioner
from genvae.gaussian import log_normal, reparameterize
from genvae.inference import posterior_means
from genvae.likelihoods import Likelihood
from genvae.models import VAE, ConditionalVAE, Labels, register
from genvae.priors import Prior, as_prior

__all__ = ["HierarchicalOutput", "HierarchicalParams", "HierarchicalVAE", "Level", "merge", "seed_hierarchical"]


class _TopLevelHost:
    """What the top prior is attached to: the model seen as a one-level model over z_L (the
    VampPrior encodes its pseudo-inputs with the top level's bottom-up posterior)."""

    def __init__(self, model: HierarchicalVAE) -> None:
        self.model_name = type(model).__name__  # what a prior's error names: the user's model, not this
        self.latent_dim = model.latent_dims[-1]
        self.condition_dim = model.condition_dim
        self.input_shape = model.input_shape
        self.dtype = model.dtype
        self.posterior = model.top_posterior


@register("hierarchical")
class HierarchicalVAE(VAE):
    """A VAE with several levels of latents, inferred as in the Ladder VAE (Sønderby et al., 2016).

    See :mod:`genvae.hierarchical` for the model. The forward pass returns a
    :class:`HierarchicalOutput`, so the ELBO (with ``kl_level_1``, ``kl_level_2``, … in the
    History), IWAE and the importance-weighted NLL work as for a :class:`~genvae.VAE`.

    Args:
        encoder: a feature extractor ``x (, c) -> (batch, features)``; a registered name builds the
            built-in (with the condition in a conditional model).
        decoder: ``z_1 (, c) ->`` raw distribution parameters; a registered name builds the built-in
            with ``latent_dim=latent_dims[0]``.
        latent_dims: the size of each level, the bottom level (the decoder's input) first.
        likelihood: as for :class:`~genvae.VAE`.
        prior: the top prior p(z_L): a registered name or a :class:`~genvae.priors.Prior`.
        num_classes: the number of classes of a conditional model (integer labels); None for an
            unconditional model unless ``condition_dim`` is given.
        condition_dim: the length of float condition vectors (a conditional model without classes).
        conditioner: how the condition enters the top-down networks (and built-in encoder and
            decoder made by name): ``"split"``, ``"concat"``, ``"film"`` or a Conditioner.
        hidden: the width of each level's bottom-up layer and top-down network.
        activation: their activation.
        feature_dim: as for :class:`~genvae.VAE`.
        logvar_range: ``(low, high)`` clamp of every log-variance the networks give (bottom-up and
            top-down), or None.
    """

    def __init__(
        self,
        encoder: str | nn.Module = "conv",
        decoder: str | nn.Module = "conv",
        latent_dims: Sequence[int] = (32, 16),
        likelihood: str | Likelihood = "bernoulli",
        prior: str | Prior = "normal",
        num_classes: int | None = None,
        condition_dim: int | None = None,
        conditioner: str | Conditioner = "split",
        hidden: int = 64,
        activation: str = "elu",
        feature_dim: int | None = None,
        logvar_range: tuple[float, float] | None = None,
    ) -> None:
        nn.Module.__init__(self)
        self.latent_dims = int_sequence("latent_dims", latent_dims, allow_empty=False)
        if len(self.latent_dims) < 2:
            raise ValueError(f"latent_dims: expected two levels or more, got {tuple(self.latent_dims)}")
        self.latent_dim = sum(self.latent_dims)
        self.hidden = check_positive_int("hidden", hidden)
        self.num_classes, self.condition_dim = check_condition_size(num_classes, condition_dim)
        self.conditional = self.condition_dim > 0
        self.logvar_range = _checked_range(logvar_range)
        condition = {"condition_dim": self.condition_dim, "conditioner": conditioner} if self.conditional else {}
        # the parts get latent_dim=latent_dims[0] (and condition_dim=num_classes): a size error names
        # the argument the user gave
        names: dict[str, tuple[str, Any]] = {"latent_dim": ("latent_dims", latent_dims)}
        if condition_dim is None:
            names["condition_dim"] = ("num_classes", num_classes)
        with arguments_named(**names):
            self.encoder = _module("encoder", encoders.registry.resolve(encoder, argument="encoder", **condition))
            self.decoder = _module(
                "decoder",
                decoders.registry.resolve(decoder, argument="decoder", latent_dim=self.latent_dims[0], **condition),
            )
            self.likelihood = _likelihood(likelihood)
            self._check_parts()
            features = feature_dim if feature_dim is not None else getattr(self.encoder, "out_features", None)
            if features is None:
                raise ValueError(
                    "encoder: expected a module with an `out_features` attribute or the feature_dim argument, "
                    f"got {type(self.encoder).__name__} with neither"
                )
            check_positive_int("feature_dim", features)
            self._build_levels(features, activation, conditioner)
            self.prior = as_prior(prior)
            self.prior.attach(_TopLevelHost(self))

    def _build_levels(self, features: int, activation: str, conditioner: Any) -> None:
        dims, width = self.latent_dims, self.hidden
        up = (features + 1) * width + (len(dims) - 2) * (width + 1) * width
        heads = sum(((features if i == 0 else width) + 1) * 2 * d for i, d in enumerate(dims))
        down = sum((above + 1 + self.condition_dim) * width + (width + 1) * 2 * below
                   for below, above in itertools.pairwise(dims))  # fmt: skip
        check_parameters(
            type(self).__name__,
            up + heads + down,
            latent_dims=(self.latent_dims, max(*dims, len(dims))),
            hidden=(self.hidden, width),
            feature_dim=(features, features),
            condition_dim=(self.condition_dim, self.condition_dim),
        )
        # bottom-up: level 1 reads the encoder's features; each level above adds one layer
        self.up = nn.ModuleList(
            nn.Sequential(nn.Linear(features if i == 1 else width, width), make_activation(activation))
            for i in range(1, len(dims))
        )
        self.up_heads = nn.ModuleList(
            nn.Linear(features if i == 0 else width, 2 * d) for i, d in enumerate(dims)
        )  # fmt: skip
        # top-down: p(z_i | z_{i+1}) for each level below the top, level 1 first
        self.down = nn.ModuleList(
            TopDown(dims[i + 1], dims[i], width, activation, self.condition_dim, conditioner)
            for i in range(len(dims) - 1)
        )

    def _check_parts(self) -> None:
        got = getattr(self.decoder, "latent_dim", self.latent_dims[0])
        if got != self.latent_dims[0]:
            raise ValueError(
                f"decoder: expected a decoder of latent_dim={self.latent_dims[0]} (latent_dims[0]), got {got}"
            )
        for name, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            got = getattr(part, "condition_dim", self.condition_dim)
            if got != self.condition_dim:
                raise ValueError(
                    f"{name}: expected a part built with condition_dim={self.condition_dim}, got condition_dim={got}"
                )

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return cast(nn.Linear, self.up_heads[0]).weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's parameters."""
        return cast(nn.Linear, self.up_heads[0]).weight.dtype

    def condition(self, y: Labels | None, batch: int) -> torch.Tensor | None:
        """The condition vectors for labels ``y``, as :meth:`genvae.ConditionalVAE.condition` gives
        them in a conditional model; None (and ``y`` must be None) otherwise."""
        if self.conditional:
            return ConditionalVAE.condition(self, y, batch)  # type: ignore[arg-type]
        return VAE.condition(self, y, batch)

    def split_levels(self, z: torch.Tensor) -> list[torch.Tensor]:
        """``z`` (or any tensor whose last dimension runs over all levels' dimensions) cut into its
        levels, level 1 first."""
        return list(torch.split(z, list(self.latent_dims), dim=-1))

    # -- the pieces of a forward pass (public, unchecked, differentiable) -----------------------

    def _clamp(self, logvar: torch.Tensor) -> torch.Tensor:
        return logvar.clamp(*self.logvar_range) if self.logvar_range is not None else logvar

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> HierarchicalParams:  # type: ignore[override]
        """The bottom-up pass: each level's Gaussian estimate, the encoder's features and ``c``."""
        h = self.encoder(x) if c is None else self.encoder(x, c)
        features, means, logvars = h, [], []
        for i, head in enumerate(self.up_heads):
            if i > 0:
                h = self.up[i - 1](h)
            mean, logvar = head(h).chunk(2, dim=-1)
            means.append(mean)
            logvars.append(self._clamp(logvar))
        return HierarchicalParams(means, logvars, features, c)

    def prior_step(self, i: int, above: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of p(z_{i+1} | z_{i+2}) (level ``i`` counted from 0 at the bottom)
        given the level above's ``above``, any leading dimensions."""
        mean, logvar = self.down[i](above, c)
        return mean, self._clamp(logvar)

    def top_down(self, params: HierarchicalParams, samples: int | None = None, *, draw: bool = True) -> list[Level]:
        """The top-down pass, level 1 first: each level's posterior merged with its prior at the level
        above's draw (its mean when ``draw`` is False: a deterministic pass), drawn with the
        reparameterisation trick; ``samples`` draws per input give ``(samples, batch, …)``."""
        top_mean, top_logvar = params.means[-1], params.logvars[-1]
        if samples is not None:
            top_mean, top_logvar = (t.expand(samples, *t.shape) for t in (top_mean, top_logvar))
        levels = [Level(_draw(top_mean, top_logvar, draw), top_mean, top_logvar)]
        for i in reversed(range(len(self.latent_dims) - 1)):
            prior_mean, prior_logvar = self.prior_step(i, levels[0].z, params.c)
            mean, logvar = merge(params.means[i], params.logvars[i], prior_mean, prior_logvar)
            levels.insert(0, Level(_draw(mean, logvar, draw), mean, logvar, prior_mean, prior_logvar))
        return levels

    def sample_posterior(  # type: ignore[override]
        self, params: HierarchicalParams, samples: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draws of every level, joined ``(…, latent_dim)``, and Σ_i log q(z_i | ·), ``z.shape[:-1]``."""
        levels = self.top_down(params, samples)
        return torch.cat([lv.z for lv in levels], dim=-1), torch.stack([lv.log_q() for lv in levels]).sum(0)

    def posterior(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Means and log-variances of every level's posterior, joined ``(batch, latent_dim)``, in the
        deterministic top-down pass (each level given the mean of the level above)."""
        levels = self.top_down(self.posterior_params(x, c), draw=False)
        return torch.cat([lv.mean for lv in levels], -1), torch.cat([lv.logvar for lv in levels], -1)

    def top_posterior(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z_L | x), the top level's bottom-up estimate."""
        params = self.posterior_params(x, c)
        return params.means[-1], params.logvars[-1]

    def posterior_location(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Every level's posterior mean in the deterministic pass, joined ``(batch, latent_dim)``."""
        return self.posterior(x, c)[0]

    def decoder_params(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's raw parameters for the z_1 part of ``z`` (all levels joined)."""
        bottom = z[..., : self.latent_dims[0]]
        return self.decoder(bottom) if c is None else self.decoder(bottom, c)

    @property
    def prior_is_conditional(self) -> bool:
        """Whether p(z_1, …, z_L) depends on the condition: in a conditional model, through every
        top-down step p(z_i | z_{i+1}, c), whatever the top prior."""
        return self.conditional or self.prior.conditional

    def prior_log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z_1, …, z_L) (given ``c``): the top prior's log-density and each level's Gaussian
        log p(z_i | z_{i+1}), for ``z`` with all levels joined; shape ``z.shape[:-1]``."""
        parts = self.split_levels(z)
        total = self.prior.log_prob(parts[-1], c)
        for i in range(len(parts) - 1):
            total = total + log_normal(parts[i], *self.prior_step(i, parts[i + 1], c))
        return total

    def sample_prior(
        self, n: int, c: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` ancestral draws of every level, joined ``(n, latent_dim)``: z_L from the top prior,
        then each z_i from p(z_i | z_{i+1}, c)."""
        check_positive_int("n", n)
        parts = [self.prior.sample(n, c, generator=generator, dtype=self.dtype, device=self.device)]
        for i in reversed(range(len(self.latent_dims) - 1)):
            mean, logvar = self.prior_step(i, parts[0], c)
            where = generator.device if generator is not None else self.device
            eps = torch.randn(mean.shape, generator=generator, device=where, dtype=self.dtype).to(self.device)
            parts.insert(0, reparameterize(mean, logvar, eps))
        return torch.cat(parts, dim=-1)

    def forward_condition(
        self, x: torch.Tensor, c: torch.Tensor | None, samples: int | None = None
    ) -> HierarchicalOutput:
        """Bottom-up pass, top-down draws of every level, decoding of z_1 (``samples=k``: k draws
        per input, decoded in one batched pass)."""
        if samples is not None:
            check_positive_int("samples", samples)
        levels = self.top_down(self.posterior_params(x, c), samples)
        z = torch.cat([lv.z for lv in levels], dim=-1)
        if samples is None:
            params = self.decoder_params(z, c)
        else:
            flat_c = c.repeat(samples, 1) if c is not None else None
            params = self.decoder_params(z.reshape(-1, self.latent_dim), flat_c)
            params = params.reshape(samples, x.shape[0], *params.shape[1:])
        mean = torch.cat([lv.mean.expand_as(lv.z) for lv in levels], dim=-1)
        logvar = torch.cat([lv.logvar.expand_as(lv.z) for lv in levels], dim=-1)
        log_q = torch.stack([lv.log_q() for lv in levels]).sum(0)
        return HierarchicalOutput(params, mean, logvar, z, self.likelihood, c, self.prior, log_q,
                                  gaussian_posterior=False, levels=levels, draws=samples)  # fmt: skip

    # -- analysis ------------------------------------------------------------------------------

    def active_units(self, data: Any, threshold: float = 0.01, batch_size: int = 1000) -> list[int]:
        """The active units of each level (Burda et al., 2015), level 1 first: a dimension is active
        when the variance over ``data`` of its posterior mean (in the deterministic top-down pass)
        exceeds ``threshold``. ``gv.evaluation.active_units(model, data)`` gives the same over the
        joined z; :meth:`split_levels` cuts its ``variances`` by level."""
        check_non_negative("threshold", threshold)
        means, _ = posterior_means(self, data, check_positive_int("batch_size", batch_size))
        if means.shape[0] < 2:
            raise ValueError(f"data: expected at least 2 inputs to measure a variance, got {means.shape[0]}")
        variances = means.double().var(0, unbiased=False)
        return [int((v > threshold).sum()) for v in self.split_levels(variances)]

    def extra_repr(self) -> str:
        """The levels' sizes (and the condition length), shown in the module's ``repr``."""
        extra = f", condition_dim={self.condition_dim}" if self.conditional else ""
        return f"latent_dims={tuple(self.latent_dims)}{extra}"


def _draw(mean: torch.Tensor, logvar: torch.Tensor, draw: bool) -> torch.Tensor:
    return reparameterize(mean, logvar) if draw else mean


def _checked_range(bounds: Any) -> tuple[float, float] | None:
    """``logvar_range``: None or finite ``(low, high)`` with low < high."""
    if bounds is None:
        return None
    if not isinstance(bounds, Sequence) or isinstance(bounds, str) or len(bounds) != 2:
        raise ValueError(f"logvar_range: expected (low, high) or None, got {bounds!r}")
    low, high = (check_finite_number("logvar_range", b) for b in bounds)
    if not low < high:
        raise ValueError(f"logvar_range: expected low < high, got {bounds!r}")
    return low, high


def _likelihood(spec: Any) -> Likelihood:
    lik = likelihoods.registry.resolve(spec, argument="likelihood")
    if not isinstance(lik, Likelihood):
        raise TypeError(
            f"likelihood: expected a registered name ({', '.join(likelihoods.names())}) or a Likelihood, "
            f"got {type(lik).__name__}"
        )
    return lik


def _module(name: str, part: Any) -> nn.Module:
    if not isinstance(part, nn.Module):
        raise TypeError(f"{name}: expected an nn.Module or a registered name, got {type(part).__name__}")
    return part


def seed_hierarchical(
    latent_dims: Sequence[int] = (32, 16),
    num_classes: int | None = None,
    conditioner: str | Conditioner = "split",
    likelihood: str = "bernoulli",
    prior: str | Prior = "normal",
    latent_dim: int | None = None,
) -> HierarchicalVAE:
    """A :class:`HierarchicalVAE` on the notebook's networks (its convolutional encoder for 28×28
    grey images, its transposed-convolution decoder from z_1), the builder of ``genvae train
    --model hierarchical``. With ``num_classes``, a conditional model: the encoder, the top-down
    networks and the decoder all see the label through ``conditioner`` (as :func:`seed_cvae`).

    ``latent_dim`` is the bottom level's size as a run's ``--latent-dim`` gives it: None, or equal
    to ``latent_dims[0]``.

    Example:
        >>> import genvae as gv
        >>> gv.presets.seed_hierarchical(latent_dims=(8, 4)).latent_dims
        (8, 4)
    """
    dims = int_sequence("latent_dims", latent_dims, allow_empty=False)
    if latent_dim is not None and latent_dim != dims[0]:
        wanted = ", ".join(map(str, (latent_dim, *dims[1:])))
        raise ValueError(
            f"latent_dim: expected None or the bottom level's size latent_dims[0] = {dims[0]}, got {latent_dim}; "
            f"for a bottom level of {latent_dim}, give latent_dims=({wanted}) instead"
        )
    classes, how = num_classes, conditioner
    return HierarchicalVAE(
        encoder=seed_encoder(classes, how),
        decoder=seed_decoder(dims[0], classes, how),
        latent_dims=dims,
        likelihood=likelihood,
        prior=prior,
        num_classes=classes,
        conditioner=how,
    )
