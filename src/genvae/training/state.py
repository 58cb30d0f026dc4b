"""What a training run knows about itself: :class:`TrainerState` and :class:`History`."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from genvae._io import atomic_write
from genvae.runfiles import read_history_records

__all__ = ["History", "TrainerState"]


@dataclass
class TrainerState:
    """Counters of a run; serialises to JSON (``asdict``).

    Attributes:
        epoch: epochs completed.
        global_step: optimiser steps taken.
        step_in_epoch: steps done in the unfinished epoch (0 at an epoch boundary).
        stop_reason: why training stopped early (empty if it did not).
    """

    epoch: int = 0
    global_step: int = 0
    step_in_epoch: int = 0
    stop_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The counters as a JSON-ready dict."""
        return asdict(self)


@dataclass
class History:
    """Per-epoch figures of a run, one record (a dict of floats) per epoch.

    Keys are ``epoch``, ``train_total``, ``train_recon``, ``train_kl`` (and ``train_<extra>``),
    the same with ``val_`` when there is validation data, and ``time`` (seconds). All losses are
    per-sample averages in nats, weighted exactly by batch size.

    ``*_total`` is the objective's own negative bound (:attr:`genvae.losses.Objective.bound_name`):
    the negative ELBO, ``recon + kl``, for the ELBO and β-TCVAE. When the bound is another one, the
    History records it under that name as well (``train_iwae`` and ``val_iwae`` for IWAE,
    ``*_m2`` for M2), and the negative ELBO is ``*_recon + *_kl``.

    Example:
        >>> h = History([{"epoch": 1, "train_total": 160.0}, {"epoch": 2, "train_total": 150.0}])
        >>> h["train_total"]
        [160.0, 150.0]
        >>> h.last["epoch"]
        2
    """

    records: list[dict[str, float]] = field(default_factory=list)

    def append(self, record: Mapping[str, float]) -> None:
        """Add one epoch's record."""
        self.records.append(dict(record))

    def __getitem__(self, key: str) -> list[float]:
        if self.records and key not in self.keys():
            raise KeyError(f"key: expected one of {', '.join(self.keys())}, got {key!r}")
        return [r.get(key, math.nan) for r in self.records]

    def keys(self) -> list[str]:
        """Every key that some epoch recorded, in first-seen order."""
        seen: dict[str, None] = {}
        for r in self.records:
            seen.update(dict.fromkeys(r))
        return list(seen)

    def __len__(self) -> int:
        return len(self.records)

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.records)

    @property
    def last(self) -> dict[str, float]:
        """The last epoch's record (empty before the first epoch)."""
        return self.records[-1] if self.records else {}

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the history as CSV, one row per epoch, atomically."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.keys(), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.records)
        atomic_write(path, buffer.getvalue().encode())

    @classmethod
    def from_csv(cls, path: str | os.PathLike[str], *, follow_symlinks: bool = True) -> History:
        """Read a history written by :meth:`to_csv`, bounded in size and checked (see
        :func:`genvae.runfiles.read_history_records`): a file that is not one raises
        :class:`~genvae.runfiles.RunFileError` naming the file, the line and the column."""
        return cls(read_history_records(path, follow_symlinks=follow_symlinks))
