"""Checkpoint files: one ``torch.save`` payload behind a header line that carries its SHA-256.

A checkpoint is written atomically (temporary file, then rename) and refused on load when its
checksum does not match, so a half-written or corrupted file is never loaded half-way.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Any

import torch

from genvae._io import atomic_write

__all__ = ["CheckpointError", "read_checkpoint", "write_checkpoint"]

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
    payload = torch.load(io.BytesIO(body), map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointError(f"{path}: not a genvae checkpoint (unknown payload)")
    return payload
