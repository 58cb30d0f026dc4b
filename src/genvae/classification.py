"""Classifying with a classifier q(y | x): class probabilities, confusion matrix and accuracy of
a :class:`~genvae.semisupervised.SemiSupervisedVAE` or any module returning logits, and the
labels-only baseline (:func:`train_labels_only`): the classifier alone, trained on the labelled
images only, the comparison a semi-supervised model must win. :mod:`genvae.semisupervised`
re-exports every name.

Example:
    >>> import torch, genvae as gv
    >>> from genvae.classification import train_labels_only
    >>> from genvae.classifiers import MLPClassifier
    >>> x = torch.rand(40, 1, 28, 28)
    >>> y = torch.cat([torch.arange(10), torch.full((30,), -1)])  # 10 labels, 30 unlabelled
    >>> result = train_labels_only(MLPClassifier(10, (1, 28, 28)), (x, y), (x[:10], y[:10]), epochs=2)
    >>> 0.0 <= result <= 1.0
    True
"""

from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from genvae._validation import check_labels, check_non_negative, check_positive_int, fmt_shape
from genvae.data.inputs import as_tensors
from genvae.data.partial import UNLABELLED
from genvae.inference import eval_mode
from genvae.models import VAE

__all__ = [
    "accuracy",
    "class_probabilities",
    "classifier_summary",
    "confusion_matrix",
    "fit_classifier",
    "train_labels_only",
]


def _has_classifier(model: nn.Module) -> bool:
    """Whether ``model`` is a VAE with a classifier of its own (M2: ``class_logits``)."""
    return isinstance(model, VAE) and callable(getattr(model, "class_logits", None))


@torch.no_grad()
def class_probabilities(classifier: nn.Module, data: Any, batch_size: int = 1000) -> torch.Tensor:
    """q(y | x) for every input of ``data`` (anything :func:`genvae.data.as_tensors` takes; labels
    are ignored): ``(N, num_classes)`` on the CPU. ``classifier`` is a :class:`SemiSupervisedVAE`
    (its classifier, the inputs checked first) or any ``nn.Module`` returning logits. It runs in
    eval mode (no dropout; the mode is restored), without gradients, ``batch_size`` inputs at a time."""
    check_positive_int("batch_size", batch_size)
    if not isinstance(classifier, nn.Module) or (isinstance(classifier, VAE) and not _has_classifier(classifier)):
        # a VAE or CVAE has no classifier of its own (a CVAE classifies by Bayes' rule:
        # genvae.evaluation.classify)
        raise TypeError(
            "classifier: expected a SemiSupervisedVAE or an nn.Module returning logits, "
            f"got {type(classifier).__name__}"
        )
    parameter = next(classifier.parameters(), None)
    dtype = parameter.dtype if parameter is not None else None
    device = parameter.device if parameter is not None else torch.device("cpu")
    x, _ = as_tensors(data, argument="x", dtype=dtype)
    if isinstance(classifier, VAE):
        classifier.check_input(x, "x")
    logits_of: Any = classifier.class_logits if _has_classifier(classifier) else classifier
    with eval_mode(classifier):
        chunks = [
            F.softmax(logits_of(x[i : i + batch_size].to(device)).float(), dim=1).cpu()
            for i in range(0, x.shape[0], batch_size)
        ]
    return torch.cat(chunks)


def confusion_matrix(classifier: nn.Module, data: Any, batch_size: int = 1000) -> torch.Tensor:
    """Counts ``(num_classes, num_classes)``: row = true class, column = predicted class, of the
    labelled inputs ``data`` (every label a class index) classified by ``classifier`` (as for
    :func:`class_probabilities`)."""
    x, y = as_tensors(data, argument="data")
    if y is None or y.is_floating_point() or y.dim() != 1:
        got = "no labels" if y is None else f"labels of dtype {y.dtype} and shape {fmt_shape(y.shape)}"
        raise ValueError(f"data: expected inputs with integer class labels, got {got}")
    probabilities = class_probabilities(classifier, x, batch_size)
    predicted, k = probabilities.argmax(1), probabilities.shape[1]
    check_labels("data", y, k, what="labels", note=" for every input (none unlabelled)")
    return torch.bincount(y.cpu() * k + predicted, minlength=k * k).reshape(k, k)


def accuracy(classifier: nn.Module, data: Any, batch_size: int = 1000) -> float:
    """The fraction of the labelled inputs ``data`` that ``classifier`` classifies correctly."""
    matrix = confusion_matrix(classifier, data, batch_size)
    return float(matrix.trace() / matrix.sum())


def classifier_summary(classifier: nn.Module, data: Any, batch_size: int = 1000) -> dict[str, Any]:
    """JSON-ready figures of a classifier on labelled ``data``: ``classifier_accuracy``,
    ``confusion_matrix`` (rows: true class, columns: predicted) and ``classified_images``."""
    matrix = confusion_matrix(classifier, data, batch_size)
    return {
        "classifier_accuracy": float(matrix.trace() / matrix.sum()),
        "confusion_matrix": matrix.tolist(),
        "classified_images": int(matrix.sum()),
    }


def train_labels_only(
    classifier: nn.Module,
    data: Any,
    test: Any,
    *,
    epochs: int = 100,
    batch_size: int = 32,
    lr: float = 1e-3,
    seed: int = 0,
) -> float:
    """The labels-only baseline: a copy of ``classifier`` trained with Adam on the cross-entropy of
    the labelled images of ``data`` alone (labels of −1 are dropped, and so are the copies an
    oversampled :func:`~genvae.data.partial.partially_labeled` holds: each distinct labelled image
    counts once), then its accuracy on the labelled ``test`` data.

    Args:
        classifier: a :class:`~genvae.semisupervised.SemiSupervisedVAE` (its classifier is copied:
            the model is left as it is) or any ``nn.Module`` mapping inputs to logits.
        data: partly labelled training data (anything :func:`genvae.data.as_tensors` takes).
        test: labelled test data.
        epochs: passes over the labelled images.
        batch_size: images per step.
        lr: Adam's learning rate.
        seed: seeds the copy's training (shuffling, dropout).
    """
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_non_negative("lr", lr)
    source = getattr(classifier, "classifier", None) if _has_classifier(classifier) else classifier
    if not isinstance(source, nn.Module):
        raise TypeError(
            f"classifier: expected an M2 model or an nn.Module returning logits, got {type(classifier).__name__}"
        )
    network = copy.deepcopy(source)
    fit_classifier(network, _distinct_labelled(data), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
    return accuracy(network, test)


def fit_classifier(
    network: nn.Module, data: Any, *, epochs: int = 10, batch_size: int = 32, lr: float = 1e-3, seed: int = 0
) -> nn.Module:
    """Train ``network`` (an ``nn.Module`` mapping inputs to logits) in place with Adam on the
    cross-entropy of the labelled inputs ``data`` (anything :func:`genvae.data.as_tensors` takes,
    every label a class index), on the network's device; ``seed`` seeds the shuffling and dropout
    without touching the global random state. Returns ``network``, left in training mode."""
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_non_negative("lr", lr)
    x, y = as_tensors(data, argument="data")
    if y is None or y.is_floating_point() or y.dim() != 1:
        raise ValueError("data: expected inputs with integer class labels, got none")
    parameter = next(network.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    x, y = x.to(device, parameter.dtype if parameter is not None else None), y.to(device)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        network.train()
        for _ in range(epochs):
            for index in torch.randperm(x.shape[0], generator=generator).split(batch_size):
                loss = F.cross_entropy(network(x[index.to(device)]), y[index.to(device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return network


def _distinct_labelled(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """The labelled images of ``data`` with their labels, each distinct image once."""
    x, y = as_tensors(data, argument="data")
    if y is None or y.is_floating_point() or y.dim() != 1:
        raise ValueError("data: expected images with integer class labels (-1 for unlabelled), got none")
    known = (y != UNLABELLED).nonzero().squeeze(1)
    if known.numel() == 0:
        raise ValueError("data: expected at least one labelled image, got none (every label is -1)")
    x, y = x[known], y[known]
    _, group = torch.unique(x.reshape(x.shape[0], -1), dim=0, return_inverse=True)
    first = torch.full((int(group.max()) + 1,), x.shape[0], dtype=torch.long)
    first = first.scatter_reduce(0, group, torch.arange(x.shape[0]), reduce="amin")
    first = first.sort().values
    return x[first], y[first]
