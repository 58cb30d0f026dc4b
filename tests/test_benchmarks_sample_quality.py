"""benchmarks/sample_quality.py end to end in its smoke-test regime: its rows, their figures and
the command that made them."""

from __future__ import annotations

import json
import math
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


@pytest.mark.slow
def test_the_vqvae_family_scores_its_code_prior_and_records_each_bound(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    argv = ["--quick", "--dataset", "synthetic", "--family", "vae", "vqvae", "--prior-epochs", "1", "--iw-k", "5"]
    sample_quality.main([*argv, "--json", str(out)])
    rows = json.loads(out.read_text())["rows"]
    vae = [r for r in rows if r["family"] == "vae"]
    vq = [r for r in rows if r["family"] == "vqvae"]
    assert [r["sampler"] for r in vq] == ["training images", "reconstructions", "code"]
    # the VAE's bounds: an IW bound is no looser than the ELBO it starts from (k=5, up to noise)
    assert vae[0]["iw_nll"] <= vae[0]["neg_elbo"] + 1.0 and vae[0]["iw_k"] == 5
    # the VQ-VAE's: its reconstruction term plus the code prior's NLL, which is below a uniform
    # prior's 49 · log 64 only if the prior learned something; one epoch need not, so bound it loosely
    assert vq[0]["neg_elbo"] == pytest.approx(vq[0]["recon_bce"] + vq[0]["code_nll"])
    assert 0 < vq[0]["code_nll"] < 2 * 49 * math.log(64)
    assert "iw_nll" not in vq[0] and vq[0]["latent_dim"] is None and vq[0]["codebook_size"] == 64
    assert vq[0]["parameters"] > 0 and 0 < vq[0]["usage"] <= 1
