"""Errors whose remedy is an option name it as the caller spells it: ``download=True`` and
``allow_non_finite=True`` in Python, ``--download`` (or nothing, when there is no such option) on
the command line (issue 26, item 9)."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import files

SPARE_NAN = """
import torch
import genvae as gv


@gv.likelihoods.register("test_spare_nan")
class SpareNaN(gv.likelihoods.Bernoulli):
    # a buffer no loss reads: training stays finite, the weights do not
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("spare", torch.tensor(float("nan")))
"""


@pytest.fixture(autouse=True)
def _no_data_found(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENVAE_DATA", raising=False)


@pytest.fixture
def spare_nan(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "spare_nan.py"
    path.write_text(SPARE_NAN)
    yield path
    if "test_spare_nan" in gv.likelihoods.names():
        gv.likelihoods.registry.unregister("test_spare_nan")
    sys.modules.pop("spare_nan", None)


def test_a_missing_dataset_names_the_python_option_or_the_one_it_is_given(tmp_path: Path) -> None:
    with pytest.raises(gv.data.DatasetNotFoundError) as info:
        gv.data.MNIST(root=tmp_path, split="train")
    error = info.value
    assert isinstance(error, FileNotFoundError)
    assert str(error).startswith(f"mnist: train-images-idx3-ubyte(.gz) is in none of the folders searched ({tmp_path}")
    assert str(error).endswith("; pass download=True to fetch it, or put the file in one of these folders")
    command_line = error.with_option("--download")
    assert str(command_line) == str(error).replace("download=True", "--download")
    assert isinstance(command_line, gv.data.DatasetNotFoundError) and command_line.missing == error.missing
    assert str(pickle.loads(pickle.dumps(command_line))) == str(command_line)  # crosses processes whole


def test_the_command_line_names_download_as_its_own_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["train", "--dataset", "mnist", "--data-root", str(tmp_path), "--quiet", "--no-report"]
    assert main([*argv, "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "pass --download to fetch it" in err and "download=True" not in err


def test_gv_save_offers_allow_non_finite(tmp_path: Path) -> None:
    model = gv.presets.seed_vae()
    with torch.no_grad():
        model.mean_head.bias[0] = float("inf")
    with pytest.raises(ValueError) as info:
        gv.save(model, tmp_path / "refused")
    assert str(info.value) == (
        "model: mean_head.bias: expected finite weights, got NaN or inf; a diverged model is not saved "
        "(pass allow_non_finite=True to save it anyway)"
    )
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_publishing_a_run_offers_no_option_it_does_not_have(
    tmp_path: Path, spare_nan: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--import", str(spare_nan), "train", "--dataset", "synthetic-digits", "--train-size", "64",
            "--test-size", "32", "--epochs", "1", "--likelihood", "test_spare_nan", "--quiet", "--no-report",
            "--device", "cpu", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 1
    assert capsys.readouterr().err == (
        "genvae train: error: model: likelihood.spare: expected finite weights, got NaN or inf; "
        "a diverged model is not saved\n"
    )
