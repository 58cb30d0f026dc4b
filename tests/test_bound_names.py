"""Every number says which bound it is (issue 21): the objectives declare what their ``total``
is, the History records a bound that is not the ELBO under its own name, ``metrics.json`` holds
the negative ELBO as ``elbo`` and the objective's bound by name, and the CLI lines and the report
call −L_k the IWAE bound, never the ELBO."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.losses import BOUND_LABELS, bound_label
from genvae.report import ReportSettings, write_report
from genvae.report.bounds import run_bound
from genvae.runfiles import RunFileError, read_run_json
from genvae.semisupervised import SemiSupervisedELBO
from genvae.training import EpochLog

SMALL = ["--dataset", "synthetic-digits", "--train-size", "96", "--test-size", "32", "--epochs", "1", "--quiet"]


def test_each_objective_declares_the_bound_its_total_is() -> None:
    assert gv.ELBO.bound_name == gv.BetaTCVAE.bound_name == "elbo"
    assert gv.IWAE.bound_name == "iwae" and SemiSupervisedELBO.bound_name == "m2"
    assert gv.IWAE(k=7).bound() == {"name": "iwae", "k": 7}
    assert gv.ELBO(beta=4.0).bound() == {"name": "elbo"}
    assert set(BOUND_LABELS) == {"elbo", "iwae", "m2"}
    assert bound_label("iwae", 5) == "negative IWAE bound (k=5)" and bound_label("elbo") == "negative ELBO"


def test_the_terms_name_their_bound() -> None:
    model, x = gv.presets.seed_vae(), (torch.rand(8, 1, 28, 28) > 0.5).float()
    assert gv.IWAE(k=3).compute(model, x, None).bound == "iwae"
    assert gv.ELBO()(model(x), x).bound == "elbo"
    assert gv.BetaTCVAE()(model(x), x).bound == "elbo"  # its loss is no bound; its total is the ELBO's


def _fit(objective: gv.losses.Objective, log: io.StringIO | None = None) -> gv.Trainer:
    callbacks = [EpochLog(log, heartbeat=None)] if log is not None else []
    trainer = gv.Trainer(gv.presets.seed_vae(), objective, max_epochs=1, batch_size=16, seed=0, callbacks=callbacks)
    trainer.fit(torch.rand(32, 1, 28, 28), torch.rand(16, 1, 28, 28))
    return trainer


def test_the_history_records_the_iwae_bound_under_its_name_and_the_cli_line_says_it() -> None:
    log = io.StringIO()
    last = _fit(gv.IWAE(k=3), log).history.last
    assert last["train_iwae"] == last["train_total"] and last["val_iwae"] == last["val_total"]
    assert last["val_total"] <= last["val_recon"] + last["val_kl"] + 1e-6  # −L_k ≤ −ELBO
    line = log.getvalue().strip()
    assert line.startswith("epoch 1/1: train_iwae ") and ", val_iwae " in line and "total" not in line


def test_an_elbo_history_keeps_its_names() -> None:
    log = io.StringIO()
    keys = _fit(gv.ELBO(), log).history.keys()
    assert "train_total" in keys and not any(k.endswith(("_iwae", "_m2")) for k in keys)
    assert log.getvalue().startswith("epoch 1/1: train_total ")


def test_metrics_json_holds_the_elbo_and_the_iwae_bound_by_name(tmp_path: Path) -> None:
    run = tmp_path / "iwae"
    assert main(["train", *SMALL, "--objective", "iwae", "--k", "3", "--no-report", "--out", str(run)]) == 0
    metrics = read_run_json(run / "metrics.json", "metrics")
    assert metrics["bound"] == {"name": "iwae", "k": 3}
    for split in ("train", "test"):
        figures = metrics[split]
        assert figures["elbo"] == pytest.approx(figures["recon"] + figures["kl"])
        assert figures["iwae"] == figures["total"] < figures["elbo"]
    assert "elbo = recon + kl" in metrics["units"]


def test_metrics_json_of_an_elbo_run(tmp_path: Path) -> None:
    run = tmp_path / "vae"
    assert main(["train", *SMALL, "--no-report", "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["bound"] == {"name": "elbo"} and "iwae" not in metrics["test"]
    assert metrics["test"]["elbo"] == pytest.approx(metrics["test"]["total"])


def test_the_metrics_schema_reads_old_and_new_files_and_refuses_a_bad_bound(tmp_path: Path) -> None:
    old = {"status": "complete", "test": {"total": 288.0, "recon": 300.0, "kl": 17.0}, "units": "negative ELBO"}
    path = tmp_path / "metrics.json"
    for document in (old, {**old, "bound": {"name": "iwae", "k": 5}}, {**old, "bound": {"name": "elbo"}}):
        path.write_text(json.dumps(document))
        assert read_run_json(path, "metrics") == document
    path.write_text(json.dumps({**old, "bound": "iwae"}))
    with pytest.raises(RunFileError, match=r"metrics\.json: bound: expected an object with \"name\""):
        read_run_json(path, "metrics")


def test_an_old_run_folder_takes_its_bound_from_its_configured_objective() -> None:
    old = {"test": {"total": 288.37, "recon": 300.0, "kl": 17.19}}
    bound = run_bound(old, {"objective": "iwae", "k": 5})
    assert (bound.name, bound.k, bound.test, bound.label) == ("iwae", 5, 288.37, "negative IWAE bound (k=5)")
    assert run_bound(old, {"objective": "elbo"}).is_elbo
    assert run_bound(old, {"objective": "unknown"}).is_elbo
    new = {"bound": {"name": "iwae", "k": 50}, "test": {"total": 1.0, "iwae": 1.0}}
    assert run_bound(new, {"objective": "elbo"}).k == 50


@pytest.mark.slow
def test_the_report_names_the_iwae_bound_apart_from_the_elbo(tmp_path: Path) -> None:
    run = tmp_path / "iwae"
    assert main(["train", *SMALL, "--objective", "iwae", "--k", "3", "--no-report", "--out", str(run)]) == 0
    test = json.loads((run / "metrics.json").read_text())["test"]
    settings = ReportSettings(eval_size=32, probe_size=96, k=3, classify_k=2, classify_size=16)
    for legacy in (False, True):
        if legacy:  # a run folder written before issue 21: no bound, no elbo
            metrics = json.loads((run / "metrics.json").read_text())
            del metrics["bound"], metrics["test"]["elbo"], metrics["test"]["iwae"]
            (run / "metrics.json").write_text(json.dumps(metrics))
        page = write_report([run], tmp_path / f"report-{legacy}.html", settings).read_text()
        assert f"{test['total']:.2f} (negative IWAE bound (k=3))" in page
        assert f"<td>{test['recon'] + test['kl']:.2f}</td>" in page  # the −ELBO row: recon + kl
        assert "total is the negative IWAE bound" in page
        assert not math.isclose(test["total"], test["recon"] + test["kl"])
