"""Run directories (genvae.runs.RunDir) through `genvae train`: atomic publication, no silent
overwrite, a checked resume, one writer at a time, and divergence never published."""

from __future__ import annotations

import json
import math
import os
import runpy
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.data import write_idx
from genvae.experiment import TrainConfig, train_run
from genvae.runs import RunDir
from tests.helpers import TINY

PUBLISHED = ("config.json", "model.json", "history.csv", "metrics.json")

# A likelihood that turns NaN after a number of training steps: a model made to diverge, loaded
# into the command with --import. (Evaluation runs without gradients and stays finite.)
NAN_MODULE = """
import torch
import genvae as gv


@gv.likelihoods.register("test_nan_after")
class NaNAfter(gv.likelihoods.Bernoulli):
    def __init__(self, after: int = 16) -> None:
        super().__init__()
        self.after, self.calls = after, 0

    def log_prob(self, x, params):
        value = super().log_prob(x, params)
        if torch.is_grad_enabled():
            self.calls += 1
            if self.calls > self.after:
                return value * float("nan")
        return value
"""


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


@pytest.fixture
def nan_module(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "nan_after.py"
    path.write_text(NAN_MODULE)
    yield path
    if "test_nan_after" in gv.likelihoods.names():
        gv.likelihoods.registry.unregister("test_nan_after")
    sys.modules.pop("nan_after", None)


def train(out: Path, *args: str, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, str]:
    """`genvae train` in this process: (exit status, stderr)."""
    if capsys is not None:
        capsys.readouterr()
    status = main(["train", *TINY, *args, "--out", str(out)])
    return status, capsys.readouterr().err if capsys is not None else ""


def snapshot(run: Path) -> dict[str, bytes]:
    """The published files' bytes, and the weights of the published model."""
    files_ = {name: (run / name).read_bytes() for name in PUBLISHED}
    files_["weights"] = b"".join(t.numpy().tobytes() for t in gv.load(run).state_dict().values())
    return files_


def published_together(run: Path) -> bool:
    """Every top-level published name resolves into one and the same publication folder."""
    return len({(run / name).resolve().parent for name in PUBLISHED}) == 1


def copy_run(run: Path, to: Path) -> Path:
    shutil.copytree(run, to, symlinks=True)
    return to


# -- the layout and the publication --------------------------------------------------------------


def test_a_finished_run_is_published_through_links(finished: Path) -> None:
    for name in PUBLISHED:
        assert (finished / name).is_symlink() and os.readlink(finished / name) == f"published/current/{name}"
    generations = sorted(p.name for p in (finished / "published").iterdir())
    assert generations == ["000001", "current"] and published_together(finished)
    run = RunDir(finished)
    assert run.status() == "complete" and run.metrics()["epochs"] == len(run.history()) == 2
    assert run.config()["run_id"] == json.loads((finished / "checkpoints" / "config.json").read_text())["run_id"]
    assert (finished / "published" / "000001").stat().st_mode & 0o777 == 0o777 & ~_umask()
    assert isinstance(gv.load(finished), gv.VAE)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_training_into_a_run_without_resume_or_overwrite_is_refused(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    status, err = train(run, "--seed", "5", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err == (
        f"genvae train: error: {run}: holds a finished run (2 epochs); continue it with --resume or replace it "
        "with --overwrite\n"
    )
    assert snapshot(run) == before


def test_overwrite_replaces_the_run_in_one_publication(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    old_id = RunDir(run).config()["run_id"]
    assert train(run, "--seed", "5", "--overwrite")[0] == 0
    config = RunDir(run).config()
    assert config["seed"] == 5 and config["run_id"] != old_id and published_together(run)
    assert sorted(p.name for p in (run / "published").iterdir()) == ["000002", "current"]


#: The steps of a publication (genvae._io.step) and which run a failure there leaves visible.
PUBLISH_STEPS = {
    "publish:files-written": "old",
    "publish:generation-renamed": "old",
    "publish:linked": "old",
    "publish:switched": "new",  # `published/current` replaced: the switch
    "publish:cleaned": "new",
}


@pytest.mark.parametrize("step", PUBLISH_STEPS)
def test_a_failure_at_any_step_of_a_publication_leaves_one_complete_run(
    finished: Path, tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    monkeypatch.setenv("GENVAE_TEST_FAIL_AT", step)
    assert train(run, "--seed", "5", "--overwrite")[0] == 1
    assert published_together(run)
    if PUBLISH_STEPS[step] == "old":
        assert snapshot(run) == before
    else:
        assert RunDir(run).config()["seed"] == 5 and len(RunDir(run).history()) == 2
    monkeypatch.delenv("GENVAE_TEST_FAIL_AT")
    assert train(run, "--seed", "6", "--overwrite")[0] == 0  # the next writer clears what was left
    assert RunDir(run).config()["seed"] == 6
    assert len(list((run / "published").iterdir())) == 2  # one publication and `current`


# -- checked resume ------------------------------------------------------------------------------


def fake_fashion(root: Path) -> Path:
    """Tiny Fashion-MNIST files (valid IDX) in ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 120), ("t10k", 40)):
        write_idx(root / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(root / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8))
    return root


@pytest.mark.parametrize(
    ("args", "difference"),
    [
        (["--model", "cvae"], 'model "vae" → "cvae"'),
        (["--latent-dim", "3"], "latent_dim 2 → 3"),
        (["--likelihood", "gaussian"], 'likelihood "bernoulli" → "gaussian"'),
        (["--batch-size", "16"], "batch_size 32 → 16"),
        (["--lr", "0.002"], "lr 0.001 → 0.002"),
        (["--seed", "1"], "seed 0 → 1"),
        (["--train-size", "64"], "train_size 96 → 64"),
        (["--test-size", "16"], "test_size 32 → 16"),
        (["--epochs", "1"], "epochs 2 → 1"),
        (["--dataset", "fashion-mnist", "--data-root", "FASHION"], 'dataset "synthetic-digits" → "fashion-mnist"'),
    ],
)
def test_resume_with_a_changed_setting_is_refused(
    finished: Path, tmp_path: Path, args: list[str], difference: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    args = [str(fake_fashion(tmp_path / "fashion")) if a == "FASHION" else a for a in args]
    before = snapshot(run), (run / "checkpoints" / "last.ckpt").read_bytes()
    status, err = train(run, *args, "--resume", capsys=capsys)
    assert status == 1 and err.count("\n") == 1, err
    assert err.startswith(f"genvae train: error: --resume: {run} was started with other settings: ")
    assert difference in err and err.rstrip().endswith(
        "resume it with the same settings (only epochs may grow) or start again with --overwrite"
    )
    assert (snapshot(run), (run / "checkpoints" / "last.ckpt").read_bytes()) == before


def test_a_resume_lists_every_difference_in_one_line(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    status, err = train(run, "--lr", "0.01", "--batch-size", "64", "--latent-dim", "4", "--resume", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert "batch_size 32 → 64; latent_dim 2 → 4; lr 0.001 → 0.01;" in err


def test_a_conditioner_changed_on_resume_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert train(run, "--model", "cvae", "--epochs", "1")[0] == 0
    status, err = train(run, "--model", "cvae", "--conditioner", "film", "--resume", capsys=capsys)
    assert status == 1 and 'conditioner "split" → "film"' in err


def test_more_epochs_continue_the_run_and_clear_the_stop_reason(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    run_id = RunDir(run).config()["run_id"]
    assert train(run, "--epochs", "3", "--device", "auto", "--resume")[0] == 0  # the device may change
    metrics, config = RunDir(run).metrics(), RunDir(run).config()
    assert metrics["epochs"] == 3 and metrics["status"] == "complete" and metrics["stop_reason"] == ""
    assert config["epochs"] == 3 and config["run_id"] == run_id and config["device"] == "auto"
    assert [r["epoch"] for r in RunDir(run).history()] == [1, 2, 3]


def test_resuming_without_a_checkpoint_is_refused(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    shutil.rmtree(run / "checkpoints")
    status, err = train(run, "--resume", capsys=capsys)
    assert status == 1
    assert err.endswith(
        "holds a finished run (2 epochs) but no checkpoint to resume from; start again with --overwrite\n"
    )


def test_a_checkpoint_that_does_not_fit_the_run_is_a_clear_error(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    payload = gv.training.read_checkpoint(last)
    payload["model_state"] = {k: v[..., :1] for k, v in payload["model_state"].items()}  # valid checksum, bad content
    gv.training.write_checkpoint(last, payload)
    status, err = train(run, "--epochs", "3", "--resume", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"genvae train: error: {last}: the checkpoint's weights do not fit this model (size mismatch")


# -- one writer at a time --------------------------------------------------------------------------


def test_a_second_writer_is_refused_naming_the_holder(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    with RunDir(run).lock():  # a writer: this process, through another open file
        status, err = train(run, "--overwrite", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(
        f"genvae train: error: {run}: in use by another genvae process (PID {os.getpid()} on {socket.gethostname()}, "
        "started 20"
    )
    assert RunDir(run).config()["seed"] == 0


def test_a_lock_left_by_a_dead_process_is_taken_over(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    record = {"pid": pid, "host": socket.gethostname(), "started": "2026-01-01T00:00:00+00:00"}
    (run / ".lock").write_text(json.dumps(record))
    status, err = train(run, "--overwrite", capsys=capsys)
    assert status == 0, err
    assert err == (
        f"genvae: took over the lock of {run} left by PID {pid} on {socket.gethostname()}, started "
        "2026-01-01T00:00:00+00:00, which ended without releasing it\n"
    )
    assert (run / ".lock").read_text().strip() == ""  # released cleanly: no holder (the file is never truncated)


def test_a_folder_holding_only_a_free_lock_is_removed_as_unused(tmp_path: Path) -> None:
    run = RunDir(tmp_path / "run")
    with run.lock():  # a run that stopped before it started: the lock file alone
        assert not run.remove_if_unused()  # held (by another open file): left as it is
    (tmp_path / "run" / "notes.txt").write_text("mine")
    assert not run.remove_if_unused() and (tmp_path / "run" / ".lock").exists()  # something else there
    (tmp_path / "run" / "notes.txt").unlink()
    assert run.remove_if_unused() and not (tmp_path / "run").exists()


# -- divergence is never published -----------------------------------------------------------------


def test_a_run_that_diverges_publishes_its_last_finite_state(tmp_path: Path, nan_module: Path) -> None:
    run = tmp_path / "run"
    status = main(["--import", str(nan_module), "train", *TINY, "--train-size", "256", "--epochs", "4",
                   "--likelihood", "test_nan_after", "--out", str(run)])  # fmt: skip
    assert status == 1
    metrics = RunDir(run).metrics()
    assert metrics["status"] == "diverged" and metrics["diverged"] == {
        "epoch": 3,
        "term": "train_total",
        "value": "nan",
    }
    assert metrics["epochs"] == 2 and len(RunDir(run).history()) == 2
    model = gv.load(run)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    checkpoint = gv.training.read_checkpoint(run / "checkpoints" / "last.ckpt")  # the end of epoch 2
    assert checkpoint["state"]["epoch"] == 2
    assert all(torch.equal(v, checkpoint["model_state"][k]) for k, v in model.state_dict().items())
    assert RunDir(run).config()["imports"] == [str(nan_module)]


def test_the_command_line_names_the_divergence_and_the_report_says_what_happened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["train", *[a for a in TINY if a != "--no-report"], "--lr", "5", "--quick-report", "--out", str(run)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("genvae train: error: training diverged: train_total was nan in epoch 1; ")
    assert err.endswith(f"the last finite state is published in {run}\n")
    assert RunDir(run).status() == "diverged" and len(RunDir(run).history()) == 0
    assert all(torch.isfinite(p).all() for p in gv.load(run).parameters())  # the initial weights
    page = (run / "report.html").read_text()
    assert "<strong>Training diverged:</strong> training diverged: train_total was nan in epoch 1" in page


def test_a_run_that_diverges_through_the_api_raises_and_publishes(tmp_path: Path, nan_module: Path) -> None:
    runpy.run_path(str(nan_module))  # registers the likelihood
    config = TrainConfig(likelihood="test_nan_after", train_size=256, test_size=32, epochs=4, device="cpu")
    with pytest.raises(gv.DivergenceError) as info:
        train_run(config, tmp_path / "run", quiet=True)
    assert info.value.epoch == 3 and info.value.term == "train_total" and math.isnan(info.value.value)
    assert RunDir(tmp_path / "run").status() == "diverged"


# -- runs of the earlier flat layout -----------------------------------------------------------------


def flatten(run: Path) -> None:
    """Turn a run into the layout genvae 0.1 wrote: every file directly in the run directory."""
    from tests.test_config import write_format_1

    model = gv.load(run)
    for name in ("config.json", "history.csv", "metrics.json"):
        data = (run / name).read_bytes()
        (run / name).unlink()
        (run / name).write_bytes(data)
    (run / "model.json").unlink()
    write_format_1(model, run)
    shutil.rmtree(run / "published")
    (run / "checkpoints" / "config.json").unlink()


def test_a_run_in_the_flat_layout_is_read_and_moved_into_the_layout(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    flatten(run)
    before = snapshot(run)
    assert RunDir(run).status() == "complete" and RunDir(run).training_config()["seed"] == 0
    assert train(run, "--epochs", "3", "--resume")[0] == 0
    assert all((run / n).is_symlink() for n in PUBLISHED) and published_together(run)
    assert not (run / "weights.pt").exists() and len(RunDir(run).history()) == 3
    assert before["config.json"] != (run / "config.json").read_bytes()


def test_the_refusal_says_when_an_unfinished_training_is_beside_the_published_run(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    training = json.loads((run / "checkpoints" / "config.json").read_text())
    (run / "checkpoints" / "config.json").write_text(
        json.dumps({**training, "run_id": "another"})
    )  # an --overwrite, killed
    status, err = train(run, capsys=capsys)
    assert status == 1
    assert "holds a finished run (2 epochs) and the unfinished training of another; continue it with --resume" in err
