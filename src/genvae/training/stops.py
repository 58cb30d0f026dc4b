"""What a training that stopped early says: where Ctrl-C left it, or which write failed (a full
disk while a callback wrote a checkpoint or the history), and in both cases which checkpoint holds
what, to resume from.

The :class:`~genvae.Trainer` records each checkpoint it writes or resumes from
(:func:`record_checkpoint`), so a failure can say what ``last.ckpt`` holds: a checkpoint is
written atomically, so a write that fails leaves the one before it intact.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from typing import TYPE_CHECKING

from genvae._io import RunWriteError, why
from genvae.training.callbacks import Callback, ModelCheckpoint

if TYPE_CHECKING:
    from genvae.training.trainer import Trainer

__all__ = ["callback_writes", "interrupt_notice", "position", "record_checkpoint"]

# For each trainer: the checkpoints it wrote or resumed from (absolute path -> what each holds).
_HELD: weakref.WeakKeyDictionary[Trainer, dict[str, str]] = weakref.WeakKeyDictionary()


def position(trainer: Trainer) -> str:
    """Where the training is: ``"the end of epoch 2"``, or ``"epoch 3, step 4 of 10"`` inside one."""
    state = trainer.state
    if state.step_in_epoch:
        return f"epoch {state.epoch + 1}, step {state.step_in_epoch} of {trainer.steps_per_epoch}"
    return f"the end of epoch {state.epoch}"


def record_checkpoint(trainer: Trainer, path: str | os.PathLike[str]) -> None:
    """Note that the checkpoint at ``path`` holds the trainer's current :func:`position`."""
    _HELD.setdefault(trainer, {})[os.path.abspath(path)] = position(trainer)


def _resume_state(trainer: Trainer) -> str:
    """Which checkpoint a resume continues from, and what it holds."""
    last = [cb.last_path for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint) and cb.save_last]
    if not last:
        return "no last.ckpt is written (add a ModelCheckpoint to be able to resume)"
    held = _HELD.get(trainer, {}).get(os.path.abspath(last[0]))
    if held is None:
        return f"no checkpoint of this training was written to {last[0]} yet"
    return f"{last[0]} holds {held}, intact: resume from it"


def interrupt_notice(trainer: Trainer) -> str:
    """What an interrupted run says: where it stopped and the checkpoint to resume from."""
    written = [str(cb.last_path) for cb in trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    if not written:
        return f"{trainer.state.stop_reason}; no checkpoint written (add a ModelCheckpoint to be able to resume)"
    return f"{trainer.state.stop_reason}; last.ckpt written to {written[0]}; continue with fit(..., resume_from=it)"


@contextlib.contextmanager
def callback_writes(trainer: Trainer, callback: Callback, when: str) -> Iterator[None]:
    """Turn an ``OSError`` of ``callback`` (a checkpoint or a history that could not be written:
    a full disk, a read-only folder) into a one-line :class:`~genvae.runs.RunWriteError` naming
    the file, the callback, ``when`` it ran (``"at the end of epoch 2"``) and the checkpoint that
    a resume continues from."""
    try:
        yield
    except RunWriteError:
        raise  # already says what it wrote and what state it left
    except OSError as err:
        where = f"{err.filename}: " if err.filename is not None else ""
        raise RunWriteError(
            f"{where}{why(err)} while {type(callback).__name__} ran {when}; "
            f"the training stopped there; {_resume_state(trainer)}",
            err.errno,
        ) from err
