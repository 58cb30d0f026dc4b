"""Priors p(z), or p(z | c) for a conditional model: the registry and the built-ins.

A model owns its prior (``gv.VAE(..., prior="vamp")``; a registered name or a :class:`Prior`
object) and hands itself to the prior once, as it is built (:meth:`Prior.attach`): the prior then
knows the latent size and the condition size, and a prior that needs the model's encoder (the
VampPrior) keeps its posterior function. The model routes its public entry points to the prior:
``model.prior_log_prob(z, c)``, ``model.sample_prior(n, c)`` and the KL of the loss term ``"kl"``.

- ``"normal"``: N(0, I), the default; analytic KL per latent dimension.
- ``"mog"``: a learnable mixture of K diagonal Gaussians; Monte-Carlo KL.
- ``"vamp"``: the VampPrior (Tomczak & Welling, 2018): the mixture of the posteriors of K learnable
  pseudo-inputs; Monte-Carlo KL.
- ``"conditional"``: p(z | c), a diagonal Gaussian whose mean and log-variance are functions of the
  condition, for conditional models; analytic KL per latent dimension.
- ``"flow"``: a masked autoregressive flow over z (p(z | c) in a conditional model); Monte-Carlo
  KL. Defined in :mod:`genvae.flows` (:class:`~genvae.flows.FlowPrior`), registered here.

Every prior has ``log_prob(z, c=None)`` (summed over the latent dimensions), ``sample(n, c=None)``
and ``kl(mean, logvar, z, c=None)``: per latent dimension, ``(batch, latent_dim)``, where the KL is
analytic (:attr:`Prior.per_dimension`), else the per-sample Monte-Carlo estimate
``log q(z | x) − log p(z)`` at the drawn z, ``(batch,)``.

Example:
    >>> import torch, genvae as gv
    >>> enc = gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,))
    >>> model = gv.VAE(enc, gv.decoders.MLPDecoder(2, (1, 4, 4), hidden=(8,)), latent_dim=2, prior="mog")
    >>> model.prior
    MixturePrior(components=10, latent_dim=2)
    >>> model.sample_prior(5).shape, model.prior_log_prob(torch.zeros(3, 2)).shape
    (torch.Size([5, 2]), torch.Size([3]))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from genvae._layers import activation as make_activation
from genvae._layers import int_sequence, mlp, mlp_parameters
from genvae._memory import check_draws, check_parameters
from genvae._validation import check_positive_int
from genvae.gaussian import kl_gaussians_per_dim, kl_per_dim, log_normal, log_normal_dims, log_normal_mixture
from genvae.registry import Registry

__all__ = [
    "ConditionalPrior",
    "GaussianPrior",
    "MixturePrior",
    "NormalPrior",
    "Prior",
    "PriorHost",
    "VampPrior",
    "get",
    "names",
    "register",
    "registry",
]

registry: Registry[type[nn.Module]] = Registry("priors", record_config=True)
register = registry.register
get = registry.get
names = registry.names

Posterior = Callable[[torch.Tensor, torch.Tensor | None], tuple[torch.Tensor, torch.Tensor]]


class PriorHost(Protocol):
    """What a prior reads from the model it belongs to (the public model API)."""

    latent_dim: int
    condition_dim: int

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input, or None when the model does not fix it."""

    @property
    def dtype(self) -> torch.dtype:
        """The model's floating-point dtype."""

    def posterior(self, x: torch.Tensor, c: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of q(z | x) (q(z | x, c)): the model's encoder."""


class Prior(nn.Module):
    """Base class of priors.

    A subclass implements :meth:`log_prob` and :meth:`sample`, creates its parameters in
    :meth:`build` (called once the model's sizes are known) and, where the KL against a diagonal
    Gaussian posterior has a closed form, overrides :meth:`kl` and sets :attr:`per_dimension`.

    Attributes:
        latent_dim: size of z (0 until the prior is attached to a model).
        condition_dim: size of the model's condition vector (0 for an unconditional model).
        per_dimension: :meth:`kl` is analytic, per latent dimension ``(batch, latent_dim)``; when
            false it is the per-sample Monte-Carlo estimate ``(batch,)`` (free bits need the former).
        conditional: the prior depends on the condition (``c`` is required).
    """

    per_dimension = False
    conditional = False

    def __init__(self) -> None:
        super().__init__()
        self.latent_dim = 0
        self.condition_dim = 0

    def attach(self, model: PriorHost) -> None:
        """Called by the model that owns this prior, once, when the model is built."""
        if self.latent_dim:
            raise ValueError(
                f"prior: expected a {type(self).__name__} of its own for this model, got one attached to "
                "another model already (build one prior object per model)"
            )
        self.latent_dim = check_positive_int("latent_dim", model.latent_dim)
        self.condition_dim = int(model.condition_dim)
        self.build(model)

    def build(self, model: PriorHost) -> None:
        """Create the prior's parameters for ``model`` (the base class has none)."""

    def log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z) (log p(z | c)) summed over the latent dimensions: shape ``z.shape[:-1]``.
        ``z`` may carry leading sample dimensions, ``(samples, batch, latent_dim)``, against a
        condition ``c`` of shape ``(batch, condition_dim)``."""
        raise NotImplementedError

    def sample(
        self,
        n: int,
        c: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` draws ``(n, latent_dim)``, in ``dtype`` on ``device`` (default: those of the prior's
        parameters). A generator on another device draws there and the result is moved."""
        raise NotImplementedError

    def kl(
        self, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        """KL(q(z | x) ‖ p(z)) for the diagonal Gaussian posterior ``(mean, logvar)``: here the
        Monte-Carlo estimate ``log q(z | x) − log p(z)`` at the drawn ``z``, per sample."""
        return log_normal(z, mean, logvar) - self.log_prob(z, c)

    def _placement(
        self, dtype: torch.dtype | None, device: torch.device | str | None
    ) -> tuple[torch.dtype, torch.device]:
        first = next(iter(self.parameters()), None)
        default_dtype = first.dtype if first is not None else torch.get_default_dtype()
        default_device = first.device if first is not None else torch.device("cpu")
        return dtype or default_dtype, torch.device(device) if device is not None else default_device

    def _noise(
        self,
        shape: tuple[int, ...],
        generator: torch.Generator | None,
        dtype: torch.dtype | None,
        device: torch.device | str | None,
    ) -> torch.Tensor:
        """Standard-normal noise drawn on the generator's device, then moved to ``device``."""
        dtype_, device_ = self._placement(dtype, device)
        where = generator.device if generator is not None else device_
        return torch.randn(shape, generator=generator, device=where, dtype=dtype_).to(device_)

    def extra_repr(self) -> str:
        """The latent size, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}"


class GaussianPrior(Prior):
    """A diagonal Gaussian prior, N(mean(c), exp(logvar(c))): log-density, samples and KL in closed
    form, each per latent dimension. Subclasses give the parameters in :meth:`gaussian`."""

    per_dimension = True

    def gaussian(self, c: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The prior's mean and log-variance, ``(batch, latent_dim)``; None for 0 (the standard normal)."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log N(z; mean(c), exp(logvar(c))) summed over the latent dimensions: shape ``z.shape[:-1]``."""
        mean, logvar = self.gaussian(c)
        return log_normal(z, mean, logvar)

    def log_prob_dims(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """log p(z) per latent dimension, the shape of ``z`` (the prior factorises)."""
        mean, logvar = self.gaussian(c)
        return log_normal_dims(z, mean, logvar)

    def kl(
        self, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The analytic KL(q(z | x) ‖ p(z)) per latent dimension, ``(batch, latent_dim)``."""
        prior_mean, prior_logvar = self.gaussian(c)
        if prior_mean is None or prior_logvar is None:
            return kl_per_dim(mean, logvar)
        return kl_gaussians_per_dim(mean, logvar, prior_mean, prior_logvar)

    def sample(
        self,
        n: int,
        c: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """``n`` draws ``mean(c) + exp(logvar(c) / 2)·ε`` with ε ~ N(0, I), ``(n, latent_dim)``, in
        ``dtype`` on ``device`` (default: those of the prior's parameters). With ``c`` (``n`` rows),
        row i is drawn given ``c[i]``."""
        check_positive_int("n", n)
        check_draws(n, self.latent_dim, *self._placement(dtype, device))
        eps = self._noise((n, self.latent_dim), generator, dtype, device)
        mean, logvar = self.gaussian(c)
        if mean is None or logvar is None:
            return eps
        return mean.to(eps.dtype) + eps * torch.exp(0.5 * logvar.to(eps.dtype))


@register("normal")
class NormalPrior(GaussianPrior):
    """The standard normal prior N(0, I): no parameters, analytic KL (the models' default).

    Example:
        >>> import torch
        >>> prior = NormalPrior()
        >>> prior.latent_dim = 2  # normally set by the model (attach)
        >>> round(float(prior.log_prob(torch.zeros(2))), 4)  # −log(2π)
        -1.8379
    """

    def gaussian(self, c: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(None, None)``: mean 0 and log-variance 0 for every condition."""
        return None, None


@register("conditional")
class ConditionalPrior(GaussianPrior):
    """p(z | c) = N(mean(c), exp(logvar(c))): a Gaussian whose parameters are functions of the
    condition (Sohn et al., 2015), for a :class:`~genvae.ConditionalVAE`. The KL is analytic.

    The mean and log-variance heads start at zero, so training starts from N(0, I).

    Args:
        hidden: widths of hidden layers between the condition and the two linear heads (none: the
            mean and log-variance are linear in the condition).
        activation: the hidden layers' activation.
    """

    conditional = True

    def __init__(self, hidden: Sequence[int] = (), activation: str = "relu") -> None:
        super().__init__()
        self.hidden = int_sequence("hidden", hidden)
        make_activation(activation)  # an unknown name is an error here, not when the model is built
        self.activation = activation

    def build(self, model: PriorHost) -> None:
        """Create the two linear heads (after the hidden layers, if any), started at zero.

        Raises:
            ValueError: the model has no condition.
        """
        if not self.condition_dim:
            raise ValueError(
                "prior: the 'conditional' prior p(z | y) needs a conditional model (a ConditionalVAE), got "
                f"{getattr(model, 'model_name', type(model).__name__)} without a condition"
            )
        widths = (self.condition_dim, *self.hidden)
        check_parameters(
            type(self).__name__,
            mlp_parameters(widths) + 2 * (widths[-1] + 1) * self.latent_dim,
            hidden=(self.hidden, max(self.hidden, default=0)),
            latent_dim=(self.latent_dim, self.latent_dim),
            condition_dim=(self.condition_dim, self.condition_dim),
        )
        self.net = nn.Sequential(*mlp(widths, self.activation, last_activation=True)) if self.hidden else nn.Identity()
        self.mean_head = nn.Linear(widths[-1], self.latent_dim)
        self.logvar_head = nn.Linear(widths[-1], self.latent_dim)
        for head in (self.mean_head, self.logvar_head):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def gaussian(self, c: torch.Tensor | None) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The mean and log-variance heads applied to the condition ``c``, each ``(batch, latent_dim)``.

        Raises:
            ValueError: ``c`` is None.
        """
        if c is None:
            raise ValueError(
                f"c: expected condition vectors (batch, {self.condition_dim}) for the conditional prior "
                "p(z | y), got None"
            )
        h = self.net(c)
        return self.mean_head(h), self.logvar_head(h)

    def extra_repr(self) -> str:
        """The latent size, the condition length and the hidden widths, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}, condition_dim={self.condition_dim}, hidden={self.hidden}"


class _MixturePriorBase(Prior):
    """A mixture of diagonal Gaussians: log-density through :func:`~genvae.gaussian.log_normal_mixture`,
    ancestral sampling; subclasses give the components in :meth:`components`."""

    def __init__(self, components: int) -> None:
        super().__init__()
        self.components = check_positive_int("components", components)

    def mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Component means and log-variances ``(components, latent_dim)`` and log-weights ``(components,)``."""
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        means, logvars, log_weights = self.mixture()
        return log_normal_mixture(z, means, logvars, log_weights)

    def sample(
        self,
        n: int,
        c: torch.Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        check_positive_int("n", n)
        check_draws(n, self.latent_dim, *self._placement(dtype, device))
        means, logvars, log_weights = self.mixture()
        # ancestral sampling: a component per draw, then its Gaussian; drawn where the generator is
        where = generator.device if generator is not None else means.device
        weights = log_weights.detach().exp().to(where)
        index = torch.multinomial(weights, n, replacement=True, generator=generator).to(means.device)
        eps = torch.randn(n, self.latent_dim, generator=generator, device=where, dtype=means.dtype).to(means.device)
        z = means[index] + eps * torch.exp(0.5 * logvars[index])
        dtype_, device_ = self._placement(dtype, device)
        return z.to(device_, dtype_)

    def extra_repr(self) -> str:
        return f"components={self.components}, latent_dim={self.latent_dim}"


@register("mog")
class MixturePrior(_MixturePriorBase):
    """A learnable mixture of ``components`` diagonal Gaussians (means drawn from N(0, I), unit
    variances and equal weights at the start, all three learned). The KL is a Monte-Carlo estimate.

    Args:
        components: the number of mixture components K.
    """

    def __init__(self, components: int = 10) -> None:
        super().__init__(components)

    def build(self, model: PriorHost) -> None:
        """Create the components' means (drawn from N(0, I)), log-variances (0) and weight logits (0)."""
        check_parameters(
            type(self).__name__,
            self.components * (2 * self.latent_dim + 1),
            components=(self.components, self.components),
            latent_dim=(self.latent_dim, self.latent_dim),
        )
        self.means = nn.Parameter(torch.randn(self.components, self.latent_dim))
        self.logvars = nn.Parameter(torch.zeros(self.components, self.latent_dim))
        self.logits = nn.Parameter(torch.zeros(self.components))

    def mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The learned means and log-variances and the log-softmax of the weight logits."""
        return self.means, self.logvars, F.log_softmax(self.logits, dim=0)


@register("vamp")
class VampPrior(_MixturePriorBase):
    """The VampPrior (Tomczak & Welling, 2018): p(z) = (1/K) Σ_k q(z | u_k), the mixture of the
    model's own posteriors at K learnable pseudo-inputs u_k of the data's shape. The KL is a
    Monte-Carlo estimate.

    The pseudo-inputs start at ``init_mean`` + ``init_std`` · noise (the paper's 0.05 and 0.01 for
    images in [0, 1]) and pass through a hard tanh into ``bounds`` (the data's range; None for
    unbounded data). In a conditional model each pseudo-input also has a learnable condition vector,
    starting as the one-hot vector of class ``k mod condition_dim``, so the prior stays p(z): it
    does not depend on the condition of the input at hand.

    With ``init="data"`` the pseudo-inputs start instead as K training images drawn at random,
    as the reference implementation's ``use_training_data_init`` does: the
    :class:`~genvae.Trainer` calls :meth:`initialize_from` with the training images at the start
    of a fresh run (call it yourself when you train otherwise).

    Args:
        components: the number of pseudo-inputs K.
        bounds: the range ``(low, high)`` of the pseudo-inputs, or None.
        init_mean, init_std: the pseudo-inputs' initial mean and spread.
        init: ``"noise"`` (the default: ``init_mean`` + ``init_std`` · noise) or ``"data"``.
    """

    def __init__(
        self,
        components: int = 500,
        bounds: Sequence[float] | None = (0.0, 1.0),
        init_mean: float = 0.05,
        init_std: float = 0.01,
        init: str = "noise",
    ) -> None:
        super().__init__(components)
        if init not in ("noise", "data"):
            raise ValueError(f"init: expected 'noise' or 'data', got {init!r}")
        self.init = init
        if bounds is not None and (len(bounds) != 2 or not float(bounds[0]) < float(bounds[1])):
            raise ValueError(f"bounds: expected (low, high) with low < high, or None, got {bounds!r}")
        self.bounds = (float(bounds[0]), float(bounds[1])) if bounds is not None else None
        self.init_mean, self.init_std = float(init_mean), float(init_std)
        self._posterior: Posterior | None = None

    def build(self, model: PriorHost) -> None:
        """Create the pseudo-inputs (and their condition vectors in a conditional model) in the shape of
        the model's input, and keep the model's posterior function.

        Raises:
            ValueError: the model does not fix its input shape.
        """
        shape = model.input_shape
        if shape is None:
            raise ValueError(
                "prior: the 'vamp' prior needs the data's shape for its pseudo-inputs: expected a model whose "
                "encoder or decoder fixes input_shape, got a model without one"
            )
        check_parameters(
            type(self).__name__,
            self.components * (math.prod(shape) + self.condition_dim),
            components=(self.components, self.components),
        )
        self.pseudo_inputs = nn.Parameter(self.init_mean + self.init_std * torch.randn(self.components, *shape))
        if self.condition_dim:
            classes = torch.arange(self.components) % self.condition_dim
            self.pseudo_conditions = nn.Parameter(F.one_hot(classes, self.condition_dim).float())
        # a bound method, not a submodule: the encoder stays the model's (one copy in the state dict)
        self._posterior = model.posterior

    @torch.no_grad()
    def initialize_from(self, images: torch.Tensor, *, generator: torch.Generator | None = None) -> None:
        """Set the pseudo-inputs to K of ``images`` (``(N, *input_shape)``, e.g. the training
        images) drawn at random without replacement (with replacement when N < K).

        Raises:
            RuntimeError: the prior is not attached to a model.
            ValueError: the images are not of the pseudo-inputs' shape, or there are none.
        """
        if self._posterior is None:
            raise RuntimeError("prior: this VampPrior is not attached to a model (pass it to gv.VAE(prior=...))")
        shape = tuple(self.pseudo_inputs.shape[1:])
        if not isinstance(images, torch.Tensor) or tuple(images.shape[1:]) != shape or images.shape[0] == 0:
            got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise ValueError(
                f"images: expected a non-empty tensor of shape (N, {', '.join(map(str, shape))}), got {got}"
            )
        n = images.shape[0]
        if n >= self.components:
            index = torch.randperm(n, generator=generator)[: self.components]
        else:
            index = torch.randint(n, (self.components,), generator=generator)
        self.pseudo_inputs.copy_(images[index].to(self.pseudo_inputs.device, self.pseudo_inputs.dtype))

    def inputs(self) -> torch.Tensor:
        """The pseudo-inputs, in the data's range: ``(components, *input_shape)``."""
        if self.bounds is None:
            return self.pseudo_inputs
        return F.hardtanh(self.pseudo_inputs, *self.bounds)

    def mixture(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The model's posterior means and log-variances at the pseudo-inputs, with equal weights
        ``log(1/K)``.

        Raises:
            RuntimeError: the prior is not attached to a model.
        """
        if self._posterior is None:
            raise RuntimeError("prior: this VampPrior is not attached to a model (pass it to gv.VAE(prior=...))")
        c = self.pseudo_conditions if self.condition_dim else None
        means, logvars = self._posterior(self.inputs(), c)
        log_weights = torch.full((self.components,), -math.log(self.components), dtype=means.dtype, device=means.device)
        return means, logvars, log_weights


def as_prior(spec: Any) -> Prior:
    """A registered name or a :class:`Prior` object as a prior (unattached)."""
    prior = registry.resolve(spec, argument="prior")
    if not isinstance(prior, Prior):
        got = type(prior).__name__ if not isinstance(spec, str) else f"{spec!r} ({type(prior).__name__})"
        raise TypeError(f"prior: expected a registered name ({', '.join(names())}) or a Prior, got {got}")
    return prior
