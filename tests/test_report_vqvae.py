"""The report of a VQ-VAE run: what applies to a map of codes (held-out reconstruction, the
codebook's perplexity and usage, reconstructions, samples from a fitted code prior) and nothing
that needs a Gaussian latent; its evaluation.json written and read back."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import SyntheticDigits
from genvae.report import CodeEvaluation, ReportSettings, RunEvaluation, read_evaluation, run_kind, write_evaluation
from genvae.report.codes import evaluate_codes
from genvae.runs import RunDir

pytestmark = pytest.mark.usefixtures("isolated_data_dirs", "one_thread")

SMALL = ["--dataset", "synthetic-digits", "--train-size", "64", "--test-size", "32", "--epochs", "1", "--quiet"]
VQ = ["--model", "vqvae", "--codebook-size", "16", "--code-dim", "4"]


def titles(page: str) -> list[str]:
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)


def test_a_vqvae_run_writes_its_report_with_the_figures_of_codes(tmp_path: Path) -> None:
    run = tmp_path / "vq"
    assert main(["train", *VQ, *SMALL, "--quick-report", "--out", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert titles(page) == [
        "Loss curves (per-sample nats)",
        "Reconstructions from the codes",
        "Samples: the code prior&#x27;s, and uniform code maps",
        "Codebook use: perplexity per epoch, and each code&#x27;s share of the held-out maps",
    ]
    assert '<h2 id="run1">VQ-VAE:' in page and "codebook perplexity" in page
    figures = json.loads((run / "evaluation.json").read_text())
    book = figures["codebook"]
    assert set(figures) == {"codebook"}  # no IW-NLL, active units, prior match: no Gaussian latent
    assert book["size"] == 16 and book["images"] == 32 and sum(book["counts"]) == 32 * 49  # a 7×7 map each
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert book["recon_nats"] == pytest.approx(test["recon"], rel=1e-4)  # the same 32 images, in eval mode
    assert book["elbo_nats"] == pytest.approx(test["total"], rel=1e-4)


def test_a_conditional_vqvae_run_draws_one_sample_per_label(tmp_path: Path) -> None:
    run = tmp_path / "cvq"
    assert main(["train", *VQ, "--conditioner", "film", *SMALL, "--quick-report", "--out", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert "Samples: the code prior&#x27;s, and uniform code maps, one per label" in titles(page)
    assert "Conditional VQ-VAE:" in page and "Label swaps" not in page
    assert isinstance(read_evaluation(RunDir(run)), CodeEvaluation)


def test_the_codes_evaluation_is_what_its_definitions_give() -> None:
    torch.manual_seed(0)
    model = gv.presets.seed_vqvae(codebook_size=8, code_dim=2).eval()
    test = SyntheticDigits(20, seed=1)
    figures = evaluate_codes(model, test, ReportSettings(eval_size=12))
    x = test.images[:12]
    with torch.no_grad():
        out = model(x)
    codes = out.codes.reshape(-1)
    counts = torch.bincount(codes, minlength=8)
    p = counts.double() / counts.sum()
    assert figures.images == 12 and figures.counts == tuple(counts.tolist())
    assert figures.usage == pytest.approx(float((counts > 0).double().mean()))
    assert figures.perplexity == pytest.approx(math.exp(-sum(float(q * q.log()) for q in p if q > 0)))
    assert figures.recon_nats == pytest.approx(float(-out.log_prob(x).sum() / 12), rel=1e-5)
    assert figures.recon_mse == pytest.approx(float((model.reconstruct(x) - x).square().mean()), rel=1e-5)
    assert figures.elbo_nats == pytest.approx(figures.recon_nats + 49 * math.log(8))


def test_a_vqvae_is_a_kind_of_its_own() -> None:
    kind = run_kind(gv.presets.seed_vqvae(codebook_size=8, code_dim=2))
    assert (kind.title, kind.discrete, kind.bayes_rule, kind.own_sampler) == ("VQ-VAE", True, False, "code")
    conditional = run_kind(gv.vqvae.seed_cvqvae(codebook_size=8, code_dim=2, num_classes=3))
    assert (conditional.title, conditional.conditional, conditional.classes) == ("Conditional VQ-VAE", True, 3)
    assert conditional.bayes_rule is False  # no Gaussian posterior to classify with
    assert run_kind(gv.presets.seed_vae(latent_dim=2)).own_sampler == "prior"


def test_the_codes_evaluation_round_trips_through_evaluation_json(tmp_path: Path) -> None:
    figures = CodeEvaluation(16, 32, 120.5, 0.0625, 256.25, 5.5, 0.75, tuple(range(16)))
    run = RunDir(tmp_path)
    path = write_evaluation(run, figures)
    written = json.loads(path.read_text())
    assert list(written) == ["codebook"] and written["codebook"]["perplexity"] == 5.5
    assert read_evaluation(run) == figures
    assert CodeEvaluation.from_json(figures.to_json()) == figures
    # evaluation.json of a model with a Gaussian latent reads as before
    old = {
        "elbo_nats": 1.0, "nll_nats": 0.5, "nll_bits_per_dim": 0.1, "nll_k": 2, "nll_images": 3,
        "latent_probe_accuracy": 0.5, "active_units": {"count": 1, "variances": [1.0], "threshold": 0.01},
        "prior_match": {"mean": [0.0], "covariance": [[1.0]], "kl_moment_matched": 0.0, "ks_statistic": [0.1]},
    }  # fmt: skip
    (tmp_path / "evaluation.json").write_text(json.dumps(old))
    again = read_evaluation(run)
    assert isinstance(again, RunEvaluation) and again.sample_quality is None
    assert json.loads(json.dumps(again.to_json())) == old
