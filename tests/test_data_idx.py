"""The IDX reader: round trips, corrupted files, header checks before reading, limited reads, and
the memory a lying header can cost (measured in a subprocess)."""

from __future__ import annotations

import gzip
import json
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import genvae as gv
from genvae.data.idx import MAX_ITEMS, IDXError, read_idx, read_idx_header, write_idx
from tests.helpers import FullDisk

pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


idx_dtypes = st.sampled_from([np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])


@given(hnp.arrays(idx_dtypes, hnp.array_shapes(min_dims=1, max_dims=4, max_side=5)), st.booleans())
def test_idx_write_then_read_round_trips(tmp_path_factory: pytest.TempPathFactory, array: np.ndarray, gz: bool) -> None:
    path = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    header = read_idx_header(path)
    assert header.shape == array.shape and header.compressed == gz


def test_idx_write_onto_a_full_disk_keeps_the_old_file(tmp_path: Path, full_disk: Callable[..., FullDisk]) -> None:
    path = tmp_path / "labels.idx"
    write_idx(path, np.arange(3, dtype=np.uint8))
    full_disk("labels.idx")
    with pytest.raises(OSError, match=f"No space left on device: '{path}'"):
        write_idx(path, np.arange(5, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.arange(3, dtype=np.uint8))  # not half of the new one
    assert [p.name for p in tmp_path.iterdir()] == ["labels.idx"]


def _idx_bytes(array: np.ndarray) -> bytes:
    """The IDX encoding of ``array``: 4 magic bytes, 4 bytes per dimension, big-endian data."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    code = {np.uint8: 0x08, np.int16: 0x0B, np.float32: 0x0D}[array.dtype.type]
    return (
        bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.astype(dtype).tobytes()
    )


def _write(path: Path, data: bytes, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated_file_says_how_much_is_missing(tmp_path: Path, gz: bool) -> None:
    path = _write(tmp_path / "t.idx", _idx_bytes(np.zeros((10, 4, 4), np.uint8))[:-30], gz)
    with pytest.raises(
        IDXError,
        match=r"truncated: the header describes a 10×4×4 array of uint8 \(160 bytes of data\), the file holds 130",
    ):
        read_idx(path)


def test_idx_wrong_magic_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path / "zip.idx", b"PK\x03\x04" + b"\x00" * 20, gz=False)
    with pytest.raises(IDXError, match=r"not an IDX file: magic bytes 50 4b 03 04"):
        read_idx(path)


def test_idx_empty_file(tmp_path: Path) -> None:
    path = _write(tmp_path / "empty", b"", gz=False)
    with pytest.raises(IDXError, match=r"not an IDX file: 0 bytes"):
        read_idx(path)


def test_idx_trailing_data(tmp_path: Path) -> None:
    path = _write(tmp_path / "long.idx", _idx_bytes(np.zeros(4, np.uint8)) + b"extra", gz=False)
    with pytest.raises(IDXError, match="trailing data"):
        read_idx(path)


def test_idx_broken_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros((5, 5), np.uint8)))[:-12])
    with pytest.raises(IDXError):
        read_idx(path)


# -- the header is checked before any data is read ----------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_idx_huge_count_is_refused_by_the_item_cap(tmp_path: Path, gz: bool) -> None:
    header = bytes([0, 0, 0x08, 3]) + (0xFFFFFFFF).to_bytes(4, "big") * 3
    path = _write(tmp_path / "huge.idx", header + b"\x00" * 10, gz)
    with pytest.raises(
        IDXError, match=rf"expected at most {MAX_ITEMS:,} items \(max_items\), the header claims 4,294,967,295"
    ):
        read_idx(path)


def test_idx_more_data_than_a_gzip_file_can_hold_is_refused(tmp_path: Path) -> None:
    # One item of 4G × 4G bytes: under the item cap, but no 40-byte gzip file expands that far.
    header = bytes([0, 0, 0x08, 3, 0, 0, 0, 1]) + (0xFFFFFFFF).to_bytes(4, "big") * 2
    path = _write(tmp_path / "wide.idx.gz", header + b"\x00" * 10, gz=True)
    with pytest.raises(IDXError, match=r"more than a \d+-byte gzip file can hold"):
        read_idx(path)


def test_idx_explicit_item_cap(tmp_path: Path) -> None:
    path = _write(tmp_path / "five.idx", _idx_bytes(np.zeros((5, 2), np.uint8)), gz=False)
    with pytest.raises(IDXError, match=r"expected at most 3 items \(max_items\), the header claims 5"):
        read_idx(path, max_items=3)
    assert read_idx(path, max_items=5).shape == (5, 2)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((5, 4, 4), np.uint8), r"expected a N×28×28 array of uint8, got a 5×4×4 array of uint8"),
        (np.zeros((5, 28, 28), np.float32), r"expected a N×28×28 array of uint8, got a 5×28×28 array of float32"),
        (np.zeros((5, 784), np.uint8), r"expected a N×28×28 array of uint8, got a 5×784 array of uint8"),
    ],
)
def test_idx_unexpected_shape_or_type_is_refused(tmp_path: Path, array: np.ndarray, message: str) -> None:
    path = _write(tmp_path / "x.idx", _idx_bytes(array), gz=False)
    with pytest.raises(IDXError, match=message):
        read_idx(path, shape=(28, 28), dtype=np.uint8)


# -- limited reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_limit_reads_only_the_prefix(tmp_path: Path, gz: bool) -> None:
    array = np.arange(10 * 3 * 3, dtype=np.uint8).reshape(10, 3, 3)
    complete = _write(tmp_path / "a.idx", _idx_bytes(array), gz)
    np.testing.assert_array_equal(read_idx(complete, limit=4), array[:4])
    np.testing.assert_array_equal(read_idx(complete, limit=50), array)  # fewer items than the limit: all
    # The rest of a file is not read: a truncated tail or trailing bytes do not matter to a limited read ...
    cut = _write(tmp_path / "cut.idx", _idx_bytes(array)[:-40], gz)
    padded = _write(tmp_path / "padded.idx", _idx_bytes(array) + b"junk", gz)
    np.testing.assert_array_equal(read_idx(cut, limit=4), array[:4])
    np.testing.assert_array_equal(read_idx(padded, limit=4), array[:4])
    # ... but what is read is checked, and a whole read still checks the whole file.
    with pytest.raises(IDXError, match=r"its first 8 items, 72 bytes of data\), the file holds 50"):
        read_idx(cut, limit=8)
    for path, message in ((cut, "truncated"), (padded, "trailing data")):
        with pytest.raises(IDXError, match=message):
            read_idx(path)


def test_limit_stops_inside_a_broken_gzip_stream(tmp_path: Path) -> None:
    array = np.random.default_rng(0).integers(0, 255, (400, 28, 28), dtype=np.uint8)  # incompressible
    path = tmp_path / "broken.idx.gz"
    path.write_bytes(gzip.compress(_idx_bytes(array), mtime=0)[:-5000])  # the end of the stream is lost
    np.testing.assert_array_equal(read_idx(path, limit=10), array[:10])
    with pytest.raises(IDXError):
        read_idx(path)


@pytest.mark.parametrize("limit", [0, -1, 2.5, True, "3"])
def test_bad_limit_is_named(tmp_path: Path, limit: object) -> None:
    path = _write(tmp_path / "a.idx", _idx_bytes(np.zeros(3, np.uint8)), gz=False)
    with pytest.raises(ValueError, match=r"limit: expected a positive integer or None, got"):
        read_idx(path, limit=limit)  # type: ignore[arg-type]


def _fake_split(folder: Path, n_images: int, n_labels: int | None = None, side: int = 28) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    images = np.random.default_rng(n_images).integers(0, 256, (n_images, side, side), dtype=np.uint8)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", images)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n_labels or n_images, dtype=np.uint8) % 10)
    return images


def test_mnist_and_load_dataset_read_only_the_limit(tmp_path: Path) -> None:
    images = _fake_split(tmp_path, 50)
    for ds in (gv.data.MNIST(tmp_path, "test", limit=7), gv.data.load_dataset("mnist", "test", str(tmp_path), limit=7)):
        assert len(ds) == 7 and ds.labels.tolist() == list(range(7))
        np.testing.assert_array_equal((ds.images[:, 0] * 255).round().byte().numpy(), images[:7])
    assert len(gv.data.FashionMNIST(tmp_path, "test", limit=100)) == 50
    with pytest.raises(ValueError, match=r"limit: expected a positive integer or None, got 0"):
        gv.data.MNIST(tmp_path, "test", limit=0)


def test_mnist_refuses_headers_that_disagree_before_reading(tmp_path: Path) -> None:
    _fake_split(tmp_path / "counts", 30, n_labels=20)
    with pytest.raises(IDXError, match=r"expected 30 labels to match t10k-images-idx3-ubyte.gz, the header claims 20"):
        gv.data.MNIST(tmp_path / "counts", "test", limit=5)
    _fake_split(tmp_path / "side", 3, side=32)
    with pytest.raises(IDXError, match=r"expected a N×28×28 array of uint8, got a 3×32×32 array of uint8"):
        gv.data.MNIST(tmp_path / "side", "test")


# -- memory, measured in a fresh process -----------------------------------------------------------


def _gzip_bomb(path: Path, count: int, shape: tuple[int, ...]) -> Path:
    """A gzip IDX file whose header claims ``count`` items of zeros and holds them all: gzip members
    of 1 MiB of zeros, repeated (a multi-member gzip is one stream to a reader), about 1,000:1."""
    item = int(np.prod(shape))
    header = bytes([0, 0, 0x08, 1 + len(shape)]) + struct.pack(f">{1 + len(shape)}I", count, *shape)
    whole, rest = divmod(count * item, 1 << 20)
    block = gzip.compress(bytes(1 << 20), compresslevel=9, mtime=0)
    with open(path, "wb") as out:
        out.write(gzip.compress(header, mtime=0))
        for _ in range(whole):
            out.write(block)
        out.write(gzip.compress(bytes(rest), mtime=0))
    return path


MEASURE = """
import json, resource, sys
import genvae as gv
from genvae.data.idx import IDXError, read_idx
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # MiB (Linux reports KiB)
base, growth, outcome = peak(), {}, {}
for name, call in [
    ("read_idx limit", lambda: read_idx(sys.argv[1] + "/t10k-images-idx3-ubyte.gz", limit=1000).shape),
    ("MNIST limit", lambda: tuple(gv.data.MNIST(sys.argv[1], "test", limit=1000).images.shape)),
    ("MNIST labels disagree", lambda: gv.data.MNIST(sys.argv[2], "test")),
    ("MNIST over the cap", lambda: gv.data.MNIST(sys.argv[3], "test")),
    ("read_idx lying gzip", lambda: read_idx(sys.argv[4])),
]:
    try:
        outcome[name] = list(call())
    except IDXError as err:
        outcome[name] = "IDXError: " + str(err).split(": ", 1)[1]
    growth[name] = peak() - base
print(json.dumps({"growth": growth, "outcome": outcome}))
"""


def test_a_gzip_bomb_is_read_in_bounded_memory_or_refused(tmp_path: Path) -> None:
    # The file: 0.23 MB of gzip whose header claims 300,000 images of zeros (235 MB; read
    # whole and converted to float it cost 1.35 GiB before anything was checked).
    bomb = tmp_path / "bomb"
    bomb.mkdir()
    _gzip_bomb(bomb / "t10k-images-idx3-ubyte.gz", 300_000, (28, 28))
    assert (bomb / "t10k-images-idx3-ubyte.gz").stat().st_size < 300_000
    _gzip_bomb(bomb / "t10k-labels-idx1-ubyte.gz", 300_000, ())
    disagree = tmp_path / "disagree"
    disagree.mkdir()
    (disagree / "t10k-images-idx3-ubyte.gz").symlink_to(bomb / "t10k-images-idx3-ubyte.gz")
    write_idx(disagree / "t10k-labels-idx1-ubyte.gz", np.zeros(10_000, np.uint8))
    over = tmp_path / "over"
    over.mkdir()
    _write(over / "t10k-images-idx3-ubyte.gz", bytes([0, 0, 8, 3]) + struct.pack(">3I", 20_000_000, 28, 28), gz=True)
    write_idx(over / "t10k-labels-idx1-ubyte.gz", np.zeros(10, np.uint8))
    # A header claiming 300,000 images over 1,000 images' worth of zeros: more than the file can expand to.
    lying_header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 300_000, 28, 28)
    lying = _write(tmp_path / "lying.idx.gz", lying_header + bytes(784_000), gz=True)
    script = textwrap.dedent(MEASURE)
    run = subprocess.run(
        [sys.executable, "-c", script, str(bomb), str(disagree), str(over), str(lying)],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(run.stdout)
    outcome, growth = result["outcome"], result["growth"]
    assert outcome["read_idx limit"] == [1000, 28, 28] and outcome["MNIST limit"] == [1000, 1, 28, 28]
    assert outcome["MNIST labels disagree"].startswith("IDXError: expected 300,000 labels")
    assert outcome["MNIST over the cap"].startswith("IDXError: expected at most 10,000,000 items")
    assert "more than a" in outcome["read_idx lying gzip"] and "gzip file can hold" in outcome["read_idx lying gzip"]
    # 1,000 images are 0.8 MB (3 MB as float); reading the whole bomb would add at least 235 MB.
    assert max(growth.values()) < 60, growth
