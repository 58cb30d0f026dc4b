"""A full disk at each write of ``genvae train``: one line naming the file and the state the run is
in, never a bare ``[Errno 28]``.

The disk is really full for the chosen file: its writes go to /dev/full (tests.helpers.FullDisk,
no root needed); and, where the test can mount one (root and unshare), a small tmpfs fills up at
whatever write comes first, for several sizes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from genvae.cli import REPORT_FAILED, main
from genvae.runs import RunDir
from tests.helpers import FullDisk

ROOT = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--dataset", "synthetic-digits", "--train-size", "32", "--test-size", "16", "--epochs", "2",
         "--latent-dim", "2", "--batch-size", "16", "--device", "cpu", "--quiet"]  # fmt: skip

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")

STAGED = "published/\\.new-\\w+"  # the folder a publication is written in, before its rename
# the file that meets the full disk, how many of its writes succeed first; then the line (a regular
# expression after "genvae train: ", {run} the run directory) and the exit status
POINTS = {
    "the training's settings": ("config.json", 0, "error: {run}/checkpoints/config.json: No space left on device "
                                "while starting the run; the run published in {run} \\(if any\\) is as it was", 1),
    "the live history": ("history.csv", 0, "error: {run}/checkpoints/history.csv: No space left on device while "
                         "CSVLogger ran at the end of epoch 1; the training stopped there; no checkpoint of this "
                         "training was written to {run}/checkpoints/last.ckpt yet", 1),
    "the second checkpoint": ("last.ckpt", 1, "error: {run}/checkpoints/last.ckpt: No space left on device while "
                              "ModelCheckpoint ran at the end of epoch 2; the training stopped there; "
                              "{run}/checkpoints/last.ckpt holds the end of epoch 1, intact: resume from it", 1),
    "the model's weights": ("weights-*.safetensors", 0, f"error: {{run}}/{STAGED}/weights-\\w+.safetensors: No space "
                            "left on device while publishing the run; nothing was published: {run} shows the run as "
                            "it was before", 1),
    "the metrics": ("metrics.json", 0, f"error: {{run}}/{STAGED}/metrics.json: No space left on device while "
                    "publishing the run; nothing was published: {run} shows the run as it was before", 1),
    "the evaluation": ("evaluation.json", 0, "the run was published in {run}, but only its report failed "
                       "\\({run}/published/000001/evaluation.json: No space left on device while writing the "
                       "evaluation; the run in {run} is as it was\\); write it again with genvae report {run}",
                       REPORT_FAILED),
    "the report": ("report.html", 0, "the run was published in {run}, but only its report failed "
                   "\\({run}/published/000001/report.html: No space left on device while writing the report; the "
                   "report there before \\(if any\\) is intact, and the runs are as they were\\); write it again "
                   "with genvae report {run}", REPORT_FAILED),
}  # fmt: skip


@pytest.mark.parametrize("point", POINTS)
def test_a_full_disk_at_each_write_of_a_run_says_which_file_and_what_state(
    tmp_path: Path, point: str, full_disk: Callable[..., FullDisk], capsys: pytest.CaptureFixture[str]
) -> None:
    name, skip, says, status = POINTS[point]
    run = tmp_path / "run"
    disk = full_disk(name, skip=skip)
    assert main([*TRAIN, "--quick-report", "--out", str(run)]) == status
    err = capsys.readouterr().err
    assert disk.hits == skip + 1
    assert re.fullmatch("genvae train: " + says.format(run=re.escape(str(run))) + "\n", err), err
    if status == REPORT_FAILED:
        assert RunDir(run).status() == "complete"  # the run itself is published


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and unshare")
@pytest.mark.parametrize("size_k", [8, 1200])
def test_a_run_on_a_small_tmpfs_fails_in_one_line_naming_the_file(tmp_path: Path, size_k: int) -> None:
    """A real small disk (a tmpfs in a private mount namespace, gone with the process): it fills at
    the first epoch's history or checkpoint, or at the second's, as its size says."""
    mount = tmp_path / "small"
    mount.mkdir()
    shell = f'mount -t tmpfs -o size={size_k}k tmpfs "$0" || exit 77; exec "$@"'
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "genvae", *TRAIN, "--out", str(mount / "run")]
    done = subprocess.run(["unshare", "--mount", "sh", "-c", shell, str(mount), *command],
                          capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
    if done.returncode == 77:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"genvae train: error: {mount / 'run'}/checkpoints/"), done.stderr
    assert ": No space left on device while " in done.stderr and "the training stopped there; " in done.stderr
