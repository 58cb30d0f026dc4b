"""The genvae command: train, demo, and its one-line errors."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import files, write_idx
from genvae.experiment import DataChoice, choose_dataset
from genvae.runs import RunDir

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
    assert {"config.json", "model.json", "history.csv", "metrics.json", "checkpoints", "published"} <= {
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


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_train_is_reproducible_for_a_seed_and_the_seed_matters(tmp_path: Path) -> None:
    for name, seed in (("a", "4"), ("b", "4"), ("c", "5")):
        assert main(["train", *SMALL, "--seed", seed, "--out", str(tmp_path / name)]) == 0
    a, b, c = (gv.load(tmp_path / name) for name in "abc")
    assert same_weights(a, b) and not same_weights(a, c)
    assert json.loads((tmp_path / "c" / "config.json").read_text())["seed"] == 5


def test_every_option_reaches_the_run(tmp_path: Path) -> None:
    """Each option of `genvae train`, set to a value other than its default, is seen in the saved
    model, in the trainer's checkpoint and in config.json."""
    run = tmp_path / "run"
    options = ["--model", "cvae", "--latent-dim", "3", "--conditioner", "concat", "--likelihood",
               "continuous_bernoulli", "--batch-size", "16", "--lr", "0.003", "--seed", "5", "--epochs", "3",
               "--train-size", "80", "--test-size", "24", "--threads", "1"]  # fmt: skip
    threads = torch.get_num_threads()
    try:
        assert main(["train", "--quiet", "--no-report", *options, "--out", str(run)]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)
    model = gv.load(run)
    assert type(model) is gv.ConditionalVAE and model.latent_dim == 3 and model.mean_head.out_features == 3
    assert type(model.likelihood) is gv.likelihoods.ContinuousBernoulli
    spec = gv.config.get_config(model)["args"]
    assert spec["encoder"]["args"]["conditioner"] == spec["decoder"]["args"]["conditioner"] == "concat"
    shapes = {k: v.shape for k, v in gv.presets.seed_cvae(latent_dim=3, conditioner="concat").state_dict().items()}
    assert {k: v.shape for k, v in model.state_dict().items()} == shapes  # concat's layers, not split's
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["optimizer_state"]["param_groups"][0]["lr"] == 0.003
    assert checkpoint["state"]["global_step"] == 3 * 5  # 3 epochs of 80 images in batches of 16
    config = json.loads((run / "config.json").read_text())
    expected = {"model": "cvae", "latent_dim": 3, "conditioner": "concat", "likelihood": "continuous_bernoulli",
                "batch_size": 16, "lr": 0.003, "seed": 5, "epochs": 3, "train_size": 80, "test_size": 24,
                "threads": 1}  # fmt: skip
    assert {k: config[k] for k in expected} == expected
    assert config["train_data"]["size"] == 80 and config["test_data"]["size"] == 24
    assert (
        json.loads((run / "metrics.json").read_text())["epochs"] == len(gv.History.from_csv(run / "history.csv")) == 3
    )


def test_prior_objective_and_k_reach_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    options = ["--prior", "vamp", "--objective", "iwae", "--k", "3", "--latent-dim", "3"]
    assert main(["train", *SMALL, "--epochs", "1", *options, "--out", str(run)]) == 0
    model = gv.load(run)
    assert type(model.prior) is gv.priors.VampPrior
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["objective"]["config"] == gv.IWAE(k=3).config()
    config = json.loads((run / "config.json").read_text())
    assert (config["prior"], config["objective"], config["k"]) == ("vamp", "iwae", 3)


def test_iwae_records_the_k_it_trains_with_so_a_resume_can_name_it(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--objective", "iwae", "--out", str(run)]) == 0
    assert json.loads((run / "config.json").read_text())["k"] == 5
    again = ["train", *SMALL, "--epochs", "2", "--objective", "iwae", "--k", "5", "--resume", "--out", str(run)]
    assert main(again) == 0
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_beta_tcvae_and_a_conditional_prior_from_the_command_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    options = ["--model", "cvae", "--prior", "conditional", "--objective", "beta-tcvae"]
    assert main(["train", *SMALL, "--epochs", "1", *options, "--out", str(run)]) == 0
    assert type(gv.load(run).prior) is gv.priors.ConditionalPrior
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")
    assert checkpoint["objective"]["config"] == gv.BetaTCVAE(dataset_size=256).config()
    assert {"mi", "tc", "dim_kl"} <= set(json.loads((run / "metrics.json").read_text())["train"])


def test_m2_trains_on_a_few_labels_from_the_command_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert main(["train", *SMALL, "--epochs", "1", "--model", "m2", "--labels", "20", "--out", str(run)]) == 0
    model = gv.load(run)
    assert type(model) is gv.SemiSupervisedVAE
    metrics = json.loads((run / "metrics.json").read_text())
    # half of every training batch is the 20 labelled images, oversampled; the test set is labelled
    assert metrics["train"]["labelled"] == pytest.approx(0.5, abs=0.05) and metrics["test"]["labelled"] == 1.0
    assert 0.0 <= metrics["test"]["accuracy"] <= 1.0
    assert json.loads((run / "config.json").read_text())["labels"] == 20


def test_tensorboard_logs_from_the_command_line(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    logs = tmp_path / "tb"
    assert main(["train", *SMALL, "--epochs", "1", "--tensorboard", str(logs), "--out", str(tmp_path / "r")]) == 0
    assert list(logs.glob("events.out.tfevents.*"))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--k", "3"], "--k: the objective 'elbo' takes no k, got 3"),
        (["--labels", "3"], "--labels: only --model m2 learns from partly labelled data, got --model vae"),
        (["--model", "m2", "--objective", "iwae"], "--objective: the model 'm2' trains with its own bound; expected"),
    ],
)
def test_options_that_do_not_go_together_are_refused_before_anything_is_written(
    options: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", *SMALL, *options, "--out", str(tmp_path / "r")]) == 1
    assert capsys.readouterr().err.startswith(f"genvae train: error: {message}")
    assert not RunDir(tmp_path / "r").holds_run()


def test_an_unavailable_device_is_a_one_line_error_before_anything_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = subprocess.run(
        [sys.executable, "-m", "genvae", "train", *SMALL, "--device", "cuda", "--out", str(tmp_path / "r")],
        capture_output=True, text=True, check=False, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr == (
        "genvae train: error: device: 'cuda' is not available (this PyTorch build has no CUDA support); "
        "use 'cpu' or 'auto'\n"
    )
    assert not RunDir(tmp_path / "r").holds_run()


def test_an_option_the_model_does_not_take_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", *SMALL, "--conditioner", "film", "--out", str(tmp_path / "r")]) == 1
    assert (
        capsys.readouterr().err
        == "genvae train: error: --conditioner: the model 'vae' takes no conditioner, got 'film'; "
        "--model cvae, hierarchical, m2 and vqvae take it\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--epochs", "0"], "genvae train: error: argument --epochs: expected a positive integer, got '0'"),
        (["--lr", "fast"], "genvae train: error: argument --lr: expected a positive number, got 'fast'"),
        (["--dataset", "cifar"], "genvae train: error: argument --dataset: invalid choice: 'cifar'"),
        (
            ["--model", "gan"],
            "genvae train: error: argument --model: invalid choice: 'gan' "
            "(choose from 'cvae', 'hierarchical', 'm2', 'vae', 'vqvae')",
        ),
        (["--conditioner", "add"], "genvae train: error: argument --conditioner: invalid choice: 'add' (choose from"),
        (["--likelihood", "poisson"], "genvae train: error: argument --likelihood: invalid choice: 'poisson'"),
        (["--prior", "flat"], "genvae train: error: argument --prior: invalid choice: 'flat' (choose from"),
        (["--objective", "gan"], "genvae train: error: argument --objective: invalid choice: 'gan' (choose from"),
        (["--k", "0"], "genvae train: error: argument --k: expected a positive integer, got '0'"),
        (["--labels", "-1"], "genvae train: error: argument --labels: expected a non-negative integer, got '-1'"),
        (["--threads", "0"], "genvae train: error: argument --threads: expected a positive integer, got '0'"),
        (
            ["--threads", "100000"],
            "genvae train: error: argument --threads: expected a positive integer up to 1024, got '100000'",
        ),
        (["--resume", "--overwrite"], "genvae train: error: argument --overwrite: not allowed with argument --resume"),
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


def test_paths_that_cannot_hold_what_is_asked_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("")
    cases = [
        (["train", *SMALL, "--out", ""], "genvae train: error: --out: expected a folder name, got ''"),
        (
            ["train", *SMALL, "--tensorboard", str(tmp_path / "f"), "--out", str(tmp_path / "r")],
            f"genvae train: error: --tensorboard: expected a folder, got an existing file: {str(tmp_path / 'f')!r}",
        ),
        (
            ["report", str(tmp_path), "--out", str(tmp_path)],
            f"genvae report: error: --out: expected the report's file name, got a folder: {str(tmp_path)!r}",
        ),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        assert capsys.readouterr().err == message + "\n"
    assert not RunDir(tmp_path / "r").holds_run()


def test_a_model_too_large_for_memory_is_a_one_line_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    # the decoder's first layer alone would need about 1.2 TB: refused before any layer is made
    assert main(["train", *SMALL, "--latent-dim", "100000000", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("genvae train: error: --latent-dim: expected sizes whose parameters fit in this machine's")
    assert err.endswith(" float32)\n") and err.count("\n") == 1


def test_demo_quick_writes_its_runs_and_announces_its_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--quick", "--no-download", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0]
        == "genvae demo: data: SyntheticDigits (rendered offline; neither MNIST nor Fashion-MNIST is available)"
    )
    assert len(lines[0]) < 120
    assert lines[1] == (
        f"genvae demo: runs in {tmp_path}: vae, cvae, vae-8d; report {tmp_path / 'report.html'} (written at the end)"
    )
    assert lines[-1] == f"genvae demo: wrote {tmp_path / 'report.html'}"
    report = (tmp_path / "report.html").read_text()
    assert report.count("<section>") == 3
    assert "Not measured here" not in report  # the 8-D VAE answers question 10.4c
    assert gv.load(tmp_path / "vae-8d").latent_dim == 8
    for kind in ("vae", "cvae", "vae-8d"):
        config = json.loads((tmp_path / kind / "config.json").read_text())
        assert config["dataset"] == "synthetic-digits"
        assert config["notes"]["dataset_choice"] == (
            "MNIST: not found locally, and downloading is off; Fashion-MNIST: not found locally, and downloading is off"
        )
        gv.load(tmp_path / kind)
    assert main(["demo", "--quick", "--no-download", "--out", str(tmp_path)]) == 1  # no silent overwrite
    assert "continue it with --resume or replace it with --overwrite" in capsys.readouterr().err


def fake_idx(root: Path, n: int = 64) -> Path:
    """Small files in the MNIST/Fashion-MNIST format (valid IDX) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix in ("train", "t10k"):
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return root


def test_the_demo_uses_fashion_mnist_when_mnist_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GENVAE_DATA", str(tmp_path / "data"))
    fake_idx(tmp_path / "data" / "fashion-mnist")
    (tmp_path / "demo" / "vae" / "checkpoints").mkdir(parents=True)  # an earlier demo: it stops after announcing
    assert main(["demo", "--quick", "--no-download", "--out", str(tmp_path / "demo")]) == 1
    first = capsys.readouterr().out.splitlines()[0]
    assert first == "genvae demo: data: Fashion-MNIST (found locally; MNIST is not available)"


def test_data_choice_prefers_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENVAE_DATA", str(tmp_path))
    fake_idx(tmp_path / "mnist")
    fake_idx(tmp_path / "fashion-mnist")
    assert choose_dataset(None, download=False) == DataChoice("mnist", "MNIST (found locally)", "MNIST: found")


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder; yields (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()


def test_data_choice_downloads_fashion_mnist_when_mnist_cannot_be_downloaded(
    tmp_path: Path, mirror: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, served = mirror
    md5 = {}
    for raw in fake_idx(tmp_path / "fake").iterdir():  # small files, served as the mirrors serve them
        packed = gzip.compress(raw.read_bytes())
        (served / f"{raw.name}.gz").write_bytes(packed)
        md5[f"{raw.name}.gz"] = hashlib.md5(packed).hexdigest()
    monkeypatch.setattr(gv.data.MNIST, "MIRRORS", (url + "mnist/",))  # nothing there: 404
    monkeypatch.setattr(gv.data.FashionMNIST, "MIRRORS", (url,))
    monkeypatch.setattr(gv.data.FashionMNIST, "MD5", md5)
    choice = choose_dataset(None, download=True)
    assert (choice.name, choice.summary) == ("fashion-mnist", "Fashion-MNIST (downloaded; MNIST is not available)")
    assert choice.details.startswith(
        f"MNIST: not found locally, and the download failed (could not download train-images-idx3-ubyte.gz: "
        f"{url}mnist/train-images-idx3-ubyte.gz: HTTP Error 404"
    )
    assert choice.details.endswith("; Fashion-MNIST: downloaded")
    assert len(gv.data.FashionMNIST(split="test")) == 64  # in the user cache now


def test_train_with_dataset_auto_records_the_choice(tmp_path: Path) -> None:
    assert main(["train", *SMALL, "--dataset", "auto", "--out", str(tmp_path / "r")]) == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["dataset"] == "synthetic-digits" and config["notes"]["dataset_choice"].startswith("MNIST: not found")


USER_PARTS = """
import genvae as gv


@gv.conditioners.register("test_user_concat")
class UserConcat(gv.conditioners.ConcatConditioner):
    \"\"\"A user's conditioner: the built-in concat under a name of its own.\"\"\"


@gv.likelihoods.register("test_user_bernoulli")
class UserBernoulli(gv.likelihoods.Bernoulli):
    \"\"\"A user's likelihood.\"\"\"
"""


@pytest.fixture
def user_module(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "user_parts.py"
    path.write_text(USER_PARTS)
    yield path
    for registry, name in (
        (gv.conditioners.registry, "test_user_concat"),
        (gv.likelihoods.registry, "test_user_bernoulli"),
    ):
        if name in registry.names():
            registry.unregister(name)
    sys.modules.pop("user_parts", None)


@pytest.mark.parametrize("how", ["path", "name"])
def test_parts_a_user_registers_work_from_the_command_line(
    tmp_path: Path, user_module: Path, how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a module name is imported from the current folder, as `python -m` does
    target = str(user_module) if how == "path" else "user_parts"
    run = tmp_path / "run"
    argv = ["train", "--import", target, "--model", "cvae", "--conditioner", "test_user_concat",
            "--likelihood", "test_user_bernoulli", *SMALL, "--out", str(run)]  # fmt: skip
    assert main(argv) == 0
    model = gv.load(run)
    assert gv.config.get_config(model)["args"]["encoder"]["args"]["conditioner"] == "test_user_concat"
    assert type(model.likelihood).__name__ == "UserBernoulli"
    assert json.loads((run / "config.json").read_text())["imports"] == [target]


def test_a_module_that_cannot_be_imported_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--import", "no_such_module_here", "--out", "x"]) == 1
    assert capsys.readouterr().err == (
        "genvae: error: --import: cannot import 'no_such_module_here' "
        "(ModuleNotFoundError: No module named 'no_such_module_here')\n"
    )


def test_help_for_every_command() -> None:
    for args in ([], ["train"], ["demo"]):
        done = subprocess.run(
            [sys.executable, "-m", "genvae", *args, "--help"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0 and "usage: genvae" in done.stdout
