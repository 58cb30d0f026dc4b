"""Checkpoint files: one ``torch.save`` payload behind a header line that carries its SHA-256.

A checkpoint is written atomically (temporary file, then rename) and refused on load when its
checksum does not match, so a half-written or corrupted file is never loaded half-way. A file
whose checksum is valid but whose content is not what a checkpoint holds is refused too, with a
:class:`CheckpointError` that names the file and what is wrong (:func:`check_fields` checks the
fields a reader needs).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from genvae._io import atomic_write

__all__ = ["CheckpointError", "check_fields", "read_checkpoint", "write_checkpoint"]

_MAGIC = b"GENVAE-CHECKPOINT 1 sha256="


class CheckpointError(ValueError):
    """A checkpoint file that is corrupted, truncated or not a genvae checkpoint."""


def write_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Serialise ``payload`` (tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    body = buffer.getvalue()
    atomic_write(path, _MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`write_checkpoint`, after checking its checksum."""
    data = Path(path).read_bytes()
    header, sep, body = data.partition(b"\n")
    if not sep or not header.startswith(_MAGIC) or len(header) != len(_MAGIC) + 64:
        raise CheckpointError(f"{path}: not a genvae checkpoint (bad header)")
    expected = header[len(_MAGIC) :].decode("ascii", "replace")
    actual = hashlib.sha256(body).hexdigest()
    if actual != expected:
        raise CheckpointError(
            f"{path}: checksum mismatch (expected sha256 {expected}, got {actual}); the file is corrupted or truncated"
        )
    try:
        payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises many kinds for a payload that is not what it should be
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise CheckpointError(f"{path}: the payload cannot be read ({first})") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointError(f"{path}: not a genvae checkpoint (unknown payload)")
    return payload


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
