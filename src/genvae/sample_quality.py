"""How good generated images are: the Fréchet distance and k-NN precision and recall of a
generated set against a real one, in the features of a network trained on the data itself.

- :func:`feature_network`: a small convolutional classifier trained on labelled images; its
  penultimate layer gives the features (Inception features, the FID's, are known to be
  meaningless for 28×28 grey images).
- :func:`frechet_distance`: the Fréchet distance between Gaussian fits of the two sets' features
  (Heusel et al., 2017, the FID's formula); lower is better, 0 for identical sets.
- :func:`precision_recall`: the fraction of generated images on the real images' k-NN manifold
  (precision: fidelity) and of real images on the generated ones' (recall: coverage)
  (Kynkäänniemi et al., 2019).
- :func:`sample_quality`: the three at once, the features extracted once.

**Caveat.** The figures depend on the feature network, its training and the data: they compare
samplers and models *within genvae's own setup* (the same :func:`feature_network` on the same
data, the same number of images), never with FIDs published elsewhere. The Fréchet distance is
also biased upward for small sets: compare figures from sets of the same size.

The formula is computed here in torch rather than through torchmetrics'
``FrechetInceptionDistance`` (which takes a custom feature module): measured on 10,000 + 10,000
feature vectors of 128 values, the two agree to a relative 1e-8 and take the same time (0.3 s on
one CPU thread), so the optional dependency (9 MB, with lightning-utilities) would buy nothing, and
torchmetrics has no k-NN precision and recall. ``tr √(Σ₁Σ₂)`` is the sum of the square roots of
the eigenvalues of the symmetric positive semi-definite ``√Σ₁ Σ₂ √Σ₁``: two symmetric
eigendecompositions in float64, rounding's negative eigenvalues clamped to 0, so the result is
real and never negative (the general eigenvalues of the non-symmetric ``Σ₁Σ₂``, torchmetrics'
route, can carry complex noise and give −2e−7 for identical sets).

Example:
    >>> import torch, genvae as gv
    >>> real = torch.randn(500, 4, generator=torch.Generator().manual_seed(0))
    >>> round(gv.evaluation.frechet_distance(real, real + 1), 6)  # ‖μ₁ − μ₂‖² = 4, the same covariance
    4.0
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from genvae._progress import progress_bar
from genvae._validation import check_finite, check_positive_int
from genvae.classification import fit_classifier
from genvae.classifiers import ConvClassifier
from genvae.data.inputs import as_tensors
from genvae.inference import eval_mode

__all__ = [
    "FeatureNetwork",
    "PrecisionRecall",
    "SampleQuality",
    "feature_network",
    "features_of",
    "frechet_distance",
    "frechet_distance_gaussians",
    "precision_recall",
    "sample_quality",
]

#: A feature extractor: images ``(N, ...)`` to features ``(N, F)``; None: the inputs, flattened.
Features = Callable[[torch.Tensor], torch.Tensor] | None

_CHUNK_BYTES = 64 * 2**20  # one chunk of pairwise distances in precision_recall


class FeatureNetwork(nn.Module):
    """The penultimate-layer features of a :class:`~genvae.classifiers.ConvClassifier` (its body's
    output, before the dropout and the linear head); :func:`feature_network` trains one.

    Args:
        classifier: a classifier with a ``body`` (``x -> features``), as the built-ins have.
    """

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        if not isinstance(getattr(classifier, "body", None), nn.Module):
            raise TypeError(f"classifier: expected a genvae classifier with a body, got {type(classifier).__name__}")
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The features of each input, ``(batch, features)``."""
        body = cast(nn.Module, self.classifier.body)
        return body(x)


def feature_network(
    data: Any,
    *,
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    hidden: tuple[int, ...] = (128,),
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> FeatureNetwork:
    """A :class:`FeatureNetwork`: a :class:`~genvae.classifiers.ConvClassifier` (the notebook
    encoder's convolutions, then ``hidden`` units, whose activations are the features) trained with
    :func:`~genvae.classification.fit_classifier` on the labelled images ``data`` (anything
    :func:`~genvae.data.as_tensors` takes, labels ``0 … C−1``) for ``epochs``; built and trained
    from ``seed``, so two calls give the same network (on one ``device``, where it is trained and
    stays). Returned in eval mode.

    Train it on the training images, and score samples against held-out ones.
    """
    x, y = as_tensors(data, argument="data")
    if y is None or y.is_floating_point() or y.dim() != 1:
        raise ValueError("data: expected images with integer class labels, got none")
    # checked here, not left to the training: a label of -1 was an IndexError from the
    # cross-entropy, and NaN images trained a network of NaN weights without a word
    if y.numel() and int(y.min()) < 0:
        raise ValueError(f"data: expected class labels 0 … C−1, got {int(y.min())}")
    check_finite("data", x)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        classifier = ConvClassifier(int(y.max()) + 1, tuple(x.shape[1:]), hidden=hidden).to(device)
    fit_classifier(classifier, (x, y), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return FeatureNetwork(classifier).eval()


@torch.no_grad()
def features_of(
    features: Features, data: Any, *, batch_size: int = 500, progress: bool | None = None, desc: str = "features"
) -> torch.Tensor:
    """The features of every input of ``data`` (labels ignored), ``(N, F)`` in float64 on the
    CPU: ``features`` applied ``batch_size`` inputs at a time (a module in eval mode, on its own
    device; its mode is restored), or, for ``features=None``, the inputs flattened."""
    check_positive_int("batch_size", batch_size)
    x, _ = as_tensors(data, argument="data")
    if features is None:
        return x.reshape(x.shape[0], -1).to(torch.float64)
    parameter = next(features.parameters(), None) if isinstance(features, nn.Module) else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    dtype = parameter.dtype if parameter is not None else None
    mode = eval_mode(features) if isinstance(features, nn.Module) else nullcontext()
    chunks = []
    with mode, progress_bar(x.shape[0], progress, desc) as bar:
        for i in range(0, x.shape[0], batch_size):
            batch = x[i : i + batch_size]
            chunks.append(features(batch.to(device, dtype)).reshape(batch.shape[0], -1).to("cpu", torch.float64))
            bar.update(batch.shape[0])
    return torch.cat(chunks)


def _both_features(
    features: Features, real: Any, generated: Any, batch_size: int, progress: bool | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The features of ``real`` and ``generated``, checked: finite, and of one size."""
    f_real = features_of(features, real, batch_size=batch_size, progress=progress, desc="real features")
    f_gen = features_of(features, generated, batch_size=batch_size, progress=progress, desc="generated features")
    for argument, f in (("real", f_real), ("generated", f_gen)):
        if not bool(torch.isfinite(f).all()):
            raise ValueError(f"{argument}: expected finite features, got NaN or infinite values")
    if f_real.shape[1] != f_gen.shape[1]:
        raise ValueError(
            f"generated: expected features of the size of real's ({f_real.shape[1]}), got {f_gen.shape[1]}; "
            "give both sets the same shape (or the same features)"
        )
    return f_real, f_gen


def _gaussian_fit(f: torch.Tensor, argument: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean and the unbiased covariance of the rows of ``f`` (at least two)."""
    if f.shape[0] < 2:
        raise ValueError(f"{argument}: expected at least 2 inputs for a covariance, got {f.shape[0]}")
    return f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1])


def _psd_sqrt(matrix: torch.Tensor) -> torch.Tensor:
    """The symmetric square root of a symmetric positive semi-definite matrix (rounding's small
    negative eigenvalues clamped to 0)."""
    values, vectors = torch.linalg.eigh(matrix)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance_gaussians(
    mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor
) -> float:
    """The squared Fréchet (2-Wasserstein) distance between N(mean1, cov1) and N(mean2, cov2):
    ``‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(√Σ₁ Σ₂ √Σ₁)``, in float64.

    Example:
        >>> import torch
        >>> from genvae.sample_quality import frechet_distance_gaussians
        >>> frechet_distance_gaussians(torch.zeros(2), torch.eye(2), torch.ones(2), 4 * torch.eye(2))
        4.0
    """
    m1, m2 = mean1.to(torch.float64), mean2.to(torch.float64)
    s1, s2 = cov1.to(torch.float64), cov2.to(torch.float64)
    if m1.shape != m2.shape or s1.shape != s2.shape or s1.shape != (m1.numel(), m1.numel()):
        raise ValueError(
            f"cov2: expected means (F,) and covariances (F, F) of one size, got {tuple(m1.shape)}, "
            f"{tuple(s1.shape)}, {tuple(m2.shape)}, {tuple(s2.shape)}"
        )
    root = _psd_sqrt(s1)
    product = root @ s2 @ root
    trace_sqrt = torch.linalg.eigvalsh((product + product.T) / 2).clamp(min=0).sqrt().sum()
    value = (m1 - m2).square().sum() + s1.trace() + s2.trace() - 2 * trace_sqrt
    return max(float(value), 0.0)  # rounding can leave a tiny negative for equal Gaussians


def frechet_distance(
    real: Any, generated: Any, features: Features = None, *, batch_size: int = 500, progress: bool | None = None
) -> float:
    """The Fréchet distance between Gaussian fits of the features of ``real`` and ``generated``
    images (each a tensor, a dataset or ``(images, labels)``; labels are ignored): lower is
    better. ``features`` maps images to feature vectors: a :func:`feature_network` for 28×28
    images, any module or function, or None when the inputs are feature vectors already. See the
    module's caveat: the figure is comparable only within one feature network and data set.

    Example:
        >>> import torch, genvae as gv
        >>> x = torch.rand(100, 3)
        >>> gv.evaluation.frechet_distance(x, x) < 1e-9
        True
    """
    f_real, f_gen = _both_features(features, real, generated, batch_size, progress)
    return frechet_distance_gaussians(*_gaussian_fit(f_real, "real"), *_gaussian_fit(f_gen, "generated"))


@dataclass
class PrecisionRecall:
    """k-NN precision and recall of a generated set (Kynkäänniemi et al., 2019).

    Attributes:
        precision: the fraction of generated images within the k-NN radius of some real image.
        recall: the fraction of real images within the k-NN radius of some generated image.
        k: the neighbour whose distance sets each radius.
    """

    precision: float
    recall: float
    k: int


def _chunk_rows(others: int) -> int:
    return max(1, _CHUNK_BYTES // (8 * max(others, 1)))


def _knn_radii(points: torch.Tensor, k: int) -> torch.Tensor:
    """The distance of each point to its ``k``-th nearest other point, a chunk of rows at a time."""
    step = _chunk_rows(points.shape[0])
    return torch.cat(
        [
            torch.cdist(points[i : i + step], points).topk(k + 1, dim=1, largest=False).values[:, k]
            for i in range(0, points.shape[0], step)
        ]
    )


def _covered(queries: torch.Tensor, points: torch.Tensor, radii: torch.Tensor) -> float:
    """The fraction of ``queries`` within the radius of at least one of ``points``."""
    step = _chunk_rows(points.shape[0])
    inside = sum(
        int((torch.cdist(queries[i : i + step], points) <= radii).any(dim=1).sum())
        for i in range(0, queries.shape[0], step)
    )
    return inside / queries.shape[0]


def _precision_recall(f_real: torch.Tensor, f_gen: torch.Tensor, k: int) -> PrecisionRecall:
    check_positive_int("k", k)
    for argument, f in (("real", f_real), ("generated", f_gen)):
        if f.shape[0] <= k:
            raise ValueError(f"{argument}: expected more than k={k} inputs, got {f.shape[0]}")
    precision = _covered(f_gen, f_real, _knn_radii(f_real, k))
    recall = _covered(f_real, f_gen, _knn_radii(f_gen, k))
    return PrecisionRecall(precision=precision, recall=recall, k=k)


def precision_recall(
    real: Any,
    generated: Any,
    features: Features = None,
    k: int = 3,
    *,
    batch_size: int = 500,
    progress: bool | None = None,
) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al., 2019) of ``generated`` against ``real``
    images in the space of ``features`` (as for :func:`frechet_distance`): each set's manifold is
    the union of balls around its points, each ball reaching the point's ``k``-th nearest
    neighbour in its own set. Pairwise distances are computed a bounded chunk at a time.

    Example:
        >>> import torch, genvae as gv
        >>> x = torch.rand(50, 3)
        >>> gv.evaluation.precision_recall(x, x + 100)
        PrecisionRecall(precision=0.0, recall=0.0, k=3)
    """
    f_real, f_gen = _both_features(features, real, generated, batch_size, progress)
    return _precision_recall(f_real, f_gen, k)


@dataclass
class SampleQuality:
    """The sample-quality figures of one generated set against one real set.

    Attributes:
        frechet_distance: see :func:`frechet_distance`.
        precision: see :func:`precision_recall`.
        recall: see :func:`precision_recall`.
        k: the neighbour of the precision and recall radii.
        real: the number of real images.
        generated: the number of generated images.
    """

    frechet_distance: float
    precision: float
    recall: float
    k: int
    real: int
    generated: int


def sample_quality(
    real: Any,
    generated: Any,
    features: Features = None,
    k: int = 3,
    *,
    batch_size: int = 500,
    progress: bool | None = None,
) -> SampleQuality:
    """:func:`frechet_distance` and :func:`precision_recall` of ``generated`` against ``real``,
    each set's features extracted once."""
    f_real, f_gen = _both_features(features, real, generated, batch_size, progress)
    fd = frechet_distance_gaussians(*_gaussian_fit(f_real, "real"), *_gaussian_fit(f_gen, "generated"))
    pr = _precision_recall(f_real, f_gen, k)
    return SampleQuality(fd, pr.precision, pr.recall, k, f_real.shape[0], f_gen.shape[0])
