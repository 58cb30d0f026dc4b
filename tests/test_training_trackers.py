"""genvae.training.trackers: MLflowLogger against a real tracking server started here (and the file
store), WandbLogger in offline mode, each read back through the tracker's own reader (MlflowClient;
the offline run's record file); and ``genvae train --mlflow`` / ``--wandb``."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.runs import RunDir
from genvae.training import Callback, MLflowLogger, ModelCheckpoint, TrackerError, WandbLogger
from genvae.training.trackers import flat_params, redacted_uri
from tests.helpers import tiny_data, tiny_vae

CLI_RUN = ["--dataset", "synthetic-digits", "--train-size", "64", "--test-size", "32", "--batch-size", "32",
           "--quiet", "--no-report"]  # fmt: skip


def fit(callbacks: list[Callback], epochs: int = 3, resume_from: Path | None = None, **kwargs: Any) -> gv.Trainer:
    """A tiny VAE trained for ``epochs`` epochs (2 steps each) with validation data and ``callbacks``."""
    x, _ = tiny_data(8)
    trainer = gv.Trainer(
        tiny_vae(), max_epochs=epochs, batch_size=4, device="cpu", seed=0, quiet=True, callbacks=callbacks, **kwargs
    )
    trainer.fit(x, x[:4], resume_from=resume_from)
    return trainer


def assert_same_model(folder: str | Path, model: torch.nn.Module) -> None:
    loaded = gv.load(folder)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


class InterruptAt(Callback):
    """Ask for a Ctrl-C stop at the ``step``-th optimiser step of the run, as the first Ctrl-C does."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_batch_end(self, trainer: gv.Trainer, step: int, terms: Any) -> None:
        if trainer.state.global_step == self.step:
            trainer.interrupt_requested = True


# -- MLflow: the tracking server and the file store -----------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_healthy(uri: str, process: subprocess.Popen[bytes], log: Path, deadline_s: float = 240) -> None:
    """Ask ``/health`` until the server answers OK; between two asks, wait on the server's pidfd, so
    a server that exits ends the wait at once, with its log."""
    pidfd = os.pidfd_open(process.pid)
    try:
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=10) as answer:
                    if answer.status == 200 and answer.read().strip() == b"OK":
                        return
            except OSError:  # not listening yet
                pass
            exited, _, _ = select.select([pidfd], [], [], 0.25)
            if exited:
                raise AssertionError(f"the MLflow server exited ({process.wait()}): {log.read_text()[-3000:]}")
        raise AssertionError(f"no answer from {uri}/health in {deadline_s} s: {log.read_text()[-3000:]}")
    finally:
        os.close(pidfd)


def stop(process: subprocess.Popen[bytes]) -> None:
    """End the server and its workers (its own session, started by the fixture), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # a worker that outlived the server
        process.wait()


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real MLflow tracking server on 127.0.0.1 (SQLite backend, artifacts served by it), for the module."""
    pytest.importorskip("mlflow.server", reason="the MLflow server needs the full mlflow package")
    folder = tmp_path_factory.mktemp("mlflow-server")
    port, log = free_port(), folder / "server.log"
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
               "--artifacts-destination", str(folder / "artifacts")]  # fmt: skip
    # no background job workers (the server's optional job queue): a plain tracking server, started in half the time
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "NO_PROXY": "127.0.0.1,localhost"}
    with log.open("wb") as output:
        process = subprocess.Popen(
            command, stdout=output, stderr=subprocess.STDOUT, cwd=folder, env=env, start_new_session=True
        )
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_until_healthy(uri, process, log)
        yield uri
    finally:
        stop(process)


@pytest.fixture
def file_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``file://`` tracking store (MLflow 3 refuses new file stores unless told that one is wanted)."""
    pytest.importorskip("mlflow")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return (tmp_path / "mlruns").as_uri()


def client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def metric_steps(uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client(uri).get_metric_history(run_id, key))


def check_logged_run(uri: str, logger: MLflowLogger, trainer: gv.Trainer, tmp_path: Path) -> None:
    """Every History column per epoch, the Trainer's settings as parameters, the model as an artifact."""
    run = client(uri).get_run(logger.run_id)
    assert run.info.status == "FINISHED"
    assert set(run.data.metrics) == set(trainer.history.keys()) - {"epoch"}
    for key in ("train_total", "val_kl", "time"):
        steps = metric_steps(uri, run.info.run_id, key)
        assert [step for step, _ in steps] == [1, 2, 3]
        assert [value for _, value in steps] == pytest.approx(trainer.history[key], rel=1e-6)
    params = run.data.params
    assert params["trainer.batch_size"] == "4" and params["trainer.max_epochs"] == "3"
    assert params["model.genvae"] == "models/vae" and params["model.latent_dim"] == "2"
    assert params["trainer.objective.beta"] == "1.0"
    folder = client(uri).download_artifacts(run.info.run_id, "model", str(tmp_path / "download"))
    assert_same_model(folder, trainer.model)


@pytest.mark.slow  # the server takes 15 to 30 s to start on 2 shared cores
def test_a_tracking_server_receives_the_figures_the_settings_and_the_model(mlflow_server: str, tmp_path: Path) -> None:
    logger = MLflowLogger(mlflow_server, experiment="trackers", run_name="tiny")
    trainer = fit([logger])
    check_logged_run(mlflow_server, logger, trainer, tmp_path)
    run = client(mlflow_server).get_run(logger.run_id)
    assert run.info.run_name == "tiny" and run.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server
    assert client(mlflow_server).get_experiment(logger.experiment_id).name == "trackers"


@pytest.mark.slow
def test_a_resumed_training_continues_its_run_on_the_server(mlflow_server: str, tmp_path: Path) -> None:
    checkpoints = ModelCheckpoint(tmp_path / "ckpt")
    first = MLflowLogger(mlflow_server, experiment="resume")
    fit([first, checkpoints, InterruptAt(3)])  # Ctrl-C in epoch 2
    assert client(mlflow_server).get_run(first.run_id).info.status == "KILLED"
    assert not client(mlflow_server).list_artifacts(first.run_id)  # an interrupted run logs no model
    second = MLflowLogger(mlflow_server, experiment="resume")
    trainer = fit([second, ModelCheckpoint(tmp_path / "ckpt")], resume_from=checkpoints.last_path)
    assert second.run_id == first.run_id
    check_logged_run(mlflow_server, second, trainer, tmp_path)


@pytest.mark.slow
def test_genvae_train_logs_to_the_server_and_keeps_the_password_out_of_its_files(
    mlflow_server: str, tmp_path: Path
) -> None:
    uri = mlflow_server.replace("http://", "http://someone:hunter2@")  # a server without auth ignores them
    out = tmp_path / "run"
    flags = ["--mlflow", uri, "--mlflow-experiment", "cli"]
    assert main(["train", *CLI_RUN, "--epochs", "1", *flags, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["mlflow"] == mlflow_server.replace("http://", "http://***@")
    assert "hunter2" not in "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    run = client(mlflow_server).get_run(config["trackers"]["mlflow"])
    assert run.info.run_name == "run" and run.data.params["model"] == "vae" and "mlflow" not in run.data.params
    assert [step for step, _ in metric_steps(mlflow_server, run.info.run_id, "val_total")] == [1]


def test_the_file_store_receives_the_figures_the_settings_and_the_model(file_store: str, tmp_path: Path) -> None:
    logger = MLflowLogger(file_store, experiment="files")
    trainer = fit([logger])
    check_logged_run(file_store, logger, trainer, tmp_path)


def test_a_checkpoint_carries_the_run_id_and_a_given_run_id_continues_a_run(file_store: str, tmp_path: Path) -> None:
    checkpoints = ModelCheckpoint(tmp_path / "ckpt")
    first = MLflowLogger(file_store)
    fit([first, checkpoints], epochs=2)
    assert gv.training.read_checkpoint(checkpoints.last_path)["callbacks"][first.state_key] == {"run_id": first.run_id}
    again = MLflowLogger(file_store)
    fit([again, ModelCheckpoint(tmp_path / "ckpt")], epochs=3, resume_from=checkpoints.last_path)
    assert again.run_id == first.run_id
    assert [step for step, _ in metric_steps(file_store, first.run_id, "train_total")] == [1, 2, 3]
    # MLflow keeps a parameter's first value: the resume logged max_epochs 2 → 3 nowhere, and did not fail
    assert client(file_store).get_run(first.run_id).data.params["trainer.max_epochs"] == "2"
    explicit = MLflowLogger(file_store, run_id=first.run_id, params={"note": "more"}, log_model=False)
    fit([explicit], epochs=1)
    assert client(file_store).get_run(first.run_id).data.params["note"] == "more"


def test_a_diverging_run_is_failed_and_logs_its_last_finite_model(file_store: str, tmp_path: Path) -> None:
    calls = {"n": 0}

    def kl(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return gv.losses.get("kl")(out, x) * (math.nan if calls["n"] > 4 else 1.0)

    logger = MLflowLogger(file_store)
    with pytest.raises(gv.DivergenceError):
        fit([logger], objective=gv.ELBO(kl=kl))
    run = client(file_store).get_run(logger.run_id)
    assert run.info.status == "FAILED"
    assert [step for step, _ in metric_steps(file_store, logger.run_id, "train_total")] == [1]
    assert [a.path for a in client(file_store).list_artifacts(logger.run_id)] == ["model"]


def test_fit_called_while_another_exception_is_handled_still_finishes_its_run(file_store: str) -> None:
    logger = MLflowLogger(file_store, log_model=False)
    try:
        raise KeyError("handled by the caller, around fit")
    except KeyError:
        fit([logger], epochs=1)
    assert client(file_store).get_run(logger.run_id).info.status == "FINISHED"


def test_an_unknown_run_or_an_unusable_store_is_one_line_naming_the_logger(file_store: str, tmp_path: Path) -> None:
    with pytest.raises(TrackerError, match=r"^MLflowLogger: could not open the run: .*not found"):
        fit([MLflowLogger(file_store, run_id="0123456789abcdef0123456789abcdef")])
    (tmp_path / "a-file").write_text("")
    with pytest.raises(TrackerError, match=r"^MLflowLogger: could not open the run: "):
        fit([MLflowLogger((tmp_path / "a-file").as_uri())])
    with pytest.raises(ValueError, match=r"experiment: expected an experiment's name, got ''"):
        MLflowLogger(file_store, experiment="")


def test_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # import mlflow.tracking fails
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"^MLflowLogger needs the mlflow package: pip install 'genvae\[mlflow\]'$"):
        MLflowLogger("sqlite:///x.db")
    with pytest.raises(ImportError, match=r"^WandbLogger needs the wandb package: pip install 'genvae\[wandb\]'$"):
        WandbLogger("p")
    assert main(["train", *CLI_RUN, "--wandb", "p", "--out", str(tmp_path / "r")]) == 1
    assert not (tmp_path / "r" / "config.json").exists()


def test_genvae_train_refuses_an_unreachable_tracker_before_writing_anything(
    file_store: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # MLflow's own retries would take minutes
    out = tmp_path / "run"
    assert main(["train", *CLI_RUN, "--mlflow", f"http://127.0.0.1:{free_port()}", "--out", str(out)]) == 1
    error = capsys.readouterr().err
    assert error.startswith("genvae train: error: MLflowLogger: could not connect: ") and error.count("\n") == 1
    assert not (out / "checkpoints").exists() and not RunDir(out).holds_run()


def test_params_are_flattened_and_passwords_redacted() -> None:
    assert flat_params({"a": {"b": None, "c": True}, "long": "x" * 600, "empty": {}}) == {
        "a.b": "null", "a.c": "true", "long": "x" * 499 + "…", "empty": "{}",
    }  # fmt: skip
    assert redacted_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"
    assert redacted_uri("databricks://profile") == "databricks://profile"
    assert redacted_uri("https://u:p@host/x?y=1") == "https://***@host/x?y=1"


def test_genvae_train_resumes_with_other_tracker_flags_and_continues_the_same_run(
    file_store: str, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert main(["train", *CLI_RUN, "--epochs", "1", "--mlflow", file_store, "--out", str(out)]) == 0
    first = json.loads((out / "config.json").read_text())
    run_id = first["trackers"]["mlflow"]
    assert (first["mlflow"], first["mlflow_experiment"]) == (file_store, "genvae")
    # with the same flag, the checkpoint's run continues
    assert main(["train", *CLI_RUN, "--epochs", "2", "--mlflow", file_store, "--out", str(out), "--resume"]) == 0
    assert json.loads((out / "config.json").read_text())["trackers"] == {"mlflow": run_id}
    assert [step for step, _ in metric_steps(file_store, run_id, "train_total")] == [1, 2]
    assert client(file_store).get_run(run_id).data.params["dataset"] == "synthetic-digits"
    # a resume without it is not refused, and logs nowhere (its checkpoints no longer name the run)
    assert main(["train", *CLI_RUN, "--epochs", "3", "--out", str(out), "--resume"]) == 0
    third = json.loads((out / "config.json").read_text())
    assert (third["mlflow"], third["trackers"]) == (None, {})
    assert [step for step, _ in metric_steps(file_store, run_id, "train_total")] == [1, 2]


# -- W&B, offline ------------------------------------------------------------------------------


@pytest.fixture
def wandb_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """W&B's own folders (settings, cache, staged artifacts) in the test's folder, no network. W&B
    reads its environment once per process session, so the session is ended after the test."""
    wandb = pytest.importorskip("wandb")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))  # where a run without dir= writes (W&B's default: ./wandb)
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_PROJECT", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(name, raising=False)
    wandb.teardown()
    yield tmp_path / "wandb-dir"
    wandb.teardown()


def wandb_records(run_file: Path) -> Iterator[Any]:
    """The records of an offline run's ``run-<id>.wandb`` file: W&B's log format (LevelDB's: 32 KiB
    blocks of chunks, each behind a 7-byte header: checksum, length, kind), one protobuf Record per
    record, after the 7-byte file header ``:W&B``, 0xBEE1, version 0."""
    from wandb.proto import wandb_internal_pb2

    data, block = run_file.read_bytes(), 32 * 1024
    assert data[:4] == b":W&B", data[:7]
    position, pending = 7, b""
    while position + 7 <= len(data):
        if block - position % block < 7:  # too little room left for a header: the block's padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last chunk of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def offline_run(folder: Path, run_id: str) -> dict[str, Any]:
    """What an offline run logged: its id, project and name, config, history rows and artifacts."""
    import wandb

    wandb.teardown()  # returns when W&B's service has written out every run (a finished run's file may lag)
    (run_file,) = folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")
    found: dict[str, Any] = {"config": {}, "history": [], "artifacts": []}
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            found["run"] = record.run
        elif kind == "config":
            found["config"].update({item.key: json.loads(item.value_json) for item in record.config.update})
        elif kind == "history":
            found["history"].append({i.nested_key[0] if i.nested_key else i.key: json.loads(i.value_json)
                                     for i in record.history.item})  # fmt: skip
        elif kind == "artifact":
            found["artifacts"].append(record.artifact)
    return found


def test_an_offline_wandb_run_holds_the_config_the_figures_and_the_model(wandb_home: Path, tmp_path: Path) -> None:
    logger = WandbLogger("genvae-tests", mode="offline", dir=str(wandb_home), name="tiny")
    trainer = fit([logger])
    logged = offline_run(wandb_home, logger.run_id)
    run = logged["run"]
    assert (run.project, run.display_name, run.run_id) == ("genvae-tests", "tiny", logger.run_id)
    assert logged["config"]["trainer"]["batch_size"] == 4 and logged["config"]["model"]["latent_dim"] == 2
    rows = logged["history"]
    assert [row["_step"] for row in rows] == [row["epoch"] for row in rows] == [1, 2, 3]
    for key in ("train_total", "val_recon", "time"):
        assert [row[key] for row in rows] == pytest.approx(trainer.history[key], rel=1e-6)
    (artifact,) = logged["artifacts"]
    assert (artifact.type, artifact.name) == ("model", f"model-{logger.run_id}")
    model = tmp_path / "model"
    model.mkdir()
    for entry in artifact.manifest.contents:  # the staged copies W&B uploads at `wandb sync`
        (model / entry.path).write_bytes(Path(entry.local_path).read_bytes())
    assert_same_model(model, trainer.model)


def test_a_resumed_training_reopens_its_wandb_run(wandb_home: Path, tmp_path: Path) -> None:
    checkpoints = ModelCheckpoint(tmp_path / "ckpt")
    first = WandbLogger("genvae-tests", mode="offline", dir=str(wandb_home))
    fit([first, checkpoints, InterruptAt(3)])
    assert offline_run(wandb_home, first.run_id)["artifacts"] == []  # interrupted: no model
    # W&B names an offline run's folder by the second it started in; a real resume comes later than the
    # same second, so wait for the clock to turn rather than let a fast machine reuse the first folder.
    time.sleep(1.05 - time.time() % 1)
    second = WandbLogger("genvae-tests", mode="offline", dir=str(wandb_home))
    fit([second, ModelCheckpoint(tmp_path / "ckpt")], resume_from=checkpoints.last_path)
    assert second.run_id == first.run_id
    assert len(list(wandb_home.glob(f"wandb/offline-run-*-{first.run_id}"))) == 2  # `wandb sync` joins them
    with pytest.raises(ValueError, match=r"mode: expected one of online, offline, disabled, got 'dryrun'"):
        WandbLogger("p", mode="dryrun")


def test_genvae_train_logs_to_wandb_offline(wandb_home: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    assert main(["train", *CLI_RUN, "--epochs", "1", "--wandb", "cli", "--wandb-mode", "offline", "--out", out]) == 0
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert (config["wandb"], config["wandb_mode"]) == ("cli", "offline")
    logged = offline_run(tmp_path, config["trackers"]["wandb"])
    assert logged["config"]["model"] == "vae" and logged["config"]["train_data"]["size"] == 64
    assert [row["epoch"] for row in logged["history"]] == [1]
