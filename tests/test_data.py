"""Data: MNIST and Fashion-MNIST, dataset resolution, the verified download, ImageDataset, load_dataset
(the IDX reader is in test_data_idx.py, SyntheticDigits in test_data_synthetic.py)."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import genvae as gv
from genvae._io import RunWriteError
from genvae.data import files
from genvae.data.idx import write_idx
from tests.helpers import FullDisk

SHARED_MNIST = next(
    (
        p / "shared" / "data" / "mnist"
        for p in Path(__file__).resolve().parents
        if (p / "shared" / "data" / "mnist").is_dir()
    ),
    Path("shared/data/mnist"),
)
needs_mnist = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="shared/data/mnist is not beside the checkout")


pytestmark = pytest.mark.usefixtures("isolated_data_dirs")


@needs_mnist
def test_real_mnist_test_split() -> None:
    ds = gv.data.MNIST(root=SHARED_MNIST, split="test")
    assert ds.images.shape == (10_000, 1, 28, 28) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and set(ds.labels.tolist()) == set(range(10))
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and int(label) == 7  # the first test digit is a 7


# -- resolution order -------------------------------------------------------------------------------


def _fake_split(folder: Path, n: int = 6, value: int = 0) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", np.full((n, 28, 28), value, np.uint8))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    system, cache, env, root = (tmp_path / d for d in ("system", "cache", "env", "root"))
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", system)
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.setenv("GENVAE_DATA", str(env))
    places = [
        (system / "mnist", 1),
        (cache / "genvae" / "mnist", 2),
        (env / "mnist", 3),
        (root / "mnist", 4),
        (root, 5),
    ]
    for folder, value in places:  # each more preferred place is added in turn and must win
        _fake_split(folder, value=value)
        found = gv.data.MNIST(root=root if value >= 4 else None, split="test")
        assert round(float(found.images.max()) * 255) == value


def test_missing_dataset_lists_the_folders_searched(tmp_path: Path) -> None:
    with pytest.raises(
        gv.data.DatasetNotFoundError,
        match=r"fashion-mnist: train-images-idx3-ubyte\(.gz\) is in none of the folders searched \(" + str(tmp_path),
    ):
        gv.data.FashionMNIST(root=tmp_path, split="train")


def test_bad_split_is_named() -> None:
    with pytest.raises(ValueError, match=r"split: expected one of 'train', 'test', got 'val'"):
        gv.data.MNIST(split="val")


# -- download against a local HTTP server ----------------------------------------------------------


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """An HTTP server on 127.0.0.1 serving a folder; yields (base URL, folder)."""
    served = tmp_path / "served"
    served.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/", served
    finally:
        server.shutdown()
        server.server_close()


@needs_mnist
def test_download_fetches_verifies_and_loads(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, served = mirror
    for f in SHARED_MNIST.glob("t10k-*.gz"):
        shutil.copy(f, served / f.name)
    target = tmp_path / "data"
    ds = gv.data.MNIST(root=target, split="test", download=True, mirrors=["http://127.0.0.1:9/", url], progress=False)
    assert len(ds) == 10_000
    assert sorted(p.name for p in target.iterdir()) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    digest = hashlib.md5((target / "t10k-images-idx3-ubyte.gz").read_bytes()).hexdigest()
    assert digest == gv.data.MNIST.MD5["t10k-images-idx3-ubyte.gz"]


def test_a_corrupted_download_leaves_nothing_behind(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, served = mirror
    (served / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupted" * 100)
    target = tmp_path / "data"
    with pytest.raises(gv.data.DownloadError) as info:
        files.download(
            "t10k-labels-idx1-ubyte.gz", [url], gv.data.MNIST.MD5["t10k-labels-idx1-ubyte.gz"], target, progress=False
        )
    message = str(info.value)
    assert "MD5" in message and "expected ec29112dd5afa0611ce80d1b7f02629c" in message
    assert f"by hand in {target}" in message
    assert list(target.iterdir()) == []


def test_a_missing_file_on_every_mirror_is_reported(mirror: tuple[str, Path], tmp_path: Path) -> None:
    url, _ = mirror
    with pytest.raises(gv.data.DownloadError, match="404"):
        files.download("nothing.gz", [url], "0" * 32, tmp_path / "d", progress=False)
    assert list((tmp_path / "d").iterdir()) == []


@pytest.mark.parametrize("size", [5000, 300_000])  # written at the flush, and while downloading
def test_a_download_onto_a_full_disk_names_the_file_and_tries_no_other_mirror(
    mirror: tuple[str, Path], tmp_path: Path, full_disk: Callable[..., FullDisk], size: int
) -> None:
    url, served = mirror
    payload = b"x" * size
    (served / "f.bin").write_bytes(payload)
    disk = full_disk("f.bin")
    with pytest.raises(RunWriteError) as caught:  # not a DownloadError blaming the mirrors
        files.download("f.bin", [url, url], hashlib.md5(payload).hexdigest(), tmp_path / "d", progress=False)
    assert str(caught.value) == (
        f"{tmp_path / 'd' / 'f.bin'}: No space left on device while downloading f.bin; "
        f"nothing of it was kept in {tmp_path / 'd'}"
    )
    assert disk.hits == 1 and list((tmp_path / "d").iterdir()) == []


def test_download_shows_a_progress_bar_when_asked(
    mirror: tuple[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, served = mirror
    payload = b"x" * 5000
    (served / "f.bin").write_bytes(payload)
    files.download("f.bin", [url], hashlib.md5(payload).hexdigest(), tmp_path, progress=True)
    assert "f.bin" in capsys.readouterr().err
    assert (tmp_path / "f.bin").read_bytes() == payload


# -- ImageDataset and load_dataset -----------------------------------------------------------------


def test_binarisation() -> None:
    ds = gv.data.ImageDataset(torch.rand(50, 1, 4, 4), torch.zeros(50, dtype=torch.long))
    fixed = ds.binarized(0.5)
    assert torch.equal(fixed.images, (ds.images > 0.5).float())
    sampled = ds.binarized("sample")
    torch.manual_seed(0)
    first = sampled.batch(slice(0, 50))[0]
    second = sampled.batch(slice(0, 50))[0]
    assert set(first.unique().tolist()) <= {0.0, 1.0}
    assert not torch.equal(first, second)  # a fresh draw each time
    with pytest.raises(ValueError, match="threshold: expected a number in"):
        ds.binarized(1.5)


def test_image_dataset_is_a_torch_dataset() -> None:
    ds = gv.data.SyntheticDigits(64)
    loader = torch.utils.data.DataLoader(ds, batch_size=16)
    x, y = next(iter(loader))
    assert x.shape == (16, 1, 28, 28) and y.shape == (16,)
    assert len(ds.subset(slice(0, 10))) == 10


def test_image_dataset_rejects_bad_tensors() -> None:
    with pytest.raises(ValueError, match=r"images: expected a float tensor of shape \(N, C, H, W\), got \(3, 4, 4\)"):
        gv.data.ImageDataset(torch.rand(3, 4, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels: expected an integer tensor of shape \(3,\), got \(2,\)"):
        gv.data.ImageDataset(torch.rand(3, 1, 4, 4), torch.zeros(2, dtype=torch.long))


def test_load_dataset_by_name() -> None:
    ds = gv.data.load_dataset("synthetic-digits", "test", limit=100)
    assert len(ds) == 100
    known = "fashion-mnist, mnist, synthetic-digits"
    with pytest.raises(KeyError, match=f"name: expected one of {known}, got 'cifar'"):
        gv.data.load_dataset("cifar")
    with pytest.raises(ValueError, match=r"limit: expected a positive integer or None, got -5"):
        gv.data.load_dataset("synthetic-digits", limit=-5)


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_from_the_system_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", FASHION.parent)
    train, test = gv.data.FashionMNIST(split="train"), gv.data.FashionMNIST(split="test")
    assert len(train) == 60_000 and len(test) == 10_000
    assert train.paths[0].parent == FASHION
    assert torch.bincount(train.labels).tolist() == [6000] * 10  # Fashion-MNIST is balanced
    first = gv.data.load_dataset("fashion-mnist", "train", limit=1000)  # reads only the first 1,000
    assert torch.equal(first.images, train.images[:1000]) and torch.equal(first.labels, train.labels[:1000])
