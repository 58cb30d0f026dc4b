"""Questions about a trained model, answered with numbers.

- :func:`nll`: importance-weighted estimate of −log p(x) (Burda et al., 2016), in nats and bits per dimension.
- :func:`classify`: Bayes-rule classification with a conditional VAE: argmax_y log p(x | y) + log p(y).
- :func:`latent_probe`: accuracy of a linear classifier on posterior means.
- :func:`prior_match`: how the aggregate posterior compares with the prior N(0, I).
- :func:`label_swap`: the same z decoded under another label (style kept, content changed).

``data`` arguments take what :meth:`Trainer.fit <genvae.Trainer.fit>` takes (see
:func:`genvae.data.as_tensors`): tensors or numpy arrays, ``(inputs, labels)`` pairs, datasets and
loaders. Evaluation uses only the model's public methods. It runs through the helpers of
:mod:`genvae.inference` (:func:`~genvae.inference.inference`,
:func:`~genvae.inference.decode_chunk_size`, :func:`~genvae.inference.posterior_means`,
:data:`~genvae.inference.MEMORY_BUDGET`), which stay reachable here as before; the latent-space
metrics of :mod:`genvae.latent_metrics` are re-exported here too.

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae()
    >>> result = gv.evaluation.nll(model, torch.rand(4, 1, 28, 28), k=8)
    >>> result.nats > 0 and result.bits_per_dim > 0
    True
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genvae._validation import check_positive_int
from genvae.inference import MEMORY_BUDGET as MEMORY_BUDGET
from genvae.inference import check_continuous, importance_log_weights, labels_for, model_inputs, posteriors
from genvae.inference import decode_chunk_size as decode_chunk_size
from genvae.inference import inference as inference
from genvae.inference import posterior_means as posterior_means
from genvae.latent_metrics import ActiveUnits, MIGResult, active_units, mig
from genvae.models import VAE, ConditionalVAE, Labels
from genvae.posteriors import PosteriorParams
from genvae.sample_quality import frechet_distance, precision_recall

__all__ = [
    "ActiveUnits",
    "ClassifyResult",
    "LogMeanExp",
    "MIGResult",
    "NLLResult",
    "PriorMatch",
    "active_units",
    "classify",
    "frechet_distance",
    "label_swap",
    "latent_probe",
    "log_importance_weights",
    "mig",
    "nll",
    "precision_recall",
    "prior_match",
]


class LogMeanExp:
    """A streaming ``log mean_j exp(v_j)`` per row: keeps a running maximum and the sum of
    ``exp(v_j − maximum)`` (in float64), so memory does not grow with the number of values.

    Example:
        >>> import torch
        >>> acc = LogMeanExp(2)
        >>> acc.add(torch.tensor([[0.0, 1.0], [0.0, 3.0]]))  # (values, rows)
        >>> acc.add(torch.tensor([[0.0, 2.0]]))
        >>> acc.value()
        tensor([0.0000, 2.3090], dtype=torch.float64)
    """

    def __init__(self, rows: int, device: torch.device | str = "cpu") -> None:
        self.max = torch.full((rows,), -math.inf, dtype=torch.float64, device=device)
        self.sum = torch.zeros(rows, dtype=torch.float64, device=device)
        self.count = 0

    def add(self, values: torch.Tensor) -> None:
        """Take in ``values`` of shape ``(m, rows)``: ``m`` more values for each row."""
        values = values.to(torch.float64)
        new_max = torch.maximum(self.max, values.amax(0))
        shift = torch.where(torch.isfinite(new_max), new_max, torch.zeros_like(new_max))  # all −inf so far: 0
        self.sum = self.sum * torch.exp(self.max - shift) + torch.exp(values - shift).sum(0)
        self.max = new_max
        self.count += values.shape[0]

    def value(self) -> torch.Tensor:
        """``log mean exp`` of everything added, per row (float64)."""
        shift = torch.where(torch.isfinite(self.max), self.max, torch.zeros_like(self.max))
        return torch.log(self.sum) + shift - math.log(max(self.count, 1))


def _steps(total: int, per_step: int) -> Iterator[int]:
    for start in range(0, total, per_step):
        yield min(per_step, total - start)


def _chunk_log_weights(
    model: VAE, x: torch.Tensor, c: torch.Tensor | None, q: PosteriorParams, m: int, bf16: bool
) -> torch.Tensor:
    """``log p(x, z) − log q(z | x)`` for ``m`` fresh draws per row of ``x`` from the model's
    posterior (its flow included): shape ``(m, batch)``."""
    batch = x.shape[0]
    z, log_q = model.sample_posterior(q, m)  # (m, batch, latent), (m, batch)
    flat_z = z.reshape(m * batch, -1)
    flat_c = c.repeat(m, 1) if c is not None else None
    log_p_z = model.prior_log_prob(flat_z, flat_c).reshape(m, batch)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        params = model.decoder_params(flat_z, flat_c)
    # the likelihood sees x broadcast over the m draws (a view, no copy) and full-precision parameters
    params = params.to(x.dtype).reshape(m, batch, *params.shape[1:])
    log_px = model.likelihood.log_prob(x.expand(m, *x.shape), params).sum(dim=tuple(range(2, params.dim())))
    return importance_log_weights(log_px, log_p_z, log_q)


def _log_marginal(
    model: VAE, x: torch.Tensor, c: torch.Tensor | None, k: int, chunk: int, bf16: bool = False
) -> torch.Tensor:
    """Importance-weighted ``log p(x)`` of each row of ``x`` (float64) from ``k`` posterior
    draws, ``max(1, chunk // batch)`` draws per row decoded at a time and folded into a
    running log-mean-exp, so memory does not depend on ``k``."""
    q = model.posterior_params(x, c)
    total = LogMeanExp(x.shape[0], device=x.device)
    for m in _steps(k, max(1, chunk // x.shape[0])):
        total.add(_chunk_log_weights(model, x, c, q, m, bf16))
    return total.value()


def log_importance_weights(
    model: VAE, x: torch.Tensor, c: torch.Tensor | None, k: int, chunk: int = 4096
) -> torch.Tensor:
    """``log p(x, z_j) − log q(z_j | x)`` for ``k`` draws ``z_j ~ q(z | x)``: shape ``(batch, k)``.

    ``c`` is the condition (float vectors) of a conditional model, or None. At most ``chunk``
    latent vectors are decoded at once; the result itself holds ``batch × k`` values (use
    :func:`nll` for a memory that does not grow with ``k``).
    """
    check_positive_int("k", k)
    check_positive_int("chunk", chunk)
    with torch.no_grad():
        q = model.posterior_params(x, c)
        per_step = max(1, chunk // x.shape[0])
        return torch.cat([_chunk_log_weights(model, x, c, q, m, False) for m in _steps(k, per_step)]).T


class _NoBar:
    def update(self, n: int) -> None:
        return None


@contextmanager
def _progress(total: int, enabled: bool | None, desc: str) -> Iterator[Any]:
    """A tqdm bar counting images (with images/s) on stderr when ``enabled`` (None: when stderr is
    a terminal); otherwise one that does nothing."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="img", desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()


@dataclass
class NLLResult:
    """An importance-weighted negative log-likelihood.

    Attributes:
        nats: mean −log p(x) per image, in nats.
        bits_per_dim: the same per data dimension, in bits.
        per_sample: −log p(x) of each image, ``(N,)``.
        k: importance samples per image.
    """

    nats: float
    bits_per_dim: float
    per_sample: torch.Tensor
    k: int


def nll(
    model: VAE,
    data: Any,
    k: int = 1000,
    batch_size: int = 100,
    chunk: int | None = None,
    *,
    memory_budget: int = MEMORY_BUDGET,
    memory_format: str = "auto",
    bf16: bool = False,
    progress: bool | None = None,
) -> NLLResult:
    """Importance-weighted estimate of −log p(x): ``−log mean_j p(x, z_j) / q(z_j | x)`` with
    ``k`` draws from the posterior (a conditional model gives −log p(x | y)). An upper bound on
    the true NLL in expectation that tightens as ``k`` grows; ``k = 1`` is the negative ELBO.
    The weights are folded into a running log-mean-exp, so memory does not grow with ``k``.

    Args:
        model: the model; it is left exactly as it was (training flag, weight layout).
        data: images, or images and labels (anything :func:`~genvae.data.as_tensors` takes).
        k: importance samples per image.
        batch_size: images encoded at once (fewer when one chunk cannot hold a draw for each).
        chunk: latents decoded at once; default: as many as fit in ``memory_budget``.
        memory_budget: bytes one chunk may take (see :func:`~genvae.inference.decode_chunk_size`).
        memory_format: the layout of the convolution weights while evaluating (see :func:`~genvae.inference.inference`).
        bf16: decode under bfloat16 autocast; the log-densities stay in the model's dtype.
        progress: a progress bar with images/s on stderr; default: only when stderr is a terminal.

    Example:
        >>> import torch, genvae as gv
        >>> gv.evaluation.nll(gv.presets.seed_vae(), torch.rand(2, 1, 28, 28), k=4).per_sample.shape
        torch.Size([2])
    """
    x_all, c_all = _checked_data(model, data, k, batch_size)
    values = []
    with inference(model, memory_format), _progress(x_all.shape[0], progress, f"nll k={k}") as bar:
        size = _chunk(model, chunk, memory_budget, c_all)
        step = min(batch_size, size)  # one draw per image must fit in a chunk
        for i in range(0, x_all.shape[0], step):
            x = x_all[i : i + step].to(model.device)
            c = c_all[i : i + step] if c_all is not None else None
            values.append(-_log_marginal(model, x, c, k, size, bf16).cpu())
            bar.update(x.shape[0])
    per_sample = torch.cat(values).clone()  # outside inference mode: an ordinary tensor
    nats, dims = float(per_sample.mean()), math.prod(x_all.shape[1:])
    return NLLResult(nats=nats, bits_per_dim=nats / (dims * math.log(2)), per_sample=per_sample, k=k)


def _checked_data(model: VAE, data: Any, k: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``data``'s inputs, checked, and their condition vectors (None for an unconditional model)."""
    check_continuous(model)
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    x, y = model_inputs(model, data)
    y = labels_for(model, y)
    return x, model.condition(y, x.shape[0]) if y is not None else None


def _chunk(model: VAE, chunk: int | None, memory_budget: int, c: torch.Tensor | None) -> int:
    if chunk is not None:
        return check_positive_int("chunk", chunk)
    return decode_chunk_size(model, memory_budget, c)


@dataclass
class ClassifyResult:
    """Bayes-rule predictions of a conditional VAE.

    Attributes:
        predictions: predicted class of each image, ``(N,)``.
        scores: ``log p(x | y) + log p(y)`` for each image and class, ``(N, num_classes)``.
    """

    predictions: torch.Tensor
    scores: torch.Tensor

    def accuracy(self, labels: torch.Tensor) -> float:
        """Fraction of predictions equal to ``labels``."""
        return float((self.predictions == labels.to(self.predictions.device)).double().mean())


def _log_class_prior(cvae: ConditionalVAE, prior: torch.Tensor | None) -> torch.Tensor:
    if not cvae.conditional:
        raise TypeError(f"cvae: expected a conditional model with num_classes, got {type(cvae).__name__}")
    if cvae.num_classes is None:
        raise ValueError(
            "cvae: expected a conditional model with classes (num_classes), got one with continuous "
            f"conditions (condition_dim={cvae.condition_dim}); Bayes' rule needs a finite set of labels"
        )
    classes = cvae.num_classes
    if prior is None:
        return torch.full((classes,), -math.log(classes), dtype=torch.float64)
    if prior.shape != (classes,) or bool((prior < 0).any()) or not math.isclose(float(prior.sum()), 1, rel_tol=1e-4):
        raise ValueError(f"prior: expected {classes} non-negative probabilities summing to 1, got {prior}")
    return prior.double().log()


def classify(
    cvae: ConditionalVAE,
    x: Any,
    k: int = 100,
    prior: torch.Tensor | None = None,
    batch_size: int = 100,
    chunk: int | None = None,
    *,
    memory_budget: int = MEMORY_BUDGET,
    memory_format: str = "auto",
    bf16: bool = False,
    progress: bool | None = None,
) -> ClassifyResult:
    """Classify images with a conditional VAE by Bayes' rule: ``argmax_y log p(x | y) + log p(y)``,
    each ``log p(x | y)`` estimated by importance weighting with ``k`` samples, all classes of a
    batch of images in one pass.

    Args:
        cvae: a conditional VAE with ``num_classes``.
        x: the images ``(N, ...)``, or any data :func:`~genvae.data.as_tensors` takes (its labels are ignored).
        k: importance samples per image and class.
        prior: class probabilities p(y), ``(num_classes,)``; default uniform.
        batch_size: images per batch (fewer when one chunk cannot hold a draw for each image and class).
        chunk, memory_budget, memory_format, bf16, progress: as for :func:`nll`.
    """
    log_prior = _log_class_prior(cvae, prior)
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    x, _ = model_inputs(cvae, x, "x")
    classes = log_prior.shape[0]
    scores = []
    with inference(cvae, memory_format), _progress(x.shape[0], progress, f"classify k={k}") as bar:
        size = _chunk(cvae, chunk, memory_budget, cvae.condition(0, 1))
        step = max(1, min(batch_size, size // classes))
        for i in range(0, x.shape[0], step):
            batch = x[i : i + step].to(cvae.device)
            n = batch.shape[0]
            # every image under every class, class-major: row j·n + i is image i under class j
            pairs = batch.repeat(classes, *([1] * (batch.dim() - 1)))
            c = cvae.condition(torch.arange(classes, device=cvae.device).repeat_interleave(n), classes * n)
            scores.append(_log_marginal(cvae, pairs, c, k, size, bf16).reshape(classes, n).T.cpu())
            bar.update(n)
    result = torch.cat(scores).clone() + log_prior
    return ClassifyResult(predictions=result.argmax(1), scores=result)


def latent_probe(model: VAE, train: Any, test: Any, steps: int = 200) -> float:
    """Test accuracy of a linear classifier (multinomial logistic regression, fitted with L-BFGS
    on standardised features) from posterior means to labels.

    For a VAE this measures how much class information z holds; for a conditional VAE, which
    is given the label, a low accuracy shows that z has left the class to y.
    """
    z_train, y_train = posterior_means(model, train)
    z_test, y_test = posterior_means(model, test)
    for name, labels in (("train", y_train), ("test", y_test)):
        if labels is None or labels.is_floating_point() or labels.dim() != 1:
            got = "no labels" if labels is None else f"labels of dtype {labels.dtype} and shape {tuple(labels.shape)}"
            raise ValueError(f"{name}: expected data with integer class labels for a linear probe, got {got}")
    assert y_train is not None and y_test is not None
    mu, sd = z_train.mean(0), z_train.std(0).clamp_min(1e-6)
    a, b = (z_train - mu) / sd, (z_test - mu) / sd
    classes = int(max(int(y_train.max()), int(y_test.max()))) + 1
    linear = torch.nn.Linear(a.shape[1], classes).double()
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")
    a, b = a.double(), b.double()

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(linear(a), y_train) + 1e-4 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return float((linear(b).argmax(1) == y_test).double().mean())


@dataclass
class PriorMatch:
    """The aggregate posterior q(z) = E_x q(z | x) against the prior N(0, I).

    Attributes:
        mean: mean of q(z), ``(latent_dim,)``.
        covariance: covariance of q(z) (of the means plus the mean posterior variance).
        kl_moment_matched: KL(N(mean, covariance) ‖ N(0, I)) in nats: 0 when the first two
            moments match the prior.
        ks_statistic: per latent dimension, the Kolmogorov–Smirnov distance between one draw
            z ~ q(z | x) per image and N(0, 1) (0 is a perfect match; about 1.36/√N is the 5%
            critical value).
    """

    mean: torch.Tensor
    covariance: torch.Tensor
    kl_moment_matched: float
    ks_statistic: torch.Tensor


@torch.no_grad()
def prior_match(model: VAE, data: Any, batch_size: int = 1000) -> PriorMatch:
    """How close the aggregate posterior is to N(0, I) (the notebook's questions 10.5 g–h).
    With a flow posterior, of its Gaussian base q₀ (``model.posterior``)."""
    means, logvars, _ = posteriors(model, data, batch_size)
    mu, var = means.double(), logvars.double().exp()
    mean = mu.mean(0)
    centred = mu - mean
    covariance = centred.T @ centred / mu.shape[0] + torch.diag(var.mean(0))
    d = mean.shape[0]
    kl = 0.5 * (torch.trace(covariance) + mean @ mean - d - torch.logdet(covariance))
    z = mu + torch.randn_like(mu) * var.sqrt()
    ks = _ks_normal(z)
    return PriorMatch(mean=mean, covariance=covariance, kl_moment_matched=float(kl), ks_statistic=ks)


def _ks_normal(z: torch.Tensor) -> torch.Tensor:
    """Kolmogorov–Smirnov distance of each column of ``z`` from N(0, 1)."""
    n = z.shape[0]
    s, _ = torch.sort(z, dim=0)
    cdf = 0.5 * (1 + torch.erf(s / math.sqrt(2)))
    upper = torch.arange(1, n + 1, dtype=z.dtype).unsqueeze(1) / n
    lower = torch.arange(0, n, dtype=z.dtype).unsqueeze(1) / n
    return torch.maximum(upper - cdf, cdf - lower).max(0).values


def label_swap(
    cvae: ConditionalVAE, x: Any, y: Labels, new_y: Labels, *, memory_budget: int = MEMORY_BUDGET
) -> torch.Tensor:
    """Encode ``x`` with its label ``y`` (posterior mean), decode the same z under ``new_y``:
    the style of ``x`` with the content of ``new_y`` (the notebook's question 10.6i). In eval
    mode, in chunks that fit ``memory_budget`` bytes (see :func:`~genvae.inference.decode_chunk_size`)."""
    if not cvae.conditional:
        raise TypeError(f"cvae: expected a conditional model (a ConditionalVAE), got {type(cvae).__name__}")
    x, _ = model_inputs(cvae, x, "x")
    n = x.shape[0]
    c, c_new = cvae.condition(y, n), cvae.condition(new_y, n)
    out = torch.empty(x.shape, dtype=cvae.dtype, device=cvae.device)  # filled in place: an ordinary tensor
    with inference(cvae):
        step = decode_chunk_size(cvae, memory_budget, c_new)
        for i in range(0, n, step):
            z = cvae.posterior_location(x[i : i + step].to(cvae.device), c[i : i + step])
            out[i : i + step] = cvae.likelihood.mean(cvae.decoder_params(z, c_new[i : i + step]))
    return out
