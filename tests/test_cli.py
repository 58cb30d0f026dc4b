"""The genvae command: train, demo, and its one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import files

SMALL = [
    "--dataset",
    "synthetic-digits",
    "--train-size",
    "256",
    "--test-size",
    "64",
    "--epochs",
    "2",
    "--quiet",
    "--no-report",
]


@pytest.fixture(autouse=True)
def _no_local_mnist(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENVAE_DATA", raising=False)


@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_train_writes_a_run_directory_that_loads(tmp_path: Path, model: str) -> None:
    run = tmp_path / "run"
    assert main(["train", "--model", model, *SMALL, "--out", str(run)]) == 0
    assert {"config.json", "model.json", "weights.pt", "history.csv", "metrics.json", "checkpoints"} <= {
        p.name for p in run.iterdir()
    }
    loaded = gv.load(run)
    assert type(loaded) is (gv.ConditionalVAE if model == "cvae" else gv.VAE)
    config = json.loads((run / "config.json").read_text())
    assert config["model"] == model and config["epochs"] == 2 and config["train_data"]["size"] == 256
    metrics = json.loads((run / "metrics.json").read_text())
    history = gv.History.from_csv(run / "history.csv")
    assert metrics["epochs"] == 2 == len(history)
    assert metrics["test"]["total"] == pytest.approx(history.last["val_total"])
    assert metrics["parameters"] == sum(p.numel() for p in loaded.parameters())


def test_train_is_reproducible_for_a_seed(tmp_path: Path) -> None:
    for name in ("a", "b"):
        assert main(["train", *SMALL, "--seed", "4", "--out", str(tmp_path / name)]) == 0
    a, b = gv.load(tmp_path / "a"), gv.load(tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "genvae train: error: argument --epochs: expected a positive integer, got '0'"),
        (["--lr", "fast"], "genvae train: error: argument --lr: expected a positive number, got 'fast'"),
        (["--dataset", "cifar"], "genvae train: error: argument --dataset: invalid choice: 'cifar'"),
        (
            ["--data-root", "/no/such/folder"],
            "genvae train: error: argument --data-root: no such folder: '/no/such/folder'",
        ),
    ],
)
def test_bad_arguments_are_one_line_errors(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", *args, "--out", str(tmp_path / "r")])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and err.count("\n") == 1


def test_a_missing_dataset_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--dataset", "mnist", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genvae train: error: mnist: train-images-idx3-ubyte(.gz) is in none of the folders searched")
    assert err.count("\n") == 1


def test_an_out_path_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "f").write_text("")
    assert main(["train", *SMALL, "--out", str(tmp_path / "f")]) == 1
    assert "--out: expected a folder, got an existing file" in capsys.readouterr().err


def test_demo_quick_writes_two_runs_and_announces_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--no-download", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"genvae demo: report {tmp_path / 'report.html'} (written at the end); ")
    assert "dataset synthetic-digits (MNIST not found locally and downloading is off)" in lines[0]
    assert lines[-1] == f"genvae demo: wrote {tmp_path / 'report.html'}"
    assert (tmp_path / "report.html").read_text().count("<section>") == 2
    for kind in ("vae", "cvae"):
        config = json.loads((tmp_path / kind / "config.json").read_text())
        assert config["dataset"] == "synthetic-digits" and config["dataset_choice"].startswith("MNIST not found")
        gv.load(tmp_path / kind)


def test_help_for_every_command() -> None:
    for args in ([], ["train"], ["demo"]):
        done = subprocess.run(
            [sys.executable, "-m", "genvae", *args, "--help"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "usage: genvae" in done.stdout
