"""Weights in safetensors: gv.save's folders (format 3) and checkpoints (GENVAE-CHECKPOINT 2). The
header is checked (its size, each tensor's byte range, the shapes against the model) before any
tensor is allocated; folders and checkpoints written by genvae before safetensors still load
(tests/fixtures/legacy, written by the code of base3)."""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import struct
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

import genvae as gv
from genvae.training import CheckpointError, read_checkpoint, write_checkpoint
from genvae.training.checkpoint import check_trainer_payload
from tests.helpers import tiny_data
from tests.helpers import tiny_vae as tiny_model

LEGACY = Path(__file__).parent / "fixtures" / "legacy"
REFERENCE = json.loads((LEGACY / "reference.json").read_text())


def test_a_format_2_folder_with_torch_weights_still_loads(tmp_path: Path) -> None:
    shutil.copytree(LEGACY / "model-format2", tmp_path / "old")
    model = gv.load(tmp_path / "old")
    x, y = tiny_data(4)
    with torch.no_grad():
        assert torch.allclose(model.encode(x, y)[0], torch.tensor(REFERENCE["cvae_encode_mean"]))
    gv.save(model, tmp_path / "old")  # saving again converts the folder: the .pt file goes
    names = sorted(p.name for p in (tmp_path / "old").iterdir())
    assert names[0] == "model.json" and names[1].endswith(".safetensors") and len(names) == 2
    assert json.loads((tmp_path / "old" / "model.json").read_text())["format"] == 3


def test_a_format_1_checkpoint_still_loads_and_resumes(tmp_path: Path) -> None:
    payload = read_checkpoint(LEGACY / "checkpoint-format1.ckpt")
    check_trainer_payload("legacy", payload)
    sums = {k: float(v.double().sum()) for k, v in payload["model_state"].items()}
    assert sums == pytest.approx(REFERENCE["trained_state_sums"])
    trainer = gv.Trainer(tiny_model(), max_epochs=2, batch_size=4, device="cpu", seed=0, quiet=True)
    history = trainer.fit(tiny_data(8)[0], resume_from=LEGACY / "checkpoint-format1.ckpt")
    assert len(history.records) == 2 and trainer.state.epoch == 2


def weights_of(folder: Path) -> Path:
    (path,) = folder.glob("weights-*.safetensors")
    return path


def test_saved_weights_are_a_plain_safetensors_file(tmp_path: Path) -> None:
    model = gv.presets.seed_vae()
    gv.save(model, tmp_path)
    with safe_open(str(weights_of(tmp_path)), "pt") as fh:
        assert fh.metadata() == {"format": "pt"}
        assert all(torch.equal(fh.get_tensor(k), v) for k, v in model.state_dict().items())


def test_tied_weights_are_saved_once_each_and_load(tmp_path: Path) -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=2)
    model.logvar_head.weight = model.mean_head.weight  # shared: safetensors refuses shared memory as such
    gv.save(model, tmp_path)
    assert torch.equal(gv.load(tmp_path).logvar_head.weight, model.mean_head.weight)


def rewrite(folder: Path, data: bytes) -> Path:
    """Replace the folder's weights with ``data``, model.json's checksum updated to match."""
    path = weights_of(folder)
    path.write_bytes(data)
    document = json.loads((folder / "model.json").read_text())
    document["weights_sha256"] = hashlib.sha256(data).hexdigest()
    (folder / "model.json").write_text(json.dumps(document))
    return path


def test_shapes_in_the_header_are_checked_against_the_model(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    state = {k: v.clone() for k, v in gv.presets.seed_vae().state_dict().items()}
    state["mean_head.weight"] = torch.zeros(3, 16)
    path = rewrite(tmp_path, safetensors_bytes(state))
    message = rf"^{path}: mean_head.weight: expected shape \(2, 16\) \(the model in model.json\), got \(3, 16\)$"
    with pytest.raises(ValueError, match=message):
        gv.load(tmp_path)


def header_file(header: dict[str, object], data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (struct.pack("<Q", 1 << 62) + b"{}", r"not a safetensors file \(header of 4611686018427387904 bytes"),
        (b"\x01\x00", r"not a safetensors file \(shorter than its 8-byte header length\)"),
        (header_file({"x": {"dtype": "F32", "shape": [1 << 40], "data_offsets": [0, 4 << 40]}}),
         r"expected 4398046511104 bytes of tensor data \(the header\), got 0"),
        (header_file({"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8),
         r"x: expected 16 bytes for shape \[4\], got 8"),
        (header_file({"x": {"dtype": "C64", "shape": [1], "data_offsets": [0, 8]}}), r"x: expected a dtype among"),
        (header_file({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 0]}}), r"x: shape: expected a list"),
        (struct.pack("<Q", 2) + b"[]", r"not a safetensors file \(header: expected a JSON object\)"),
    ],
)  # fmt: skip
def test_a_malformed_header_is_refused_before_any_allocation(tmp_path: Path, data: bytes, message: str) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    path = rewrite(tmp_path, data)
    with pytest.raises(ValueError, match=rf"^{path}: {message}") as info:
        gv.load(tmp_path)
    assert "\n" not in str(info.value)


def test_a_checkpoint_is_a_safetensors_body_behind_its_checksum_line(tmp_path: Path) -> None:
    payload = {
        "format": 1,
        "optimizer_state": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"betas": (0.9, 0.999)}]},
        "values": [1, 2.5, None, True, "text", math.inf],
        "__tensor__": "a key that looks like a tag",
        "empty": torch.zeros(0, 3),
    }
    write_checkpoint(tmp_path / "a.ckpt", payload)
    data = (tmp_path / "a.ckpt").read_bytes()
    header, _, body = data.partition(b"\n")
    assert header.startswith(b"GENVAE-CHECKPOINT 2 sha256=")
    assert header.endswith(hashlib.sha256(body).hexdigest().encode())
    read = read_checkpoint(tmp_path / "a.ckpt")
    assert read["optimizer_state"]["state"][0]["step"] == torch.tensor(3.0)
    assert read["optimizer_state"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert read["values"] == payload["values"] and read["__tensor__"] == payload["__tensor__"]
    assert read["empty"].shape == (0, 3)


def test_a_value_a_checkpoint_cannot_hold_is_named() -> None:
    with pytest.raises(TypeError, match=r"^payload.callbacks.odd: a checkpoint holds tensors, .* got object$"):
        write_checkpoint("/nonexistent/never-written.ckpt", {"format": 1, "callbacks": {"odd": object()}})


def crafted_checkpoint(path: Path, body: bytes) -> Path:
    path.write_bytes(b"GENVAE-CHECKPOINT 2 sha256=" + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (safetensors_bytes({}, {"genvae_checkpoint": '{"x": {"__tensor__": "7"}}'}),
         r"not a genvae checkpoint \(a malformed __tensor__ entry\)"),
        (safetensors_bytes({}, {"other": "{}"}), r"not a genvae checkpoint \(no payload"),
        (safetensors_bytes({}, {"genvae_checkpoint": "[" * 40 + "]" * 40}),
         r"not a genvae checkpoint \(no payload, or nested over 32 levels\)"),
        (struct.pack("<Q", 1 << 40), r"not a safetensors file \(header of 1099511627776 bytes"),
        (safetensors_bytes({}, {"genvae_checkpoint": '{"format": 2}'}), r"not a genvae checkpoint \(unknown payload\)"),
    ],
)  # fmt: skip
def test_a_crafted_checkpoint_body_is_one_line(tmp_path: Path, body: bytes, message: str) -> None:
    path = crafted_checkpoint(tmp_path / "x.ckpt", body)
    with pytest.raises(CheckpointError, match=rf"^{path}: {message}") as info:
        read_checkpoint(path)
    assert "\n" not in str(info.value)
