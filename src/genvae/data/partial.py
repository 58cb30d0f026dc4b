"""Partly labelled data: :func:`partially_labeled` keeps ``n`` labels of a dataset and marks the
other images unlabelled (label −1), for semi-supervised training
(:class:`~genvae.semisupervised.SemiSupervisedVAE`).

The result shuffles itself (:meth:`PartiallyLabeledDataset.epoch_order`): the Trainer's batches
mix labelled and unlabelled images, with the labelled ones spread evenly over the epoch.

Example:
    >>> from genvae.data import SyntheticDigits
    >>> from genvae.data.partial import partially_labeled
    >>> data = partially_labeled(SyntheticDigits(200, seed=0), n_labels=20, seed=0)
    >>> int(data.labelled.sum()), data.labels[data.labelled].bincount(minlength=10).tolist()  # 2 per class
    (20, [2, 2, 2, 2, 2, 2, 2, 2, 2, 2])
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from genvae._validation import check_positive_int
from genvae.data.base import ImageDataset
from genvae.data.inputs import as_tensors

__all__ = ["UNLABELLED", "PartiallyLabeledDataset", "partially_labeled"]

#: The label of an unlabelled image.
UNLABELLED = -1


class PartiallyLabeledDataset(ImageDataset):
    """An :class:`~genvae.data.ImageDataset` whose unlabelled images have the label −1.

    Its :meth:`epoch_order` spreads the labelled images evenly over each epoch, so that every
    batch sees labels (whenever there are at least as many labels as batches).
    ``subset`` and ``binarized`` return a plain ``ImageDataset`` with the same −1 labels.

    Args:
        images, labels, num_classes, classes, name, binarize: as for
            :class:`~genvae.data.ImageDataset`; labels of −1 mark the unlabelled images.
        repeats: how many copies of each labelled image the dataset holds (its oversampling, see
            :func:`partially_labeled`'s ``labelled_share``); the semi-supervised objective weighs
            each copy 1/repeats (:class:`~genvae.semisupervised.SemiSupervisedELBO`).
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        num_classes: int,
        classes: Sequence[str] | None = None,
        name: str = "images",
        binarize: str | None = None,
        repeats: int = 1,
    ) -> None:
        super().__init__(images, labels, num_classes=num_classes, classes=classes, name=name, binarize=binarize)
        self.repeats = check_positive_int("repeats", repeats)
        if len(self) and (int(self.labels.min()) < UNLABELLED or int(self.labels.max()) >= self.num_classes):
            bad = int(self.labels.min()) if int(self.labels.min()) < UNLABELLED else int(self.labels.max())
            raise ValueError(f"labels: expected class indices in [0, {self.num_classes - 1}] or -1, got {bad}")

    @property
    def labelled(self) -> torch.Tensor:
        """Which images have a label, ``(N,)`` bool."""
        return self.labels != UNLABELLED

    @property
    def labelled_fraction(self) -> float:
        """f = n_l / N: the share of labelled images among the distinct images (copies of an
        oversampled labelled image count once); 0 for an empty dataset."""
        n_labelled = int(self.labelled.sum())
        distinct = len(self) - n_labelled + n_labelled / self.repeats
        return n_labelled / self.repeats / distinct if distinct else 0.0

    def epoch_order(self, n: int, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """One epoch's order, a permutation of ``range(n)`` drawn with ``generator`` (the Trainer's,
        so runs are reproducible and resume exactly): the labelled images, shuffled, sit at evenly
        spaced positions and the unlabelled ones, shuffled, fill the rest. Each batch of
        ``batch_size`` therefore holds ``batch_size · labelled / n`` labelled images, rounded
        down or up: at least one whenever there are as many labels as batches."""
        if n != len(self):
            raise ValueError(f"n: expected the dataset's size {len(self)}, got {n}")
        check_positive_int("batch_size", batch_size)
        labelled = self.labelled.nonzero().squeeze(1).cpu()
        unlabelled = (~self.labelled).nonzero().squeeze(1).cpu()
        labelled = labelled[torch.randperm(labelled.numel(), generator=generator)]
        unlabelled = unlabelled[torch.randperm(unlabelled.numel(), generator=generator)]
        if labelled.numel() == 0:
            return unlabelled
        # slot j at ⌊(j + ½)·n / labelled⌋: spacing ≥ 1, so the slots are distinct
        slots = ((torch.arange(labelled.numel(), dtype=torch.float64) + 0.5) * (n / labelled.numel())).long()
        is_slot = torch.zeros(n, dtype=torch.bool)
        is_slot[slots] = True
        order = torch.empty(n, dtype=torch.long)
        order[is_slot] = labelled
        order[~is_slot] = unlabelled
        return order


def partially_labeled(
    dataset: Any, n_labels: int, per_class: bool = True, seed: int = 0, labelled_share: float | None = None
) -> PartiallyLabeledDataset:
    """``dataset`` with only ``n_labels`` of its labels kept (the others set to −1).

    Args:
        dataset: an :class:`~genvae.data.ImageDataset`, or images with integer labels in any form
            :func:`~genvae.data.as_tensors` takes. Labels already −1 stay unlabelled.
        n_labels: how many labels to keep.
        per_class: keep the same number of each class (``n_labels // num_classes``, one more
            for ``n_labels % num_classes`` classes drawn at random); otherwise any ``n_labels``
            labelled images, drawn uniformly.
        seed: the draw's seed: the same seed keeps the same labels.
        labelled_share: oversample the labelled images, as the semi-supervised papers do (their
            labelled set is cycled beside the unlabelled one): every labelled image is repeated
            so that they make up about this share of the result (and of every batch), e.g. 0.5;
            ``None`` keeps each image once. The unlabelled images come first, then the copies.

    Raises:
        ValueError: the dataset has fewer labelled images (of some class) than asked for.
    """
    check_positive_int("n_labels", n_labels, allow_zero=True)
    check_positive_int("seed", seed, allow_zero=True)
    if isinstance(dataset, ImageDataset):
        images, labels = dataset.images, dataset.labels
        meta: dict[str, Any] = {"classes": dataset.classes, "name": dataset.name, "binarize": dataset.binarize}
        num_classes = dataset.num_classes
    else:
        images, found = as_tensors(dataset, argument="dataset")
        if found is None or found.is_floating_point():
            raise ValueError("dataset: expected images with integer class labels, got " + _describe(found))
        labels, meta = found, {}
        num_classes = int(labels.max()) + 1 if labels.numel() else 0
    generator = torch.Generator().manual_seed(seed)
    keep = _balanced(labels, num_classes, n_labels, generator) if per_class else _any(labels, n_labels, generator)
    kept = torch.full_like(labels, UNLABELLED)
    kept[keep] = labels[keep]
    repeats = 1
    if labelled_share is not None:
        images, kept, repeats = _oversampled(images, kept, labelled_share)
    return PartiallyLabeledDataset(images, kept, num_classes=num_classes, repeats=repeats, **meta)


def _oversampled(images: torch.Tensor, labels: torch.Tensor, share: float) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The unlabelled images once, then the labelled ones repeated to about ``share`` of the
    whole, and the number of copies of each."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share < 1:
        raise ValueError(f"labelled_share: expected a number between 0 and 1 (exclusive) or None, got {share!r}")
    known = labels != UNLABELLED
    n_labelled, n_unlabelled = int(known.sum()), int((~known).sum())
    if n_labelled == 0:
        return images, labels, 1
    repeats = max(1, round(share / (1 - share) * n_unlabelled / n_labelled))
    index = torch.cat([(~known).nonzero().squeeze(1), known.nonzero().squeeze(1).repeat(repeats)])
    return images[index], labels[index], repeats


def _describe(labels: torch.Tensor | None) -> str:
    return "none" if labels is None else f"labels of dtype {labels.dtype}"


def _any(labels: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    candidates = (labels != UNLABELLED).nonzero().squeeze(1)
    if n > candidates.numel():
        raise ValueError(f"n_labels: expected at most the {candidates.numel()} labelled images, got {n}")
    return candidates[torch.randperm(candidates.numel(), generator=generator)[:n]]


def _balanced(labels: torch.Tensor, num_classes: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n // num_classes`` images of every class, one more for ``n % num_classes`` random classes."""
    if num_classes == 0:
        raise ValueError(f"n_labels: expected a dataset with classes to keep {n} labels of, got none")
    quota = torch.full((num_classes,), n // num_classes, dtype=torch.long)
    quota[torch.randperm(num_classes, generator=generator)[: n % num_classes]] += 1
    chosen = []
    for label in range(num_classes):
        candidates = (labels == label).nonzero().squeeze(1)
        if int(quota[label]) > candidates.numel():
            raise ValueError(
                f"n_labels: expected at most {candidates.numel()} labels of class {label} (the images it has), "
                f"got {int(quota[label])} ({n} labels balanced over {num_classes} classes)"
            )
        chosen.append(candidates[torch.randperm(candidates.numel(), generator=generator)[: int(quota[label])]])
    return torch.cat(chosen)
