"""Crash-safe file operations: atomic writes, directory locks, and the test hooks that pause or
fail a write at a named step.

Atomic writes go through a temporary file in the same folder, ``fsync`` and a rename, so a reader
sees the old file or the new one, never half of one.

Two environment variables let tests stop a writer at an exact step (so a signal lands
deterministically, without sleeps): ``GENVAE_TEST_PAUSE_AT=<step>`` makes the process write to
the file ``$GENVAE_TEST_PAUSE_FILE`` (the tests make it a FIFO, and wait for that write) when it
reaches ``<step>`` and wait there until
``$GENVAE_TEST_PAUSE_FILE.continue`` exists; ``GENVAE_TEST_FAIL_AT=<step>`` raises
``OSError(ENOSPC)`` at that step. The steps are named where :func:`step` is called.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "RunWriteError", "atomic_write", "fsync_dir", "locked_dir", "named", "new_folder", "publish", "step", "why",
    "write_synced", "writing",
]  # fmt: skip

try:  # POSIX; elsewhere directory locks are a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


_FILE_MODE = 0o666 & ~_umask()  # what open() would give a new file
_FOLDER_MODE = 0o777 & ~_umask()  # what mkdir would give a new folder


def step(name: str) -> None:
    """A named point of a multi-step write, where the test hooks can fail or pause the process."""
    if os.environ.get("GENVAE_TEST_FAIL_AT") == name:
        raise OSError(errno.ENOSPC, f"No space left on device (injected at {name})")
    if os.environ.get("GENVAE_TEST_PAUSE_AT") == name:
        signal_file = Path(os.environ["GENVAE_TEST_PAUSE_FILE"])
        signal_file.write_text(f"{os.getpid()} {name}\n")
        release = signal_file.with_name(signal_file.name + ".continue")
        while not release.exists():  # a signal (SIGINT, SIGKILL) ends the wait
            time.sleep(0.01)


def publish(tmp: str | os.PathLike[str], path: str | os.PathLike[str]) -> None:
    """Rename a finished temporary file into place with ordinary permissions (``mkstemp`` makes
    files readable by their owner only)."""
    os.chmod(tmp, _FILE_MODE)
    os.replace(tmp, path)


def new_folder(parent: str | os.PathLike[str], prefix: str) -> Path:
    """A new, uniquely named folder in ``parent`` with ordinary permissions (``mkdtemp`` makes
    folders accessible by their owner only)."""
    folder = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    os.chmod(folder, _FOLDER_MODE)
    return folder


def named(err: OSError, path: str | os.PathLike[str]) -> OSError:
    """``err`` naming the file ``path`` it was writing (a failed ``write``, ``fsync`` or ``mkstemp``
    names no file, or a temporary one), as the same kind of ``OSError``."""
    if err.filename is not None and os.fspath(err.filename) == os.fspath(path):
        return err
    return OSError(err.errno, err.strerror or str(err), os.fspath(path))  # the subclass errno maps to


def write_synced(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a new file ``path`` and ``fsync`` it (for files in a folder that is itself
    published atomically). An ``OSError`` names ``path``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)  # new: never through a link
    try:
        with os.fdopen(os.open(path, flags, _FILE_MODE), "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise named(err, path) from err


def atomic_write(path: str | os.PathLike[str], data: bytes, *, step_name: str | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync, rename.

    With ``step_name``, :func:`step` is called as ``"<step_name>-written"`` (the temporary file is
    complete, not yet renamed) and ``"<step_name>-renamed"``. An ``OSError`` (a full disk) names
    ``path``, not the temporary file, and leaves the file there before intact."""
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise named(err, path) from err
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if step_name:
            step(f"{step_name}-written")
        publish(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise named(err, path) from err
        raise
    if step_name:
        step(f"{step_name}-renamed")


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the renames inside folder ``path`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on a folder
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def locked_dir(path: str | os.PathLike[str], *, shared: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on folder ``path`` (waiting for another holder), so two writers
    of the same folder take turns; ``shared`` for a reader, which only waits for writers. The
    kernel releases it when the process dies."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the last descriptor releases the lock


class RunWriteError(OSError):
    """A write failed (a full disk, a read-only folder): the one-line message names the file and
    says what state the run (or the folder written) was left in (published, or as it was)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.errno = code  # OSError's errno, kept for callers that test it


def why(err: OSError) -> str:
    """What went wrong, in the operating system's words (``No space left on device``)."""
    return err.strerror or str(err)


@contextlib.contextmanager
def writing(path: Path, doing: str, state: str) -> Iterator[None]:
    """Turn an ``OSError`` of the writes inside into a one-line :class:`RunWriteError` naming the
    path it failed on (or ``path``), what was being done and the ``state`` the run is left in."""
    try:
        yield
    except RunWriteError:
        raise
    except OSError as err:
        where = err.filename if err.filename is not None else path
        raise RunWriteError(f"{where}: {why(err)} while {doing}; {state}", err.errno) from err
