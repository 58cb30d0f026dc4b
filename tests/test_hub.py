"""genvae.hub: the folder layout of a Hub model repository, gv.load("hf://...") through
huggingface_hub's own cache in offline mode, and push_to_hub against a mocked HfApi (no upload)."""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch

import genvae as gv

huggingface_hub = pytest.importorskip("huggingface_hub")
hub_constants = pytest.importorskip("huggingface_hub.constants")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_save_for_hub_writes_a_hugging_face_model_repository(tmp_path: Path) -> None:
    model = gv.presets.seed_cvae(latent_dim=3)
    gv.hub.save_for_hub(model, tmp_path, repo_id="alice/cvae")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["weights"] == "model.safetensors" and config["format"] == gv.config.FORMAT_VERSION
    assert config["weights_sha256"] == hashlib.sha256((tmp_path / "model.safetensors").read_bytes()).hexdigest()
    card = (tmp_path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: genvae\n") and 'gv.load("hf://alice/cvae")' in card
    from safetensors import safe_open  # the weights are a plain safetensors file, readable without genvae

    with safe_open(str(tmp_path / "model.safetensors"), "pt") as fh:
        assert set(fh.keys()) == set(model.state_dict())
    assert same_weights(gv.load(tmp_path), model)


def test_save_for_hub_keeps_a_model_card_the_user_wrote(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("---\nlibrary_name: genvae\n---\nMy card\n")
    gv.hub.save_for_hub(gv.presets.seed_vae(), tmp_path)
    assert (tmp_path / "README.md").read_text().endswith("My card\n")


def populate_cache(cache: Path, repo_id: str, folder: Path, refs: tuple[str, ...] = ("main",)) -> None:
    """Lay ``folder`` out in ``cache`` as huggingface_hub does after a download: blobs named by
    their hash, a snapshot of links to them per commit, and refs naming the commit."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    for path in folder.iterdir():
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        (repo / "blobs" / blob).write_bytes(path.read_bytes())
        (repo / "snapshots" / COMMIT / path.name).symlink_to(Path("..", "..", "blobs", blob))
    for ref in refs:
        (repo / "refs" / ref).write_text(COMMIT)


@pytest.fixture
def offline_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, torch.nn.Module]:
    """A model in huggingface_hub's cache under tmp_path, the hub offline (HF_HUB_OFFLINE=1)."""
    model = gv.presets.seed_vae(latent_dim=4)
    gv.hub.save_for_hub(model, tmp_path / "repo", repo_id="alice/vae")
    cache = tmp_path / "cache"
    populate_cache(cache, "alice/vae", tmp_path / "repo", refs=("main", "v1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # read at import: set it too
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    return cache, model


@pytest.mark.parametrize(
    "address", ["hf://alice/vae", "hf://alice/vae@main", "hf://alice/vae@v1", f"hf://alice/vae@{COMMIT}"]
)
def test_load_from_the_hub_resolves_through_huggingface_hubs_offline_cache(
    offline_cache: tuple[Path, torch.nn.Module], address: str
) -> None:
    _, model = offline_cache
    loaded = gv.load(address)
    assert isinstance(loaded, gv.VAE) and loaded.latent_dim == 4 and same_weights(loaded, model)


def test_load_from_the_hub_in_a_fresh_process_with_hf_hub_offline(offline_cache: tuple[Path, torch.nn.Module]) -> None:
    """As a user runs it: the environment variables alone put huggingface_hub offline and in the cache."""
    code = "import genvae as gv; print(gv.load('hf://alice/vae').latent_dim)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "4"


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("hf://alice/missing", r"^directory: cannot fetch 'hf://alice/missing' from the Hub \("),
        ("hf://alice/vae@nope", r"^directory: cannot fetch 'hf://alice/vae@nope' from the Hub \("),
        ("hf://alice", r"^directory: expected hf://owner/name\[@revision\], got 'hf://alice'"),
        ("hf://alice/vae@", r"^directory: expected hf://owner/name@revision, got 'hf://alice/vae@'"),
        ("hf://../etc/x", r"^directory: expected hf://owner/name"),
    ],
)
def test_a_model_that_cannot_be_fetched_is_one_line(
    offline_cache: tuple[Path, torch.nn.Module], address: str, message: str
) -> None:
    with pytest.raises((FileNotFoundError, ValueError), match=message) as info:
        gv.load(address)
    assert "\n" not in str(info.value)


def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_hub(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("huggingface_hub"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(
        ImportError, match=r"^the Hugging Face Hub needs the huggingface_hub package: pip install 'genvae\[hub\]'$"
    ):
        gv.load("hf://alice/vae")
    with pytest.raises(ImportError, match=r"genvae\[hub\]"):
        gv.push_to_hub(gv.presets.seed_vae(), "alice/vae")


class FakeApi:
    """HfApi with its two network calls recorded: the repository created, the folder's files."""

    calls: ClassVar[list[tuple[str, dict[str, Any]]]] = []

    def __init__(self, token: str | None = None) -> None:
        self.token = token

    def create_repo(self, repo_id: str, **kwargs: Any) -> str:
        self.calls.append(("create_repo", {"repo_id": repo_id, "token": self.token, **kwargs}))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs: Any) -> str:
        files = {p.name: p.read_bytes() for p in Path(kwargs["folder_path"]).iterdir()}
        self.calls.append(("upload_folder", {**kwargs, "files": files}))
        return "commit-url"


def test_push_to_hub_uploads_the_hub_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline_cache: tuple[Path, torch.nn.Module]
) -> None:
    """The upload is mocked at HfApi (no network here); the files it was given load back."""
    FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = gv.presets.seed_cvae()
    assert gv.push_to_hub(model, "bob/cvae", private=True, token="secret", revision="dev") == "commit-url"
    (create, created), (upload, uploaded) = FakeApi.calls
    assert create == "create_repo" and created["repo_id"] == "bob/cvae" and created["private"] is True
    assert created["token"] == "secret" and created["exist_ok"] is True
    assert upload == "upload_folder" and uploaded["repo_id"] == "bob/cvae" and uploaded["revision"] == "dev"
    assert sorted(uploaded["files"]) == ["README.md", "config.json", "model.safetensors"]
    received = tmp_path / "received"
    received.mkdir()
    for name, data in uploaded["files"].items():
        (received / name).write_bytes(data)
    populate_cache(offline_cache[0], "bob/cvae", received)
    assert same_weights(gv.load("hf://bob/cvae"), model)  # what was uploaded, fetched back through the cache


def test_push_to_hub_refuses_a_bad_repo_id() -> None:
    with pytest.raises(ValueError, match=r"^repo_id: expected 'owner/name', got 'no-owner'$"):
        gv.push_to_hub(gv.presets.seed_vae(), "no-owner")
