"""The lock of a run directory: one writer at a time (see :mod:`genvae.runs`).

A writer holds an exclusive ``flock`` on ``RUN/.lock`` and records its PID, host and start time
there; a second writer gets a one-line :class:`RunLockedError` naming the holder. The kernel
releases the lock of a process that dies; the next writer takes it over and reports the dead
holder (:attr:`RunLock.stale`).

The lock file is opened without following a symlink and refused unless it is a regular file with
one name; it is never truncated. Whoever can write the run directory so cannot make genvae empty
or overwrite another file through ``.lock``.
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path

from genvae._io import RunWriteError, why

try:  # POSIX; elsewhere the run lock is a no-op
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]
__all__ = ["LockHolder", "RunLock", "RunLockedError"]


class RunLockedError(RuntimeError):
    """Another process is writing the run directory (the message names it)."""


@dataclass(frozen=True)
class LockHolder:
    """Who holds (or held) a run's lock."""

    pid: int
    host: str
    started: str

    def __str__(self) -> str:
        return f"PID {self.pid} on {self.host}, started {self.started}"

    @classmethod
    def parse(cls, text: str) -> LockHolder | None:
        """The holder recorded in a lock file, or None for an empty or unreadable one."""
        try:
            data, _ = json.JSONDecoder().raw_decode(text.strip())
            return cls(int(data["pid"]), str(data["host"]), str(data["started"]))
        except (ValueError, TypeError, KeyError, RecursionError):
            return None


class RunLock:
    """The exclusive lock of one run directory (``RUN/.lock``): ``flock`` plus the holder's identity.

    ``advice`` ends the message of :class:`RunLockedError` (what the refused process can do).

    Attributes:
        stale: the holder recorded by a process that died without releasing the lock (taken over),
            or None.
    """

    def __init__(self, path: Path, run: Path, advice: str = "wait for it to finish or use another --out") -> None:
        self.path, self.run, self.advice = path, run, advice
        self.stale: LockHolder | None = None
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLockedError` naming its holder; returns itself.

        The lock file is opened without following a symlink (``O_NOFOLLOW``) and refused unless it
        is a regular file with one name, and it is never truncated: the holder record overwrites
        a fixed-size block in place. So a ``.lock`` that someone replaced by a link to another
        file can neither empty nor overwrite that file."""
        fd = _open_lock(self.path)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = LockHolder.parse(_read_fd(fd))
            os.close(fd)
            who = str(holder) if holder else "an unknown process"
            raise RunLockedError(f"{self.run}: in use by another genvae process ({who}); {self.advice}") from None
        self.stale = LockHolder.parse(_read_fd(fd))  # what a dead holder left behind
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": now()}
        try:
            _write_record(fd, json.dumps(me))
        except OSError as err:
            os.close(fd)
            raise RunWriteError(
                f"{self.path}: cannot record the lock's holder ({why(err)}); nothing was written"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Clear the holder record and release the lock."""
        if self._fd is not None:
            with contextlib.suppress(OSError):  # a full disk: a record of a process that ended is harmless
                _write_record(self._fd, "")  # a clean release leaves no holder behind
            os.close(self._fd)  # closing releases the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


_RECORD_BYTES = 512  # the holder record's block at the start of the lock file


def _open_lock(path: Path) -> int:
    """Open (creating) the lock file, refusing a symlink, a non-regular file or a file with other
    names (a hard link to a file elsewhere), with a one-line :class:`RunLockedError`."""
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags | os.O_NONBLOCK, 0o666)  # NONBLOCK: a FIFO there does not hang the open
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise RunLockedError(
                f"{path}: expected the run's lock file, got a symlink; remove it and try again"
            ) from None
        raise RunWriteError(f"{path}: cannot open the run's lock file ({why(err)}); nothing was written") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:
        os.close(fd)
        what = "a file with other names (a hard link)" if stat.S_ISREG(info.st_mode) else "not a regular file"
        raise RunLockedError(f"{path}: expected the run's lock file, got {what}; remove it and try again")
    os.set_blocking(fd, True)
    return fd


def _write_record(fd: int, text: str) -> None:
    """Write ``text`` over the record's block, padded with spaces (the file is never truncated)."""
    os.pwrite(fd, text.encode().ljust(_RECORD_BYTES), 0)


def _read_fd(fd: int) -> str:
    return os.pread(fd, 4096, 0).decode("utf-8", "replace")


def now() -> str:
    return datetime.datetime.now().astimezone().isoformat(timespec="seconds")
