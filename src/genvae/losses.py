"""Loss terms, the analytic KL, and the ELBO objective.

A loss term is a function ``term(out, x) -> Tensor`` of a :class:`~genvae.models.VAEOutput` and
the data batch, returning **per-sample** values: a tensor whose first dimension is the batch
(``(batch,)``, or ``(batch, ...)`` to be summed, e.g. per pixel or per latent dimension).
Terms live in a registry, so the objective can name them:

- ``"nll"``: −log p(x | z) under the model's own likelihood (the default reconstruction term).
- ``"bce"``: binary cross-entropy from logits (the Bernoulli likelihood's −log p; stable).
- ``"mse"``: squared error between the reconstruction's mean and x.
- ``"kl"``: KL(q(z | x) ‖ p(z)) as the model's prior gives it: analytic, per latent dimension,
  for the normal and conditional priors; the Monte-Carlo estimate per sample for the others.
- ``"kl_mc"``: the single-sample Monte Carlo estimate log q(z | x) − log p(z) at the drawn z.

The objectives: :class:`ELBO` (β, free bits, extra terms), :class:`IWAE` (the importance-weighted
bound of Burda et al., 2015) and :class:`BetaTCVAE` (the KL decomposed as in Chen et al., 2018).

Register your own with the decorator:

    >>> import genvae as gv
    >>> @gv.losses.register("l1")
    ... def l1(out, x):
    ...     return (out.recon - x).abs()
    >>> objective = gv.losses.ELBO(reconstruction="l1")
    >>> _ = gv.losses.registry.unregister("l1")
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from genvae._loss_terms import LossTerm, get, kl_normal, names, register, registry, resolve_term, term_name

# the built-in terms stay reachable as gv.losses.bce, ... (they are registered by name as "bce", ...)
from genvae._loss_terms import bce as bce
from genvae._loss_terms import kl as kl
from genvae._loss_terms import kl_mc as kl_mc
from genvae._loss_terms import mse as mse
from genvae._loss_terms import nll as nll
from genvae._validation import check_finite_number, check_non_negative, check_positive_int, fmt_shape
from genvae.gaussian import log_normal, log_normal_dims
from genvae.inference import importance_log_weights
from genvae.models import VAEOutput
from genvae.registry import Registry

__all__ = [
    "BOUND_LABELS",
    "ELBO",
    "IWAE",
    "BetaTCVAE",
    "ELBOTerms",
    "LossTerm",
    "Objective",
    "bound_label",
    "get",
    "kl_normal",
    "names",
    "objectives",
    "register",
    "registry",
    "resolve_term",
    "term_name",
]


@dataclass
class ELBOTerms:
    """The objective's value on a batch; every figure is a per-sample average in nats.

    Attributes:
        loss: what the optimiser minimises: ``recon + beta · kl`` (with free bits), plus the
            weighted extra terms. Not a bound unless every weight is 1.
        total: the objective's negative bound, named by ``bound``: for the ELBO (and β-TCVAE)
            the negative ELBO, ``recon + kl`` (no β, no free bits); for IWAE −L_k.
        recon: the reconstruction term.
        kl: the KL term.
        extra: each extra term's (unweighted) value.
        bound: the name of the bound ``total`` is (:data:`BOUND_LABELS`): ``"elbo"``, ``"iwae"``,
            ``"m2"``; the History records ``total`` under this name too when it is
            not the ELBO (``train_iwae``, ``val_iwae``).
    """

    loss: torch.Tensor
    total: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    extra: dict[str, torch.Tensor] = field(default_factory=dict)
    bound: str = "elbo"

    def as_dict(self) -> dict[str, float]:
        """Plain floats (one host sync), for logging."""
        values = {"loss": self.loss, "total": self.total, "recon": self.recon, "kl": self.kl, **self.extra}
        return {k: float(v.detach()) for k, v in values.items()}


#: What each bound name stands for, as the History, ``metrics.json``, the CLI and the report name
#: an objective's ``total`` (:attr:`Objective.bound_name`): the negative of that bound, in nats.
BOUND_LABELS: dict[str, str] = {
    "elbo": "negative ELBO",
    "iwae": "negative IWAE bound",
    "m2": "negative M2 bound",
}


def bound_label(name: str, k: int | None = None) -> str:
    """A bound's name in words, with its number of importance samples when it has one.

    Example:
        >>> bound_label("iwae", 5)
        'negative IWAE bound (k=5)'
        >>> bound_label("elbo")
        'negative ELBO'
    """
    label = BOUND_LABELS.get(name, f"negative {name} bound")
    return f"{label} (k={k})" if k is not None else label


def _per_sample(values: torch.Tensor, term: str) -> torch.Tensor:
    if values.dim() == 0:
        raise ValueError(f"{term}: expected per-sample values (batch first), got a scalar")
    return values.reshape(values.shape[0], -1).sum(1)


class Objective:
    """Base class of what the :class:`~genvae.Trainer` minimises.

    An objective turns a batch into :class:`ELBOTerms`. The Trainer calls :meth:`compute` with the
    model's forward function, so an objective that needs more than one forward pass's output
    (several samples per input, say) asks the model for it there; the default runs one forward
    pass and calls the objective on its output.

    Objectives own their state: :meth:`config` is what the user configured (a resumed run must
    configure the same), :meth:`state_dict` / :meth:`load_state_dict` hold that plus what changes
    during training (schedule factors), and checkpoints store it.

    Schedules (e.g. :class:`~genvae.training.KLWarmup`) never overwrite a configured weight: they
    set a named factor with :meth:`set_factor`, and an objective multiplies its weights by the
    product of its factors, so several schedules compose.

    :attr:`bound_name` says which bound the terms' ``total`` is the negative of (a key of
    :data:`BOUND_LABELS`; ``"elbo"`` unless a subclass says otherwise), and :meth:`bound` adds its
    settings (IWAE's ``k``): ``metrics.json`` and the report name the figure by it.
    """

    #: The bound whose negative is ``total`` (``"elbo"``, ``"iwae"``, ``"m2"``).
    bound_name: ClassVar[str] = "elbo"

    def __init__(self) -> None:
        self.factors: dict[str, float] = {}

    def bound(self) -> dict[str, Any]:
        """The bound ``total`` is, as ``metrics.json`` records it: ``{"name": bound_name}`` plus its
        settings (``"k"`` for IWAE)."""
        return {"name": self.bound_name}

    def __call__(self, out: VAEOutput, x: torch.Tensor) -> ELBOTerms:
        raise NotImplementedError

    def compute(self, forward: Callable[..., VAEOutput], x: torch.Tensor, y: torch.Tensor | None) -> ELBOTerms:
        """The terms of a batch: ``forward(x, y)`` runs the model (through DDP or compilation when
        the Trainer uses them); the default is one forward pass, then ``self(out, x)``."""
        return self(forward(x, y), x)

    def config(self) -> dict[str, Any]:
        """The configured values (JSON-ready) that a resume must match."""
        return {}

    def set_factor(self, name: str, value: float) -> None:
        """Set the schedule factor ``name`` (a finite number ≥ 0) that multiplies the weights."""
        self.factors[name] = check_non_negative(name, value)

    @property
    def factor(self) -> float:
        """The product of every schedule factor (1 without schedules)."""
        return math.prod(self.factors.values())

    def state_dict(self) -> dict[str, Any]:
        """The configuration and the schedule factors."""
        return {"config": self.config(), "factors": dict(self.factors)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the schedule factors of :meth:`state_dict` (the configuration is checked, not
        changed: a resumed run must be configured as the original)."""
        differences = _differences(state.get("config", {}), self.config())
        if differences:
            raise ValueError(f"objective: configured differently from the checkpoint: {differences}")
        self.factors = {str(k): float(v) for k, v in state.get("factors", {}).items()}


#: The objectives a run can name (``genvae train --objective NAME``, ``TrainConfig.objective``): a
#: class built with those of the run's options (``beta``, ``k``, ``dataset_size``, ...) that its
#: constructor declares. Register your own with ``@gv.losses.objectives.register("mine")``.
objectives: Registry[type[Objective]] = Registry("objectives")


def _differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    keys = sorted(set(old) | set(new))
    return "; ".join(f"{k} {old.get(k)!r} → {new.get(k)!r}" for k in keys if old.get(k) != new.get(k))


@objectives.register("elbo")
class ELBO(Objective):
    """The negative evidence lower bound, ``E_q[−log p(x | z)] + β · KL(q(z | x) ‖ p(z))``.

    Args:
        reconstruction: a registered term name or a function ``(out, x) -> per-sample values``.
        kl: the KL term, ``"kl"`` (the prior's: analytic where it exists) or ``"kl_mc"``, or a function.
        beta: weight of the KL term in ``loss`` (β-VAE). Schedules such as ``KLWarmup`` scale it
            through :meth:`~Objective.set_factor`; the weight in use is :attr:`kl_weight`.
        free_bits: minimum nats per latent dimension in ``loss`` (Kingma et al., 2016): each
            dimension's batch-mean KL below it is replaced by it. Needs a KL term that returns
            ``(batch, latent_dim)`` values, as both built-ins do with the normal and conditional
            priors (with a mixture prior the KL is per sample, and free bits are an error).
        extra: more terms added to ``loss``, ``{name or function: weight}``.

    Calling it returns :class:`ELBOTerms`. ``total`` is always the true negative ELBO. For a model with latent
    levels (:class:`~genvae.HierarchicalVAE`), ``extra`` also holds each level's KL, ``kl_level_1``,
    ``kl_level_2``, ... (level 1 at the bottom), which the History records as ``train_kl_level_1``, ...

    Example:
        >>> import torch, genvae as gv
        >>> model = gv.presets.seed_vae()
        >>> x = torch.rand(8, 1, 28, 28)
        >>> terms = gv.losses.ELBO(beta=0.5)(model(x), x)
        >>> bool(terms.total >= terms.recon)
        True
    """

    def __init__(
        self,
        reconstruction: str | LossTerm = "nll",
        kl: str | LossTerm = "kl",
        beta: float = 1.0,
        free_bits: float = 0.0,
        extra: Mapping[str | LossTerm, float] | None = None,
    ) -> None:
        super().__init__()
        self.reconstruction = resolve_term("reconstruction", reconstruction)
        self.kl = resolve_term("kl", kl)
        self.beta = check_non_negative("beta", beta)
        self.free_bits = check_non_negative("free_bits", free_bits)
        self.extra = {
            term_name(k): (resolve_term("extra", k), check_finite_number("extra", w)) for k, w in (extra or {}).items()
        }
        self._spec = {"reconstruction": reconstruction, "kl": kl}

    def __call__(self, out: VAEOutput, x: torch.Tensor) -> ELBOTerms:
        if not isinstance(x, torch.Tensor) or x.shape != out.params.shape:
            got = fmt_shape(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"x: expected a tensor of the decoder's output shape {fmt_shape(out.params.shape)}, got {got}"
            )
        recon = _per_sample(self.reconstruction(out, x), "reconstruction").mean()
        kl_values = self.kl(out, x)
        kl = _per_sample(kl_values, "kl").mean()
        if self.free_bits > 0:
            if kl_values.dim() != 2:
                prior = (
                    f" (the {type(out.prior).__name__}'s KL is a per-sample Monte-Carlo estimate)"
                    if (out.prior is not None and not out.prior.per_dimension)
                    else " (a flow posterior's KL is a per-sample Monte-Carlo estimate)"
                    if not out.gaussian_posterior
                    else ""
                )
                raise ValueError(
                    "free_bits: expected a KL term with values per latent dimension, (batch, latent_dim), got "
                    f"{tuple(kl_values.shape)}{prior}; use free_bits=0 or a prior with an analytic KL "
                    "('normal', 'conditional')"
                )
            kl_for_loss = kl_values.mean(0).clamp(min=self.free_bits).sum()
        else:
            kl_for_loss = kl
        loss = recon + self.kl_weight * kl_for_loss
        extra = {}
        for name, (term, weight) in self.extra.items():
            value = _per_sample(term(out, x), name).mean()
            extra[name] = value
            loss = loss + weight * value
        extra.update(_level_kls(out))
        return ELBOTerms(loss=loss, total=recon + kl, recon=recon, kl=kl, extra=extra)

    @property
    def kl_weight(self) -> float:
        """The KL weight in use: the configured β times the schedule factors."""
        return self.beta * self.factor

    def config(self) -> dict[str, Any]:
        """β, free bits, the terms by name and the extra terms' weights."""
        extra = {name: weight for name, (_, weight) in self.extra.items()}
        terms = {k: term_name(v) for k, v in self._spec.items()}
        return {"beta": self.beta, "free_bits": self.free_bits, **terms, "extra": extra}

    def __repr__(self) -> str:
        spec = ", ".join(f"{k}={term_name(v)!r}" for k, v in self._spec.items())
        return f"ELBO({spec}, beta={self.beta}, free_bits={self.free_bits})"


@objectives.register("iwae")
class IWAE(Objective):
    """The importance-weighted autoencoder's bound (Burda et al., 2015) as the training loss.

    ``L_k(x) = E[log (1/k) Σ_j p(x | z_j) p(z_j) / q(z_j | x)]`` with ``z_1 … z_k ~ q(z | x)``: a
    lower bound on log p(x) that tightens as ``k`` grows; ``L_1`` is the ELBO. Each batch is
    encoded once and its ``k·batch`` latent vectors decoded in one batched pass, through the
    model's forward (``forward(x, y, samples=k)``), so DDP and compilation apply as for the ELBO.

    The terms, per-sample nats: ``loss`` and ``total`` are −L_k (the bound the model trains on;
    :attr:`bound_name` ``"iwae"``, so the History also records it as ``train_iwae``/``val_iwae``);
    ``recon`` and ``kl`` are the ELBO's terms averaged over the ``k`` draws (the KL as the
    Monte-Carlo estimate log q − log p), so ``recon + kl`` is the negative ELBO, ≥ ``total``.
    The prior is the model's (:mod:`genvae.priors`). Memory grows with ``k·batch`` decoded inputs.

    Args:
        k: importance samples per input.

    Example:
        >>> import torch, genvae as gv
        >>> model = gv.presets.seed_vae()
        >>> x = (torch.rand(8, 1, 28, 28) > 0.5).float()
        >>> terms = gv.IWAE(k=5).compute(model, x, None)
        >>> bool(terms.total <= terms.recon + terms.kl)
        True
    """

    bound_name: ClassVar[str] = "iwae"

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        self.k = check_positive_int("k", k)

    def bound(self) -> dict[str, Any]:
        """``{"name": "iwae", "k": k}``."""
        return {"name": self.bound_name, "k": self.k}

    def compute(self, forward: Callable[..., VAEOutput], x: torch.Tensor, y: torch.Tensor | None) -> ELBOTerms:
        """One forward pass drawing ``k`` z per input, then the bound."""
        return self(forward(x, y, samples=self.k), x)

    def __call__(self, out: VAEOutput, x: torch.Tensor) -> ELBOTerms:
        log_px, log_pz, log_q = _log_joint_terms(out, x)
        log_w = importance_log_weights(log_px, log_pz, log_q)  # (k, batch)
        bound = torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
        total = -bound.mean()
        recon, kl = -log_px.mean(), (log_q - log_pz).mean()
        return ELBOTerms(loss=total, total=total, recon=recon, kl=kl, bound=self.bound_name)

    def config(self) -> dict[str, Any]:
        """The number of importance samples."""
        return {"k": self.k}

    def __repr__(self) -> str:
        return f"IWAE(k={self.k})"


def _level_kls(out: VAEOutput) -> dict[str, torch.Tensor]:
    """``kl_level_1``, ``kl_level_2``, ...: the batch means of each latent level's KL, for an output
    that has levels (:meth:`genvae.hierarchical.HierarchicalOutput.kl_levels`); none otherwise."""
    levels = getattr(out, "kl_levels", None)
    return {f"kl_level_{i}": v.mean() for i, v in enumerate(levels(), 1)} if callable(levels) else {}


def _log_joint_terms(out: VAEOutput, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log p(x | z), log p(z) and log q(z | x) of each draw, each ``(samples, batch)`` (one sample
    for a single-sample output), as the output gives them."""
    expected = out.params.shape if out.samples is None else out.params.shape[1:]
    if not isinstance(x, torch.Tensor) or x.shape != expected:
        got = fmt_shape(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected a tensor of the decoder's output shape {fmt_shape(expected)}, got {got}")
    log_q, log_pz = out.log_q, out.log_prior()
    if out.samples is None:
        log_q, log_pz = log_q.unsqueeze(0), log_pz.unsqueeze(0)
    log_px = out.log_prob(x).reshape(*log_q.shape, -1).sum(-1)
    return log_px, log_pz, log_q


@objectives.register("beta-tcvae")
class BetaTCVAE(Objective):
    """The β-TCVAE objective (Chen et al., 2018): the KL term split into the index-code mutual
    information, the total correlation and the dimension-wise KL, each with its own weight:

    ``loss = recon + α · MI + β · TC + γ · dim-KL``, where, with the aggregate posterior
    q(z) = E_x q(z | x) and its marginals q(z_d),
    ``MI = E[log q(z | x) − log q(z)]``, ``TC = E[log q(z) − Σ_d log q(z_d)]`` and
    ``dim-KL = E[Σ_d log q(z_d) − log p(z)]``. The three sum to the KL estimate
    ``E[log q(z | x) − log p(z)]`` (at the drawn z); α = β = γ = 1 is the ELBO.

    log q(z) and log q(z_d) are the minibatch-weighted estimates: ``log Σ_j q(z_i | x_j) − log(N·M)``
    over the M inputs of the batch, with N the ``dataset_size``. N only shifts the reported terms by
    constants (the gradients do not depend on it); without it, N = 1: q(z) is estimated by the
    batch's own mixture (1/M) Σ_j q(z | x_j). Memory grows as ``batch² × latent_dim``.

    ``total`` is the negative ELBO (``recon + kl``; :attr:`bound_name` ``"elbo"``); ``loss`` is not a
    bound unless α = β = γ = 1. The History gets the three terms as ``mi``,
    ``tc`` and ``dim_kl``. A :class:`~genvae.training.KLWarmup` ramps the whole KL: its factor
    multiplies α, β and γ alike (see :attr:`weights`), ending at the configured values.

    Args:
        alpha: weight of the index-code mutual information.
        beta: weight of the total correlation (the β of β-TCVAE).
        gamma: weight of the dimension-wise KL.
        dataset_size: N, the number of training inputs (for the terms' constants); None for 1.
        reconstruction: the reconstruction term (a registered name or a function), as for :class:`ELBO`.

    Example:
        >>> import torch, genvae as gv
        >>> model = gv.presets.seed_vae(latent_dim=4)
        >>> x = (torch.rand(16, 1, 28, 28) > 0.5).float()
        >>> terms = gv.BetaTCVAE(beta=6.0)(model(x), x)
        >>> sorted(terms.extra)
        ['dim_kl', 'mi', 'tc']
    """

    def __init__(
        self,
        alpha: float = 1.0,
        beta: float = 6.0,
        gamma: float = 1.0,
        dataset_size: int | None = None,
        reconstruction: str | LossTerm = "nll",
    ) -> None:
        super().__init__()
        self.alpha, self.beta, self.gamma = (
            check_non_negative(n, v) for n, v in (("alpha", alpha), ("beta", beta), ("gamma", gamma))
        )
        self.dataset_size = None if dataset_size is None else check_positive_int("dataset_size", dataset_size)
        self.reconstruction = resolve_term("reconstruction", reconstruction)
        self._reconstruction_name = term_name(reconstruction)

    @property
    def weights(self) -> tuple[float, float, float]:
        """The weights in use, (α, β, γ) times the schedule factors."""
        f = self.factor
        return self.alpha * f, self.beta * f, self.gamma * f

    def __call__(self, out: VAEOutput, x: torch.Tensor) -> ELBOTerms:
        if out.samples is not None:
            raise ValueError(f"out: expected one z per input for BetaTCVAE, got {out.samples} samples per input")
        if callable(getattr(out, "kl_levels", None)):
            raise ValueError("model: BetaTCVAE decomposes the KL of one latent vector, got a model with latent levels")
        if not out.gaussian_posterior:
            raise ValueError(
                "posterior: BetaTCVAE estimates q(z) from diagonal-Gaussian posteriors, expected a model "
                "with posterior='gaussian', got a flow posterior"
            )
        recon = _per_sample(self.reconstruction(out, x), "reconstruction").mean()
        mi, tc, dim_kl, kl = self.decomposition(out)
        alpha, beta, gamma = self.weights
        loss = recon + alpha * mi + beta * tc + gamma * dim_kl
        return ELBOTerms(loss=loss, total=recon + kl, recon=recon, kl=kl, extra={"mi": mi, "tc": tc, "dim_kl": dim_kl})

    def decomposition(self, out: VAEOutput) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch means of the mutual information, the total correlation, the dimension-wise KL
        and the KL estimate ``log q(z | x) − log p(z)`` that they sum to."""
        z, mean, logvar = out.z, out.mean, out.logvar
        batch = z.shape[0]
        # log q(z_i,d | x_j) for every pair (i, j) and dimension d: (batch, batch, latent_dim)
        pairs = log_normal_dims(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))
        norm = math.log(batch * (self.dataset_size or 1))
        log_qz = torch.logsumexp(pairs.sum(2), dim=1) - norm
        log_qz_dims = (torch.logsumexp(pairs, dim=1) - norm).sum(1)
        log_q_zx = log_normal(z, mean, logvar)
        log_pz = out.log_prior()
        mi = (log_q_zx - log_qz).mean()
        tc = (log_qz - log_qz_dims).mean()
        dim_kl = (log_qz_dims - log_pz).mean()
        return mi, tc, dim_kl, (log_q_zx - log_pz).mean()

    def config(self) -> dict[str, Any]:
        """α, β, γ, the data set size and the reconstruction term's name."""
        return {
            "alpha": self.alpha,
            "beta": self.beta,
            "gamma": self.gamma,
            "dataset_size": self.dataset_size,
            "reconstruction": self._reconstruction_name,
        }

    def __repr__(self) -> str:
        return f"BetaTCVAE(alpha={self.alpha}, beta={self.beta}, gamma={self.gamma}, dataset_size={self.dataset_size})"
