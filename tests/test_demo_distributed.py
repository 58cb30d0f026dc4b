"""``genvae demo`` under torchrun (two CPU processes): every rank trains, rank 0 alone speaks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.helpers import SAFETY_TIMEOUT
from tests.test_training_distributed import environment, torchrun

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def test_only_rank_0_prints_the_demos_lines_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = environment()
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    env["GENVAE_DATA"] = str(tmp_path / "no-data")  # no user data: what the machine has, else SyntheticDigits
    args = ["-m", "genvae", "demo", "--quick", "--no-download", "--out", str(out)]
    done = subprocess.run(torchrun(*args), env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    for line in ("genvae demo: data: ", "== vae: ", "== cvae: ", "== report: ", f"genvae demo: wrote {out}"):
        assert done.stdout.count(line) == 1, (line, done.stdout)  # once: rank 1 is silent
    assert done.stdout.count("   test: ") == 3
    assert (out / "report.html").is_file()
