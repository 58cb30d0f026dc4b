"""tools/kill_check.py, the random-instant kill check, with a few kills: it runs, kills each
operation at least once, finds the invariant held and prints its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_kill_check_with_a_few_kills(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "kill_check.py"), "--kills", "5", "--seed", "3",
         "--workdir", str(tmp_path)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    start = lines.index("operation  kills failures")
    rows = {line.split()[0]: line.split()[1:] for line in lines[start + 1 : start + 7]}
    assert set(rows) == {"train", "resume", "overwrite", "save", "report", "total"}
    assert all(int(kills) >= 1 and failures == "0" for kills, failures in rows.values())
    assert int(rows["total"][0]) >= 5


def test_the_kill_check_refuses_fewer_kills_than_operations() -> None:
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "kill_check.py"), "--kills", "2"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith("--kills: expected at least 5 (one per operation), got 2")
