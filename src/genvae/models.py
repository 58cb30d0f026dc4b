"""The models: :class:`VAE`, :class:`ConditionalVAE` and their output, :class:`VAEOutput`
(defined in :mod:`genvae.outputs`).

A model is an encoder (any feature extractor), a posterior head (two linear maps to the mean
and log-variance of a Gaussian q(z | x)) with its posterior part (:mod:`genvae.posteriors`: the
Gaussian itself by default, or a flow on top of it), a decoder (z to raw distribution
parameters) and a likelihood (raw parameters to p(x | z)), and a prior p(z)
(:mod:`genvae.priors`; N(0, I) by default).

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae(latent_dim=2)
    >>> x = torch.rand(16, 1, 28, 28)
    >>> out = model(x)
    >>> out.recon.shape, out.mean.shape, out.z.shape
    (torch.Size([16, 1, 28, 28]), torch.Size([16, 2]), torch.Size([16, 2]))
    >>> model.sample(4).shape
    torch.Size([4, 1, 28, 28])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genvae import decoders, encoders, likelihoods
from genvae._memory import arguments_named, check_parameters, check_samples
from genvae._model_inputs import EncoderDecoderInputs
from genvae._validation import (
    as_labels,
    check_condition_size,
    check_finite,
    check_labels,
    check_positive_int,
    check_tensor,
    fmt_shape,
)
from genvae.gaussian import reparameterize
from genvae.likelihoods import Likelihood
from genvae.outputs import VAEOutput
from genvae.posteriors import Posterior, PosteriorParams, as_posterior
from genvae.priors import Prior, as_prior
from genvae.registry import Registry

__all__ = ["VAE", "ConditionalVAE", "VAEOutput", "get", "names", "register", "registry"]

registry: Registry[type[nn.Module]] = Registry("models", record_config=True)
register = registry.register
get = registry.get
names = registry.names

#: Labels as the models take them: a tensor, one int, or a list or tuple of either labels or
#: condition vectors (converted by :func:`genvae._validation.as_labels`).
Labels = torch.Tensor | int | Sequence[int] | Sequence[Sequence[float]]


@register("vae")
class VAE(EncoderDecoderInputs, nn.Module):
    """A variational autoencoder made of an encoder, a decoder and a likelihood.

    Args:
        encoder: a feature extractor ``x -> (batch, features)``; a registered name builds the
            built-in with its defaults.
        decoder: ``z -> raw distribution parameters`` with the data's shape; a registered name
            builds the built-in with ``latent_dim``.
        latent_dim: size of z.
        likelihood: a registered name (``"bernoulli"``, ``"continuous_bernoulli"``,
            ``"gaussian"``) or a :class:`~genvae.likelihoods.Likelihood`.
        feature_dim: size of the encoder's feature vector, when the encoder has no
            ``out_features`` attribute.
        prior: p(z): a registered name (``"normal"``, ``"mog"``, ``"vamp"``; see
            :mod:`genvae.priors`) or a :class:`~genvae.priors.Prior` object of its own.
        logvar_range: ``(low, high)``: clamp the encoder's log-variances into this range (a hard
            tanh, as the VampPrior reference does with (−6, 2)), which keeps q(z | x) from
            collapsing or exploding early in training; None (the default) leaves them free.
        posterior: q(z | x): a registered name (``"gaussian"``, ``"iaf"``; see
            :mod:`genvae.posteriors`) or a :class:`~genvae.posteriors.Posterior` object; kept as
            :attr:`q`.

    Example:
        >>> import torch, genvae as gv
        >>> class Tiny(torch.nn.Module):
        ...     out_features = 32
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 32), torch.nn.ReLU())
        ...     def forward(self, x):
        ...         return self.net(x)
        >>> model = gv.VAE(Tiny(), gv.decoders.MLPDecoder(latent_dim=4), latent_dim=4)
        >>> model(torch.rand(3, 1, 28, 28)).recon.shape
        torch.Size([3, 1, 28, 28])
    """

    conditional = False
    #: The name in :data:`genvae.losses.objectives` of the objective this model trains with when the
    #: Trainer is given none.
    default_objective: str = "elbo"

    def __init__(
        self,
        encoder: str | nn.Module = "conv",
        decoder: str | nn.Module = "conv",
        latent_dim: int = 2,
        likelihood: str | Likelihood = "bernoulli",
        feature_dim: int | None = None,
        prior: str | Prior = "normal",
        logvar_range: tuple[float, float] | None = None,
        posterior: str | Posterior = "gaussian",
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.condition_dim = 0
        self.logvar_range = _checked_range(logvar_range)
        self._build(encoder, decoder, likelihood, feature_dim, {}, posterior)
        self._attach_prior(prior)

    def _attach_prior(self, prior: str | Prior) -> None:
        """The prior last: it may use the finished model (the VampPrior encodes with it)."""
        self.prior = as_prior(prior)
        self.prior.attach(self)

    def _build(
        self,
        encoder: str | nn.Module,
        decoder: str | nn.Module,
        likelihood: str | Likelihood,
        feature_dim: int | None,
        condition: dict[str, Any],
        posterior: str | Posterior,
    ) -> None:
        self.encoder = _as_module("encoder", encoders.registry.resolve(encoder, argument="encoder", **condition))
        self.decoder = _as_module(
            "decoder",
            decoders.registry.resolve(decoder, argument="decoder", latent_dim=self.latent_dim, **condition),
        )
        lik = likelihoods.registry.resolve(likelihood, argument="likelihood")
        if not isinstance(lik, Likelihood):
            raise TypeError(
                f"likelihood: expected a registered name ({', '.join(likelihoods.names())}) or a "
                f"Likelihood, got {type(lik).__name__}"
            )
        self.likelihood = lik
        dec_latent = getattr(self.decoder, "latent_dim", self.latent_dim)
        if dec_latent != self.latent_dim:
            raise ValueError(
                f"decoder: expected a decoder with latent_dim={self.latent_dim}, got latent_dim={dec_latent}"
            )
        for name, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            got = getattr(part, "condition_dim", self.condition_dim)
            if got != self.condition_dim:
                raise ValueError(
                    f"{name}: expected a part built with condition_dim={self.condition_dim} for this "
                    f"{type(self).__name__}, got condition_dim={got}"
                )
        features = feature_dim if feature_dim is not None else getattr(self.encoder, "out_features", None)
        if features is None:
            raise ValueError(
                f"encoder: expected a module with an `out_features` attribute (the size of its feature "
                f"vector) or the feature_dim argument, got {type(self.encoder).__name__} with neither"
            )
        check_positive_int("feature_dim", features)
        heads = 2 * (features + 1) * self.latent_dim  # mean and log-variance
        check_parameters(type(self).__name__, heads, latent_dim=(self.latent_dim, self.latent_dim),
                         feature_dim=(features, features))  # fmt: skip
        self.mean_head = nn.Linear(features, self.latent_dim)
        self.logvar_head = nn.Linear(features, self.latent_dim)
        self.q = as_posterior(posterior)
        self.q.attach(self.latent_dim, features)

    # -- shapes, dtype and device -------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return self.mean_head.weight.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's parameters; inputs are cast to it."""
        return self.mean_head.weight.dtype

    # -- checks (public: the Trainer, evaluation and figures use them) -------------------------

    def check_latent(self, z: Any) -> torch.Tensor:
        """Check latent vectors ``(batch, latent_dim)`` (one ``(latent_dim,)`` vector is made a batch
        of one) and cast them to the model's dtype and device."""
        check_tensor("z", z, floating=True)
        if z.dim() == 1:  # one latent vector, as the notebook's plotting code passes
            z = z.unsqueeze(0)
        if z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(
                f"z: expected a tensor of shape (batch, {self.latent_dim}) or ({self.latent_dim},), "
                f"got {fmt_shape(z.shape)}"
            )
        if self.checking:
            check_finite("z", z)
        return z.to(self.device, self.dtype)

    def condition(self, y: Labels | None, batch: int) -> torch.Tensor | None:
        """The condition vectors for labels ``y`` (checked); an unconditional model takes none."""
        if y is not None:
            raise ValueError(f"y: expected None for an unconditional {type(self).__name__}, got labels")
        return None

    # -- the pieces of a forward pass (public, unchecked, differentiable) -----------------------

    def posterior_params(self, x: torch.Tensor, c: torch.Tensor | None = None) -> PosteriorParams:
        """The encoder's pass (given a condition from :meth:`condition`): the Gaussian q₀'s mean and
        log-variance and the encoder's features, from which :meth:`sample_posterior` draws. No
        input checks: the building block that evaluation and objectives share."""
        h = self.encoder(x) if c is None else self.encoder(x, c)
        logvar = self.logvar_head(h)
        if self.logvar_range is not None:
            logvar = logvar.clamp(*self.logvar_range)
        return PosteriorParams(self.mean_head(h), logvar, h)

    def posterior(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the Gaussian q(z | x) (q(z | x, c) given a condition from
        :meth:`condition`); with a flow posterior, of its Gaussian base q₀. No input checks."""
        params = self.posterior_params(x, c)
        return params.mean, params.logvar

    def sample_posterior(
        self, params: PosteriorParams, samples: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws z ~ q(z | x) from the encoder's ``params`` and their log q(z | x),
        through the posterior part :attr:`q`: ``z`` ``(batch, latent_dim)``, or ``(samples, batch,
        latent_dim)``; ``log q`` of shape ``z.shape[:-1]``."""
        return self.q.rsample(params, samples)

    def posterior_location(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """A deterministic code of each input, ``(batch, latent_dim)``: the posterior mean for the
        Gaussian posterior, the flow's image of q₀'s mean for a flow posterior. No input checks."""
        return self.q.location(self.posterior_params(x, c))

    def decoder_params(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's raw distribution parameters for latents ``z`` (and condition ``c``).
        No input checks."""
        return self.decoder(z) if c is None else self.decoder(z, c)

    def prior_log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z) (log p(z | c) for a conditional prior) summed over the latent dimensions:
        shape ``z.shape[:-1]``, from the model's :attr:`prior`."""
        return self.prior.log_prob(z, c)

    def sample_prior(
        self, n: int, c: torch.Tensor | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` latent vectors drawn from the prior (given condition vectors ``c``, ``(n,
        condition_dim)``, for a conditional prior), in the model's dtype and on its device.
        A generator on another device draws there and the result is moved."""
        check_positive_int("n", n)
        return self.prior.sample(n, c, generator=generator, dtype=self.dtype, device=self.device)

    @staticmethod
    def sample_latent(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        """The reparameterisation trick: ``mean + eps * exp(logvar / 2)`` with ``eps ~ N(0, I)``."""
        return reparameterize(mean, logvar)

    def forward_condition(self, x: torch.Tensor, c: torch.Tensor | None, samples: int | None = None) -> VAEOutput:
        """A forward pass given a precomputed condition: encode, draw z, decode. No input checks.

        With ``samples=k``, ``k`` draws of z per input, decoded in one batched decoder pass (one
        encoder pass): ``z`` is ``(k, batch, latent_dim)`` and ``params`` ``(k, batch, ...)``."""
        if samples is not None:
            check_positive_int("samples", samples)
        q = self.posterior_params(x, c)
        z, log_q = self.sample_posterior(q, samples)
        if samples is None:
            params = self.decoder_params(z, c)
        else:
            flat_c = c.repeat(samples, 1) if c is not None else None
            params = self.decoder_params(z.reshape(-1, self.latent_dim), flat_c)
            params = params.reshape(samples, q.mean.shape[0], *params.shape[1:])
        return VAEOutput(params, q.mean, q.logvar, z, self.likelihood, c, self.prior, log_q, self.q.gaussian)

    # -- public methods ------------------------------------------------------------------------
    # Both models share these signatures; ``y`` is the label of a conditional model and must be
    # None for an unconditional one (see ``condition``).

    def encode(self, x: torch.Tensor, y: Labels | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance of q(z | x) (q(z | x, y) for a conditional model),
        each ``(batch, latent_dim)``; with a flow posterior, of its Gaussian base q₀ (draws of q
        itself: :meth:`sample_posterior`)."""
        if self.checking:
            self.check_input(x)
        return self.posterior(x, self.condition(y, x.shape[0]))

    def decode_params(self, z: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """The decoder's raw distribution parameters for ``z`` (logits for a Bernoulli)."""
        z = self.check_latent(z)
        return self.decoder_params(z, self.condition(y, z.shape[0]))

    @torch.no_grad()
    def decode(self, z: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """The data-space mean of p(x | z): pixel probabilities for a Bernoulli likelihood.
        ``z`` is ``(batch, latent_dim)`` or a single ``(latent_dim,)`` vector. No gradients
        (use :meth:`decode_params` to differentiate through the decoder)."""
        return self.likelihood.mean(self.decode_params(z, y))

    def forward(self, x: torch.Tensor, y: Labels | None = None, *, samples: int | None = None) -> VAEOutput:
        """Encode, draw z with the reparameterisation trick, decode. With ``samples=k``, ``k``
        draws per input (for importance-weighted objectives): see :meth:`forward_condition`."""
        if self.checking:
            self.check_input(x)
            if samples is not None:  # k decoded copies of the batch
                given = f"{check_positive_int('samples', samples)} for each of {x.shape[0]} inputs"
                check_samples(self, "samples", given, samples * x.shape[0])
        return self.forward_condition(x, self.condition(y, x.shape[0]), samples)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """Decode the posterior mean of each input (:meth:`posterior_location`): a deterministic
        reconstruction (no gradients)."""
        x = self.as_input(x)
        if self.checking:
            self.check_input(x)
        c = self.condition(y, x.shape[0])
        return self.likelihood.mean(self.decoder_params(self.posterior_location(x, c), c))

    @torch.no_grad()
    def sample(self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new inputs: z drawn from the prior, decoded to the data-space mean (for a
        conditional model, of label(s) ``y``: one label, or ``n`` of them). No gradients."""
        check_samples(self, "n", check_positive_int("n", n), n)  # before any allocation
        c = self.condition(y, n)
        return self.likelihood.mean(self.decoder_params(self.sample_prior(n, c, generator=generator), c))

    def extra_repr(self) -> str:
        """The latent size, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}"


@register("cvae")
class ConditionalVAE(VAE):
    """A conditional VAE: encoder q(z | x, y) and decoder p(x | z, y) both see the condition y.

    Labels are integer class indices of shape ``(batch,)`` (one-hot encoded here, with
    ``num_classes``) or float condition vectors of shape ``(batch, condition_dim)`` (one-hot or
    continuous). A single int or a batch of one label is broadcast over the batch.

    Args:
        encoder: an encoder taking ``(x, c)``; a registered name builds the built-in with
            ``condition_dim``.
        decoder: a decoder taking ``(z, c)``; a registered name builds the built-in.
        latent_dim: size of z.
        num_classes: number of classes, for integer labels (sets ``condition_dim``).
        condition_dim: length of the condition vector, for float conditions.
        likelihood: as for :class:`VAE`.
        feature_dim: as for :class:`VAE`.
        prior: as for :class:`VAE`, and ``"conditional"`` for p(z | y)
            (:class:`~genvae.priors.ConditionalPrior`).
        logvar_range: as for :class:`VAE`.
        posterior: as for :class:`VAE`.

    Example:
        >>> import torch, genvae as gv
        >>> cvae = gv.presets.seed_cvae(latent_dim=2, num_classes=10)
        >>> x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 1, 2, 3, 4])
        >>> cvae(x, y).recon.shape
        torch.Size([5, 1, 28, 28])
        >>> cvae.sample(3, y=7).shape
        torch.Size([3, 1, 28, 28])
    """

    conditional = True

    def __init__(
        self,
        encoder: str | nn.Module = "conv",
        decoder: str | nn.Module = "conv",
        latent_dim: int = 2,
        num_classes: int | None = 10,
        condition_dim: int | None = None,
        likelihood: str | Likelihood = "bernoulli",
        feature_dim: int | None = None,
        prior: str | Prior = "normal",
        logvar_range: tuple[float, float] | None = None,
        posterior: str | Posterior = "gaussian",
    ) -> None:
        nn.Module.__init__(self)
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.logvar_range = _checked_range(logvar_range)
        self.num_classes, self.condition_dim = check_condition_size(num_classes, condition_dim)
        if not self.condition_dim:
            raise ValueError("num_classes: expected num_classes or condition_dim for a conditional model, got neither")
        # the parts get condition_dim=num_classes: a size error names the argument the user gave
        with arguments_named(**({"condition_dim": ("num_classes", num_classes)} if condition_dim is None else {})):
            self._build(encoder, decoder, likelihood, feature_dim, {"condition_dim": self.condition_dim}, posterior)
            self._attach_prior(prior)

    def condition(self, y: Labels | None, batch: int) -> torch.Tensor:
        """The float condition vectors ``(batch, condition_dim)`` for labels ``y``, checked: integer
        class indices are one-hot encoded, float vectors pass through (cast to the model's dtype);
        one label or one condition vector is broadcast over the batch."""
        if y is None:
            raise ValueError(
                "y: expected labels for this conditional model (integer class indices of shape "
                f"(batch,) or float vectors of shape (batch, {self.condition_dim})), got None"
            )
        device = self.device
        y = as_labels("y", y)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y: expected a tensor, an int or a list of labels, got {type(y).__name__}")
        if y.dtype == torch.bool or y.is_complex():
            raise TypeError(f"y: expected integer class indices or float vectors, got dtype {y.dtype}")
        if y.is_floating_point():
            given, one_per_input = fmt_shape(y.shape), y.dim() == 1
            if y.dim() == 1:  # one condition vector for the batch, or one scalar per input
                y = y.unsqueeze(1) if self.condition_dim == 1 else y.unsqueeze(0)
            if y.dim() != 2 or y.shape[1] != self.condition_dim:
                # float class indices are a common slip (labels stored as floats)
                hint = "; for class indices pass y.long()" if self.num_classes is not None and one_per_input else ""
                raise ValueError(
                    f"y: expected float condition vectors of shape (batch, {self.condition_dim}), got {given}{hint}"
                )
            if self.checking:
                check_finite("y", y)
            c = y.to(device, self.dtype)
        else:
            if self.num_classes is None:
                raise ValueError(
                    "y: expected float condition vectors for a model built with condition_dim and no "
                    f"num_classes, got integer labels of dtype {y.dtype}"
                )
            if y.dim() == 2 and y.shape[1] == 1:
                y = y[:, 0]
            if y.dim() != 1:
                raise ValueError(f"y: expected integer class indices of shape (batch,), got {fmt_shape(y.shape)}")
            if self.checking:
                check_labels("y", y, self.num_classes)
            c = F.one_hot(y.to(device, torch.long), self.num_classes).to(self.dtype)
        if c.shape[0] == 1 and batch != 1:
            c = c.expand(batch, -1)
        elif c.shape[0] != batch:
            raise ValueError(f"y: expected {batch} labels (one per input) or one, got {c.shape[0]}")
        return c

    def extra_repr(self) -> str:
        """The latent size and the condition length, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}, condition_dim={self.condition_dim}"


def _checked_range(bounds: Any) -> tuple[float, float] | None:
    """``logvar_range`` checked: None or ``(low, high)``, finite numbers with low < high."""
    if bounds is None:
        return None
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ValueError(f"logvar_range: expected (low, high) or None, got {bounds!r}") from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"logvar_range: expected finite (low, high) with low < high, got {bounds!r}")
    return low, high


def _as_module(name: str, part: Any) -> nn.Module:
    if not isinstance(part, nn.Module):
        raise TypeError(f"{name}: expected an nn.Module or a registered name, got {type(part).__name__}")
    return part
