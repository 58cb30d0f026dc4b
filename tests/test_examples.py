"""Every example runs (with --quick) and writes what it says."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("[0-9]*.py"))


def test_there_are_examples() -> None:
    assert len(EXAMPLES) >= 5


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_quickly(script: Path, tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    done = subprocess.run(
        [sys.executable, str(script), "--quick", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, check=False, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    written = {p.name for p in (tmp_path / "out").iterdir()}
    expected = {
        "01_vae": {"loss_curves.png", "manifold.png", "scatter.png", "model"},
        "02_cvae": {"manifold_4.png", "manifold_8.png", "scatter.png", "samples.png", "label_swap.png"},
        "05_custom_parts": {"model"},
    }.get(script.stem, set())
    assert expected <= written
    assert "Traceback" not in done.stderr
