"""genvae._io: a write that fails on a real full disk (/dev/full, see tests.helpers.FullDisk) names
the file it was writing, not a temporary one, and leaves the file there before intact."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from genvae._io import RunWriteError, atomic_write, write_synced, writing
from tests.helpers import FullDisk


@pytest.mark.parametrize("size", [10, 1 << 20])  # buffered until the flush, and written at once
def test_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_old_one(
    tmp_path: Path, full_disk: Callable[..., FullDisk], size: int
) -> None:
    target = tmp_path / "last.ckpt"
    target.write_bytes(b"old")
    disk = full_disk("last.ckpt")
    with pytest.raises(OSError) as caught:
        atomic_write(target, b"x" * size)
    assert disk.hits == 1 and caught.value.errno == errno.ENOSPC
    assert caught.value.filename == str(target)
    assert str(caught.value) == f"[Errno 28] No space left on device: '{target}'"
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_write_synced_on_a_full_disk_names_the_file(tmp_path: Path, full_disk: Callable[..., FullDisk]) -> None:
    full_disk("metrics.json")
    with pytest.raises(OSError) as caught:
        write_synced(tmp_path / "metrics.json", b"{}")
    assert (caught.value.errno, caught.value.filename) == (errno.ENOSPC, str(tmp_path / "metrics.json"))


def test_write_synced_refuses_an_existing_file_or_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "config.json").symlink_to(victim)
    with pytest.raises(FileExistsError):
        write_synced(tmp_path / "config.json", b"{}")
    assert victim.read_bytes() == b"keep"


def test_writing_gives_one_line_naming_the_file_and_the_state(
    tmp_path: Path, full_disk: Callable[..., FullDisk]
) -> None:
    full_disk("history.csv")
    with pytest.raises(RunWriteError) as caught, writing(tmp_path, "writing the history", "the old one is intact"):
        atomic_write(tmp_path / "history.csv", b"epoch\n1\n")
    assert str(caught.value) == (
        f"{tmp_path / 'history.csv'}: No space left on device while writing the history; the old one is intact"
    )
    assert caught.value.errno == errno.ENOSPC


def test_an_error_other_than_a_full_disk_keeps_its_kind(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        atomic_write(tmp_path / "missing" / "model.json", b"{}")
    assert caught.value.filename == str(tmp_path / "missing" / "model.json")
