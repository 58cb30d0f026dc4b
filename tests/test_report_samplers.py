"""`genvae report --sampler NAME`: a row of samples per sampler, each fitted on the run's
training data, and their sample quality (Fréchet distance, precision, recall) in the page and in
evaluation.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import genvae as gv
from genvae.cli import main
from genvae.report import ReportSettings, RunEvaluation, SampleQualityFigures, write_report
from genvae.report.sampling import CAVEAT
from genvae.samplers.code import CodeSampler

pytestmark = pytest.mark.usefixtures("isolated_data_dirs", "one_thread")

SMALL = ["--dataset", "synthetic-digits", "--train-size", "64", "--test-size", "32", "--epochs", "1", "--quiet"]


def titles(page: str) -> list[str]:
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)


def train(path: Path, *args: str) -> str:
    assert main(["train", *args, *SMALL, "--no-report", "--out", str(path)]) == 0
    return str(path)


def test_a_sampler_adds_a_row_of_samples_and_the_sample_quality(tmp_path: Path) -> None:
    run = train(tmp_path / "vae")
    assert main(["report", run, "--quick"]) == 0  # the default: the prior alone, nothing measured
    page = Path(run, "report.html").read_text()
    assert "Samples per sampler" not in titles(page) and "Sample quality" not in page
    assert "sample_quality" not in json.loads(Path(run, "evaluation.json").read_text())

    assert main(["report", run, "--quick", "--sampler", "gmm"]) == 0
    page = Path(run, "report.html").read_text()
    assert "Samples per sampler" in titles(page) and "Sample quality" in page and CAVEAT in page
    quality = json.loads(Path(run, "evaluation.json").read_text())["sample_quality"]
    assert [s["name"] for s in quality["samplers"]] == ["prior", "gmm"]  # the model's own first
    assert quality["real"] == 32 and quality["feature_images"] == 64 and quality["k"] == 3
    for figures in quality["samplers"]:
        assert figures["generated"] == 32 and figures["frechet_distance"] >= 0
        assert 0 <= figures["precision"] <= 1 and 0 <= figures["recall"] <= 1
    assert "samples from gmm: Fréchet distance / precision / recall" in page


def test_a_conditional_model_draws_one_sample_per_label(tmp_path: Path) -> None:
    run = train(tmp_path / "cvae", "--model", "cvae")
    assert main(["report", run, "--quick", "--sampler", "gmm"]) == 0
    assert "Samples per sampler, one per label" in titles(Path(run, "report.html").read_text())


def test_a_sampler_that_does_not_apply_is_named_and_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = train(tmp_path / "vq", "--model", "vqvae", "--codebook-size", "8", "--code-dim", "2")
    capsys.readouterr()
    assert main(["report", run, "--quick", "--sampler", "gmm"]) == 0
    # the reason was in the page alone: the terminal did not say that gmm was left out
    said = capsys.readouterr().out.splitlines()
    assert f"genvae report: {run}: not using the sampler gmm (a VQ-VAE has no continuous z to draw)" in said
    page = Path(run, "report.html").read_text()
    assert "not used (a VQ-VAE has no continuous z to draw)" in page
    quality = json.loads(Path(run, "evaluation.json").read_text())["sample_quality"]
    assert [s["name"] for s in quality["samplers"]] == ["code"]


def test_an_unknown_sampler_is_a_one_line_error_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path), "--sampler", "nope"])
    assert info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("genvae report: error: argument --sampler: invalid choice: 'nope' (choose from")
    with pytest.raises(ValueError, match=r"^samplers: unknown sampler 'nope'; known samplers: code, gmm, prior$"):
        write_report([train(tmp_path / "r")], tmp_path / "page.html", ReportSettings(samplers=("nope",)))


def test_the_sample_quality_round_trips_through_evaluation_json() -> None:
    quality = {
        "real": 200, "k": 3, "feature_epochs": 1, "feature_images": 1000,
        "samplers": [
            {"name": "prior", "frechet_distance": 12.5, "precision": 0.5, "recall": 0.25, "generated": 200},
            {"name": "gmm", "frechet_distance": 8.0, "precision": 0.75, "recall": 0.5, "generated": 200},
        ],
    }  # fmt: skip
    written = {
        "elbo_nats": 1.0, "nll_nats": 0.5, "nll_bits_per_dim": 0.1, "nll_k": 2, "nll_images": 3,
        "latent_probe_accuracy": 0.5, "active_units": {"count": 1, "variances": [1.0], "threshold": 0.01},
        "prior_match": {"mean": [0.0], "covariance": [[1.0]], "kl_moment_matched": 0.0, "ks_statistic": [0.1]},
        "sample_quality": quality,
    }  # fmt: skip
    figures = RunEvaluation.from_json(written)
    assert isinstance(figures.sample_quality, SampleQualityFigures)
    assert [s.name for s in figures.sample_quality.samplers] == ["prior", "gmm"]
    assert json.dumps(figures.to_json()) == json.dumps(written)  # the same keys, order and values


def test_the_code_sampler_is_a_registered_sampler() -> None:
    assert gv.samplers.get("code") is CodeSampler and gv.samplers.CodeSampler is CodeSampler
    sampler = gv.samplers.get("code")(gv.presets.seed_vqvae(codebook_size=8, code_dim=2))
    assert isinstance(sampler, gv.samplers.Sampler)
