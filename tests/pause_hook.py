"""Test-only: pause a training run at an exact step, so a test's signal lands where it says.

:class:`PauseAt` is a training callback that names the step ``train:epoch-E:step-S`` after step S
(1-based) of epoch E, through the ``GENVAE_TEST_PAUSE_AT`` hook of :mod:`genvae._io` (which pauses
there when the variable names that step). Tests pass it to ``train_run(callbacks=...)``
(tests/runs_worker.py), or run the command with it:

    python -m tests.pause_hook train ...     # genvae train ..., with PauseAt among its callbacks
"""

from __future__ import annotations

import sys
from typing import Any

from genvae._io import step
from genvae.cli import main
from genvae.training import Callback, Trainer


class PauseAt(Callback):
    """Calls the pause hook after every training step, named by its epoch and step."""

    def on_batch_end(self, trainer: Trainer, step_: int, terms: Any) -> None:
        step(f"train:epoch-{trainer.state.epoch + 1}:step-{step_ + 1}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], callbacks=[PauseAt()]))
