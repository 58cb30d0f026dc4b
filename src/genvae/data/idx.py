"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32
dimensions, then the data in C order, big-endian. Files may be gzip-compressed (recognised by
their content, not their name).

The reader checks everything it can before it allocates: the magic number, the type code, the
dimensions against the shape and item count the caller expects (at most :data:`MAX_ITEMS` items by
default), and that the data can fit in the file (a raw file's size; for a gzip file, deflate's
largest expansion, 1032 times the compressed size). It then reads into one buffer of the announced
size in chunks, only as far as ``limit`` asks, and checks that the data is there (and, for a whole
read, that nothing follows it). So a corrupted or lying header cannot make it hold more memory than
the data it really reads, and ``limit=k`` reads k items whatever the file's length.

Example:
    >>> import numpy as np, tempfile, os
    >>> from genvae.data.idx import read_idx, write_idx
    >>> path = os.path.join(tempfile.mkdtemp(), "a-idx2-ubyte.gz")
    >>> write_idx(path, np.arange(6, dtype=np.uint8).reshape(2, 3))
    >>> read_idx(path)
    array([[0, 1, 2],
           [3, 4, 5]], dtype=uint8)
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from genvae._io import atomic_write

__all__ = ["MAX_ITEMS", "IDXError", "IDXHeader", "check_header", "read_idx", "read_idx_header", "write_idx"]

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODES = {dt.newbyteorder(">") if dt.itemsize > 1 else dt: code for code, dt in _TYPES.items()}
_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20
#: The most items (the first dimension) a header may announce unless the caller allows more.
MAX_ITEMS = 10_000_000
# Deflate cannot expand data more than about 1032-fold, so a gzip file of b bytes holds < 1032·b.
_DEFLATE_MAX_RATIO = 1032


class IDXError(ValueError):
    """A file that is not a valid IDX file, or not the array expected; the message says what is wrong."""


@dataclass(frozen=True)
class IDXHeader:
    """What an IDX file's header announces.

    Attributes:
        dtype: the item type (big-endian for multi-byte types, as stored).
        shape: the dimensions; ``shape[0]`` counts the items (images, labels).
        compressed: whether the file is gzip-compressed.
    """

    dtype: np.dtype
    shape: tuple[int, ...]
    compressed: bool

    @property
    def item_bytes(self) -> int:
        """Bytes of one item (one image, one label)."""
        return math.prod(self.shape[1:]) * self.dtype.itemsize

    def describe(self) -> str:
        """The array in words, e.g. ``"10000×28×28 array of uint8"``."""
        return f"{'×'.join(map(str, self.shape))} array of {self.dtype.name}"


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _parse_header(path: Path, fh: IO[bytes], compressed: bool) -> IDXHeader:
    magic = fh.read(4)
    if len(magic) < 4:
        raise IDXError(f"{path}: not an IDX file: {len(magic)} bytes, expected a 4-byte magic number")
    zero, code, ndim = magic[:2], magic[2], magic[3]
    if zero != b"\x00\x00" or code not in _TYPES or ndim == 0:
        raise IDXError(
            f"{path}: not an IDX file: magic bytes {magic.hex(' ')}, expected 00 00 <type> <ndim> "
            f"with type one of {', '.join(f'{c:02x}' for c in _TYPES)} and ndim ≥ 1"
        )
    header = fh.read(4 * ndim)
    if len(header) < 4 * ndim:
        raise IDXError(f"{path}: truncated header: {ndim} dimensions need {4 * ndim} bytes, got {len(header)}")
    return IDXHeader(_TYPES[code], struct.unpack(f">{ndim}I", header), compressed)


@contextlib.contextmanager
def _opened(path: Path) -> Iterator[tuple[IDXHeader, IO[bytes]]]:
    """The file's header and the open stream just after it; gzip and I/O errors become IDXError."""
    try:
        compressed = _is_gzip(path)
        opened: Any = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115
        with opened as fh:
            yield _parse_header(path, fh, compressed), fh
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise IDXError(f"{path}: cannot be read as IDX: {err}") from None


def read_idx_header(path: str | os.PathLike[str]) -> IDXHeader:
    """The header of an IDX file (raw or gzip-compressed), read without touching its data.

    Raises:
        IDXError: the file is not IDX (empty, wrong magic number or type code, short header).
        FileNotFoundError: there is no such file.
    """
    with _opened(Path(path)) as (header, _):
        return header


def check_header(
    path: str | os.PathLike[str],
    header: IDXHeader,
    *,
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | type | None = None,
    max_items: int = MAX_ITEMS,
) -> None:
    """Refuse a header that does not announce the array expected.

    Args:
        path: the file (for the message).
        header: its header.
        shape: the expected shape of one item (``(28, 28)`` for MNIST images, ``()`` for labels);
            ``None``: any.
        dtype: the expected item type; ``None``: any.
        max_items: the largest count of items (``header.shape[0]``) accepted.
    """
    if (shape is not None and header.shape[1:] != tuple(shape)) or (
        dtype is not None and header.dtype != np.dtype(dtype).newbyteorder(">")
    ):
        want = "×".join(["N", *map(str, shape)]) if shape is not None else "any shape"
        got_dtype = np.dtype(dtype).name if dtype is not None else "any type"
        raise IDXError(f"{path}: expected a {want} array of {got_dtype}, got a {header.describe()}")
    if header.shape[0] > max_items:
        raise IDXError(
            f"{path}: expected at most {max_items:,} items (max_items), the header claims {header.shape[0]:,}"
        )


def _check_room(path: Path, header: IDXHeader, count: int) -> None:
    """Refuse to read ``count`` items that the file cannot hold: a raw file's size is known; a gzip
    file holds at most deflate's largest expansion of its size."""
    size = path.stat().st_size
    wanted = count * header.item_bytes
    if not header.compressed and wanted > size - 4 - 4 * len(header.shape):
        raise IDXError(_truncated(path, header, count, size - 4 - 4 * len(header.shape)))
    if header.compressed and wanted > size * _DEFLATE_MAX_RATIO:
        raise IDXError(
            f"{path}: the header describes a {header.describe()} ({wanted:,} bytes of data to read), more than "
            f"a {size:,}-byte gzip file can hold; truncated or corrupted"
        )


def _read_into(fh: IO[bytes], buffer: np.ndarray) -> int:
    """Fill ``buffer`` (uint8) from ``fh`` in chunks; the number of bytes read (less at end of file)."""
    view, done = buffer.data, 0
    while done < len(buffer):
        got = fh.readinto(view[done : done + _CHUNK])  # type: ignore[attr-defined]
        if not got:
            break
        done += got
    return done


def read_idx(
    path: str | os.PathLike[str],
    *,
    limit: int | None = None,
    shape: tuple[int, ...] | None = None,
    dtype: np.dtype | type | None = None,
    max_items: int = MAX_ITEMS,
) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array of its own dtype.

    Args:
        path: the file.
        limit: read only the first ``limit`` items (all of them when the file has fewer); the rest
            of the file is not read, nor checked.
        shape, dtype, max_items: what the header must announce (see :func:`check_header`); checked
            before any data is read.

    Raises:
        IDXError: the file is empty, has a wrong magic number or type code, announces another shape,
            type or more items than expected or than it can hold, or its data is shorter than its
            header says or (for a whole read) longer; also for a broken gzip stream.
        FileNotFoundError: there is no such file.
        ValueError: ``limit`` is not a positive integer.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected a positive integer or None, got {limit!r}")
    path = Path(path)
    with _opened(path) as (header, fh):
        check_header(path, header, shape=shape, dtype=dtype, max_items=max_items)
        count = header.shape[0] if limit is None else min(limit, header.shape[0])
        _check_room(path, header, count)
        data = np.empty(count * header.item_bytes, dtype=np.uint8)  # pages are touched only as data arrives
        got = _read_into(fh, data)
        trailing = limit is None and got == len(data) and len(fh.read(1)) > 0
    if got < len(data):
        raise IDXError(_truncated(path, header, count, got))
    if trailing:
        raise IDXError(
            f"{path}: trailing data after the {len(data):,} bytes of a {'×'.join(map(str, header.shape))} array; "
            "the header does not describe the file"
        )
    return (
        data.view(header.dtype).reshape((count, *header.shape[1:])).astype(header.dtype.newbyteorder("="), copy=False)
    )


def _truncated(path: Path, header: IDXHeader, count: int, got: int) -> str:
    what = "" if count == header.shape[0] else f"its first {count:,} items, "
    return (
        f"{path}: truncated: the header describes a {header.describe()} ({what}"
        f"{count * header.item_bytes:,} bytes of data), the file holds {max(got, 0):,}"
    )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file, atomically (a full disk leaves the file there before, and an
    ``OSError`` naming ``path``); gzip-compressed when ``path`` ends in ``.gz``."""
    array = np.asarray(array)
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    if dtype not in _CODES:
        raise ValueError(
            f"array: expected one of the IDX dtypes uint8, int8, int16, int32, float32, float64, got {array.dtype}"
        )
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"array: expected 1 to 255 dimensions, got {array.ndim}")
    buffer = io.BytesIO()
    buffer.write(bytes([0, 0, _CODES[dtype], array.ndim]))
    buffer.write(struct.pack(f">{array.ndim}I", *array.shape))
    buffer.write(np.ascontiguousarray(array, dtype=dtype).tobytes())
    data = buffer.getvalue()
    path = Path(path)
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    atomic_write(path, data)
