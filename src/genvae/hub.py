"""Sharing models on the Hugging Face Hub: :func:`push_to_hub`, :func:`save_for_hub`, and
``gv.load("hf://owner/name[@revision]")``.

A model on the Hub is a folder laid out as Hugging Face model repositories are:

- ``config.json``: what :func:`genvae.save` writes as ``model.json`` (the model's constructor
  arguments, format version, dtype, genvae version), naming ``model.safetensors`` and its SHA-256;
- ``model.safetensors``: the weights;
- ``README.md``: a model card whose metadata names the library (``library_name: genvae``).

:func:`genvae.load` reads such a folder as it reads a :func:`genvae.save` folder, with the same
checks. The Hub needs the optional ``huggingface_hub`` package: ``pip install 'genvae[hub]'``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from genvae._hub_files import (
    CARD_FILE,
    HUB_MODEL_FILE,
    HUB_PREFIX,
    HUB_WEIGHTS_FILE,
    check_repo_id,
    download,
    huggingface_hub,
)
from genvae._io import atomic_write, locked_dir
from genvae._version import __version__
from genvae.config import MODEL_FILE, save

__all__ = ["HUB_PREFIX", "download", "push_to_hub", "save_for_hub"]

#: How :func:`genvae.load` is told to fetch a model from the Hub: ``hf://owner/name[@revision]``.
_CARD = """---
library_name: genvae
tags:
- genvae
- variational-autoencoder
---

# {title}

A {kind} saved with [genvae](https://pypi.org/project/genvae/) {version}.

```python
import genvae as gv

model = gv.load("hf://{repo_id}")
```

`config.json` holds the model's constructor arguments (genvae rebuilds the model from them) and
`model.safetensors` its weights.
"""


def save_for_hub(model: nn.Module, directory: str | os.PathLike[str], *, repo_id: str | None = None) -> Path:
    """Write ``model`` into ``directory`` as a Hub model repository (``config.json``,
    ``model.safetensors`` and, unless one is there, a ``README.md`` model card naming
    ``repo_id``); returns the directory. :func:`genvae.load` reads it back.

    The weights are published before ``config.json``, each by a rename: a save that stops between
    the two leaves a folder :func:`genvae.load` refuses (checksum mismatch), never a wrong model.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out, prefix=".genvae-hub-") as staging:
        save(model, staging)  # the checks, the description and the weights of gv.save
        document = json.loads((Path(staging) / MODEL_FILE).read_text())
        weights = Path(staging) / document["weights"]
        document["weights"] = HUB_WEIGHTS_FILE
        with locked_dir(out):
            os.replace(weights, out / HUB_WEIGHTS_FILE)
            atomic_write(out / HUB_MODEL_FILE, (json.dumps(document, indent=2) + "\n").encode())
            if not (out / CARD_FILE).exists():
                card = _CARD.format(title=repo_id or type(model).__name__, kind=type(model).__name__,
                                    version=__version__, repo_id=repo_id or "OWNER/NAME")  # fmt: skip
                atomic_write(out / CARD_FILE, card.encode())
    return out


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload model with genvae",
) -> Any:
    """Upload ``model`` to the Hub repository ``repo_id`` (``owner/name``, created if needed), laid
    out by :func:`save_for_hub`; returns huggingface_hub's commit information. Load it back with
    ``gv.load("hf://owner/name")``. ``token`` defaults to the one ``hf auth login`` stored."""
    check_repo_id(repo_id)
    hub = huggingface_hub()
    api = hub.HfApi(token=token)
    with tempfile.TemporaryDirectory(prefix="genvae-hub-") as folder:
        save_for_hub(model, folder, repo_id=repo_id)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision, commit_message=commit_message, repo_type="model"
        )
