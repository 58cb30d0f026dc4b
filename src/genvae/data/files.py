"""Finding dataset files on disk and downloading them: the resolution order and a verified,
atomic download.

Resolution order for a dataset called ``NAME`` (``"mnist"``, ``"fashion-mnist"``):

1. the ``root`` argument (the folder itself, then ``root/NAME``);
2. ``$GENVAE_DATA/NAME``;
3. the user cache, ``$XDG_CACHE_HOME/genvae/NAME`` (default ``~/.cache/genvae/NAME``);
4. the system dataset folder ``/usr/share/datasets/NAME`` (where Debian's ``dataset-*``
   packages install).

A download goes to ``root`` when given, else ``$GENVAE_DATA/NAME`` when set, else the user cache.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from genvae._io import RunWriteError, publish, writing

__all__ = ["DownloadError", "download", "download_dir", "find_file", "search_dirs"]

#: Debian's dataset packages install here (a module attribute so tests can point it elsewhere).
SYSTEM_DATA_DIR = Path("/usr/share/datasets")


class DownloadError(OSError):
    """Every mirror failed for a file; the message lists each attempt and where files may be put by hand."""


def _user_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "genvae"


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in order."""
    dirs: list[Path] = []
    if root is not None:
        dirs += [Path(root), Path(root) / name]
    env = os.environ.get("GENVAE_DATA")
    if env:
        dirs.append(Path(env) / name)
    dirs += [_user_cache() / name, SYSTEM_DATA_DIR / name]
    return dirs


def download_dir(name: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Where a download of dataset ``name`` is written."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GENVAE_DATA")
    return Path(env) / name if env else _user_cache() / name


def find_file(filename: str, dirs: Sequence[Path]) -> Path | None:
    """The first ``dir/filename`` or ``dir/filename.gz`` that exists (the gzip first)."""
    for d in dirs:
        for candidate in (d / f"{filename}.gz", d / filename):
            if candidate.is_file():
                return candidate
    return None


def download(
    filename: str,
    mirrors: Sequence[str],
    md5: str,
    directory: Path,
    *,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> Path:
    """Fetch ``filename`` from the first mirror that serves it with the right MD5.

    The bytes go to a temporary file in ``directory`` and are renamed into place only once the
    checksum matches, so a failed or corrupted download leaves nothing behind.

    Args:
        filename: the file's name on the mirrors and on disk.
        mirrors: base URLs, tried in order (``filename`` is appended).
        md5: the expected MD5 of the file.
        directory: where to write it (created if needed).
        timeout: seconds to wait for each connection and read.
        progress: show a progress bar (tqdm, on stderr); ``None``: only when stderr is a terminal.

    Raises:
        DownloadError: every mirror failed (each failure listed).
        RunWriteError: the file could not be written here (a full disk, a read-only folder):
            one line naming it; no other mirror is tried, and nothing of it is kept.
    """
    target = directory / filename
    disk = functools.partial(writing, target, f"downloading {filename}", f"nothing of it was kept in {directory}")
    with disk():
        directory.mkdir(parents=True, exist_ok=True)
    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        with disk():
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{filename}.", suffix=".part")
        try:
            digest = hashlib.md5()
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with _progress_bar(filename, total, progress) as bar:
                    while chunk := response.read(1 << 16):
                        with disk():  # the local disk's error, not the mirror's: the next mirror cannot help
                            out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
                with disk():
                    out.flush()  # here, not in close(), where a full disk would pass for the mirror's error
            if digest.hexdigest() != md5:
                raise ValueError(f"MD5 {digest.hexdigest()}, expected {md5}")
            with disk():
                publish(tmp, target)
            return target
        except RunWriteError:
            raise
        except (OSError, ValueError, urllib.error.URLError) as err:
            failures.append(f"  {url}: {err}")
        finally:
            Path(tmp).unlink(missing_ok=True)
    raise DownloadError(
        f"could not download {filename}:\n" + "\n".join(failures) + f"\nPut {filename} (or {filename}.gz) "
        f"by hand in {directory} or another folder that genvae searches."
    )


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        return None


def _progress_bar(name: str, total: int | None, enabled: bool | None) -> _NoBar:
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    bar: _NoBar = tqdm(total=total, unit="B", unit_scale=True, desc=name, file=sys.stderr, leave=False)
    return bar
