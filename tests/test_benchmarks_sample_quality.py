"""benchmarks/sample_quality.py end to end in its smoke-test regime: its rows, their figures and
the command that made them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sample_quality  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.slow
def test_the_quick_run_writes_a_row_per_sampler_and_reference(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    sample_quality.main(["--quick", "--dataset", "synthetic", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["command"] == f"python benchmarks/sample_quality.py --quick --dataset synthetic --json {out}"
    rows = result["rows"]
    assert [r["sampler"] for r in rows] == ["training images", "reconstructions", "prior", "gmm"]
    for r in rows:
        assert r["frechet_distance"] >= 0 and 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1
        assert (r["dataset"], r["family"], r["epochs"], r["real"], r["generated"]) == ("synthetic", "vae", 1, 300, 300)
    assert all(r["seconds_per_1000_samples"] > 0 for r in rows[2:])


def test_the_vqvae_family_is_a_hook_that_says_what_it_needs() -> None:
    with pytest.raises(SystemExit, match=r"gv\.VQVAE"):
        sample_quality.train_vqvae(None, None)  # type: ignore[arg-type]
