"""Reading the files of a run directory: one reader, bounded and checked.

Every file of a run that genvae reads back (``config.json``, ``metrics.json``, ``history.csv``,
``checkpoints/config.json``, ``evaluation.json``) goes through :func:`read_run_json` or
:func:`read_history_records`, which:

- refuse a file larger than genvae ever writes for its kind (:data:`MAX_BYTES`) from its size
  alone, before reading a byte, so a multi-gigabyte (or sparse) file costs no memory or time;
- refuse what is not a regular file (a FIFO, a device, a directory) without blocking on it, and,
  with ``follow_symlinks=False``, a symlink in the last component (``O_NOFOLLOW``);
- refuse JSON nested deeper than :data:`genvae.config.MAX_JSON_DEPTH` before parsing it, so the
  parser never recurses deeply;
- check the fields genvae reads against a small schema per file (types and ranges).

Each refusal is a :class:`RunFileError`: one line naming the file and, for a bad field, the field.
"""

from __future__ import annotations

import csv
import errno
import io
import itertools
import json
import math
import os
import re
import stat
from collections.abc import Callable, Mapping
from typing import Any

from genvae._json import json_object
from genvae.config import MAX_JSON_DEPTH

__all__ = ["MAX_BYTES", "RunFileError", "read_history_records", "read_run_bytes", "read_run_json"]


class RunFileError(ValueError):
    """A run file that genvae cannot have written: too large, not a regular file, a symlink where
    none belongs, invalid JSON or CSV, or a field of the wrong type or range (the message names
    the file and the field)."""


#: The largest file of each kind that genvae reads, in bytes: far above what it writes (a
#: config is a few KiB; a history grows by about 200 bytes an epoch).
MAX_BYTES: dict[str, int] = {
    "config": 1 << 20,
    "training config": 1 << 20,
    "metrics": 8 << 20,
    "evaluation": 8 << 20,
    "history": 64 << 20,
    "checkpoint": 16 << 30,  # the weights and the optimiser's state: a bound against sparse or runaway files
}

_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KINDS = {stat.S_IFDIR: "a directory", stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}  # fmt: skip


def read_run_bytes(path: str | os.PathLike[str], kind: str, *, follow_symlinks: bool = True) -> bytes:
    """The bytes of run file ``path`` of ``kind`` (a key of :data:`MAX_BYTES`), refused with a
    :class:`RunFileError` when it is larger than that cap or not a regular file (or, without
    ``follow_symlinks``, a symlink). A missing file raises ``FileNotFoundError``."""
    limit = MAX_BYTES[kind]
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)  # NONBLOCK: a FIFO does not hang us
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP and not follow_symlinks:
            raise RunFileError(
                f"{path}: expected the {kind} file genvae wrote, got a symlink; not following it"
            ) from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = _KINDS.get(stat.S_IFMT(info.st_mode), "not a regular file")
            raise RunFileError(f"{path}: expected the {kind} file genvae wrote, got {what}")
        if info.st_size > limit:
            raise RunFileError(_too_large(path, kind, info.st_size, limit))
        chunks, size = [], 0
        while chunk := os.read(fd, min(1 << 20, limit + 1 - size)):  # a file growing meanwhile stops at the cap
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise RunFileError(_too_large(path, kind, size, limit))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_large(path: str | os.PathLike[str], kind: str, size: int, limit: int) -> str:
    return (
        f"{path}: expected a {kind} file of at most {limit:,} bytes (what genvae writes is far smaller), "
        f"got {size:,} bytes; not reading it"
    )


def _text(path: str | os.PathLike[str], kind: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise RunFileError(
            f"{path}: not a {kind} file written by genvae (not UTF-8 text at byte {err.start})"
        ) from None


def read_run_json(path: str | os.PathLike[str], kind: str, *, follow_symlinks: bool = True) -> dict[str, Any]:
    """The JSON object in run file ``path`` of ``kind`` (``"config"``, ``"training config"``,
    ``"metrics"`` or ``"evaluation"``), read by :func:`read_run_bytes`, its nesting depth checked
    before parsing and its fields checked against the kind's schema.

    Example:
        >>> read_run_json("RUN/metrics.json", "metrics")   # doctest: +SKIP
        Traceback (most recent call last):
        ...
        genvae.runfiles.RunFileError: RUN/metrics.json: test: expected an object of numbers, got []
    """
    text = _text(path, kind, read_run_bytes(path, kind, follow_symlinks=follow_symlinks))
    document = json_object(text, path, f"a {kind} file written by genvae", limit=MAX_JSON_DEPTH, error=RunFileError)
    check_fields(path, document, _SCHEMAS.get(kind, {}), _REQUIRED.get(kind, ()))
    return document


# -- the schemas: the fields genvae reads, each with a check and what it expects -------------------

Check = tuple[Callable[[Any], bool], str]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _int(low: int, high: int | None = None, *, optional: bool = False) -> Check:
    what = f"an integer >= {low}" if high is None else f"an integer from {low} to {high}"
    return (
        lambda v: (optional and v is None) or (_is_int(v) and v >= low and (high is None or v <= high)),
        what + (" or null" if optional else ""),
    )


def _string(*, optional: bool = False, choices: tuple[str, ...] = ()) -> Check:
    what = f"one of {', '.join(choices)}" if choices else "a string"
    return (
        lambda v: (optional and v is None) or (isinstance(v, str) and (not choices or v in choices)),
        what + (" or null" if optional else ""),
    )


_POSITIVE: Check = (lambda v: _is_number(v) and math.isfinite(v) and v > 0, "a finite number > 0")
_SECONDS: Check = (lambda v: _is_number(v) and v >= 0, "a number >= 0")
_BOOL: Check = (lambda v: isinstance(v, bool), "true or false")
_OBJECT: Check = (lambda v: isinstance(v, dict), "an object")
_FIGURES: Check = (
    lambda v: isinstance(v, dict) and all(_is_number(x) for x in v.values()),
    "an object of numbers",
)
_BOUND: Check = (
    lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and (v.get("k") is None or _is_int(v["k"])),
    'an object with "name" (a string) and, for IWAE, "k" (an integer)',
)
_NUMBERS: Check = (lambda v: isinstance(v, list) and all(_is_number(x) for x in v), "an array of numbers")
_SIZES: Check = (
    lambda v: v is None or (isinstance(v, list) and bool(v) and all(_is_int(x) and x >= 1 for x in v)),
    "an array of integers >= 1, or null",
)
_STRINGS: Check = (lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v), "an array of strings")
_DATA: Check = (
    lambda v: isinstance(v, dict) and isinstance(v.get("name"), str) and _is_int(v.get("size")) and v["size"] >= 0,
    'an object with "name" (a string) and "size" (an integer >= 0)',
)
_DIVERGED: Check = (
    lambda v: isinstance(v, dict) and _is_int(v.get("epoch")) and isinstance(v.get("term"), str),
    'an object with "epoch" (an integer) and "term" (a string)',
)

_CONFIG: dict[str, Check] = {
    "model": _string(), "dataset": _string(), "data_root": _string(optional=True), "download": _BOOL,
    "latent_dim": _int(1, optional=True), "latent_dims": _SIZES, "posterior": _string(optional=True),
    "codebook_size": _int(1, optional=True), "code_dim": _int(1, optional=True),
    "epochs": _int(0), "batch_size": _int(1), "lr": _POSITIVE,
    "conditioner": _string(optional=True), "likelihood": _string(optional=True), "prior": _string(optional=True),
    "seed": _int(-(2**63), 2**64 - 1),  # what torch.manual_seed accepts
    "device": _string(), "train_size": _int(1, optional=True), "test_size": _int(1, optional=True),
    "threads": _int(1, optional=True), "objective": _string(), "k": _int(1, optional=True),
    "labels": _int(0, optional=True), "tensorboard": _string(optional=True), "run_id": _string(optional=True),
    "started": _string(optional=True), "genvae_version": _string(), "train_data": _DATA, "test_data": _DATA,
    "imports": _STRINGS, "notes": _OBJECT, "mlflow": _string(optional=True), "mlflow_experiment": _string(),
    "wandb": _string(optional=True), "wandb_mode": _string(choices=("online", "offline", "disabled")),
    "trackers": _OBJECT,
}  # fmt: skip
_METRICS: dict[str, Check] = {
    "status": _string(choices=("complete", "diverged")), "model": _string(), "dataset": _string(),
    "epochs": _int(0), "parameters": _int(0), "train": _FIGURES, "test": _FIGURES, "seconds": _SECONDS,
    "seconds_per_epoch": _NUMBERS, "stop_reason": _string(), "units": _string(), "diverged": _DIVERGED,
    "bound": _BOUND,  # since issue 21; older files have none (their total is the objective's bound)
}  # fmt: skip
_SCHEMAS: dict[str, dict[str, Check]] = {"config": _CONFIG, "training config": _CONFIG, "metrics": _METRICS}
# The published config must say what data the run used (the report loads it again); a training's
# config may be a stub written before the first epoch.
_REQUIRED: dict[str, tuple[str, ...]] = {"config": ("model", "dataset")}


def check_fields(
    path: str | os.PathLike[str], document: Mapping[str, Any], schema: Mapping[str, Check], required: tuple[str, ...]
) -> None:
    """Raise a :class:`RunFileError` naming ``path`` and the field for each field of ``schema``
    that ``document`` holds with the wrong type or range, or for a ``required`` one it lacks.
    Fields the schema does not name (a model's own settings) pass as they are."""
    for name in required:
        if name not in document:
            raise RunFileError(f"{path}: expected the key {name!r} ({schema[name][1]}), but it is missing")
    for name, (valid, what) in schema.items():
        if name in document and not valid(document[name]):
            raise RunFileError(f"{path}: {name}: expected {what}, got {_short(document[name])}")


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# -- history.csv ---------------------------------------------------------------------------------

_MAX_EPOCH = 2**31 - 1


def read_history_records(path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> list[dict[str, float]]:
    """The per-epoch figures in ``history.csv`` (as written by :meth:`~genvae.History.to_csv`; read
    them as a History with :meth:`~genvae.History.from_csv`), read by
    :func:`read_run_bytes` and checked: a header of distinct column names, every row as long as
    the header, numbers in every cell, and epochs that are whole numbers from 1 rising row by row."""
    text = _text(path, "history", read_run_bytes(path, "history", follow_symlinks=follow_symlinks))
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise RunFileError(f"{path}: not a history file written by genvae (invalid CSV: {err})") from None
    header = rows[0] if rows else []
    for name in header:
        if not _COLUMN.fullmatch(name) or header.count(name) > 1:
            raise RunFileError(f"{path}: line 1: expected distinct column names (letters, digits, _), got {name!r}")
    records = [_record(path, line, header, row) for line, row in enumerate(rows[1:], start=2) if row]
    epochs = [r["epoch"] for r in records if "epoch" in r]
    for line, (before, after) in enumerate(itertools.pairwise(epochs), start=3):
        if after <= before:
            raise RunFileError(
                f"{path}: line {line}: epoch: expected epochs rising row by row, got {after} after {before}"
            )
    return records


def _record(path: str | os.PathLike[str], line: int, header: list[str], row: list[str]) -> dict[str, float]:
    if len(row) != len(header):
        raise RunFileError(f"{path}: line {line}: expected {len(header)} columns (as the header), got {len(row)}")
    record: dict[str, float] = {}
    for name, cell in zip(header, row, strict=True):
        if cell == "":  # a figure that epoch did not record
            continue
        try:
            value = float(cell)
        except ValueError:
            raise RunFileError(f"{path}: line {line}: {name}: expected a number, got {_short(cell)}") from None
        if name == "epoch":
            if not (math.isfinite(value) and value.is_integer() and 1 <= value <= _MAX_EPOCH):
                raise RunFileError(f"{path}: line {line}: epoch: expected a whole number >= 1, got {cell!r}")
            value = int(value)
        record[name] = value
    return record
