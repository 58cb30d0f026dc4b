"""A file in place of a checkpoint that is no checkpoint is refused from its header line, without
reading it whole (issue 26: a sparse 1 GB ``last.ckpt`` made ``--resume`` hold 1.3 GB)."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from genvae.training.checkpoint import CheckpointError, read_checkpoint


def test_a_huge_file_in_place_of_a_checkpoint_is_refused_after_its_header(tmp_path: Path) -> None:
    """A real sparse 4 GiB file: refused from its first line, without reading (or holding) it all."""
    path = tmp_path / "last.ckpt"
    with open(path, "wb") as fh:
        fh.truncate(4 * 2**30)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(CheckpointError, match=r"last\.ckpt: not a genvae checkpoint \(bad header\)$"):
        read_checkpoint(path)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 256 * 1024  # KiB: far below 4 GiB
