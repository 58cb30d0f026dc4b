"""The course notebook's questions (genvae.report.questions) and the words they are written in
(genvae.report.formatting), on runs made up for the purpose: nothing is trained, so these run in
milliseconds and fail at once if a "fell"/"rose" or "lower"/"higher" is turned around."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from genvae.report import RunEvaluation, RunKind
from genvae.report.figures import ReportFigure
from genvae.report.formatting import change, fmt, pct, than
from genvae.report.questions import QUESTIONS, answers
from genvae.report.views import RunView
from genvae.runs import RunDir

PLAIN = {
    "elbo_nats": 120.0,
    "nll_nats": 118.0,
    "nll_bits_per_dim": 0.2,
    "nll_k": 100,
    "nll_images": 1000,
    "latent_probe_accuracy": 0.5,
    "active_units": {"count": 2, "variances": [0.9, 0.5], "threshold": 0.01},
    "prior_match": {"mean": [0.0, 0.0], "covariance": [[1.0, 0.0], [0.0, 1.0]], "kl_moment_matched": 0.0,
                    "ks_statistic": [0.01, 0.01]},
}  # fmt: skip


def made_up(
    name: str, *, conditional: bool = False, latent_dim: int = 2, recon: float, kl: float, probe: float = 0.5
) -> RunView:
    """A run view with the given test terms and probe accuracy, and every figure a question links to."""
    kind = RunKind("Conditional VAE" if conditional else "VAE", conditional, False, 10 if conditional else 0)
    evaluation = dataclasses.replace(RunEvaluation.from_json(PLAIN), latent_probe_accuracy=probe)
    shown = [ReportFigure(key, key, "", "") for key in ("loss", "scatter", "label-swap", "manifold-label-0")]
    metrics = {"test": {"recon": recon, "kl": kl}}
    return RunView(name, RunDir(Path(name)), kind, latent_dim, 10, {}, metrics, evaluation, shown)


def answer(views: list[RunView], number: str) -> str:
    numbers = [n for n, _ in QUESTIONS]
    return answers(views)[numbers.index(number)].text


def test_change_says_fell_when_a_figure_went_down_and_rose_when_it_went_up() -> None:
    assert change(170.2, 167.1) == "fell by 3.10 nats (170.20 → 167.10)"
    assert change(167.1, 170.2) == "rose by 3.10 nats (167.10 → 170.20)"
    assert change(5.0, 5.001) == "stayed at 5.00 nats"


def test_than_says_lower_when_the_value_is_smaller_and_higher_when_larger() -> None:
    assert than(1.0, 3.31) == "2.31 nats lower than"
    assert than(3.31, 1.0) == "2.31 nats higher than"


def test_fmt_and_pct() -> None:
    assert fmt([0.123456, 2]) == fmt((0.123456, 2)) == "[0.1235, 2]" and fmt({"a": 1.0}) == "a: 1"
    assert pct(0.4567) == "45.7%"


@pytest.mark.parametrize("order", [1, -1])  # the direction follows the latent sizes, not the order given
def test_10_4c_says_which_way_each_term_moved_from_the_small_latent_to_the_large(order: int) -> None:
    small = made_up("vae", latent_dim=2, recon=100.0, kl=5.0)
    large = made_up("vae4", latent_dim=4, recon=90.0, kl=8.0)
    text = answer([small, large][::order], "10.4c")
    assert "From 2 to 4 latent dimensions (vae → vae4)" in text
    assert "the test reconstruction term fell by 10.00 nats (100.00 → 90.00)" in text
    assert "the KL rose by 3.00 nats (5.00 → 8.00)" in text


@pytest.mark.parametrize(("cvae_kl", "words"), [(3.0, "2.00 nats lower than"), (7.0, "2.00 nats higher than")])
def test_10_6g_compares_the_cvae_kl_with_the_vae_kl_the_right_way_round(cvae_kl: float, words: str) -> None:
    vae = made_up("vae", recon=100.0, kl=5.0, probe=0.8)
    cvae = made_up("cvae", conditional=True, recon=100.0, kl=cvae_kl, probe=0.2)
    text = answer([vae, cvae], "10.6g")
    assert f"its KL is {words} the VAE's" in text
    assert "holds less class information than the VAE's (latent probe 20.0% against 80.0%)" in text


def test_questions_without_the_runs_they_need_say_so() -> None:
    vae = made_up("vae", recon=100.0, kl=5.0)
    assert answer([vae], "10.6g") == "This needs a VAE and a CVAE in the report."
    assert answer([vae], "10.6h") == answer([vae], "10.6i") == "No conditional VAE with classes in this report."
    assert answer([vae], "10.4c").startswith("Not measured here: every run has latent size 2")


@pytest.mark.parametrize(
    ("config", "words"),
    [({"prior": "flow"}, "the learned prior 'flow'"), ({"prior": "normal", "latent_dims": [8, 4]}, "latent levels")],
)
def test_10_5g_compares_with_n01_only_a_run_whose_prior_is_n01(config: dict[str, object], words: str) -> None:
    learned = dataclasses.replace(made_up("learned", recon=80.0, kl=10.0), config=config)
    text = answer([learned], "10.5g–h")
    assert text.startswith("No VAE with the prior N(0, I) in this report") and words in text
    standard = dataclasses.replace(made_up("standard", recon=80.0, kl=10.0), config={"prior": "normal"})
    assert "consistent with N(0, 1)" in answer([learned, standard], "10.5g–h")
