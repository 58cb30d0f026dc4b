"""benchmarks/code_sampler_cache.py in a tiny form: both paths timed, their logits agree, the command kept."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import code_sampler_cache  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_cached_and_full_prefix_paths_are_timed_and_agree(tmp_path: Path) -> None:
    out = tmp_path / "cache.json"
    code_sampler_cache.main(["--n", "8", "--rounds", "1", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["command"] == f"python benchmarks/code_sampler_cache.py --n 8 --rounds 1 --json {out}"
    assert set(result["seconds_per_1000_maps"]) == {"cached", "full prefix"}
    assert all(s > 0 for s in result["seconds_per_1000_maps"].values()) and result["speedup"] > 0
    assert result["max_logit_difference"] < 1e-4
