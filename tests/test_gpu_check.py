"""benchmarks/gpu_check.py in its tiny CPU form: it runs, and its JSON report holds every figure,
finite, and a passed correctness check."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_the_tiny_cpu_form_writes_a_complete_report(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    env = os.environ | {"OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, str(SCRIPT), "--tiny", "--json", str(out)], capture_output=True,
                          text=True, env=env, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "correctness" in done.stdout and "IW-NLL" in done.stdout  # the table is printed
    report = json.loads(out.read_text())
    assert report["tiny"] is True and report["device"] == "cpu"
    rows = report["throughput"]
    assert {(r["model"], r["method"]) for r in rows} == {
        (model, method) for model in ("vae", "cvae") for method in ("plain", "genvae-default", "genvae-fast")
    }
    for row in rows:
        for key in ("seconds", "samples_per_second", "speedup_vs_plain", "train_loss"):
            assert math.isfinite(row[key]) and row[key] > 0, (row["model"], row["method"], key)
    nll = report["nll"]
    assert math.isfinite(nll["images_per_second"]) and nll["images_per_second"] > 0 and math.isfinite(nll["nll"])
    check = report["correctness"]
    assert check["passed"] is True and check["max_relative_difference"] <= check["tolerance"]
    assert len(check["cpu_losses"]) == len(check["device_losses"]) == check["steps"]
    assert all(math.isfinite(v) for v in check["cpu_losses"] + check["device_losses"])
