"""Where a model on the Hugging Face Hub is, and the huggingface_hub package: below
:mod:`genvae.config` (whose ``load`` reads ``hf://`` addresses) and :mod:`genvae.hub` (which
writes and uploads Hub folders), so that neither imports the other's module back."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = [
    "CARD_FILE",
    "HUB_MODEL_FILE",
    "HUB_PREFIX",
    "HUB_WEIGHTS_FILE",
    "check_repo_id",
    "download",
    "huggingface_hub",
]

#: The address prefix of a model on the Hub: ``hf://owner/name[@revision]``.
HUB_PREFIX = "hf://"
#: A folder laid out for the Hugging Face Hub (genvae.hub): model.json's content and the weights, by these names.
HUB_MODEL_FILE, HUB_WEIGHTS_FILE = "config.json", "model.safetensors"
CARD_FILE = "README.md"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")


def huggingface_hub() -> Any:
    """The ``huggingface_hub`` module, or a one-line error naming the extra that installs it."""
    try:
        import huggingface_hub
    except ImportError:
        raise ImportError("the Hugging Face Hub needs the huggingface_hub package: pip install 'genvae[hub]'") from None
    return huggingface_hub


def download(address: str) -> Path:
    """The local folder (in huggingface_hub's cache) of the model at ``hf://owner/name[@revision]``:
    downloaded, or found in the cache (offline with ``HF_HUB_OFFLINE=1``)."""
    repo_id, _, revision = address.removeprefix(HUB_PREFIX).partition("@")
    check_repo_id(repo_id, address)
    if "@" in address and not revision:
        raise ValueError(f"directory: expected hf://owner/name@revision, got {address!r} (an empty revision)")
    hub = huggingface_hub()
    try:
        folder = hub.snapshot_download(
            repo_id, revision=revision or None, allow_patterns=[HUB_MODEL_FILE, HUB_WEIGHTS_FILE, CARD_FILE]
        )
    except Exception as err:  # huggingface_hub's errors: not found, offline and not cached, no access
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise FileNotFoundError(
            f"directory: cannot fetch {address!r} from the Hub ({type(err).__name__}: {first})"
        ) from None
    return Path(folder)


def check_repo_id(repo_id: str, address: str | None = None) -> None:
    if not isinstance(repo_id, str) or not _REPO_ID.fullmatch(repo_id) or ".." in repo_id:
        what = f"hf://owner/name[@revision], got {address!r}" if address else f"'owner/name', got {repo_id!r}"
        raise ValueError(f"{'directory' if address else 'repo_id'}: expected {what}")
