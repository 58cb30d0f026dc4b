"""The :class:`TensorBoard` callback: a run's figures where TensorBoard users look for them.

Needs the ``tensorboard`` package (``pip install 'genvae[tensorboard]'``); genvae imports it only
when the callback is created.

Example:
    >>> import torch, genvae as gv
    >>> board = gv.training.TensorBoard("runs/tb", images_every=5)  # doctest: +SKIP
    >>> gv.Trainer(gv.presets.seed_vae(), callbacks=[board]).fit(torch.rand(64, 1, 28, 28))  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch

from genvae._validation import check_positive_int
from genvae.training.callbacks import Callback, Logs

if TYPE_CHECKING:
    from genvae.training.trainer import Trainer

__all__ = ["TensorBoard"]


class TensorBoard(Callback):
    """Write each epoch's figures as TensorBoard scalars and, every ``images_every`` epochs, the
    latent manifold and samples from the prior as images.

    Scalars are named ``train/total``, ``val/kl``, ... (the History's keys, split at the first
    underscore), plus ``epoch/seconds``; the step is the epoch. Images: ``manifold`` (for a
    latent space of at least two dimensions; for a conditional model with classes, the manifold
    of label 0) and ``samples`` (a row per class for a conditional model). A model with continuous
    conditions gets scalars only.

    Args:
        log_dir: the folder of the event files (created if needed).
        images_every: write images every this many epochs (0: never).
        manifold_n: points per side of the manifold grid.
        samples_n: samples per row.
    """

    rank_zero_only = True

    def __init__(
        self, log_dir: str | os.PathLike[str], images_every: int = 1, manifold_n: int = 15, samples_n: int = 8
    ) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("TensorBoard needs the tensorboard package: pip install 'genvae[tensorboard]'") from None
        check_positive_int("images_every", images_every, allow_zero=True)
        self.log_dir = str(log_dir)
        self.images_every = images_every
        self.manifold_n = check_positive_int("manifold_n", manifold_n)
        self.samples_n = check_positive_int("samples_n", samples_n)
        self._writer_class = SummaryWriter
        self._writer: Any = None

    @property
    def state_key(self) -> str:
        """``TensorBoard{log_dir=...}``: one writer per folder."""
        return self._key_with(log_dir=self.log_dir)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open an event-file writer on ``log_dir`` (:meth:`on_fit_end` closes it)."""
        if self._writer is None:
            self._writer = self._writer_class(log_dir=self.log_dir)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Write the epoch's logged figures as scalars and, every ``images_every`` epochs, the manifold
        and sample images; then flush.
        """
        for key, value in logs.items():
            if key == "epoch":
                continue
            tag = "epoch/seconds" if key == "time" else key.replace("_", "/", 1)
            self._writer.add_scalar(tag, value, epoch)
        if self.images_every and epoch % self.images_every == 0:
            self._images(trainer.model, epoch)
        self._writer.flush()

    def _images(self, model: Any, epoch: int) -> None:
        from genvae import viz

        if not hasattr(model, "sample_prior") or model.input_shape is None or len(model.input_shape) != 3:
            return  # only image models have pictures to show
        if getattr(model, "conditional", False) and getattr(model, "num_classes", None) is None:
            return  # continuous conditions: no canonical condition to draw
        label = 0 if getattr(model, "conditional", False) else None
        if model.latent_dim >= 2:
            image, _, _ = viz.manifold_grid(model, y=label, n=self.manifold_n)
            self._writer.add_image("manifold", _chw(image), epoch)
        self._writer.add_image("samples", _chw(_sample_grid(model, self.samples_n)), epoch)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Close the event-file writer, if one is open."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _sample_grid(model: Any, n: int) -> Any:
    """Samples from the prior as one tiled array: a row per class for a conditional model."""
    from genvae import viz

    generator = torch.Generator().manual_seed(0)  # the same z every epoch: the picture shows training
    z = model.sample_prior(n, generator=generator)
    labels = list(range(model.num_classes)) if getattr(model, "conditional", False) else [None]
    rows = torch.stack([model.decode(z, label) for label in labels])
    return viz.tile(rows)


def _chw(image: Any) -> Any:
    """A tiled numpy image (H, W) or (H, W, 3) as a CHW float array for ``add_image``."""
    array = torch.as_tensor(image, dtype=torch.float32).clamp(0, 1)
    return (array.unsqueeze(0) if array.dim() == 2 else array.permute(2, 0, 1)).numpy()
