"""Real processes, real signals, real files: SIGKILL and SIGINT at each step of a save and of a
run's publication, two writers at once, a lock left by a killed writer, a full disk.

Each writer is a child forked by tests/runs_worker.py and stopped at an exact step by the
GENVAE_TEST_PAUSE_AT hook (it writes to a FIFO and waits there; the test blocks in select() on
the FIFO and the child's pidfd), so the signal lands where the test says, with no sleeps and no
clock but a safety net for a real hang."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.runs import RunDir
from tests.helpers import SAFETY_TIMEOUT, wait_for_fifo
from tests.runs_worker import perturbed
from tests.test_config import SAVE_STEPS, same_weights
from tests.test_runs import PUBLISH_STEPS, TINY, copy_run, published_together, snapshot

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}


class Worker:
    """The forking helper process (tests/runs_worker.py)."""

    def __init__(self, log: Path, env: dict[str, str]) -> None:
        self.log: IO[str] = open(log, "w")  # noqa: SIM115 - closed in close()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.runs_worker"], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
        )  # fmt: skip

    def start(self, request: dict[str, Any]) -> int:
        """Run ``request`` in a new child; returns the child's PID."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return int(json.loads(self.process.stdout.readline())["pid"])

    def exit_status(self) -> int:
        """The exit status of the last child (minus the signal that killed it)."""
        assert self.process.stdout is not None
        return int(json.loads(self.process.stdout.readline())["exit"])

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=SAFETY_TIMEOUT)
        self.log.close()


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    tmp = tmp_path_factory.mktemp("worker")
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp / "cache"), "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    env.pop("GENVAE_DATA", None)
    helper = Worker(tmp / "worker.log", env)
    yield helper
    helper.close()


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def pause_at(tmp_path: Path, step: str) -> tuple[dict[str, str], Path]:
    """The environment that pauses a child at ``step``, and the FIFO its pause writes to."""
    pause = tmp_path / "paused"
    os.mkfifo(pause)  # the child's write to it is the event the test waits for
    return {"GENVAE_TEST_PAUSE_AT": step, "GENVAE_TEST_PAUSE_FILE": str(pause)}, pause


def wait_for(pause: Path, pid: int) -> None:
    """Block until child ``pid`` is paused (it wrote to the FIFO ``pause``); fail if it ends first."""
    wait_for_fifo(pause, pid)


def stop(worker: Worker, pid: int, name: str) -> None:
    os.kill(pid, SIGNALS[name])
    status = worker.exit_status()
    assert status == (-signal.SIGKILL if name == "SIGKILL" else 1), status  # SIGINT: KeyboardInterrupt, exit 1


# -- gv.save -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SIGNALS)
@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_save_stopped_by_a_signal_at_any_step_leaves_a_complete_model(
    tmp_path: Path, worker: Worker, step: str, name: str
) -> None:
    folder = tmp_path / "model"
    gv.save(perturbed(1), folder)
    env, pause = pause_at(tmp_path, step)
    pid = worker.start({"action": "save", "dir": str(folder), "seed": 2, "env": env})
    wait_for(pause, pid)
    stop(worker, pid, name)
    expected = perturbed(1) if SAVE_STEPS[step] == "old" else perturbed(2)
    assert same_weights(gv.load(folder), expected)


# -- a run's publication -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    return run


NEW_RUN = {"train_size": 64, "test_size": 32, "epochs": 1, "seed": 7, "device": "cpu"}


@pytest.mark.parametrize("name", SIGNALS)
@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_publication_stopped_by_a_signal_at_any_step_leaves_one_complete_run(
    tmp_path: Path, worker: Worker, finished: Path, step: str, name: str
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    env, pause = pause_at(tmp_path, step)
    pid = worker.start({"action": "train", "config": NEW_RUN, "out": str(run), "overwrite": True, "env": env})
    wait_for(pause, pid)
    stop(worker, pid, name)
    assert published_together(run)
    if PUBLISH_STEPS[step] == "old":
        assert snapshot(run) == before
    else:
        config, metrics = RunDir(run).config(), RunDir(run).metrics()
        assert config["seed"] == 7 and metrics["epochs"] == len(RunDir(run).history()) == 1
        assert all(torch.isfinite(p).all() for p in gv.load(run).parameters())


# -- one writer at a time ------------------------------------------------------------------------------


def test_two_trainings_into_one_run_directory(
    tmp_path: Path, worker: Worker, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    env, pause = pause_at(tmp_path, "train:epoch-1:step-1")
    pid = worker.start({"action": "train", "config": NEW_RUN, "out": str(run), "overwrite": True, "env": env})
    wait_for(pause, pid)  # the first writer holds the run, inside its training
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "3", "--overwrite", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"genvae train: error: {run}: in use by another genvae process (PID {pid} on {socket.gethostname()}, started "
    )
    assert err.endswith("; wait for it to finish or use another --out\n") and err.count("\n") == 1
    (tmp_path / "paused.continue").touch()  # let the first writer finish
    assert worker.exit_status() == 0
    assert RunDir(run).config()["seed"] == 7 and published_together(run)


def test_a_lock_left_by_a_killed_writer_is_taken_over(
    tmp_path: Path, worker: Worker, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    env, pause = pause_at(tmp_path, "train:epoch-1:step-1")
    pid = worker.start({"action": "train", "config": NEW_RUN, "out": str(run), "overwrite": True, "env": env})
    wait_for(pause, pid)
    stop(worker, pid, "SIGKILL")
    capsys.readouterr()
    args = ["--train-size", "64", "--test-size", "32", "--epochs", "1", "--seed", "7", "--quiet", "--no-report"]
    assert main(["train", *args, "--device", "cpu", "--resume", "--out", str(run)]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"genvae: took over the lock of {run} left by PID {pid} on {socket.gethostname()}, started ")
    assert err.endswith(", which ended without releasing it\n")
    assert RunDir(run).config()["seed"] == 7


# -- a full disk ---------------------------------------------------------------------------------------

FULL_DISK = """
import json, os, sys, torch, genvae as gv
folder = sys.argv[1]
torch.manual_seed(0)
old = gv.presets.seed_vae()          # about 390 kB of weights: fits
gv.save(old, folder)
try:
    gv.save(gv.presets.seed_cvae(), folder)   # about 800 kB more: does not
    outcome = "saved"
except OSError as err:
    outcome = os.strerror(err.errno)
loaded = gv.load(folder)
same = all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), loaded.state_dict().values()))
print(json.dumps({"outcome": outcome, "old": same, "files": sorted(os.listdir(folder))}))
"""


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare")
def test_a_save_onto_a_full_disk_leaves_the_old_model(tmp_path: Path) -> None:
    """A real ENOSPC: a 1 MB tmpfs, mounted in a private mount namespace (gone with the process)."""
    mount = tmp_path / "small"
    mount.mkdir()
    shell = 'mount -t tmpfs -o size=1000k tmpfs "$0" || exit 77; exec "$1" -c "$2" "$0"'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(["unshare", "--mount", "sh", "-c", shell, str(mount), sys.executable, FULL_DISK],
                          capture_output=True, text=True, env=env, timeout=SAFETY_TIMEOUT)  # fmt: skip
    if done.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["outcome"] == "No space left on device" and result["old"]
    assert len(result["files"]) == 2  # model.json and the old weights: nothing half-written left
