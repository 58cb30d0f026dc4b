"""Callbacks: code that runs at fixed points of :meth:`Trainer.fit <genvae.Trainer.fit>`.

Every hook receives the trainer, so a callback can read anything (``trainer.model``,
``trainer.optimizer``, ``trainer.objective``, ``trainer.state``, ``trainer.history``) and stop
training with ``trainer.should_stop = True``. A callback with state that must survive a resume
implements ``state_dict()`` / ``load_state_dict()``; checkpoints store it.

Example — a callback of your own:

    >>> import genvae as gv
    >>> class PrintKL(gv.training.Callback):
    ...     def on_epoch_end(self, trainer, epoch, logs):
    ...         print(f"epoch {epoch}: KL {logs['train_kl']:.2f} nats")
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import torch

from genvae._validation import check_non_negative

if TYPE_CHECKING:
    from genvae.losses import ELBOTerms
    from genvae.training.trainer import Trainer

__all__ = [
    "CSVLogger",
    "Callback",
    "EarlyStopping",
    "KLWarmup",
    "LRScheduler",
    "ModelCheckpoint",
    "ProgressBar",
    "TerminateOnNaN",
]

Logs = Mapping[str, float]


class Callback:
    """Base class: override the hooks you need. ``epoch`` is 1-based; ``step`` counts batches
    within the epoch from 0; ``trainer.state.global_step`` counts optimiser steps of the run."""

    #: Run after every other callback (checkpoints must see the others' state of this epoch).
    runs_last = False
    #: Under torchrun, run on rank 0 only (callbacks that write files or print).
    rank_zero_only = False

    @property
    def state_key(self) -> str:
        """The key of this callback's state in a checkpoint (Lightning's convention): the class
        name, plus what tells two instances of one class apart. Two callbacks of one trainer
        must have different keys; override it in a subclass that can be used twice."""
        return type(self).__qualname__

    def _key_with(self, **settings: Any) -> str:
        """``ClassName{a=..., b=...}``: a state key that includes distinguishing settings."""
        inner = ", ".join(f"{k}={v!r}" for k, v in settings.items())
        return f"{type(self).__qualname__}{{{inner}}}"

    def on_fit_start(self, trainer: Trainer) -> None:
        """``fit`` begins (after a resume's state was restored)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """``fit`` ends, however it ends."""

    def on_epoch_start(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Epoch ``epoch`` begins (``logs`` is empty)."""

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Epoch ``epoch`` ended; ``logs`` holds its record (``train_total``, ``val_total``, ...)."""

    def on_batch_start(self, trainer: Trainer, step: int) -> None:
        """Step ``step`` of the epoch begins."""

    def on_interrupt(self, trainer: Trainer) -> None:
        """Ctrl-C stopped the run at a step boundary (``trainer.state`` says where)."""

    def on_batch_end(self, trainer: Trainer, step: int, terms: ELBOTerms) -> None:
        """``terms`` holds 0-d tensors of this batch (``float()`` on one waits for the device)."""

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must store for this callback to resume (plain values and tensors)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        return None


def _monitored(logs: Logs, monitor: str, who: str) -> tuple[str, float]:
    """The key a callback watches (``"auto"`` resolved) and its value in ``logs``."""
    key = monitor
    if monitor == "auto":
        key = "val_total" if "val_total" in logs else "train_total"
    if key not in logs:
        raise KeyError(f"{who}: monitor {monitor!r} is not logged; logged: {', '.join(sorted(logs))}")
    return key, float(logs[key])


class ProgressBar(Callback):
    """A tqdm bar per epoch on a terminal; otherwise (logs, CI) one plain line per epoch.

    Args:
        file: where to write (default ``sys.stderr``).
        refresh_every: update the bar's loss every this many steps (each read syncs the device).
    """

    rank_zero_only = True

    def __init__(self, file: IO[str] | None = None, refresh_every: int = 20) -> None:
        self.file = file
        self.refresh_every = refresh_every
        self._bar: Any = None
        self._start = 0.0

    def _stream(self) -> IO[str]:
        return self.file if self.file is not None else sys.stderr

    def on_epoch_start(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Start the epoch's clock and, on a terminal, open a tqdm bar of ``trainer.steps_per_epoch`` steps."""
        self._start = time.perf_counter()
        stream = self._stream()
        if stream.isatty():
            from tqdm import tqdm

            self._bar = tqdm(
                total=trainer.steps_per_epoch, desc=f"epoch {epoch}/{trainer.max_epochs}", file=stream, leave=False
            )

    def on_batch_end(self, trainer: Trainer, step: int, terms: ELBOTerms) -> None:
        """Advance the bar by one step; every ``refresh_every`` steps show the batch's loss."""
        if self._bar is not None:
            self._bar.update(1)
            if step % self.refresh_every == 0:
                self._bar.set_postfix(loss=f"{float(terms.total.detach()):.2f}")

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Close the bar and print one line: the epoch, each split's total, reconstruction and KL,
        and the epoch's wall time.
        """
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        parts = [f"epoch {epoch}/{trainer.max_epochs}"]
        for split in ("train", "val"):
            if f"{split}_total" in logs:
                total, recon, kl = (logs[f"{split}_{k}"] for k in ("total", "recon", "kl"))
                parts.append(f"{split} {total:.3f} (recon {recon:.3f}, kl {kl:.3f})")
        parts.append(f"{time.perf_counter() - self._start:.1f}s")
        print("  ".join(parts), file=self._stream(), flush=True)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Close a bar left open (a run that stopped mid-epoch)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None


class EarlyStopping(Callback):
    """Stop when the monitored figure has not improved by more than ``min_delta`` for ``patience``
    epochs in a row (Keras' semantics: ``patience=1`` stops after the first epoch without
    improvement).

    Args:
        monitor: a logged key; ``"auto"`` is ``val_total`` when there is validation data, else ``train_total``.
        patience: epochs without improvement to wait before stopping (≥ 1).
        min_delta: the smallest decrease that counts as an improvement.
        restore_best_weights: when training ends (stopped early or at ``max_epochs``, not when
            interrupted), load the weights of the best epoch back into the model. The best
            weights are kept on the CPU and stored in checkpoints, so a resume keeps them.
    """

    def __init__(
        self, monitor: str = "auto", patience: int = 5, min_delta: float = 0.0, restore_best_weights: bool = False
    ) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"patience: expected a positive integer, got {patience!r}")
        check_non_negative("min_delta", min_delta)
        self.monitor, self.patience, self.min_delta = monitor, patience, float(min_delta)
        self.restore_best_weights = restore_best_weights
        self.best = math.inf
        self.best_epoch = 0
        self.wait = 0
        self.best_weights: dict[str, torch.Tensor] | None = None

    @property
    def state_key(self) -> str:
        """``EarlyStopping{monitor=...}``: one early stop per monitored key."""
        return self._key_with(monitor=self.monitor)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Record an improvement of the monitored figure (and copy the weights to the CPU when
        ``restore_best_weights``), or count one more epoch without one and stop the run at ``patience``.

        Raises:
            KeyError: the monitored key is not logged.
        """
        key, value = _monitored(logs, self.monitor, "EarlyStopping")
        if value < self.best - self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = {k: v.detach().to("cpu", copy=True) for k, v in trainer.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.should_stop = True
            trainer.state.stop_reason = (
                f"EarlyStopping: no improvement of {key} for {self.wait} epochs "
                f"(best {self.best:.4f} at epoch {self.best_epoch})"
            )

    def on_fit_end(self, trainer: Trainer) -> None:
        """With ``restore_best_weights``, load the best epoch's weights into the model (unless the run
        was interrupted).
        """
        if self.restore_best_weights and self.best_weights is not None and not trainer.interrupted:
            trainer.model.load_state_dict(self.best_weights)

    def state_dict(self) -> dict[str, Any]:
        """The best figure, its epoch, the epochs waited, and the best weights when kept."""
        state: dict[str, Any] = {"best": self.best, "best_epoch": self.best_epoch, "wait": self.wait}
        if self.best_weights is not None:
            state["best_weights"] = self.best_weights
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.best, self.wait = float(state["best"]), int(state["wait"])
        self.best_epoch = int(state.get("best_epoch", 0))
        self.best_weights = dict(state["best_weights"]) if "best_weights" in state else None


class ModelCheckpoint(Callback):
    """Write ``last.ckpt`` after every epoch (and when Ctrl-C stops the run) and ``best.ckpt`` when
    the monitored figure improves.

    Each file is a full training checkpoint (model, optimiser, RNG state, callbacks, history),
    written atomically with a checksum; ``Trainer.fit(..., resume_from=path)`` continues from it.

    Args:
        directory: where to write (created if needed).
        monitor: as for :class:`EarlyStopping`.
        save_last: write ``last.ckpt``.
        save_best: write ``best.ckpt``.
    """

    rank_zero_only = True

    def __init__(
        self, directory: str | os.PathLike[str], monitor: str = "auto", save_last: bool = True, save_best: bool = True
    ) -> None:
        self.directory = Path(directory)
        self.monitor, self.save_last, self.save_best = monitor, save_last, save_best
        self.runs_last = True
        self.best = math.inf

    @property
    def state_key(self) -> str:
        """``ModelCheckpoint{directory=..., monitor=...}``: one checkpointer per folder and key."""
        return self._key_with(directory=str(self.directory), monitor=self.monitor)

    @property
    def last_path(self) -> Path:
        """``directory / "last.ckpt"``, written after every epoch and on Ctrl-C."""
        return self.directory / "last.ckpt"

    @property
    def best_path(self) -> Path:
        """``directory / "best.ckpt"``, written when the monitored figure improves."""
        return self.directory / "best.ckpt"

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Write ``best.ckpt`` if the monitored figure improved (and ``save_best``), then ``last.ckpt``
        (if ``save_last``).

        Raises:
            KeyError: the monitored key is not logged.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        _, value = _monitored(logs, self.monitor, "ModelCheckpoint")
        improved = value < self.best
        if improved:
            self.best = value  # before saving, so the saved callback state includes it
        if self.save_best and improved:
            trainer.save_checkpoint(self.best_path)
        if self.save_last:
            trainer.save_checkpoint(self.last_path)

    def on_interrupt(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` at the current step, so a resume continues mid-epoch."""
        self.directory.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(self.last_path)  # mid-epoch: a resume continues from this step

    def state_dict(self) -> dict[str, Any]:
        """The best monitored figure so far."""
        return {"best": self.best}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the best monitored figure, so ``best.ckpt`` is only replaced by a better epoch."""
        self.best = float(state["best"])


class CSVLogger(Callback):
    """Keep ``path`` a CSV of the history so far (rewritten atomically each epoch)."""

    rank_zero_only = True

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @property
    def state_key(self) -> str:
        """``CSVLogger{path=...}``: one logger per file."""
        return self._key_with(path=str(self.path))

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Rewrite the CSV file with the whole history so far (creating its folder if needed)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        trainer.history.to_csv(self.path)


class KLWarmup(Callback):
    """Anneal the KL weight linearly from ``start`` to the objective's configured β over the first
    ``epochs`` epochs (Bowman et al., 2016; Sønderby et al., 2016), step by step.

    The objective keeps its configured β (``ELBO(beta=4.0)`` ends at 4.0): the warm-up sets a
    schedule factor (:meth:`~genvae.losses.Objective.set_factor`), so it composes with other
    schedules. The factor is computed from the global step, so a resumed run continues exactly.

    Args:
        epochs: length of the warm-up, in epochs (fractions allowed).
        start: the KL weight at the first step (default 0).
    """

    def __init__(self, epochs: float = 10, start: float = 0.0) -> None:
        if isinstance(epochs, bool) or not isinstance(epochs, int | float) or not epochs > 0:
            raise ValueError(f"epochs: expected a positive number, got {epochs!r}")
        check_non_negative("start", start)
        self.epochs, self.start = epochs, float(start)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Set the warm-up's factor for the starting step.

        Raises:
            TypeError: the objective has no KL weight ``beta`` or no ``set_factor``.
        """
        if not hasattr(trainer.objective, "beta") or not hasattr(trainer.objective, "set_factor"):
            raise TypeError(
                "KLWarmup: expected an objective with a KL weight beta and schedule factors (ELBO, BetaTCVAE), "
                f"got {type(trainer.objective).__name__}"
            )
        self._apply(trainer)

    def progress(self, trainer: Trainer) -> float:
        """How far the warm-up is, from 0 to 1, at the trainer's current global step."""
        return min(1.0, trainer.state.global_step / (self.epochs * max(trainer.steps_per_epoch, 1)))

    def beta(self, trainer: Trainer) -> float:
        """The KL weight the warm-up asks for at the current step (before other schedules)."""
        target = float(trainer.objective.beta)
        return self.start + (target - self.start) * self.progress(trainer)

    def _apply(self, trainer: Trainer) -> None:
        target = float(trainer.objective.beta)
        trainer.objective.set_factor(self.state_key, self.beta(trainer) / target if target > 0 else 1.0)

    def on_batch_start(self, trainer: Trainer, step: int) -> None:
        """Set the objective's KL factor for this step."""
        self._apply(trainer)

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Set the factor for the global step the epoch ended at, so a checkpoint written now (and an
        evaluation after ``fit``) holds the current factor."""
        self._apply(trainer)


class TerminateOnNaN(Callback):
    """Stop at the first batch whose loss terms are not finite, naming the epoch, the step and
    the term. The epoch is not recorded and no checkpoint is written for it, so the last
    checkpoint stays the last good one.

    Args:
        check_every: check every this many steps (each check syncs the device).
        file: where to write the message (default ``sys.stderr``).
    """

    def __init__(self, check_every: int = 1, file: IO[str] | None = None) -> None:
        self.check_every, self.file = check_every, file

    def on_batch_end(self, trainer: Trainer, step: int, terms: ELBOTerms) -> None:
        """Every ``check_every`` steps, stop the run and print the reason if a loss term of this batch is
        NaN or infinite (under torchrun, on every rank when any rank sees one).
        """
        if step % self.check_every:
            return
        values = {"recon": terms.recon, "kl": terms.kl, **terms.extra, "loss": terms.loss}
        finite = torch.stack([torch.isfinite(v.detach()).all() for v in values.values()]).double()
        if trainer.distributed.enabled:  # every rank stops at the same step, or the others would hang
            finite = trainer.distributed.all_reduce_sum(finite) / trainer.distributed.world_size
        if bool((finite == 1).all()):
            return
        for name, value in values.items():
            if not bool(torch.isfinite(value.detach())):
                trainer.should_stop = True
                trainer.state.stop_reason = (
                    f"TerminateOnNaN: non-finite {name} ({float(value.detach())}) at epoch {trainer.state.epoch + 1}, "
                    f"step {step} (global step {trainer.state.global_step}); training stopped"
                )
                print(trainer.state.stop_reason, file=self.file or sys.stderr, flush=True)
                return


class LRScheduler(Callback):
    """Drive a ``torch.optim.lr_scheduler`` built by ``factory(optimizer)``.

    Args:
        factory: e.g. ``lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=5)``.
        interval: ``"epoch"`` or ``"step"``: when to call ``scheduler.step()``.
        monitor: for ``ReduceLROnPlateau``, the logged key passed to ``step()``.
    """

    def __init__(
        self, factory: Callable[[torch.optim.Optimizer], Any], interval: str = "epoch", monitor: str = "auto"
    ) -> None:
        if interval not in ("epoch", "step"):
            raise ValueError(f"interval: expected 'epoch' or 'step', got {interval!r}")
        self.factory, self.interval, self.monitor = factory, interval, monitor
        self.scheduler: Any = None
        self._pending: Mapping[str, Any] | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Build the scheduler on the trainer's optimiser (once) and load a state restored from a
        checkpoint before it existed.
        """
        if self.scheduler is None:
            self.scheduler = self.factory(trainer.optimizer)
        if self._pending is not None:
            self.scheduler.load_state_dict(self._pending)
            self._pending = None

    def on_batch_end(self, trainer: Trainer, step: int, terms: ELBOTerms) -> None:
        """Step the scheduler when ``interval`` is ``"step"``."""
        if self.interval == "step":
            self.scheduler.step()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Step the scheduler when ``interval`` is ``"epoch"``; a ``ReduceLROnPlateau`` gets the
        monitored figure.
        """
        if self.interval == "epoch":
            if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                self.scheduler.step(_monitored(logs, self.monitor, "LRScheduler")[1])
            else:
                self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        """The scheduler's own state dict, under ``"scheduler"`` (empty before it is built)."""
        return {"scheduler": self.scheduler.state_dict()} if self.scheduler is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load the scheduler's state, now or, before the scheduler is built, at :meth:`on_fit_start`."""
        if "scheduler" in state:
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            else:
                self._pending = state["scheduler"]
