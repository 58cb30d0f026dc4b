"""Questions about a trained model, answered with numbers.

- :func:`nll`: importance-weighted estimate of −log p(x) (Burda et al., 2016), in nats and bits per dimension.
- :func:`classify`: Bayes-rule classification with a conditional VAE: argmax_y log p(x | y) + log p(y).
- :func:`latent_probe`: accuracy of a linear classifier on posterior means.
- :func:`prior_match`: how the aggregate posterior compares with the prior N(0, I).
- :func:`label_swap`: the same z decoded under another label (style kept, content changed).

``data`` arguments take what :meth:`Trainer.fit <genvae.Trainer.fit>` takes (see
:func:`genvae.data.as_tensors`): tensors or numpy arrays, ``(inputs, labels)`` pairs, datasets and
loaders. Evaluation uses only the model's public methods.

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae()
    >>> result = gv.evaluation.nll(model, torch.rand(4, 1, 28, 28), k=8)
    >>> result.nats > 0 and result.bits_per_dim > 0
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from genvae._validation import check_positive_int
from genvae.data.inputs import as_tensors
from genvae.gaussian import log_normal
from genvae.models import VAE, ConditionalVAE, Labels

__all__ = [
    "ClassifyResult",
    "NLLResult",
    "PriorMatch",
    "classify",
    "label_swap",
    "latent_probe",
    "log_importance_weights",
    "nll",
    "posterior_means",
    "prior_match",
]


def _inputs(
    model: VAE, data: Any, argument: str = "data", limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``data`` as tensors in the model's dtype (see :func:`genvae.data.as_tensors`), checked once."""
    x, y = as_tensors(data, argument=argument, dtype=model.dtype, limit=limit)
    model.check_input(x, argument)
    return x, y


def _labels_for(model: VAE, y: torch.Tensor | None, argument: str = "data") -> torch.Tensor | None:
    if model.conditional and y is None:
        raise ValueError(f"{argument}: expected labels for a conditional model, got images only")
    return y if model.conditional else None


@torch.no_grad()
def log_importance_weights(
    model: VAE, x: torch.Tensor, c: torch.Tensor | None, k: int, chunk: int = 4096
) -> torch.Tensor:
    """``log p(x, z_j) − log q(z_j | x)`` for ``k`` draws ``z_j ~ q(z | x)``: shape ``(batch, k)``.

    ``c`` is the condition (float vectors) of a conditional model, or None. At most ``chunk``
    latent vectors are decoded at once, so memory stays bounded whatever ``k``.
    """
    mean, logvar = model.posterior(x, c)
    std = torch.exp(0.5 * logvar)
    batch = x.shape[0]
    per_step = max(1, chunk // batch)
    out = []
    for start in range(0, k, per_step):
        m = min(per_step, k - start)
        eps = torch.randn(m, *mean.shape, device=mean.device, dtype=mean.dtype)
        z = mean + eps * std  # (m, batch, latent)
        log_q = log_normal(z, mean, logvar)
        flat_z = z.reshape(m * batch, -1)
        flat_c = c.repeat(m, 1) if c is not None else None
        log_p_z = model.prior_log_prob(flat_z, flat_c).reshape(m, batch)
        params = model.decoder_params(flat_z, flat_c)
        x_rep = x.unsqueeze(0).expand(m, *x.shape).reshape(m * batch, *x.shape[1:])
        log_px = model.likelihood.log_prob(x_rep, params).reshape(m, batch, -1).sum(-1)
        out.append((log_px + log_p_z - log_q).T)
    return torch.cat(out, dim=1)


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


def nll(model: VAE, data: Any, k: int = 1000, batch_size: int = 100, chunk: int = 4096) -> NLLResult:
    """Importance-weighted estimate of −log p(x): ``−log mean_j p(x, z_j) / q(z_j | x)`` with
    ``k`` draws from the posterior (a conditional model gives −log p(x | y)). An upper bound on
    the true NLL in expectation that tightens as ``k`` grows; ``k = 1`` is the negative ELBO.

    Example:
        >>> import torch, genvae as gv
        >>> gv.evaluation.nll(gv.presets.seed_vae(), torch.rand(2, 1, 28, 28), k=4).per_sample.shape
        torch.Size([2])
    """
    check_positive_int("k", k)
    check_positive_int("batch_size", batch_size)
    x_all, y_all = _inputs(model, data)
    y_all = _labels_for(model, y_all)
    device = model.device
    was_training = model.training
    model.eval()
    values = []
    try:
        for i in range(0, x_all.shape[0], batch_size):
            x = x_all[i : i + batch_size].to(device)
            c = model.condition(y_all[i : i + batch_size], x.shape[0]) if y_all is not None else None
            log_w = log_importance_weights(model, x, c, k, chunk)
            values.append(-(torch.logsumexp(log_w, dim=1) - math.log(k)).cpu())
    finally:
        model.train(was_training)
    per_sample = torch.cat(values).double()
    nats = float(per_sample.mean())
    dims = math.prod(x_all.shape[1:])
    return NLLResult(nats=nats, bits_per_dim=nats / (dims * math.log(2)), per_sample=per_sample, k=k)


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


def classify(
    cvae: ConditionalVAE,
    x: Any,
    k: int = 100,
    prior: torch.Tensor | None = None,
    batch_size: int = 100,
) -> ClassifyResult:
    """Classify images with a conditional VAE by Bayes' rule: ``argmax_y log p(x | y) + log p(y)``,
    each ``log p(x | y)`` estimated by importance weighting with ``k`` samples.

    Args:
        cvae: a conditional VAE with ``num_classes``.
        x: the images ``(N, ...)``, or any data :func:`~genvae.data.as_tensors` takes (its labels are ignored).
        k: importance samples per image and class.
        prior: class probabilities p(y), ``(num_classes,)``; default uniform.
        batch_size: images per batch.
    """
    if not isinstance(cvae, ConditionalVAE):
        raise TypeError(f"cvae: expected a ConditionalVAE with num_classes, got {type(cvae).__name__}")
    if cvae.num_classes is None:
        raise ValueError(
            "cvae: expected a conditional model with classes (num_classes), got one with continuous "
            f"conditions (condition_dim={cvae.condition_dim}); Bayes' rule needs a finite set of labels"
        )
    check_positive_int("k", k)
    x, _ = _inputs(cvae, x, "x")
    classes = cvae.num_classes
    if prior is None:
        log_prior = torch.full((classes,), -math.log(classes), dtype=torch.float64)
    else:
        if (
            prior.shape != (classes,)
            or bool((prior < 0).any())
            or not math.isclose(float(prior.sum()), 1, rel_tol=1e-4)
        ):
            raise ValueError(f"prior: expected {classes} non-negative probabilities summing to 1, got {prior}")
        log_prior = prior.double().log()
    scores = (
        torch.stack(
            [
                -nll(cvae, (x, torch.full((x.shape[0],), c, dtype=torch.long)), k=k, batch_size=batch_size).per_sample
                for c in range(classes)
            ],
            dim=1,
        )
        + log_prior
    )
    return ClassifyResult(predictions=scores.argmax(1), scores=scores)


@torch.no_grad()
def _posteriors(
    model: VAE, data: Any, batch_size: int, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Posterior means and log-variances of ``data`` (on the CPU, in eval mode) and its labels.
    A conditional model encodes each image with its own label."""
    x_all, y_all = _inputs(model, data, limit=limit)
    y_cond = _labels_for(model, y_all)
    was_training = model.training
    model.eval()
    means, logvars = [], []
    try:
        for i in range(0, x_all.shape[0], batch_size):
            y = y_cond[i : i + batch_size] if y_cond is not None else None
            x = x_all[i : i + batch_size].to(model.device)
            mean, logvar = model.posterior(x, model.condition(y, x.shape[0]))
            means.append(mean.cpu())
            logvars.append(logvar.cpu())
    finally:
        model.train(was_training)
    return torch.cat(means), torch.cat(logvars), y_all


def posterior_means(
    model: VAE, data: Any, batch_size: int = 1000, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior means of ``data`` (on the CPU) and its labels, if any; with ``limit``, of its
    first ``limit`` inputs only. A conditional model encodes each input with its own label."""
    means, _, labels = _posteriors(model, data, batch_size, limit)
    return means, labels


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
    """How close the aggregate posterior is to N(0, I) (the notebook's questions 10.5 g–h)."""
    means, logvars, _ = _posteriors(model, data, batch_size)
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


@torch.no_grad()
def label_swap(cvae: ConditionalVAE, x: Any, y: Labels, new_y: Labels) -> torch.Tensor:
    """Encode ``x`` with its label ``y`` (posterior mean), decode the same z under ``new_y``:
    the style of ``x`` with the content of ``new_y`` (the notebook's question 10.6i)."""
    if not isinstance(cvae, ConditionalVAE):
        raise TypeError(f"cvae: expected a ConditionalVAE, got {type(cvae).__name__}")
    x, _ = _inputs(cvae, x, "x")
    z, _ = cvae.encode(x.to(cvae.device), y)
    return cvae.decode(z, new_y)
