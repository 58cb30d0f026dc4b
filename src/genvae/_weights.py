"""Weights files in the safetensors format: written from a state dict, read back in two steps.

A safetensors file is 8 bytes (the header's length, little-endian), a JSON header giving each
tensor's dtype, shape and byte range (and a ``__metadata__`` map of strings), then the raw bytes.
The format holds no code. :func:`read_header` reads and checks only the header: its size is
bounded (:data:`MAX_HEADER_BYTES`) and every tensor's byte range must fit the file, and it
returns the tensors as ``meta`` tensors (shape and dtype, no memory), so a reader compares them
with the model before anything is allocated; :func:`read_tensors` then reads the tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import nn

__all__ = [
    "MAX_HEADER_BYTES",
    "FixedBuffers",
    "Header",
    "WeightsFile",
    "load_bytes",
    "read_all",
    "read_header",
    "to_bytes",
]

#: The largest safetensors header read (the JSON that names, shapes and places each tensor).
MAX_HEADER_BYTES = 16 << 20
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}  # fmt: skip


class FixedBuffers(nn.Module):
    """A module of buffers that keep their dtype and device whatever the module holding them is
    moved or cast to (``.to()``, ``.double()``, ``.cuda()`` pass them by): float64 statistics kept
    on the CPU, such as a fitted Gaussian mixture's, in a float32 model. They are saved and loaded
    with the rest of the state dict; :func:`genvae.save` takes the model's dtype from its other
    tensors."""

    def _apply(self, fn: Any, recurse: bool = True) -> FixedBuffers:
        return self  # every cast and move of a module goes through _apply: none reaches these buffers


class Header:
    """A checked safetensors header: the tensors as ``meta`` tensors, the metadata, the file's
    expected size and the raw header bytes (compared again when the whole file is read)."""

    def __init__(self, tensors: dict[str, torch.Tensor], metadata: dict[str, str], size: int, raw: bytes) -> None:
        self.tensors, self.metadata, self.size, self.raw = tensors, metadata, size, raw


def to_bytes(state: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> bytes:
    """``state`` as safetensors bytes. Tensors that share memory (tied weights, views of one
    buffer) are copied first: safetensors stores each tensor once, by name."""
    import safetensors.torch

    seen: set[int] = set()
    tensors = {}
    for key, value in state.items():
        tensor = value.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage()
        if tensor.numel() and (storage.data_ptr() in seen or storage.nbytes() != tensor.nbytes):
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        tensors[key] = tensor
    return safetensors.torch.save(tensors, dict(metadata))


def read_header(fh: BinaryIO, path: Any, size: int) -> Header:
    """The checked header of the safetensors file open as ``fh`` (``size`` bytes long), or a
    one-line ``ValueError`` naming ``path`` and what is wrong."""
    prefix = fh.read(8)
    if len(prefix) < 8:
        raise ValueError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
    length = int.from_bytes(prefix, "little")
    if length > min(MAX_HEADER_BYTES, size - 8):
        raise ValueError(
            f"{path}: not a safetensors file (header of {length} bytes, expected at most "
            f"{min(MAX_HEADER_BYTES, size - 8)})"
        )
    raw = fh.read(length)
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise ValueError(f"{path}: not a safetensors file (header: {type(err).__name__})") from None
    if not isinstance(document, dict):
        raise ValueError(f"{path}: not a safetensors file (header: expected a JSON object)")
    metadata = document.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{path}: __metadata__: expected a map of strings")
    tensors, end = {}, 0
    for name, entry in document.items():
        tensors[name], stop = _entry(path, name, entry)
        end = max(end, stop)
    data = size - 8 - length
    if end != data:
        raise ValueError(f"{path}: expected {end} bytes of tensor data (the header), got {data}")
    return Header(tensors, metadata, size, raw)


def _entry(path: Any, name: str, entry: Any) -> tuple[torch.Tensor, int]:
    """One header entry as a ``meta`` tensor, and where its bytes end; its byte range must hold
    exactly its shape's elements."""
    if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPES:
        raise ValueError(f"{path}: {name}: expected a dtype among {', '.join(_DTYPES)}, got {_short(entry)}")
    shape, offsets = entry.get("shape"), entry.get("data_offsets")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"{path}: {name}: shape: expected a list of sizes, got {_short(shape)}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int and n >= 0 for n in offsets)):
        raise ValueError(f"{path}: {name}: data_offsets: expected [start, end], got {_short(offsets)}")
    dtype = _DTYPES[entry["dtype"]]
    expected = math.prod(shape) * torch.empty((), dtype=dtype).element_size()
    if offsets[1] - offsets[0] != expected:
        raise ValueError(f"{path}: {name}: expected {expected} bytes for shape {shape}, got {offsets[1] - offsets[0]}")
    return torch.empty(shape, dtype=dtype, device="meta"), offsets[1]


def read_all(fh: BinaryIO, path: Any, header: Header) -> bytes:
    """The bytes of the file whose checked ``header`` was read from ``fh``: read again from its
    start, no more than the size the header was checked against."""
    fh.seek(0)
    data = fh.read(header.size)
    if len(data) != header.size or data[8 : 8 + len(header.raw)] != header.raw:
        raise ValueError(f"{path}: the file changed while it was read")
    return data


def load_bytes(data: bytes, path: Any) -> dict[str, torch.Tensor]:
    """The tensors of safetensors ``data`` (checked by the caller), or a one-line ``ValueError``."""
    import safetensors.torch

    try:
        return safetensors.torch.load(data)
    except Exception as err:  # safetensors raises its own error types for a malformed file
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not a safetensors file safetensors can read ({first})") from None


class WeightsFile:
    """The weights file a ``model.json`` names, open for reading in two steps: :attr:`shapes`
    (the file's tensors as ``meta`` tensors for safetensors: no memory yet), then
    :meth:`tensors`, after the checksum ``sha256``. A ``.pt`` file (genvae ≤ 0.3) is read by
    ``torch.load(weights_only=True)``, memory-mapped, after its checksum."""

    def __init__(self, path: Path, sha256: str) -> None:
        self.path, self.sha256 = path, sha256
        self._fh: BinaryIO | None = None
        if path.suffix == ".pt":
            self._check_sha(sha256_of_file(path))
            self._legacy: dict[str, torch.Tensor] | None = legacy_tensors(path)
            self.shapes: Mapping[str, torch.Tensor] = self._legacy
            return
        self._legacy = None
        self._fh = open(path, "rb")  # noqa: SIM115 - closed by __exit__ (a save may unlink the file meanwhile)
        try:
            self._header = read_header(self._fh, path, os.fstat(self._fh.fileno()).st_size)
        except BaseException:
            self._fh.close()
            raise
        self.shapes = self._header.tensors

    def tensors(self) -> dict[str, torch.Tensor]:
        """The file's tensors (after the checksum)."""
        if self._legacy is not None or self._fh is None:
            return dict(self._legacy or {})
        data = read_all(self._fh, self.path, self._header)
        self._check_sha(hashlib.sha256(data).hexdigest())
        return load_bytes(data, self.path)

    def owned(self, saved: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``saved`` as tensors a model may keep: a memory-mapped ``.pt`` file's are copied."""
        return {k: v.clone() for k, v in saved.items()} if self._legacy is not None else dict(saved)

    def _check_sha(self, actual: str) -> None:
        if actual != self.sha256:
            raise ValueError(
                f"{self.path}: checksum mismatch (expected sha256 {self.sha256}, got {actual}); "
                "the file is corrupted or belongs to another model"
            )

    def __enter__(self) -> WeightsFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            self._fh.close()


def sha256_of_file(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def legacy_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pt`` weights file's tensors (earlier versions' format), memory-mapped."""
    try:
        saved = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as err:  # torch raises many kinds for a file that is not what it should be
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(f"{path}: not a weights file torch can read ({first})") from None
    if not isinstance(saved, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved.items()
    ):
        raise ValueError(f"{path}: expected a state dict (tensor names to tensors), got {type(saved).__name__}")
    return saved


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
