"""Plain-text progress for logs (a file, a job scheduler, CI, a notebook's captured output): one
line per epoch, as Keras' ``verbose=2``, and a heartbeat line while a long epoch runs.

The :class:`~genvae.Trainer` adds an :class:`EpochLog` itself when standard error is not a
terminal (on a terminal it shows a progress bar instead); ``quiet=True`` adds neither.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING

from genvae.training.callbacks import Callback, Logs

if TYPE_CHECKING:
    from genvae.losses import ELBOTerms
    from genvae.training.trainer import Trainer

__all__ = ["EpochLog"]


class EpochLog(Callback):
    """Print ``epoch 3/10: train_total 160.2, val_total 158.9, 12.3 s, 650 images/s`` after each
    epoch, and, while an epoch runs, a heartbeat line every ``heartbeat`` seconds of wall clock
    (``epoch 3/10: step 120/469, 30.0 s, 650 images/s, loss 161.4``), so a long epoch is not a
    silence of minutes.

    Args:
        file: where to write (default ``sys.stderr`` at the time of writing).
        heartbeat: seconds between heartbeat lines (checked after each step); ``None`` for none.
        clock: the wall clock, in seconds (default ``time.monotonic``; tests pass their own).

    The images per second are those of the training data over the epoch's wall time (validation
    included). Under ``torchrun`` only rank 0 prints.

    Example:
        >>> import io, torch, genvae as gv
        >>> log = io.StringIO()
        >>> ticks = iter(range(100))
        >>> trainer = gv.Trainer(gv.presets.seed_vae(), max_epochs=1, batch_size=16, seed=0,
        ...                      callbacks=[gv.training.EpochLog(log, clock=lambda: float(next(ticks)))])
        >>> _ = trainer.fit(torch.rand(64, 1, 28, 28))
        >>> log.getvalue().startswith("epoch 1/1: train_total ")
        True
    """

    rank_zero_only = True

    def __init__(
        self, file: IO[str] | None = None, heartbeat: float | None = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if heartbeat is not None and (
            isinstance(heartbeat, bool) or not isinstance(heartbeat, int | float) or not heartbeat > 0
        ):
            raise ValueError(f"heartbeat: expected a positive number of seconds or None, got {heartbeat!r}")
        self.file, self.heartbeat, self.clock = file, heartbeat, clock
        self._start = self._beat = 0.0
        self._steps = 0

    def _print(self, line: str) -> None:
        print(line, file=self.file if self.file is not None else sys.stderr, flush=True)

    def _speed(self, trainer: Trainer, seconds: float) -> str:
        """``", 650 images/s"`` for the steps done this epoch, or nothing when it is not known."""
        if not (trainer.train_samples and trainer.steps_per_epoch and seconds > 0):
            return ""
        images = trainer.train_samples * min(self._steps, trainer.steps_per_epoch) / trainer.steps_per_epoch
        return f", {images / seconds:.0f} images/s"

    def on_epoch_start(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Start the epoch's clock."""
        self._start = self._beat = self.clock()
        self._steps = 0

    def on_batch_end(self, trainer: Trainer, step: int, terms: ELBOTerms) -> None:
        """Count the step; print a heartbeat when ``heartbeat`` seconds passed since the last line
        (reading the batch's loss then, once, waits for the device)."""
        self._steps += 1
        now = self.clock()
        if self.heartbeat is None or now - self._beat < self.heartbeat:
            return
        self._beat = now
        seconds = now - self._start
        self._print(
            f"epoch {trainer.state.epoch + 1}/{trainer.max_epochs}: step {step + 1}/{trainer.steps_per_epoch}, "
            f"{seconds:.1f} s{self._speed(trainer, seconds)}, loss {float(terms.total.detach()):.5g}"
        )

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Logs) -> None:
        """Print the epoch's line: each split's total (named by its bound when that is not the
        ELBO: ``train_iwae``), the wall time and the images per second."""
        seconds = self.clock() - self._start
        bound = getattr(trainer.objective, "bound_name", "elbo")  # name −L_k as such, not "total"
        names = ("train_total", "val_total") if bound == "elbo" else (f"train_{bound}", f"val_{bound}")
        figures = [f"{key} {logs[key]:.5g}" for key in names if key in logs]
        self._print(f"epoch {epoch}/{trainer.max_epochs}: {', '.join(figures)}, {seconds:.1f} s"
                    f"{self._speed(trainer, seconds)}")  # fmt: skip
