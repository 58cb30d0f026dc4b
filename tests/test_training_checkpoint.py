"""genvae.training.checkpoint: best.ckpt and last.ckpt, reading a checkpoint back (every field is
checked: a crafted file with a valid checksum is refused, naming the file and the field; only a
regular file is read), and a resume from one."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae.cli import main
from genvae.runs import RunDir
from genvae.training import (
    CheckpointError,
    EarlyStopping,
    KLWarmup,
    ModelCheckpoint,
    read_checkpoint,
    write_checkpoint,
)
from genvae.training.checkpoint import existing_checkpoint
from tests.helpers import params, tiny_data, tiny_vae

Edit = Callable[[dict[str, Any]], None]


def trainer(directory: Path, max_epochs: int = 3) -> gv.Trainer:
    callbacks = [EarlyStopping("train_total", patience=5), ModelCheckpoint(directory)]
    return gv.Trainer(tiny_vae(), max_epochs=max_epochs, batch_size=4, device="cpu", seed=0, callbacks=callbacks,
                      quiet=True)  # fmt: skip


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The payload of a real checkpoint after 2 epochs of 2 steps (8 samples, batches of 4)."""
    directory = tmp_path_factory.mktemp("ckpt")
    trainer(directory, max_epochs=2).fit(tiny_data(8)[0])
    return read_checkpoint(directory / "last.ckpt")


def crafted(tmp_path: Path, payload: dict[str, Any], edit: Edit) -> Path:
    """``payload`` changed by ``edit`` and written with a valid checksum."""
    copy = lambda v: dict(v) if isinstance(v, dict) else list(v) if isinstance(v, list) else v  # noqa: E731
    changed = {k: copy(v) for k, v in payload.items()}
    changed["history"] = [dict(r) for r in changed["history"]]
    changed["rng"] = dict(changed["rng"])
    edit(changed)
    path = tmp_path / "last.ckpt"
    write_checkpoint(path, changed)
    return path


def setter(*keys: Any, value: Any) -> Edit:
    def edit(payload: dict[str, Any]) -> None:
        target = payload
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


CRAFTED: list[tuple[str, Edit, str]] = [
    ("negative epoch", setter("state", "epoch", value=-5), r"state\.epoch: expected an integer >= 0, got -5"),
    ("epoch as text", setter("state", "epoch", value="one"), r"state\.epoch: expected an integer >= 0, got 'one'"),
    ("epoch as bool", setter("state", "epoch", value=True), r"state\.epoch: expected an integer >= 0, got True"),
    ("fractional step count", setter("state", "global_step", value=4.5), r"state\.global_step: expected an integer"),
    ("fewer steps than epochs", setter("state", "global_step", value=1), r"state\.global_step: expected at least 2"),
    ("a step beyond the data", setter("state", "step_in_epoch", value=7),
     r"state\.step_in_epoch: expected below 2 \(the steps of an epoch of this data\), got 7"),
    ("stop reason not text", setter("state", "stop_reason", value=3), r"state\.stop_reason: expected str, got int"),
    ("a missing counter", lambda p: p["state"].pop("global_step"), r"state: expected the keys epoch, global_step"),
    ("history running 1, -4", setter("history", 1, "epoch", value=-4),
     r"history\[1\]: expected the record of epoch 2, got -4"),
    ("history longer than the epochs", setter("state", "epoch", value=1), r"history: expected 1 records"),
    ("a figure as text", setter("history", 0, "train_total", value="abc"),
     r"history\[0\]\.train_total: expected a number, got 'abc'"),
    ("a figure that is NaN", setter("history", 0, "train_kl", value=float("nan")),
     r"history\[0\]\.train_kl: expected a finite number"),
    ("weights not a dict", setter("model_state", value=[1, 2]), r"model_state: expected dict, got list"),
    ("a weight not a tensor", setter("model_state", "decoder.extra", value=3.0), r"model_state: expected tensors"),
    ("no optimiser", lambda p: p.pop("optimizer_state"), r"optimizer_state: expected dict, got nothing"),
    ("optimiser groups not a list", setter("optimizer_state", "param_groups", value="x"), r"optimizer_state: "),
    ("a random state as text", setter("rng", "torch", value="seed"),
     r"rng\.torch: expected a random generator's state \(uint8 tensor\), got str"),
    ("a random state of floats", setter("rng", "shuffle", value=torch.zeros(5)), r"rng\.shuffle: expected"),
    ("callback state not a dict", setter("callbacks", "EarlyStopping{monitor='train_total'}", value=[1]),
     r"callbacks: expected a dict of state dicts"),
    ("callback state of the wrong kind", setter("callbacks", "EarlyStopping{monitor='train_total'}",
     value={"best": "low", "wait": 0}), r"callbacks\[\"EarlyStopping\{monitor='train_total'\}\"\]: does not fit"),
    ("objective not a dict", setter("objective", value=[0.5]), r"objective: expected dict or None, got list"),
    ("mid-epoch without running sums", setter("state", "step_in_epoch", value=1),
     r"partial: expected the running sums of the interrupted epoch, got None"),
]  # fmt: skip


@pytest.mark.parametrize(("edit", "message"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_a_crafted_field_with_a_valid_checksum_is_refused_naming_the_file_and_the_field(
    tmp_path: Path, written: dict[str, Any], edit: Edit, message: str
) -> None:
    path = crafted(tmp_path, written, edit)
    resumed = trainer(tmp_path / "new")
    before = [p.detach().clone() for p in resumed.model.parameters()]
    with pytest.raises(CheckpointError) as info:
        resumed.fit(tiny_data(8)[0], resume_from=path)
    assert re.match(rf"^{re.escape(str(path))}: {message}", str(info.value)), str(info.value)
    assert "\n" not in str(info.value)
    assert resumed.state.epoch == 0 and len(resumed.history) == 0  # nothing was taken from the file
    assert all(torch.equal(a, b) for a, b in zip(before, resumed.model.parameters(), strict=True))


def test_the_checkpoint_as_written_resumes(tmp_path: Path, written: dict[str, Any]) -> None:
    path = crafted(tmp_path, written, lambda p: None)
    resumed = trainer(tmp_path / "new")
    history = resumed.fit(tiny_data(8)[0], resume_from=path)
    assert [r["epoch"] for r in history] == [1, 2, 3]


def test_a_resume_of_the_command_line_refuses_a_crafted_epoch_and_publishes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The attack of issue 26: `epoch = -5` behind a valid checksum was resumed and published as complete."""
    run = tmp_path / "run"
    tiny = ["--dataset", "synthetic-digits", "--train-size", "48", "--test-size", "16", "--quiet", "--no-report",
            "--device", "cpu", "--out", str(run)]  # fmt: skip
    assert main(["train", *tiny, "--epochs", "1"]) == 0
    last = RunDir(run).last_checkpoint
    crafted_path = crafted(tmp_path, read_checkpoint(last), setter("state", "epoch", value=-5))
    os.replace(crafted_path, last)
    metrics = (run / "metrics.json").read_bytes()
    capsys.readouterr()
    assert main(["train", *tiny, "--epochs", "3", "--resume"]) == 1
    err = capsys.readouterr().err
    assert err == f"genvae train: error: {last}: state.epoch: expected an integer >= 0, got -5\n"
    assert (run / "metrics.json").read_bytes() == metrics  # the published run is the one before


# -- what is at the path ---------------------------------------------------------------------------


def not_regular(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "last.ckpt"
    if kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "link to /dev/zero":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(tmp_path / "gone")
    return path


KINDS = {
    "directory": "a directory",
    "FIFO": "a FIFO",
    "link to /dev/zero": "a character device",
    "dangling link": "a link to nothing",
}


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="POSIX only")
@pytest.mark.parametrize("kind", list(KINDS))
def test_a_last_ckpt_that_is_not_a_file_is_refused_not_taken_for_none(tmp_path: Path, kind: str) -> None:
    path = not_regular(tmp_path, kind)
    expected = rf"^{re.escape(str(path))}: expected a checkpoint file, got {KINDS[kind]}$"
    with pytest.raises(CheckpointError, match=expected):
        existing_checkpoint(path)
    if kind != "dangling link":  # reading refuses it too, at once (no wait for a FIFO's writer, no endless read)
        with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: expected a checkpoint file, got "):
            read_checkpoint(path)
        with pytest.raises(CheckpointError, match=re.escape(str(path))):
            trainer(tmp_path / "new").fit(tiny_data(8)[0], resume_from=path)


def test_existing_checkpoint_is_none_only_when_nothing_is_there(tmp_path: Path) -> None:
    assert existing_checkpoint(tmp_path / "last.ckpt") is None
    write_checkpoint(tmp_path / "real.ckpt", {"format": 1})
    (tmp_path / "last.ckpt").symlink_to(tmp_path / "real.ckpt")
    assert existing_checkpoint(tmp_path / "last.ckpt") == tmp_path / "last.ckpt"
    assert read_checkpoint(tmp_path / "last.ckpt") == {"format": 1}
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "missing.ckpt")


# -- best and last, a corrupted file, and a resume (moved from the Trainer's tests) ----------------


def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    ds = gv.data.ImageDataset(*tiny_data(30), num_classes=3).binarized("sample")

    def trainer(model: gv.VAE, epochs: int, directory: Path) -> gv.Trainer:
        callbacks = [ModelCheckpoint(directory), EarlyStopping(patience=10), KLWarmup(epochs=3)]
        return gv.Trainer(model, max_epochs=epochs, batch_size=4, device="cpu", seed=5, callbacks=callbacks)

    full = tiny_vae()
    full_history = trainer(full, 5, tmp_path / "full").fit(ds, ds)

    interrupted = tiny_vae()
    trainer(interrupted, 2, tmp_path / "part").fit(ds, ds)  # "killed" after epoch 2
    resumed_model = tiny_vae()
    resumed = trainer(resumed_model, 5, tmp_path / "part")
    history = resumed.fit(ds, ds, resume_from=tmp_path / "part" / "last.ckpt")

    assert all(torch.equal(a, b) for a, b in zip(params(full), params(resumed_model), strict=True))
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(history) == strip(full_history)
    assert resumed.state.epoch == 5 and len(history) == 5


def test_checkpoint_files_are_best_and_last(tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    cb = ModelCheckpoint(tmp_path)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[cb]).fit(x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
    payload = gv.training.read_checkpoint(cb.last_path)
    assert payload["state"]["epoch"] == 2 and len(payload["history"]) == 2
    assert payload["model_config"]["genvae"] == "models/vae"


def test_a_corrupted_checkpoint_is_refused(tmp_path: Path) -> None:
    x, _ = tiny_data(8)
    cb = ModelCheckpoint(tmp_path)
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu", callbacks=[cb]).fit(x)
    data = bytearray(cb.last_path.read_bytes())
    data[-100] ^= 0x01
    cb.last_path.write_bytes(bytes(data))
    model = tiny_vae()
    before = params(model)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        gv.Trainer(model, device="cpu").fit(x, resume_from=cb.last_path)
    assert all(torch.equal(a, b) for a, b in zip(before, params(model), strict=True))  # nothing loaded half-way
    cb.last_path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a genvae checkpoint"):
        gv.training.read_checkpoint(cb.last_path)
