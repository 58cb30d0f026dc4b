"""What the Trainer says by itself: off a terminal a line per epoch and heartbeats (EpochLog), on
a terminal a progress bar, after Ctrl-C where last.ckpt is; nothing with quiet=True."""

from __future__ import annotations

import io
import os
import re
import signal
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.training import Callback, EpochLog, ModelCheckpoint, ProgressBar
from tests.helpers import tiny_data, tiny_vae
from tests.test_training_state import FakeTerminal


class Clock:
    """A wall clock the test moves: ``Tick`` callbacks advance it by ``step`` seconds per batch."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tick(Callback):
    def __init__(self, clock: Clock, seconds: float) -> None:
        self.clock, self.seconds = clock, seconds

    def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
        self.clock.now += self.seconds


class CtrlC(Callback):
    """A real SIGINT after ``at`` steps of the run."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
        if trainer.state.global_step == self.at:
            os.kill(os.getpid(), signal.SIGINT)


EPOCH_LINE = r"^epoch {e}/2: train_total \d+(\.\d+)?, val_total \d+(\.\d+)?, \d+\.\d s, \d+ images/s$"


def test_off_a_terminal_the_trainer_prints_a_line_per_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    x, _ = tiny_data(8)
    trainer = gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu")
    assert any(isinstance(cb, EpochLog) for cb in trainer.callbacks)
    assert not any(isinstance(cb, ProgressBar) for cb in trainer.callbacks)
    trainer.fit(x, x)
    lines = log.getvalue().splitlines()
    assert len(lines) == 2
    for epoch, line in enumerate(lines, start=1):
        assert re.match(EPOCH_LINE.format(e=epoch), line), line


def test_quiet_silences_the_trainer(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    x, _ = tiny_data(16)
    trainer = gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", quiet=True,
                         callbacks=[CtrlC(at=6), ModelCheckpoint(tmp_path)])  # fmt: skip
    assert not any(isinstance(cb, EpochLog | ProgressBar) for cb in trainer.callbacks)
    trainer.fit(x, x)
    assert trainer.interrupted and log.getvalue() == ""


def test_on_a_terminal_the_trainer_keeps_its_progress_bar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    callbacks = gv.Trainer(tiny_vae(), device="cpu").callbacks
    assert any(isinstance(cb, ProgressBar) for cb in callbacks)
    assert not any(isinstance(cb, EpochLog) for cb in callbacks)


def test_a_report_of_ones_own_is_not_doubled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    mine = EpochLog(io.StringIO())
    assert [cb for cb in gv.Trainer(tiny_vae(), device="cpu", callbacks=[mine]).callbacks] == [mine]
    bar = ProgressBar(io.StringIO())
    assert [cb for cb in gv.Trainer(tiny_vae(), device="cpu", callbacks=[bar]).callbacks] == [bar]


def test_a_heartbeat_every_interval_of_wall_clock_during_an_epoch() -> None:
    """8 steps of 1 s each, a heartbeat every 2.5 s: after steps 3 and 6 (3 s and 6 s)."""
    clock, log = Clock(), io.StringIO()
    x, _ = tiny_data(32)
    trainer = gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu",
                         callbacks=[Tick(clock, 1.0), EpochLog(log, heartbeat=2.5, clock=clock)])  # fmt: skip
    trainer.fit(x)
    lines = log.getvalue().splitlines()
    assert len(lines) == 3
    # 32 images in 8 steps of 1 s: 4 images/s
    assert re.match(r"^epoch 1/1: step 3/8, 3\.0 s, 4 images/s, loss \d+(\.\d+)?$", lines[0]), lines[0]
    assert re.match(r"^epoch 1/1: step 6/8, 6\.0 s, 4 images/s, loss \d+(\.\d+)?$", lines[1]), lines[1]
    assert re.match(r"^epoch 1/1: train_total \d+(\.\d+)?, 8\.0 s, 4 images/s$", lines[2]), lines[2]


def test_images_per_second_count_the_epochs_images() -> None:
    clock, log = Clock(), io.StringIO()
    x, _ = tiny_data(32)
    trainer = gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu",
                         callbacks=[Tick(clock, 0.004), EpochLog(log, heartbeat=None, clock=clock)])  # fmt: skip
    trainer.fit(x)
    assert log.getvalue().rstrip().endswith(", 0.0 s, 1000 images/s")  # 32 images in 8 × 4 ms


def test_no_heartbeat_when_it_is_switched_off_or_the_interval_is_not_reached() -> None:
    clock, log = Clock(), io.StringIO()
    x, _ = tiny_data(32)
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu",
               callbacks=[Tick(clock, 10.0), EpochLog(log, heartbeat=None, clock=clock)]).fit(x)  # fmt: skip
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu",
               callbacks=[Tick(clock, 10.0), EpochLog(log, heartbeat=81, clock=clock)]).fit(x)  # fmt: skip
    assert len(log.getvalue().splitlines()) == 2


@pytest.mark.parametrize("heartbeat", [0, -1, True, "30"])
def test_a_heartbeat_that_is_not_a_positive_number_is_a_named_error(heartbeat: object) -> None:
    with pytest.raises(ValueError, match="heartbeat: expected a positive number of seconds or None"):
        EpochLog(heartbeat=heartbeat)  # type: ignore[arg-type]


def test_after_ctrl_c_the_trainer_says_where_last_ckpt_was_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    x, _ = tiny_data(16)  # 4 steps per epoch
    checkpoint = ModelCheckpoint(tmp_path)
    trainer = gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[CtrlC(at=6), checkpoint])
    trainer.fit(x)
    assert trainer.interrupted and checkpoint.last_path.is_file()
    assert log.getvalue().splitlines()[-1] == (
        f"interrupted at epoch 2, step 2 of 4; last.ckpt written to {checkpoint.last_path}; "
        "continue with fit(..., resume_from=it)"
    )


def test_after_ctrl_c_without_a_checkpoint_the_trainer_says_none_was_written(monkeypatch: pytest.MonkeyPatch) -> None:
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    x, _ = tiny_data(16)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[CtrlC(at=2)]).fit(x)
    assert log.getvalue().splitlines() == [
        "interrupted at epoch 1, step 2 of 4; no checkpoint written (add a ModelCheckpoint to be able to resume)"
    ]


def test_the_progress_bar_on_a_terminal_also_reports_the_interrupt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    x, _ = tiny_data(16)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu",
               callbacks=[CtrlC(at=6), ModelCheckpoint(tmp_path)]).fit(x)  # fmt: skip
    assert f"last.ckpt written to {tmp_path / 'last.ckpt'}" in terminal.getvalue()


def test_epoch_log_doctest_clock_is_injectable() -> None:
    ticks = iter(range(100))
    log = io.StringIO()
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu",
               callbacks=[EpochLog(log, clock=lambda: float(next(ticks)))]).fit(torch.rand(8, 1, 6, 6))  # fmt: skip
    assert re.match(r"^epoch 1/1: train_total \d+(\.\d+)?, 3\.0 s, 3 images/s$", log.getvalue().strip())
