"""genvae.training.stops: a training stopped by a write that failed (a real full disk, /dev/full:
tests.helpers.FullDisk) says in one line which file, at which point, and which checkpoint holds
what; and that checkpoint resumes."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import genvae as gv
from genvae._io import RunWriteError
from genvae.training import Callback, CSVLogger, ModelCheckpoint
from tests.helpers import FullDisk, tiny_data, tiny_vae

tiny_model = partial(tiny_vae, shape=(1, 4, 4), hidden=8)
IMAGES = tiny_data(12, (1, 4, 4))[0]  # 3 steps per epoch of 4


def trainer(folder: Path, *callbacks: Callback, epochs: int = 3) -> gv.Trainer:
    return gv.Trainer(tiny_model(), max_epochs=epochs, batch_size=4, seed=0, quiet=True,
                      callbacks=[ModelCheckpoint(folder), CSVLogger(folder / "history.csv"), *callbacks])  # fmt: skip


def test_a_checkpoint_that_cannot_be_written_names_it_and_the_one_to_resume_from(
    tmp_path: Path, full_disk: Callable[..., FullDisk]
) -> None:
    disk = full_disk("last.ckpt", skip=1)  # epoch 1's last.ckpt is written; epoch 2's meets a full disk
    with pytest.raises(RunWriteError) as caught:  # an OSError
        trainer(tmp_path).fit(IMAGES)
    last = tmp_path / "last.ckpt"
    assert str(caught.value) == (
        f"{last}: No space left on device while ModelCheckpoint ran at the end of epoch 2; "
        f"the training stopped there; {last} holds the end of epoch 1, intact: resume from it"
    )
    disk.free()
    resumed = trainer(tmp_path)
    resumed.fit(IMAGES, resume_from=last)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]


def test_a_history_that_cannot_be_written_before_any_checkpoint(
    tmp_path: Path, full_disk: Callable[..., FullDisk]
) -> None:
    full_disk("history.csv")  # the CSVLogger runs before the checkpointer, which runs last
    says = "history.csv: No space left on device while CSVLogger ran at the end of epoch 1; the training stopped there"
    with pytest.raises(OSError, match=re.escape(f"{says}; no checkpoint of this training was written to ")):
        trainer(tmp_path).fit(IMAGES)


def test_without_a_checkpointer_the_message_says_there_is_nothing_to_resume(
    tmp_path: Path, full_disk: Callable[..., FullDisk]
) -> None:
    full_disk("history.csv")
    logger = CSVLogger(tmp_path / "history.csv")
    run = gv.Trainer(tiny_model(), max_epochs=1, batch_size=4, quiet=True, callbacks=[logger])
    with pytest.raises(OSError, match=r"no last\.ckpt is written \(add a ModelCheckpoint to be able to resume\)$"):
        run.fit(IMAGES)


class CtrlC(Callback):
    """Asks the run to stop (as the first Ctrl-C does) after step 2 of epoch 2."""

    def on_batch_end(self, trainer: gv.Trainer, step: int, logs: Any) -> None:
        if trainer.state.epoch == 1 and step == 1:
            trainer.interrupt_requested = True


def test_a_checkpoint_on_ctrl_c_that_cannot_be_written(tmp_path: Path, full_disk: Callable[..., FullDisk]) -> None:
    full_disk("last.ckpt", skip=1)
    with pytest.raises(OSError) as caught:
        trainer(tmp_path, CtrlC()).fit(IMAGES)
    assert str(caught.value).endswith(
        "while ModelCheckpoint ran on Ctrl-C (interrupted at epoch 2, step 2 of 3); the training stopped there; "
        f"{tmp_path / 'last.ckpt'} holds the end of epoch 1, intact: resume from it"
    )


def test_a_resumed_training_knows_what_its_checkpoint_holds(tmp_path: Path, full_disk: Callable[..., FullDisk]) -> None:
    first = trainer(tmp_path, CtrlC())
    first.fit(IMAGES)  # interrupted mid-epoch 2: last.ckpt holds step 2 of epoch 2
    assert first.interrupted
    full_disk("best.ckpt", "last.ckpt")
    with pytest.raises(OSError, match=r"holds epoch 2, step 2 of 3, intact: resume from it$"):
        trainer(tmp_path).fit(IMAGES, resume_from=tmp_path / "last.ckpt")
    assert gv.training.read_checkpoint(tmp_path / "last.ckpt")["state"]["global_step"] == 5  # untouched
