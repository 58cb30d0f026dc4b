"""The HTML run report and the `genvae report` command."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import SyntheticDigits
from genvae.data.partial import partially_labeled
from genvae.report import ReportSettings, write_report
from genvae.runs import RunDir
from genvae.semisupervised import SemiSupervisedELBO, seed_m2

SMALL = ["--dataset", "synthetic-digits", "--train-size", "300", "--test-size", "120", "--epochs", "1", "--quiet"]


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


def images_in(page: str) -> list[str]:
    return re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]+">', page)


def test_train_writes_a_self_contained_report_with_every_figure(tmp_path: Path) -> None:
    for kind in ("vae", "cvae"):
        run = tmp_path / kind
        assert main(["train", "--model", kind, *SMALL, "--quick-report", "--out", str(run)]) == 0
        page = (run / "report.html").read_text()
        titles = images_in(page)
        assert 'src="http' not in page and "<script" not in page  # nothing fetched from elsewhere
        assert titles[0] == "Loss curves (per-sample nats)"
        expected = ["Posterior means of test images, coloured by label", "Reconstructions"]
        if kind == "cvae":
            expected += [f"Latent manifold for label {k} ({k})" for k in range(10)]
            expected += [
                "Samples: one row per label, one z per column",
                "Label swaps: each input&#x27;s z decoded under every label",
            ]
        else:
            expected += ["Latent manifold (linear grid)", "Latent manifold (quantile grid)", "Samples from the prior"]
        assert set(expected) <= set(titles)
        figures = json.loads((run / "evaluation.json").read_text())
        assert figures["nll_nats"] > 0 and 0 <= figures["latent_probe_accuracy"] <= 1
        assert figures["nll_nats"] <= figures["elbo_nats"]  # the IW bound is the tighter one
        assert ("bayes_accuracy" in figures) == (kind == "cvae")
        assert f"{figures['nll_nats']:.4g}" in page


def test_report_command_combines_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = []
    for kind in ("vae", "cvae"):
        runs.append(str(tmp_path / kind))
        assert main(["train", "--model", kind, *SMALL, "--no-report", "--out", runs[-1]]) == 0
    out = tmp_path / "both.html"
    assert main(["report", *runs, "--out", str(out), "--k", "5", "--eval-size", "100"]) == 0
    page = out.read_text()
    assert page.count("<section>") == 2 and "Conditional VAE" in page
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1] == f"genvae report: wrote {out}"
    # a line as each run's evaluation starts, so a long one is not silent off a terminal
    assert lines[-3:-1] == [
        f"genvae report: evaluating {run}: IW-NLL with k=5 on 100 test images (500 decodes)" for run in runs
    ]


def test_report_of_a_folder_that_is_not_a_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", str(tmp_path)]) == 1
    assert "error: run: expected config.json in" in capsys.readouterr().err


def test_report_of_a_run_whose_training_has_not_finished(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "config.json").write_text("{}")  # started, never published
    assert main(["report", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"genvae report: error: run: expected config.json in {str(tmp_path)!r}, but it is not there; its training "
        "has not finished: resume it with genvae train --resume\n"
    )


def test_the_report_of_a_run_is_published_with_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--no-report", "--out", str(run)]) == 0
    assert main(["report", str(run), "--k", "2", "--eval-size", "50"]) == 0
    for name in ("report.html", "evaluation.json"):  # beside the publication they describe
        assert (run / name).is_symlink() and (run / name).resolve().parent == (run / "model.json").resolve().parent
    assert main(["train", *SMALL, "--no-report", "--seed", "2", "--overwrite", "--out", str(run)]) == 0
    assert not (run / "report.html").exists()  # a new publication shows no stale report


TINY = ReportSettings(eval_size=100, probe_size=300, k=5, classify_k=3, classify_size=40)


def summary_row(page: str, label: str) -> list[str]:
    """The cells of one row of the summary table."""
    table = page.split('<table class="summary">')[1].split("</table>")[0]
    row = re.search(rf'<th scope="row">{re.escape(label)}</th>(.*?)</tr>', table)
    assert row is not None, label
    return re.findall(r"<td>(.*?)</td>", row.group(1))


def answer(page: str, number: str) -> str:
    """The answer to one of the notebook's questions (its sentence and link)."""
    found = re.search(rf"<strong>{re.escape(number)}</strong>.*?</p><p>(.*?)</p></li>", page)
    assert found is not None, number
    return found.group(1)


@pytest.mark.slow  # three runs trained and reported: about 10 s
def test_the_summary_puts_the_runs_side_by_side_and_answers_the_questions_from_them(tmp_path: Path) -> None:
    runs = {name: tmp_path / name for name in ("vae", "cvae", "vae4")}
    options = {"vae": ["--dataset", "auto"], "cvae": ["--model", "cvae"], "vae4": ["--latent-dim", "4"]}
    for name, run in runs.items():
        small = SMALL[2:] if name == "vae" else SMALL  # "vae" lets the data be chosen (--dataset auto)
        assert main(["train", *small, *options[name], "--no-report", "--out", str(run)]) == 0
    page = write_report(list(runs.values()), tmp_path / "report.html", TINY).read_text()
    figures = {name: json.loads((run / "evaluation.json").read_text()) for name, run in runs.items()}
    metrics = {name: RunDir(run).metrics() for name, run in runs.items()}
    assert page.index("Summary") < page.index("notebook") < page.index("<section>")  # the summary on top
    assert summary_row(page, "model") == ["VAE", "Conditional VAE", "VAE"]
    assert summary_row(page, "active units") == [f"{figures[n]['active_units']['count']} of {d}" for n, d in
                                                 (("vae", 2), ("cvae", 2), ("vae4", 4))]  # fmt: skip
    assert summary_row(page, "Bayes-rule accuracy (conditional)") == [
        "—",
        f"{100 * figures['cvae']['bayes_accuracy']:.1f}%",
        "—",
    ]
    assert summary_row(page, "test KL (nats/image)") == [f"{metrics[n]['test']['kl']:.2f}" for n in runs]
    assert summary_row(page, "seconds per epoch")[1] == f"{metrics['cvae']['seconds_per_epoch'][0]:.1f}"
    # 10.4c compares the latent sizes it is given, in the direction the numbers went
    kl2, kl4 = metrics["vae"]["test"]["kl"], metrics["vae4"]["test"]["kl"]
    assert f"the KL {'fell' if kl4 < kl2 else 'rose'} by {abs(kl4 - kl2):.2f} nats" in answer(page, "10.4c")
    assert f"{100 * figures['vae']['latent_probe_accuracy']:.1f}%" in answer(page, "10.5b")
    assert f"{figures['vae']['prior_match']['kl_moment_matched']:.2f} nats from N(0, I)" in answer(page, "10.5g–h")
    kl_cvae = metrics["cvae"]["test"]["kl"]
    assert f"{abs(kl_cvae - kl2):.2f} nats {'lower' if kl_cvae < kl2 else 'higher'} than the VAE" in answer(
        page, "10.6g"
    )
    assert f"{100 * figures['cvae']['bayes_accuracy']:.1f}% of 40 test images" in answer(page, "10.6h")
    assert f"{100 * figures['cvae']['label_swap_accuracy']:.1f}% of 40 swaps" in answer(page, "10.6i")
    for number in ("10.4c", "10.5b", "10.5g–h", "10.6g", "10.6h", "10.6i"):  # each links to a figure on the page
        anchor = re.search(r'href="#([^"]+)"', answer(page, number))
        assert anchor is not None and f'<figure id="{anchor.group(1)}"' in page, number
    why = json.loads((runs["vae"] / "config.json").read_text())["notes"]["dataset_choice"]
    assert "downloading is off" in why and html.escape(why) in page  # the data choice, in full


def test_the_questions_say_when_the_runs_cannot_answer_them(tmp_path: Path) -> None:
    run = tmp_path / "cvae"
    assert main(["train", *SMALL, "--model", "cvae", "--no-report", "--out", str(run)]) == 0
    page = write_report([run], tmp_path / "report.html", TINY).read_text()
    assert "Not measured here: every run has latent size 2" in answer(page, "10.4c")
    assert answer(page, "10.5b") == "No unconditional VAE in this report."
    assert "No VAE run" not in page and "Bayes&#x27; rule" not in answer(page, "10.6h")


def publish_m2(path: Path, train: SyntheticDigits) -> None:
    """A tiny semi-supervised run directory, published as `genvae train` would publish one."""
    torch.manual_seed(0)
    model = seed_m2(latent_dim=2, classifier_hidden=(16,))
    trainer = gv.Trainer(model, SemiSupervisedELBO(), max_epochs=1, batch_size=50, seed=0)
    trainer.fit(partially_labeled(train, 50))
    config = {"model": "m2", "dataset": "synthetic-digits", "latent_dim": 2, "seed": 0, "prior": "normal",
              "objective": "semi-supervised elbo", "k": 1, "notes": {}}  # fmt: skip
    metrics = {"status": "complete", "epochs": 1, "seconds_per_epoch": [trainer.history.last["time"]]}
    run = RunDir(path)
    with run.lock():
        run.publish(model, config, trainer.history, metrics)


def test_a_semi_supervised_run_shows_its_classifier(tmp_path: Path) -> None:
    train, test = SyntheticDigits(200, seed=1), SyntheticDigits(100, seed=2)
    publish_m2(tmp_path / "m2", train)
    page = write_report([tmp_path / "m2"], tmp_path / "report.html", TINY, data=(train, test)).read_text()
    figures = json.loads((tmp_path / "m2" / "evaluation.json").read_text())
    assert figures["classified_images"] == 100 and len(figures["confusion_matrix"]) == 10
    assert summary_row(page, "model") == ["Semi-supervised VAE (M2)"]
    assert summary_row(page, "classifier q(y | x) accuracy") == [f"{100 * figures['classifier_accuracy']:.1f}%"]
    assert summary_row(page, "prior") == ["normal"] and summary_row(page, "objective k (samples)") == ["1"]
    assert "Confusion matrix of the classifier q(y | x), 100 test images" in images_in(page)
    assert "and its classifier q(y | x)" in answer(page, "10.6h") and 'href="#run1-confusion"' in answer(page, "10.6h")
    assert summary_row(page, "test KL (nats/image)") == ["—"]  # no test figures were recorded


def test_a_run_on_synthetic_digits_is_scored_against_their_style_factors(tmp_path: Path) -> None:
    run = tmp_path / "vae"
    assert main(["train", *SMALL, "--latent-dim", "3", "--quick-report", "--out", str(run)]) == 0
    figures = json.loads((run / "evaluation.json").read_text())
    n = figures["mig"]["images"]
    test = gv.data.load_dataset("synthetic-digits", "test", limit=120)
    factors = {name: values[:n] for name, values in test.factors.items()}
    # genvae against itself, on the report's images; test_report_evaluation.py checks the MIG the
    # report gives against an independent (numpy) computation on a tiny case
    expected = gv.evaluation.mig(gv.load(run), test.images[:n], factors)
    assert figures["mig"]["score"] == pytest.approx(expected.score)
    assert set(figures["mig"]["per_factor"]) == set(test.factors)
    page = (run / "report.html").read_text()
    assert summary_row(page, "MIG (style factors)") == [f"{expected.score:.3f}"]


def test_data_without_known_factors_gets_no_mig(tmp_path: Path) -> None:
    train, test = SyntheticDigits(200, seed=0), SyntheticDigits(60, seed=1)
    real_like = (gv.data.ImageDataset(train.images, train.labels), gv.data.ImageDataset(test.images, test.labels))
    run = tmp_path / "vae"
    assert main(["train", *SMALL, "--no-report", "--out", str(run)]) == 0
    write_report([run], tmp_path / "r.html", ReportSettings(eval_size=50, probe_size=100, k=5), data=real_like)
    assert "mig" not in json.loads((run / "evaluation.json").read_text())
    page = (tmp_path / "r.html").read_text()
    assert "MIG (style factors)" not in page and "MIG against" not in page


def test_a_hierarchical_run_shows_its_active_units_per_level(tmp_path: Path) -> None:
    run = tmp_path / "ladder"
    assert (
        main(["train", *SMALL, "--model", "hierarchical", "--latent-dims", "3,2", "--no-report", "--out", str(run)])
        == 0
    )
    page = write_report([run], tmp_path / "report.html", TINY).read_text()
    figures = json.loads((run / "evaluation.json").read_text())["active_units"]
    variances, threshold = figures["variances"], figures["threshold"]
    per_level = [sum(v > threshold for v in variances[:3]), sum(v > threshold for v in variances[3:])]
    assert len(variances) == 5 and sum(per_level) == figures["count"]
    assert summary_row(page, "active units") == [f"{per_level[0]} + {per_level[1]} of 3 + 2 by level"]
    assert summary_row(page, "model") == ["Hierarchical VAE"]
