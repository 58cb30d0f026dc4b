"""How a model uses its latent space: active units and the mutual-information gap.

- :func:`active_units`: the latent dimensions whose posterior mean varies over the data
  (Burda et al., 2015): the others carry no information about the input.
- :func:`mig`: the mutual-information gap (Chen et al., 2018): for each known factor of
  variation, how much more one latent dimension knows about it than any other; 1 is a latent space
  where each factor has a dimension of its own. :class:`~genvae.data.SyntheticDigits` gives the
  style factors of its images (``.factors``), so its latent spaces can be scored.

Both take anything :func:`genvae.data.as_tensors` takes and use the model's posterior means (a
conditional model encodes each input with its own label).

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae(latent_dim=4)
    >>> units = gv.latent_metrics.active_units(model, torch.rand(50, 1, 28, 28))
    >>> units.variances.shape
    torch.Size([4])
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from genvae._validation import check_non_negative, check_positive_int
from genvae.inference import posterior_means

__all__ = ["ActiveUnits", "MIGResult", "active_units", "mig"]


@dataclass
class ActiveUnits:
    """The active latent dimensions of a model on some data.

    Attributes:
        count: the number of dimensions whose posterior-mean variance exceeds ``threshold``.
        variances: the variance over the data of each dimension's posterior mean, ``(latent_dim,)``.
        threshold: the threshold used.
    """

    count: int
    variances: torch.Tensor
    threshold: float

    @property
    def active(self) -> torch.Tensor:
        """A boolean mask of the active dimensions, ``(latent_dim,)``."""
        return self.variances > self.threshold


def active_units(model: Any, data: Any, threshold: float = 0.01, batch_size: int = 1000) -> ActiveUnits:
    """The active units of Burda et al. (2015): a latent dimension u is active when
    ``Cov_x(E_q(u | x)[u]) > threshold`` (their 10⁻²), the variance over the data of its posterior mean.

    Args:
        model: a :class:`~genvae.VAE` or :class:`~genvae.ConditionalVAE`.
        data: at least two inputs, as :func:`genvae.data.as_tensors` takes them.
        threshold: the variance above which a dimension counts as active.
        batch_size: inputs encoded at once.
    """
    # a variance is never negative: a negative threshold would count every dimension
    check_non_negative("threshold", threshold)
    check_positive_int("batch_size", batch_size)
    means, _ = posterior_means(model, data, batch_size)
    if means.shape[0] < 2:
        raise ValueError(f"data: expected at least 2 inputs to measure a variance, got {means.shape[0]}")
    variances = means.double().var(0, unbiased=False)
    return ActiveUnits(int((variances > threshold).sum()), variances, float(threshold))


@dataclass
class MIGResult:
    """The mutual-information gap of a latent space against known factors.

    Attributes:
        score: the MIG, the mean of ``per_factor`` (0 to 1; higher is more disentangled).
        per_factor: each factor's gap: (largest − second-largest MI with one latent dimension) /
            the factor's entropy.
        mutual_information: MI in nats between each latent dimension and each factor,
            ``(latent_dim, factors)``, the factors in the order of ``per_factor``.
        entropies: each factor's entropy in nats (after discretisation).
    """

    score: float
    per_factor: dict[str, float]
    mutual_information: torch.Tensor
    entropies: dict[str, float]


def mig(model: Any, data: Any, factors: Any, bins: int = 20, batch_size: int = 1000) -> MIGResult:
    """The mutual-information gap (Chen et al., 2018) of the model's posterior means against
    known factors of variation.

    Each latent dimension's posterior means are discretised into ``bins`` equal-width bins, and so
    is each factor with more than ``bins`` distinct values (a factor with fewer, such as a digit's
    written variant, is used as it is); mutual information and entropies come from the histograms (the
    estimator of Locatello et al., 2019). A factor that is constant on the data (entropy 0) is
    left out of the score.

    Args:
        model: a :class:`~genvae.VAE` or :class:`~genvae.ConditionalVAE`.
        data: the inputs, as :func:`genvae.data.as_tensors` takes them.
        factors: the true factors of each input: a mapping ``name -> (N,)`` values (as
            :attr:`genvae.data.SyntheticDigits.factors`), or an ``(N, F)`` array.
        bins: histogram bins for continuous values.
        batch_size: inputs encoded at once.

    Example:
        >>> import genvae as gv
        >>> digits = gv.data.SyntheticDigits(200, seed=0)
        >>> result = gv.latent_metrics.mig(gv.presets.seed_vae(latent_dim=4), digits, digits.factors)
        >>> 0 <= result.score <= 1, sorted(result.per_factor)[:2]
        (True, ['aspect', 'elastic'])
    """
    check_positive_int("bins", bins)
    if bins < 2:
        raise ValueError(f"bins: expected at least 2 bins, got {bins}")
    means, _ = posterior_means(model, data, batch_size)
    named = _factor_columns(factors, means.shape[0])
    latent_codes = [_discretise(means[:, d], bins) for d in range(means.shape[1])]
    factor_codes = {name: _discretise(values, bins) for name, values in named.items()}
    mi = torch.tensor(
        [[_mutual_information(z, v) for v in factor_codes.values()] for z in latent_codes], dtype=torch.float64
    ).reshape(len(latent_codes), len(factor_codes))
    entropies = {name: _entropy(codes) for name, codes in factor_codes.items()}
    gaps = {}
    for j, name in enumerate(factor_codes):
        if entropies[name] <= 0:
            continue
        top = torch.sort(mi[:, j], descending=True).values
        second = float(top[1]) if top.numel() > 1 else 0.0
        gaps[name] = (float(top[0]) - second) / entropies[name]
    if not gaps:
        raise ValueError("factors: expected at least one factor that varies over the data, got only constant ones")
    return MIGResult(sum(gaps.values()) / len(gaps), gaps, mi, entropies)


def _factor_columns(factors: Any, n: int) -> dict[str, torch.Tensor]:
    """``factors`` as named ``(N,)`` tensors, each checked to have one value per input."""
    if isinstance(factors, Mapping):
        columns = {str(k): torch.as_tensor(np.asarray(v)) for k, v in factors.items()}
    elif isinstance(factors, torch.Tensor | np.ndarray) and np.ndim(factors) == 2:
        table = torch.as_tensor(np.asarray(factors))
        columns = {f"factor_{j}": table[:, j] for j in range(table.shape[1])}
    else:
        raise TypeError(
            f"factors: expected a mapping of name -> values or an (N, F) array, got {type(factors).__name__}"
        )
    if not columns:
        raise ValueError("factors: expected at least one factor, got none")
    for name, values in columns.items():
        if values.dim() != 1 or values.shape[0] != n:
            raise ValueError(
                f"factors: expected {n} values for {name!r} (one per input of data), got shape {tuple(values.shape)}"
            )
        if values.is_floating_point() and not bool(torch.isfinite(values).all()):
            raise ValueError(f"factors: expected finite values for {name!r}, got NaN or inf")
    return columns


def _discretise(values: torch.Tensor, bins: int) -> torch.Tensor:
    """Integer codes: the distinct values when there are at most ``bins`` of them, else the index of
    each value's equal-width bin between the minimum and the maximum."""
    distinct, codes = torch.unique(values, return_inverse=True)
    if distinct.numel() <= bins:
        return codes
    x = values.double()
    low, high = float(x.min()), float(x.max())
    return ((x - low) / (high - low) * bins).long().clamp_(max=bins - 1)


def _entropy(codes: torch.Tensor) -> float:
    p = torch.bincount(codes).double() / codes.numel()
    p = p[p > 0]
    return float(-(p * p.log()).sum())


def _mutual_information(a: torch.Tensor, b: torch.Tensor) -> float:
    """MI in nats of two integer codings of the same inputs, from their joint histogram."""
    rows, cols = int(a.max()) + 1, int(b.max()) + 1
    joint = torch.bincount(a * cols + b, minlength=rows * cols).double().reshape(rows, cols) / a.numel()
    pa, pb = joint.sum(1, keepdim=True), joint.sum(0, keepdim=True)
    nonzero = joint > 0
    return float((joint[nonzero] * (joint[nonzero] / (pa * pb)[nonzero]).log()).sum())
