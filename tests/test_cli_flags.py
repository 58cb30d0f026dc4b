"""genvae train: flags that cannot go together are one line naming the flag, before any data is read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import genvae.experiment as experiment
from genvae.cli import main
from genvae.experiment import ConfigError, TrainConfig, check_config
from genvae.runs import RunDir

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")

# --dataset auto --download: reading the data would mean probing for MNIST and downloading it
RUN = ["train", "--dataset", "auto", "--download", "--epochs", "1", "--quiet", "--no-report", "--device", "cpu"]


class DataRead(Exception):
    """Raised by the spies below: the command got as far as the data."""


@pytest.fixture
def data_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to choose or read the data, recorded (and stopped there)."""
    reads: list[str] = []

    def spy(what: str) -> object:
        def read(*args: object, **kwargs: object) -> object:
            reads.append(what)
            raise DataRead(what)

        return read

    monkeypatch.setattr(experiment, "choose_dataset", spy("choose_dataset"))
    monkeypatch.setattr(experiment, "load_splits", spy("load_splits"))
    return reads


@pytest.mark.parametrize(
    ("flags", "message"),
    [  # one flag, or one that cannot go with the others, and the line that names it
        (["--model", "vae", "--latent-dims", "4,2"],
         "--latent-dims: the model 'vae' takes no latent_dims, got (4, 2); --model hierarchical takes it\n"),
        (["--model", "cvae", "--codebook-size", "8"],
         "--codebook-size: the model 'cvae' takes no codebook_size, got 8; --model vqvae takes it\n"),
        (["--model", "vae", "--code-dim", "8"], "--code-dim: the model 'vae' takes no code_dim, got 8"),
        (["--model", "vae", "--conditioner", "film"],
         "--conditioner: the model 'vae' takes no conditioner, got 'film'"),
        (["--model", "vqvae", "--posterior", "iaf"], "--posterior: the model 'vqvae' takes no posterior, got 'iaf'"),
        (["--model", "vqvae", "--prior", "mog"], "--prior: the model 'vqvae' takes no prior, got 'mog'"),
        (["--model", "vqvae", "--latent-dim", "4"], "--latent-dim: the model 'vqvae' takes no latent_dim, got 4"),
        (["--model", "hierarchical", "--posterior", "iaf"],
         "--posterior: the model 'hierarchical' takes no posterior, got 'iaf'"),
        (["--model", "hierarchical", "--latent-dim", "5"],  # with the model's own levels, 32,16
         "--latent-dim: expected no value or the bottom level's size 32 (the first of --latent-dims), got 5; "
         "for a bottom level of 5, give --latent-dims 5,16 instead\n"),
        (["--model", "hierarchical", "--latent-dims", "6,3", "--latent-dim", "3"],
         "--latent-dim: expected no value or the bottom level's size 6 (the first of --latent-dims), got 3; "
         "for a bottom level of 3, give --latent-dims 3,3 instead\n"),
        (["--latent-dim", "100000000"],  # the model's parameters could not fit: refused before the data too
         "--latent-dim: expected sizes whose parameters fit in this machine's memory"),
        (["--model", "hierarchical", "--latent-dims", "4"], "--latent-dims: expected two levels or more, got (4,)"),
        (["--model", "vae", "--prior", "conditional"],
         "--prior: the 'conditional' prior p(z | y) needs a conditional model (a ConditionalVAE), got VAE without a "
         "condition"),
        (["--model", "hierarchical", "--prior", "conditional"], "--prior: the 'conditional' prior p(z | y) needs a"),
        (["--model", "vqvae", "--objective", "beta-tcvae"],
         "--objective: the model 'vqvae' trains with its own bound; expected vq, got 'beta-tcvae'"),
        (["--model", "m2", "--objective", "elbo"],
         "--objective: the model 'm2' trains with its own bound; expected m2"),
        (["--model", "vae", "--objective", "vq"],
         "--objective: 'vq' is the own bound of --model vqvae, got --model vae"),
        (["--model", "hierarchical", "--objective", "beta-tcvae"],
         "--objective: 'beta-tcvae' cannot train --model hierarchical (BetaTCVAE decomposes the KL of one latent "
         "vector, got a model with latent levels)"),
        (["--model", "cvae", "--posterior", "iaf", "--objective", "beta-tcvae"],
         "--objective: 'beta-tcvae' cannot train --model cvae --posterior iaf (BetaTCVAE estimates q(z) from "
         "diagonal-Gaussian posteriors, expected a model with --posterior gaussian, got a flow posterior)"),
        (["--model", "vqvae", "--k", "3"], "--k: the objective 'vq' takes no k, got 3"),
        (["--objective", "beta-tcvae", "--k", "3"], "--k: the objective 'beta-tcvae' takes no k, got 3"),
        (["--model", "vqvae", "--labels", "3"],
         "--labels: only --model m2 learns from partly labelled data, got --model vqvae"),
    ],
)  # fmt: skip
def test_flags_that_cannot_go_together_are_refused_before_the_data_is_read(
    flags: list[str], message: str, data_reads: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*RUN, *flags, "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"genvae train: error: {message}") and err.count("\n") == 1
    assert data_reads == []
    assert not RunDir(tmp_path / "r").holds_run()


@pytest.mark.parametrize(
    "flags",
    [
        [],
        ["--model", "cvae", "--prior", "conditional", "--objective", "beta-tcvae"],
        ["--model", "vae", "--posterior", "iaf", "--prior", "flow", "--objective", "iwae", "--k", "3"],
        ["--model", "hierarchical", "--latent-dims", "6,3", "--latent-dim", "6", "--objective", "iwae"],
        ["--model", "hierarchical", "--conditioner", "split", "--prior", "conditional"],
        ["--model", "vqvae", "--codebook-size", "16", "--code-dim", "4", "--conditioner", "film"],
        ["--model", "m2", "--labels", "20"],
    ],
)
def test_flags_that_go_together_reach_the_data(flags: list[str], data_reads: list[str], tmp_path: Path) -> None:
    # the other side of the test above: its spies see a run that gets past the check
    with pytest.raises(DataRead):
        main([*RUN, *flags, "--out", str(tmp_path / "r")])
    assert data_reads == ["choose_dataset"]


def test_the_check_leaves_the_random_state_as_it_was() -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_config(TrainConfig(model="cvae", seed=7))
    assert torch.equal(torch.get_rng_state(), before)


def test_an_unknown_dataset_is_refused_by_the_check() -> None:
    with pytest.raises(ConfigError, match=r"^--dataset: expected one of .*auto, got 'cifar'$"):
        check_config(TrainConfig(dataset="cifar"))


def test_a_builder_error_that_names_no_flag_is_put_under_model() -> None:
    # a dataset without classes reaches the model's builder only once the data is read
    with pytest.raises(
        ConfigError, match=r"^--model: the model 'cvae' cannot be built \(num_classes: expected a positive integer"
    ):
        experiment.build_model(TrainConfig(model="cvae"), num_classes=0)


def test_a_refused_run_leaves_no_out_folder_it_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # refused by the settings' check, or once it held the run's lock (no MNIST here, no --download)
    mnist = ["train", "--dataset", "mnist", "--epochs", "1", "--quiet", "--no-report", "--device", "cpu"]
    for argv in ([*RUN, "--model", "vae", "--latent-dims", "4,2"], mnist):
        assert main([*argv, "--out", str(tmp_path / "new" / "r")]) == 1
        assert capsys.readouterr().err.startswith("genvae train: error: ")
        assert list(tmp_path.iterdir()) == []


def test_a_refused_run_keeps_an_out_folder_that_was_there(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    assert main([*RUN, "--model", "vae", "--latent-dims", "4,2", "--out", str(mine)]) == 1
    assert mine.is_dir()
