"""Reading and writing IDX files, the format of MNIST and Fashion-MNIST.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32
dimensions, then the data in C order, big-endian. Files may be gzip-compressed (recognised by
their content, not their name).

The reader checks everything it can before it allocates: the magic number, the type code, the
dimensions, and that the data is exactly as long as the header says, reading at most that many
bytes (plus one, to detect trailing data), so a corrupted size field cannot make it allocate
more memory than the file holds.

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

import gzip
import io
import math
import os
import struct
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = ["IDXError", "read_idx", "write_idx"]

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


class IDXError(ValueError):
    """A file that is not a valid IDX file; the message says what is wrong."""


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP_MAGIC


def _read_exactly(fh: IO[bytes], n: int) -> bytes:
    """Up to ``n`` bytes, in chunks, so that a huge ``n`` from a corrupted header allocates only
    what the file really holds."""
    parts, remaining = [], n
    while remaining > 0:
        part = fh.read(min(remaining, _CHUNK))
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a numpy array of its own dtype.

    Raises:
        IDXError: the file is empty, has a wrong magic number or type code, or its data is
            shorter or longer than its header says; also for a broken gzip stream.
        FileNotFoundError: there is no such file.
    """
    path = Path(path)
    try:
        compressed = _is_gzip(path)
        opened: Any = gzip.open(path, "rb") if compressed else open(path, "rb")  # noqa: SIM115
        with opened as fh:
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
            dims = struct.unpack(f">{ndim}I", header)
            dtype = _TYPES[code]
            expected = math.prod(dims) * dtype.itemsize
            if not compressed:  # a raw file's size is known: refuse a short one before reading
                available = path.stat().st_size - 4 - 4 * ndim
                if available < expected:
                    raise IDXError(_truncated(path, dims, dtype, expected, available))
            data = _read_exactly(fh, expected + 1)
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise IDXError(f"{path}: cannot be read as IDX: {err}") from None
    if len(data) < expected:
        raise IDXError(_truncated(path, dims, dtype, expected, len(data)))
    if len(data) > expected:
        raise IDXError(
            f"{path}: trailing data after the {expected:,} bytes of a {'×'.join(map(str, dims))} array; "
            "the header does not describe the file"
        )
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _truncated(path: Path, dims: tuple[int, ...], dtype: np.dtype, expected: int, got: int) -> str:
    return (
        f"{path}: truncated: the header describes a {'×'.join(map(str, dims))} array of {dtype.name} "
        f"({expected:,} bytes of data), the file holds {max(got, 0):,}"
    )


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write ``array`` as an IDX file; gzip-compressed when ``path`` ends in ``.gz``."""
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
    path.write_bytes(data)
