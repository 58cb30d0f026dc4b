"""Interrupted runs of `genvae train`: SIGKILL mid-epoch and Ctrl-C (SIGINT) lose no finished
work, and resuming ends exactly where an uninterrupted run ends.

The run is stopped at an exact step by the GENVAE_TEST_PAUSE_AT hook (it writes to a file and waits
there; tests/pause_hook.py runs the command with the callback that reaches it), so the signal
lands where the test says, not after a sleep that a loaded machine can outrun.
Every wait is on an event, never on a clock: the pause file is a FIFO, and the test blocks in
select() until the run writes to it or ends (a pidfd), so a slow machine is only slower."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.runs import RunDir

ARGS = ["--dataset", "synthetic-digits", "--train-size", "960", "--test-size", "200", "--epochs", "4",
        "--seed", "3", "--no-report"]  # fmt: skip
STEPS_PER_EPOCH = 30  # 960 images in batches of 32


ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, *extra: str, paused: bool = False) -> list[str]:
    program = "tests.pause_hook" if paused else "genvae"  # the test's callback names the training steps
    return [sys.executable, "-m", program, "train", *ARGS, "--out", str(out), *extra]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the module's runs: the synthetic digits are drawn once."""
    return tmp_path_factory.mktemp("cache")


def environment(cache: Path, tmp_path: Path, pause_at: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XDG_CACHE_HOME=str(cache), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    env.pop("GENVAE_DATA", None)
    if pause_at is not None:
        os.mkfifo(tmp_path / "paused")  # the run's write to it is the event the test waits for
        env.update(GENVAE_TEST_PAUSE_AT=pause_at, GENVAE_TEST_PAUSE_FILE=str(tmp_path / "paused"))
    return env


def epochs_done(run: Path) -> int:
    history = RunDir(run).live_history
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def start_paused(args: list[str], env: dict[str, str], tmp_path: Path) -> subprocess.Popen[str]:
    """Start the run and block until it reaches its pause step (it writes to the FIFO `paused`,
    then waits there), or fail if it ends first. select() wakes on either event: the FIFO turns
    readable, or the process's pidfd does when it exits. No clock: a loaded machine is only slower."""
    fifo = os.open(tmp_path / "paused", os.O_RDONLY | os.O_NONBLOCK)  # before the run: its write never blocks
    try:
        process = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        exited = os.pidfd_open(process.pid)
        try:
            ready, _, _ = select.select([fifo, exited], [], [])
        finally:
            os.close(exited)
        if fifo not in ready:
            _, err = process.communicate()
            raise AssertionError(f"the run ended (status {process.returncode}) before it could be interrupted: {err}")
        return process
    finally:
        os.close(fifo)


def same_weights(a: Path, b: Path) -> bool:
    first, second = gv.load(a).state_dict(), gv.load(b).state_dict()
    return all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> Path:
    tmp = tmp_path_factory.mktemp("full")
    done = subprocess.run(command(tmp / "run"), env=environment(cache, tmp), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def test_sigkill_mid_epoch_then_resume(tmp_path: Path, cache: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    process = start_paused(command(run, paused=True), environment(cache, tmp_path, "train:epoch-3:step-20"), tmp_path)
    # paused inside epoch 3: epochs 1 and 2 are checkpointed
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert epochs_done(run) == 2
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")  # intact: written atomically
    assert checkpoint["state"]["epoch"] == 2  # no completed epoch lost
    assert not list((run / "checkpoints").glob(".*tmp"))  # no temporary file left behind
    assert not RunDir(run).is_published()  # nothing is published before the run ends

    done = subprocess.run(command(run, "--resume"), env=environment(cache, tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"took over the lock of {run} left by PID {process.pid}" in done.stderr  # the killed run's lock
    assert epochs_done(run) == 4 and RunDir(run).metrics()["epochs"] == 4
    assert same_weights(run, uninterrupted)
    assert RunDir(run).history()["val_total"] == RunDir(uninterrupted).history()["val_total"]


def test_ctrl_c_writes_a_checkpoint_and_says_so(tmp_path: Path, cache: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    process = start_paused(command(run, paused=True), environment(cache, tmp_path, "train:epoch-2:step-10"), tmp_path)
    process.send_signal(signal.SIGINT)
    (tmp_path / "paused.continue").touch()  # the run goes on to the step boundary, where Ctrl-C stops it
    _, err = process.communicate()
    assert process.returncode == 130
    line = err.strip().splitlines()[-1]
    assert line == (
        f"genvae train: interrupted at epoch 2, step 10 of {STEPS_PER_EPOCH}; checkpoint written to "
        f"{run / 'checkpoints' / 'last.ckpt'}; resume with --resume"
    )
    assert "Traceback" not in err

    done = subprocess.run(command(run, "--resume"), env=environment(cache, tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert same_weights(run, uninterrupted)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["stop_reason"] == ""  # not the interrupted session's
