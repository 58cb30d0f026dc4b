"""Checkpoint files: a safetensors body behind a header line that carries its SHA-256.

The body holds the payload's tensors by number and, in its ``__metadata__``, the payload as JSON
with each tensor replaced by ``{"__tensor__": "<number>"}`` (dicts with keys that are not strings,
and tuples, are spelled out the same way), so reading a checkpoint runs no code. Checkpoints of
genvae ≤ 0.3 (``GENVAE-CHECKPOINT 1``: a ``torch.save`` body, read with ``weights_only``) still load.

A checkpoint is written atomically (temporary file, then rename) and refused on load when its
checksum does not match, so a half-written or corrupted file is never loaded half-way. A file
whose checksum is valid but whose content is not what a checkpoint holds is refused too, with a
:class:`CheckpointError` that names the file and what is wrong (:func:`check_fields` checks the
fields a reader needs; :func:`check_trainer_payload` every field of a Trainer's checkpoint, since
the checksum guards against corruption, not against a crafted file). Only a regular file is read,
and no more of it than its size (a directory, a FIFO or a link to ``/dev/zero`` is refused), and
no more than its header line when that is not a checkpoint's (a sparse 1 GB file is not read whole).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genvae._io import atomic_write
from genvae._json import json_depth
from genvae._weights import load_bytes, read_header, to_bytes

__all__ = [
    "CheckpointError",
    "check_fields",
    "check_trainer_payload",
    "existing_checkpoint",
    "read_checkpoint",
    "write_checkpoint",
]

_MAGIC = b"GENVAE-CHECKPOINT 2 sha256="
_LEGACY_MAGIC = b"GENVAE-CHECKPOINT 1 sha256="  # a torch.save body
_PAYLOAD_KEY = "genvae_checkpoint"  # the __metadata__ entry holding the payload's JSON
_MAX_DEPTH = 32  # how deeply a checkpoint's JSON may nest (an optimiser's state nests about 8 deep)
_TAGS = ("__tensor__", "__tuple__", "__dict__")


class CheckpointError(ValueError):
    """A checkpoint file that is corrupted, truncated or not a genvae checkpoint."""


def write_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (tensors, numbers, strings, None, lists, tuples, dicts) to ``path``
    atomically. Any other value is a ``TypeError`` naming where in the payload it sits."""
    tensors: dict[str, torch.Tensor] = {}
    document = json.dumps(_encode(payload, tensors, "payload"))
    body = to_bytes(tensors, {_PAYLOAD_KEY: document})
    atomic_write(path, _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def _encode(value: Any, tensors: dict[str, torch.Tensor], where: str) -> Any:
    """``value`` as JSON, its tensors moved into ``tensors`` (named by number)."""
    if isinstance(value, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = value
        return {"__tensor__": key}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        if all(isinstance(k, str) and k not in _TAGS for k in value):
            return {k: _encode(v, tensors, f"{where}.{k}") for k, v in value.items()}
        return {"__dict__": [[_encode(k, tensors, where), _encode(v, tensors, f"{where}[{k!r}]")]
                             for k, v in value.items()]}  # fmt: skip
    raise TypeError(
        f"{where}: a checkpoint holds tensors, numbers, strings, lists and dicts, got {type(value).__name__}"
    )


def _decode(value: Any, tensors: Mapping[str, torch.Tensor], path: Any) -> Any:
    """Inverse of :func:`_encode`."""
    if isinstance(value, list):
        return [_decode(v, tensors, path) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and next(iter(value)) in _TAGS:
        tag, inner = next(iter(value.items()))
        if tag == "__tensor__" and isinstance(inner, str) and inner in tensors:
            return tensors[inner]
        if tag == "__tuple__" and isinstance(inner, list):
            return tuple(_decode(v, tensors, path) for v in inner)
        if tag == "__dict__" and isinstance(inner, list) and all(isinstance(p, list) and len(p) == 2 for p in inner):
            pairs = [(_decode(k, tensors, path), _decode(v, tensors, path)) for k, v in inner]
            if all(isinstance(k, str | int | float | bool | tuple) or k is None for k, _ in pairs):
                return dict(pairs)
        raise CheckpointError(f"{path}: not a genvae checkpoint (a malformed {tag} entry)")
    return {k: _decode(v, tensors, path) for k, v in value.items()}


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`write_checkpoint`, after checking its checksum.

    Raises:
        FileNotFoundError: nothing is at ``path``.
        CheckpointError: ``path`` is not a regular file, cannot be read, or is not a checkpoint.
    """
    data = _read_regular_file(path)
    header, sep, body = data.partition(b"\n")
    magic = _MAGIC if header.startswith(_MAGIC) else _LEGACY_MAGIC
    if not sep or not header.startswith(magic) or len(header) != len(magic) + 64:
        raise CheckpointError(f"{path}: not a genvae checkpoint (bad header)")
    expected = header[len(magic) :].decode("ascii", "replace")
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch (expected sha256 {expected}, got {actual}); the file is corrupted or truncated"
        )
    payload = _read_body(path, body, map_location) if magic == _MAGIC else _read_legacy(path, body, map_location)
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointError(f"{path}: not a genvae checkpoint (unknown payload)")
    return payload


def _read_body(path: Any, body: bytes, map_location: str | torch.device) -> Any:
    """The payload of a safetensors body: its header checked (size, entries) before its tensors are read."""
    try:
        header = read_header(io.BytesIO(body), path, len(body))
        document = header.metadata.get(_PAYLOAD_KEY)
        if document is None or json_depth(document, _MAX_DEPTH) > _MAX_DEPTH:
            raise ValueError(f"{path}: not a genvae checkpoint (no payload, or nested over {_MAX_DEPTH} levels)")
        skeleton = json.loads(document)
        tensors = load_bytes(body, path)
    except CheckpointError:
        raise
    except (ValueError, RecursionError) as err:
        raise CheckpointError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    if str(map_location) != "cpu":
        tensors = {k: v.to(map_location) for k, v in tensors.items()}
    return _decode(skeleton, tensors, path)


def _read_legacy(path: Any, body: bytes, map_location: str | torch.device) -> Any:
    """The payload of a ``GENVAE-CHECKPOINT 1`` body (genvae ≤ 0.3): a ``torch.save`` pickle read
    with ``weights_only`` (no code)."""
    try:
        return torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds for a payload that is not what it should be
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: the payload cannot be read ({first})") from None


def check_fields(path: str | os.PathLike[str], payload: Mapping[str, Any], fields: Mapping[str, Any]) -> None:
    """Require each of ``fields`` (name → type or tuple of types) in ``payload``, or raise a
    :class:`CheckpointError` naming the file and the field.

    Example:
        >>> check_fields("a.ckpt", {"format": 1, "state": {}}, {"state": dict, "history": list})
        Traceback (most recent call last):
        ...
        genvae.training.checkpoint.CheckpointError: a.ckpt: history: expected list, got nothing
    """
    for name, kinds in fields.items():
        if name not in payload:
            raise CheckpointError(f"{path}: {name}: expected {_names(kinds)}, got nothing")
        if not isinstance(payload[name], kinds):
            raise CheckpointError(f"{path}: {name}: expected {_names(kinds)}, got {type(payload[name]).__name__}")


def _names(kinds: Any) -> str:
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join("None" if k is type(None) else k.__name__ for k in kinds)


def existing_checkpoint(path: str | os.PathLike[str]) -> Path | None:
    """``path`` when a checkpoint file is there, None when nothing is (not even a dangling link).

    Raises:
        CheckpointError: something that is not a regular file is there (a directory, a FIFO, a
            device such as ``/dev/zero``, a link to nothing): refused, not taken for "no checkpoint".
    """
    try:
        os.lstat(path)
    except FileNotFoundError:
        return None
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"{path}: expected a checkpoint file, got a link to nothing") from None
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"{path}: expected a checkpoint file, got {_kind(mode)}")
    return Path(path)


def _read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of the regular file at ``path``: at most its size when opened, so a file that
    grows (or a device that never ends) cannot make the read endless."""
    try:  # O_NONBLOCK: opening a FIFO must not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise CheckpointError(f"{path}: cannot be read ({err.strerror or type(err).__name__})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise CheckpointError(f"{path}: expected a checkpoint file, got {_kind(info.st_mode)}")
    with os.fdopen(fd, "rb") as fh:
        head = fh.read(len(_MAGIC) + 65)  # the header line: a file that is no checkpoint is not read on
        if not head.startswith((_MAGIC, _LEGACY_MAGIC)):  # both formats' magic has the same length
            raise CheckpointError(f"{path}: not a genvae checkpoint (bad header)")
        return head + fh.read(max(info.st_size - len(head), 0))


def _kind(mode: int) -> str:
    kinds = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}  # fmt: skip
    return next((name for test, name in kinds.items() if test(mode)), "not a regular file")


def check_trainer_payload(path: str | os.PathLike[str], payload: Mapping[str, Any], steps_per_epoch: int = 0) -> None:
    """Check every field of a checkpoint written by :meth:`Trainer.save_checkpoint
    <genvae.Trainer.save_checkpoint>` before any of it is used, or raise a
    :class:`CheckpointError` naming the file and the field. ``steps_per_epoch`` (0: unknown) bounds
    the step an interrupted epoch stopped at.

    Example:
        >>> check_trainer_payload("a.ckpt", {"format": 1})
        Traceback (most recent call last):
        ...
        genvae.training.checkpoint.CheckpointError: a.ckpt: model_state: expected dict, got nothing
    """
    check_fields(path, payload, {"model_state": dict, "optimizer_state": dict, "state": dict, "history": list,
                                 "callbacks": dict, "rng": dict})  # fmt: skip
    optional = {"objective": (dict, type(None)), "settings": (dict, type(None)), "partial": (dict, type(None)),
                "model_config": (dict, type(None))}  # fmt: skip
    check_fields(path, {**dict.fromkeys(optional), **payload}, optional)
    _check_tensors(path, "model_state", payload["model_state"])
    _check_state(path, payload["state"], steps_per_epoch)
    _check_history(path, payload["history"], payload["state"]["epoch"])
    for key, value in payload["callbacks"].items():
        if not isinstance(key, str) or not isinstance(value, dict):
            raise CheckpointError(f"{path}: callbacks: expected a dict of state dicts, got {key!r}: {_type(value)}")
    _check_rng(path, payload["rng"])
    _check_partial(path, payload.get("partial"), payload["state"]["step_in_epoch"])


def _check_tensors(path: str | os.PathLike[str], field: str, value: Mapping[Any, Any]) -> None:
    for key, tensor in value.items():
        if not isinstance(key, str) or not isinstance(tensor, torch.Tensor):
            raise CheckpointError(f"{path}: {field}: expected tensors by name, got {key!r}: {_type(tensor)}")


def _count(path: str | os.PathLike[str], field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise CheckpointError(f"{path}: {field}: expected an integer >= 0, got {value!r}")
    return value


def _check_state(path: str | os.PathLike[str], state: Mapping[str, Any], steps_per_epoch: int) -> None:
    names = ("epoch", "global_step", "step_in_epoch", "stop_reason")
    if sorted(state) != sorted(names):
        raise CheckpointError(f"{path}: state: expected the keys {', '.join(names)}, got {', '.join(map(str, state))}")
    epoch, global_step, step = (_count(path, f"state.{n}", state[n]) for n in names[:3])
    if not isinstance(state["stop_reason"], str):
        raise CheckpointError(f"{path}: state.stop_reason: expected str, got {_type(state['stop_reason'])}")
    if steps_per_epoch and step >= steps_per_epoch:
        raise CheckpointError(
            f"{path}: state.step_in_epoch: expected below {steps_per_epoch} (the steps of an epoch of this data), "
            f"got {step}"
        )
    if global_step < epoch + step:  # every finished epoch took at least one step
        raise CheckpointError(
            f"{path}: state.global_step: expected at least {epoch + step} (epochs {epoch}, steps {step}), "
            f"got {global_step}"
        )


def _check_history(path: str | os.PathLike[str], history: list[Any], epochs: int) -> None:
    if len(history) != epochs:
        raise CheckpointError(f"{path}: history: expected {epochs} records (state.epoch), got {len(history)}")
    for i, record in enumerate(history):
        if not isinstance(record, dict) or record.get("epoch") != i + 1 or isinstance(record["epoch"], bool):
            got = record.get("epoch") if isinstance(record, dict) else _type(record)
            raise CheckpointError(f"{path}: history[{i}]: expected the record of epoch {i + 1}, got {got!r}")
        for key, value in record.items():
            if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, int | float):
                raise CheckpointError(f"{path}: history[{i}].{key}: expected a number, got {value!r}")
            if not math.isfinite(value):  # a diverged epoch is never recorded
                raise CheckpointError(f"{path}: history[{i}].{key}: expected a finite number, got {value!r}")


def _check_rng(path: str | os.PathLike[str], rng: Mapping[str, Any]) -> None:
    cuda = rng.get("cuda")
    states = {"rng.torch": rng.get("torch"), "rng.shuffle": rng.get("shuffle")}
    if not isinstance(cuda, list):
        raise CheckpointError(f"{path}: rng.cuda: expected list, got {_type(cuda)}")
    states.update({f"rng.cuda[{i}]": value for i, value in enumerate(cuda)})
    for field, value in states.items():
        if not (isinstance(value, torch.Tensor) and value.dtype == torch.uint8 and value.dim() == 1):
            raise CheckpointError(f"{path}: {field}: expected a random generator's state (uint8 tensor), got "
                                  f"{_type(value)}")  # fmt: skip


def _check_partial(path: str | os.PathLike[str], partial: Any, step_in_epoch: int) -> None:
    if not step_in_epoch:
        return  # at an epoch boundary there are no running sums
    if partial is None:
        raise CheckpointError(f"{path}: partial: expected the running sums of the interrupted epoch, got None")
    if not isinstance(partial.get("sums"), dict):
        raise CheckpointError(f"{path}: partial.sums: expected dict, got {_type(partial.get('sums'))}")
    _check_tensors(path, "partial.sums", partial["sums"])
    _count(path, "partial.count", partial.get("count"))


def _type(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__
