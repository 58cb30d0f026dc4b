"""benchmarks/reproduce.py: the reproducibility table's rows, its file, its docs page, and the papers'
protocol end to end on a tiny subset of MNIST."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT.parent / "shared" / "data" / "mnist"
sys.path.insert(0, str(ROOT / "benchmarks"))

import reproduce  # noqa: E402
import reproduce_docs  # noqa: E402


def row(family: str, per_image: list[float], **extra: Any) -> dict[str, Any]:
    n = len(per_image)
    mean = sum(per_image) / n
    return {
        "family": family,
        "dataset": "mnist-8k",
        "training_images": 8000,
        "epochs": 5,
        "k": 1000,
        "images": n,
        "seed": 0,
        "regime": {"lr": 1e-3, "batch_size": 100, "kl_warmup_epochs": 2 if family == "vamp" else 0},
        "iw_nll": mean,
        "iw_nll_sem": 0.1,
        "neg_elbo": mean + 5,
        "active_units": 3,
        "seconds_per_epoch": 1.0,
        "iw_nll_per_image": per_image,
        "command": f"python benchmarks/reproduce.py likelihood --family {family}",
        **extra,
    }


def test_the_gain_is_the_paired_mean_difference_with_its_standard_error() -> None:
    vae, vamp = row("vae", [10.0, 20.0, 30.0]), row("vamp", [9.0, 17.0, 28.0])
    gain, se = reproduce_docs.paired_gain(vamp, vae)
    diffs = [1.0, 3.0, 2.0]  # the VAE's minus the VampPrior's, image by image
    sd = math.sqrt(sum((d - 2.0) ** 2 for d in diffs) / 2)
    assert gain == pytest.approx(2.0)
    assert se == pytest.approx(sd / math.sqrt(3))


def test_the_page_says_whether_each_target_is_met_and_compares_only_the_same_regime() -> None:
    document = {
        "rows": [
            row("vae", [10.0, 20.0, 30.0]),
            row("vamp", [9.5, 19.8, 29.8]),  # 0.3 better: under the 1-nat target
            row("iwae-50", [8.0, 18.0, 28.0]),  # 2 better: over the 1.5-nat target
            row("vamp", [1.0, 1.0, 1.0], epochs=50),  # another regime: no VAE to compare with
        ]
    }
    page = reproduce_docs.render(document)
    assert "- vamp: +0.30 ± 0.10 nats over the VAE, against the target of +1.0: **missed**." in page
    assert "- iwae-50: +2.00 ± 0.00 nats over the VAE, against the target of +1.5: met." in page
    assert page.count("against the target") == 2  # the 50-epoch VampPrior has no VAE of its regime
    assert "Regime: 8,000 training images, 50 epochs" in page


def test_the_semi_supervised_rows_give_the_mean_over_draws_and_the_gain_over_labels_only() -> None:
    semi = {
        "dataset": "mnist-8k",
        "labels": 100,
        "accuracy": [0.9, 0.8, 0.85],
        "labels_only": [0.8, 0.75, 0.78],
        "epochs": 10,
        "recipe": {"weighting": "batch", "alpha": 5.0},
        "command": "python benchmarks/reproduce.py semi",
    }
    page = reproduce_docs.render({"rows": [], "semi_supervised": [semi]})
    assert "| 100 | 85.0% ± 5.0 | 90.0, 80.0, 85.0 | 77.7% | +7.3 points |" in page


def test_record_replaces_a_row_of_the_same_key_and_keeps_the_others(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    key = ("family", "epochs")
    reproduce.record(path, "rows", {"family": "vae", "epochs": 5, "iw_nll": 1.0}, key)
    reproduce.record(path, "rows", {"family": "vamp", "epochs": 5, "iw_nll": 2.0}, key)
    reproduce.record(path, "rows", {"family": "vae", "epochs": 5, "iw_nll": 3.0}, key)
    rows = json.loads(path.read_text())["rows"]
    assert [(r["family"], r["iw_nll"]) for r in rows] == [("vae", 3.0), ("vamp", 2.0)]


def sample_rows(family: str, samplers: list[str], fd: list[float]) -> list[dict[str, Any]]:
    common = {"dataset": "mnist-8k", "family": family, "epochs": 30, "seconds_per_epoch": 2.0, "recon_bce": 90.0,
              "neg_elbo": 120.0, "feature_accuracy": 0.96, "parameters": 1000, "precision": 0.5,
              "recall": 0.4}  # fmt: skip
    common.update({"latent_dim": 16, "iw_nll": 110.0, "iw_k": 100.0} if family == "vae" else
                  {"latent_dim": None, "codebook_size": 64, "code_dim": 8, "prior_epochs": 5})  # fmt: skip
    return [{**common, "sampler": s, "frechet_distance": f} for s, f in zip(samplers, fd, strict=True)]


def test_sample_quality_files_are_recorded_with_their_command_and_rendered_per_dataset(tmp_path: Path) -> None:
    out, docs, first, second = (tmp_path / name for name in ("r.json", "r.md", "a.json", "b.json"))
    vae = sample_rows("vae", ["training images", "prior", "gmm"], [60.0, 480.0, 75.0])
    first.write_text(json.dumps({"command": "python benchmarks/sample_quality.py A", "machine": "m", "rows": vae}))
    vq = sample_rows("vqvae", ["training images", "code"], [60.0, 150.0])
    second.write_text(json.dumps({"command": "python benchmarks/sample_quality.py B", "machine": "m", "rows": vq}))
    reproduce.main(["samples", str(first), str(second), "--out", str(out), "--docs", str(docs)])
    recorded = json.loads(out.read_text())["sample_quality"]
    assert [(r["family"], r["sampler"], r["command"][-1]) for r in recorded] == [
        ("vae", "training images", "A"), ("vae", "prior", "A"), ("vae", "gmm", "A"),
        ("vqvae", "training images", "B"), ("vqvae", "code", "B"),
    ]  # fmt: skip
    page = docs.read_text()
    section = page[page.index("## Sample quality") :]
    assert section.count("training images (real data: the scale)") == 1  # one reference row per dataset
    assert "| VAE, latent 16 | samples from the GMM sampler (Ghosh et al. 2020) | 75.0 |" in section
    assert "| VQ-VAE, 64 codes of 8, prior 5 epochs | samples from the learned code prior | 150.0 |" in section
    assert "110.00 (k = 100)" in section and "`python benchmarks/sample_quality.py B` (m)" in section
    # recorded again (a rerun): replaced, not repeated
    reproduce.main(["samples", str(first), "--out", str(out), "--docs", str(docs)])
    assert len(json.loads(out.read_text())["sample_quality"]) == 5


def test_a_file_that_is_not_sample_quality_output_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(SystemExit, match=r"bad\.json: not an output of benchmarks/sample_quality\.py"):
        reproduce.main(["samples", str(bad), "--out", str(tmp_path / "r.json"), "--docs", str(tmp_path / "r.md")])


def test_the_command_recorded_is_the_one_run_less_where_it_wrote() -> None:
    argv = ["likelihood", "--family", "vae", "--out", "/tmp/x.json", "--docs=/tmp/x.md", "--epochs", "3"]
    assert reproduce.command_line(argv) == "python benchmarks/reproduce.py likelihood --family vae --epochs 3"


@pytest.mark.skipif(not (MNIST / "t10k-images-idx3-ubyte.gz").exists(), reason="needs ../shared/data/mnist")
def test_the_papers_protocol_runs_end_to_end_on_a_tiny_subset(tmp_path: Path) -> None:
    # a "full MNIST" folder: the test split's files also stand in for the training split's
    root = tmp_path / "mnist"
    root.mkdir()
    for kind in ("images-idx3", "labels-idx1"):
        source = MNIST / f"t10k-{kind}-ubyte.gz"
        (root / f"t10k-{kind}-ubyte.gz").symlink_to(source)
        (root / f"train-{kind}-ubyte.gz").symlink_to(source)
    out, docs = tmp_path / "reproduce.json", tmp_path / "reproducibility.md"
    argv = [
        "likelihood",
        "--dataset",
        "mnist-full",
        "--root",
        str(root),
        "--limit",
        "40",
        "--epochs",
        "1",
        "--family",
        "vae",
        "iwae-5",
        "--out",
        str(out),
        "--docs",
        str(docs),
    ]
    reproduce.main(argv)
    rows = json.loads(out.read_text())["rows"]
    assert [r["family"] for r in rows] == ["vae", "iwae-5"]
    for r in rows:
        # the papers' scoring: 5,000 importance samples on every held-out image
        assert (r["dataset"], r["k"], r["images"], r["training_images"]) == ("mnist-full", 5000, 40, 40)
        assert r["regime"]["binarisation"].startswith("dynamic")
        assert len(r["iw_nll_per_image"]) == 40 and math.isfinite(r["iw_nll"])
        assert r["iw_nll"] <= r["neg_elbo"] + 1e-3  # the k = 5000 bound is at least as tight as the ELBO
        assert r["command"].startswith("python benchmarks/reproduce.py likelihood --dataset mnist-full")
    page = docs.read_text()
    assert "MNIST: 60,000 training images" in page and "| iwae-5 |" in page
