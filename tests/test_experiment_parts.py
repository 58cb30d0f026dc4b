"""genvae.experiment_parts: the families a run builds by name: flows (``--posterior iaf``,
``--prior flow``), the hierarchy (``--model hierarchical --latent-dims``), the VQ-VAE (``--model vqvae
--codebook-size --code-dim``); each trains, records its settings, loads and resumes, and a flag
that its model does not take is one line naming the flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.experiment import TrainConfig, build_model

pytestmark = pytest.mark.usefixtures("one_thread", "isolated_data_dirs")

RUN = ["train", "--dataset", "synthetic-digits", "--train-size", "48", "--test-size", "16", "--quiet", "--no-report",
       "--device", "cpu", "--batch-size", "16"]  # fmt: skip


def train(out: Path, *flags: str, epochs: int = 1, resume: bool = False) -> int:
    return main([*RUN, "--epochs", str(epochs), *flags, "--out", str(out), *(["--resume"] if resume else [])])


def config(run: Path) -> dict[str, object]:
    return json.loads((run / "config.json").read_text())


def test_flows_in_the_posterior_and_the_prior_train_load_and_resume(tmp_path: Path) -> None:
    run = tmp_path / "run"
    flags = ("--posterior", "iaf", "--prior", "flow", "--latent-dim", "3")
    assert train(run, *flags) == 0
    assert (config(run)["posterior"], config(run)["prior"]) == ("iaf", "flow")
    model = gv.load(run)
    assert isinstance(model.q, gv.posteriors.IAFPosterior) and isinstance(model.prior, gv.flows.FlowPrior)
    assert train(run, *flags, epochs=2, resume=True) == 0
    assert config(run)["epochs"] == 2


def test_a_hierarchy_is_sized_by_its_levels_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert train(run, "--model", "hierarchical", "--latent-dims", "6,3") == 0
    assert config(run)["latent_dims"] == [6, 3] and config(run)["latent_dim"] is None
    model = gv.load(run)
    assert isinstance(model, gv.HierarchicalVAE) and tuple(model.latent_dims) == (6, 3)
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train_kl_level_1", "train_kl_level_2", "val_kl_level_2"} <= set(header)
    assert train(run, "--model", "hierarchical", "--latent-dims", "6,3", epochs=2, resume=True) == 0  # [6, 3] == (6, 3)
    capsys.readouterr()
    assert train(run, "--model", "hierarchical", "--latent-dims", "6,4", epochs=3, resume=True) == 1
    assert "latent_dims [6,3] → [6,4]" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--latent-dims", "6,3"), "--latent-dims: the model 'vae' takes no latent_dims, got (6, 3)"),
        (("--model", "hierarchical", "--latent-dims", "6,3", "--latent-dim", "4"),
         "genvae train: error: --latent-dim: expected no value or the bottom level's size 6 (the first of "
         "--latent-dims), got 4"),
        (("--code-dim", "4"), "--code-dim: the model 'vae' takes no code_dim, got 4"),
        (("--model", "vqvae", "--latent-dim", "4"), "--latent-dim: the model 'vqvae' takes no latent_dim, got 4"),
        (("--model", "vqvae", "--posterior", "iaf"), "--posterior: the model 'vqvae' takes no posterior, got 'iaf'"),
    ],
)  # fmt: skip
def test_a_flag_the_model_does_not_take_is_one_line_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], message: str
) -> None:
    assert train(tmp_path / "run", *flags) != 0
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "config.json").exists()


def test_latent_dims_must_be_positive_integers(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        train(tmp_path / "run", "--model", "hierarchical", "--latent-dims", "6,0")
    assert "--latent-dims: expected positive integers separated by commas, got '6,0'" in capsys.readouterr().err


@pytest.mark.parametrize("conditioner", [None, "film"])
def test_a_vq_vae_run_builds_its_codebook_from_the_flags(tmp_path: Path, conditioner: str | None) -> None:
    run = tmp_path / "run"
    extra = ("--conditioner", conditioner) if conditioner else ()
    assert train(run, "--model", "vqvae", "--codebook-size", "16", "--code-dim", "4", *extra) == 0
    assert (config(run)["codebook_size"], config(run)["code_dim"]) == (16, 4)
    model = gv.load(run)
    assert isinstance(model, gv.VQVAE) and model.conditional == (conditioner is not None)
    assert (
        model.codes(gv.data.SyntheticDigits(2, seed=1).images, *([torch.tensor([1, 2])] if conditioner else [])).max()
        < 16
    )
    header = (run / "history.csv").read_text().splitlines()[0].split(",")
    assert {"train_perplexity", "train_usage", "val_commitment"} <= set(header)


def test_a_run_started_before_these_settings_existed_resumes(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert train(run) == 0
    for path in {(run / "config.json").resolve(), (run / "checkpoints" / "config.json").resolve()}:
        if path.exists():  # as an earlier genvae wrote it: none of the new keys
            saved = json.loads(path.read_text())
            for key in ("posterior", "latent_dims", "codebook_size", "code_dim"):
                saved.pop(key, None)
            path.write_text(json.dumps(saved))
    assert train(run, epochs=2, resume=True) == 0
    assert config(run)["posterior"] == "gaussian"


def test_latent_dim_none_takes_the_default_size_for_a_one_level_model() -> None:
    model, settings = build_model(TrainConfig(latent_dim=None), num_classes=10)
    assert model.latent_dim == settings["latent_dim"] == 2
    model, settings = build_model(TrainConfig(model="hierarchical", latent_dim=None, latent_dims=(5, 2)), 10)
    assert (model.latent_dim, settings["latent_dim"], settings["latent_dims"]) == (7, None, (5, 2))
