"""DDP through torchrun: two CPU processes (gloo, on 127.0.0.1) end where one process ends."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import genvae as gv
from tests.helpers import SAFETY_TIMEOUT

WORKER = Path(__file__).with_name("ddp_worker.py")
sys.path.insert(0, str(WORKER.parent))
from ddp_worker import build  # noqa: E402

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")


def torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env.pop("WORLD_SIZE", None)
    return env


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    paths = {"ddp": tmp_path_factory.mktemp("ddp"), "single": tmp_path_factory.mktemp("single")}
    for command in (torchrun(str(WORKER), str(paths["ddp"])), [sys.executable, str(WORKER), str(paths["single"])]):
        done = subprocess.run(
            command, env=environment(), capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    return paths


def test_two_processes_end_with_the_parameters_of_one(runs: dict[str, Path]) -> None:
    ddp = torch.load(runs["ddp"] / "result.pt", weights_only=True)
    single = torch.load(runs["single"] / "result.pt", weights_only=True)
    assert ddp["world_size"] == 2 and single["world_size"] == 1
    for key, value in single["state"].items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-6)
    for a, b in zip(ddp["history"], single["history"], strict=True):
        for key in ("train_total", "val_total", "val_kl"):  # figures reduced across the ranks
            assert a[key] == pytest.approx(b[key], rel=1e-5)


def test_a_checkpoint_written_under_ddp_loads_in_one_process(runs: dict[str, Path]) -> None:
    model = build()
    trainer = gv.Trainer(model, max_epochs=3, batch_size=8, device="cpu")
    trainer.load_checkpoint(runs["ddp"] / "checkpoints" / "last.ckpt")
    ddp = torch.load(runs["ddp"] / "result.pt", weights_only=True)
    assert trainer.state.epoch == 3
    assert all(torch.equal(v, ddp["state"][k]) for k, v in model.state_dict().items())
    assert not any(k.startswith("module.") for k in model.state_dict())


@pytest.fixture(scope="module")
def agreed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[int, dict[str, object]], str]:
    """What each rank saw when rank 1 alone decided to stop, or alone saw a NaN; and the output."""
    out = tmp_path_factory.mktemp("agree")
    with subprocess.Popen(torchrun(str(WORKER), str(out), "agree"), env=environment(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as process:  # fmt: skip
        try:
            stdout, stderr = process.communicate(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            # ranks that disagree wait for each other forever; SIGTERM makes torchrun end them (each
            # runs in a process group of its own, which a SIGKILL of torchrun would leave running)
            process.terminate()
            process.communicate(timeout=SAFETY_TIMEOUT)
            raise
    assert process.returncode == 0, stdout + stderr
    return {rank: torch.load(out / f"rank{rank}.pt", weights_only=False) for rank in (0, 1)}, stderr


def test_a_stop_decided_on_one_rank_stops_every_rank_after_the_same_epoch(
    agreed: tuple[dict[int, dict[str, object]], str],
) -> None:
    ranks, _ = agreed
    reason = "StopOnRank: rank 1 asked to stop after epoch 2"
    assert ranks[0]["stop"] == ranks[1]["stop"] == (2, reason)


def test_a_nan_on_one_rank_diverges_every_rank_in_the_same_epoch(
    agreed: tuple[dict[int, dict[str, object]], str],
) -> None:
    ranks, _ = agreed
    assert ranks[0]["nan"] == ranks[1]["nan"]
    assert ranks[0]["nan"][0] == 1 and ranks[0]["nan"][1][0] == 2  # type: ignore[index]


def test_only_rank_0_prints_the_trainers_lines(agreed: tuple[dict[int, dict[str, object]], str]) -> None:
    _, stderr = agreed
    assert stderr.count("epoch 1/4: train_total ") == 2  # once per run: rank 0's EpochLog alone
    assert stderr.count("epoch 2/4: train_total ") == 1  # the stopped run's second epoch (the other diverged)


def test_genvae_train_runs_under_torchrun(tmp_path: Path) -> None:
    run = tmp_path / "run"
    args = ["-m", "genvae", "train", "--dataset", "synthetic-digits", "--train-size", "256", "--test-size", "64",
            "--epochs", "1", "--quiet", "--no-report", "--device", "cpu", "--out", str(run)]  # fmt: skip
    env = environment()
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    done = subprocess.run(torchrun(*args), env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("genvae train: wrote") == 1  # both ranks finish (exit 0); rank 0 alone says so
    assert gv.load(run).latent_dim == 2
    assert len(gv.History.from_csv(run / "history.csv")) == 1


def test_channels_last_under_ddp_ends_where_one_contiguous_process_ends(tmp_path: Path) -> None:
    ddp_out, single_out = tmp_path / "ddp", tmp_path / "single"
    ddp_out.mkdir(), single_out.mkdir()
    commands = (torchrun(str(WORKER), str(ddp_out), "conv", "channels-last"),
                [sys.executable, str(WORKER), str(single_out), "conv", "contiguous"])  # fmt: skip
    for command in commands:
        done = subprocess.run(
            command, env=environment(), capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
    ddp = torch.load(ddp_out / "result.pt", weights_only=True)
    single = torch.load(single_out / "result.pt", weights_only=True)
    assert (ddp["world_size"], ddp["channels_last"]) == (2, True)
    assert (single["world_size"], single["channels_last"]) == (1, False)
    for key, value in single["state"].items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-4, atol=1e-5)
    for a, b in zip(ddp["history"], single["history"], strict=True):
        assert a["train_total"] == pytest.approx(b["train_total"], rel=1e-4)
