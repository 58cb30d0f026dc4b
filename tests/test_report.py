"""The HTML run report and the `genvae report` command."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from genvae.cli import main
from genvae.data import files

SMALL = ["--dataset", "synthetic-digits", "--train-size", "300", "--test-size", "120", "--epochs", "1", "--quiet"]


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


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
    assert capsys.readouterr().out.strip().endswith(f"genvae report: wrote {out}")


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
