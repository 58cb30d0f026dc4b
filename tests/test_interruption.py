"""Interrupted runs of `genvae train`: SIGKILL mid-epoch and Ctrl-C (SIGINT) lose no finished
work, and resuming ends exactly where an uninterrupted run ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import genvae as gv

ARGS = ["--dataset", "synthetic-digits", "--train-size", "4000", "--test-size", "200", "--epochs", "4",
        "--seed", "3", "--no-report"]  # fmt: skip


def command(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "genvae", "train", *ARGS, "--out", str(out), *extra]


def environment(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(XDG_CACHE_HOME=str(tmp_path / "cache"), PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    env.pop("GENVAE_DATA", None)
    return env


def epochs_done(run: Path) -> int:
    history = run / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def wait_for_epochs(process: subprocess.Popen[str], run: Path, n: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while epochs_done(run) < n:
        assert process.poll() is None, "the run ended before it could be interrupted"
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.02)


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
    process = subprocess.Popen(command(run), env=environment(tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_epochs(process, run, 2)
    time.sleep(0.1)  # into epoch 3
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert epochs_done(run) >= 2
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")  # intact: written atomically
    assert checkpoint["state"]["epoch"] == epochs_done(run)  # no completed epoch lost
    assert not list((run / "checkpoints").glob(".*tmp"))  # no temporary file left behind

    done = subprocess.run(
        command(run, "--resume"), env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert epochs_done(run) == 4
    assert same_weights(run, uninterrupted)
    assert (
        gv.History.from_csv(run / "history.csv")["val_total"]
        == gv.History.from_csv(uninterrupted / "history.csv")["val_total"]
    )


def test_ctrl_c_writes_a_checkpoint_and_says_so(tmp_path: Path, uninterrupted: Path) -> None:
    run = tmp_path / "run"
    process = subprocess.Popen(command(run), env=environment(tmp_path), stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_epochs(process, run, 1)
    time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    line = err.strip().splitlines()[-1]
    assert line.startswith("genvae train: interrupted at epoch ")
    assert line.endswith(f"checkpoint written to {run / 'checkpoints' / 'last.ckpt'}; resume with --resume")
    assert "Traceback" not in err

    done = subprocess.run(
        command(run, "--resume"), env=environment(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert same_weights(run, uninterrupted)
