"""genvae._startup: Ctrl-C while the ``genvae`` command starts ends it with one line and status 130,
never a traceback, wherever the signal lands (tools/ctrl_c_check.py, at a few random instants),
even inside code that swallows the exception a signal handler raises."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from ctrl_c_check import Outcome  # noqa: E402

from tests.helpers import SAFETY_TIMEOUT, wait_for_fifo  # noqa: E402

# A sitecustomize whose import hook waits inside an import that catches everything (as a C
# extension's initialisation can, numpy's within torch's): it says when it waits (the file
# `importing`), and goes on if whatever the signal handler raised reaches it.
SWALLOWING_HOOK = """
import sys, time
class Wait:
    def find_spec(self, name, path=None, target=None):
        if name == "genvae.classifiers":
            sys.meta_path.remove(self)
            try:
                open({flag!r}, "wb").close()  # the test's read of the FIFO returns
                while True:
                    time.sleep(0.01)
            except BaseException:
                pass
        return None
sys.meta_path.insert(0, Wait())
"""


def test_ctrl_c_in_an_import_that_swallows_exceptions_still_ends_the_command(tmp_path: Path) -> None:
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(SWALLOWING_HOOK.format(flag=str(tmp_path / "importing")))
    os.mkfifo(tmp_path / "importing")  # opening it for reading waits until the hook opens it: the event
    path = os.pathsep.join([str(tmp_path / "hook"), str(ROOT / "src")])
    process = subprocess.Popen([sys.executable, "-m", "genvae", "--version"], env={**os.environ, "PYTHONPATH": path},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for_fifo(tmp_path / "importing", process.pid)  # the hook opened it: it waits in its import
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=SAFETY_TIMEOUT)
    assert (process.returncode, out, err) == (130, "", "genvae: interrupted\n")


def test_ctrl_c_at_a_few_random_instants_of_the_start(tmp_path: Path) -> None:
    """Three instants (seeded) from 0.5 s to 2.5 s: past the interpreter's own start-up (a Ctrl-C
    in its first few hundredths of a second, before genvae's first line runs, is Python's to
    answer), mostly inside torch's import (seconds)."""
    tool = [sys.executable, str(ROOT / "tools" / "ctrl_c_check.py"), "--command", "version"]
    done = subprocess.run([*tool, "--tries", "3", "--seed", "11", "--after", "0.5", "--within", "2.5"],
                          capture_output=True, text=True, timeout=SAFETY_TIMEOUT)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].endswith("; 0 failures")


@pytest.mark.parametrize(
    ("outcome", "problem"),
    [
        (Outcome(1.0, 130, "genvae: interrupted\n", True), None),
        (Outcome(1.0, -signal.SIGINT, "", True), None),  # in the interpreter's finalisation
        (Outcome(1.0, 0, "genvae 0.1.0\n", False), None),  # it finished first
        (Outcome(1.0, 1, "Traceback (most recent call last):\n  ...\nKeyboardInterrupt\n", True), "a traceback"),
        (Outcome(1.0, 0, "genvae 0.1.0\n", True), None),  # the signal came as it exited
        (Outcome(1.0, 1, "genvae: interrupted\n", True), "exit status 1, expected 130"),
        (Outcome(1.0, 130, "genvae: interrupted\nmore\n", True), "2 lines of output"),
    ],
)
def test_the_check_tells_a_traceback_from_a_clean_stop(outcome: Outcome, problem: str | None) -> None:
    assert outcome.problem(0) == problem
