"""Interrupted runs of `genvae train`: SIGKILL mid-epoch and Ctrl-C (SIGINT) lose no finished
work, and resuming ends exactly where an uninterrupted run ends.

The run is stopped at an exact step by the GENVAE_TEST_PAUSE_AT hook (it creates a file and waits
there; tests/pause_hook.py runs the command with the callback that reaches it), so the signal
lands where the test says, not after a sleep that a loaded machine can outrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.runs import RunDir

ARGS = ["--dataset", "synthetic-digits", "--train-size", "4000", "--test-size", "200", "--epochs", "4",
        "--seed", "3", "--no-report"]  # fmt: skip
STEPS_PER_EPOCH = 125  # 4000 images in batches of 32


ROOT = Path(__file__).resolve().parents[1]


def command(out: Path, *extra: str, paused: bool = False) -> list[str]:
    program = "tests.pause_hook" if paused else "genvae"  # the test's callback names the training steps
    return [sys.executable, "-m", program, "train", *ARGS, "--out", str(out), *extra]


def environment(tmp_path: Path, pause_at: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    env.pop("GENVAE_DATA", None)
    if pause_at is not None:
        env.update(GENVAE_TEST_PAUSE_AT=pause_at, GENVAE_TEST_PAUSE_FILE=str(tmp_path / "paused"))
    return env


def epochs_done(run: Path) -> int:
    history = RunDir(run).live_history
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def wait_until_paused(process: subprocess.Popen[str], tmp_path: Path, timeout: float = 300.0) -> None:
    """Wait for the run to reach its pause step: it then creates the file `paused` and waits."""
    deadline = time.monotonic() + timeout
    while not (tmp_path / "paused").exists():
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.01)


def same_weights(a: Path, b: Path) -> bool:
    first, second = gv.load(a).state_dict(), gv.load(b).state_dict()
    return all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("full")
    done = subprocess.run(command(tmp / "run"), env=environment(tmp), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return tmp / "run"


def test_sigkill_mid_epoch_then_resume(tmp_path: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(command(run, paused=True), env=environment(tmp_path, "train:epoch-3:step-40"),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_until_paused(process, tmp_path)  # inside epoch 3: epochs 1 and 2 are checkpointed
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert epochs_done(run) == 2
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")  # intact: written atomically
    assert checkpoint["state"]["epoch"] == 2  # no completed epoch lost
    assert not list((run / "checkpoints").glob(".*tmp"))  # no temporary file left behind
    assert not RunDir(run).is_published()  # nothing is published before the run ends

    done = subprocess.run(
        command(run, "--resume"), env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert f"took over the lock of {run} left by PID {process.pid}" in done.stderr  # the killed run's lock
    assert epochs_done(run) == 4 and RunDir(run).metrics()["epochs"] == 4
    assert same_weights(run, uninterrupted)
    assert RunDir(run).history()["val_total"] == RunDir(uninterrupted).history()["val_total"]


def test_ctrl_c_writes_a_checkpoint_and_says_so(tmp_path: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(command(run, paused=True), env=environment(tmp_path, "train:epoch-2:step-10"),
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_until_paused(process, tmp_path)
    process.send_signal(signal.SIGINT)
    (tmp_path / "paused.continue").touch()  # the run goes on to the step boundary, where Ctrl-C stops it
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    line = err.strip().splitlines()[-1]
    assert line == (
        f"genvae train: interrupted at epoch 2, step 10 of {STEPS_PER_EPOCH}; checkpoint written to "
        f"{run / 'checkpoints' / 'last.ckpt'}; resume with --resume"
    )
    assert "Traceback" not in err

    done = subprocess.run(
        command(run, "--resume"), env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert same_weights(run, uninterrupted)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["stop_reason"] == ""  # not the interrupted session's
