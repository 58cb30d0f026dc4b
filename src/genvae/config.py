"""Rebuilding models from their constructor arguments: :func:`save` and :func:`load`.

Every class registered in a part registry (encoders, decoders, conditioners, likelihoods,
models) records the arguments it was constructed with. :func:`save` writes those arguments
as JSON (``model.json``) beside the weights (``weights.pt``); :func:`load` calls the
constructors again and loads the weights. The constructor signature is the schema, so there is
no separate config class to keep in sync.

Example:
    >>> import tempfile, torch, genvae as gv
    >>> model = gv.presets.seed_vae(latent_dim=2)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = gv.save(model, d)
    ...     again = gv.load(d)
    >>> all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    True
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import io
import json
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genvae._io import atomic_write
from genvae.registry import registered_name, registry_of

__all__ = ["MODEL_FILE", "WEIGHTS_FILE", "from_config", "get_config", "load", "save"]

MODEL_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"
FORMAT_VERSION = 1
_SPEC_KEY = "genvae"  # marks a nested part in a config: {"genvae": "kind/name", "args": {...}}
_CONFIG_ATTR = "_genvae_init_arguments"


def record_init_arguments(cls: type) -> None:
    """Wrap ``cls.__init__`` so that instances remember the arguments they were built with.

    Only the arguments of the outermost ``__init__`` (the instance's own class) are kept: a
    registered parent's ``__init__`` called through ``super()`` does not overwrite them.
    """
    own = cls.__dict__.get("__init__")
    if own is not None and getattr(own, "_genvae_records", False):
        return
    init = cls.__init__  # type: ignore[misc]  # the class's own, or the inherited one (then wrapped for this class)
    signature = inspect.signature(init)

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if type(self) is cls:
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            arguments: dict[str, Any] = {}
            for pname, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[pname].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    arguments.update(value)
                elif kind is inspect.Parameter.VAR_POSITIONAL:
                    if value:
                        arguments[f"*{pname}"] = list(value)
                else:
                    arguments[pname] = value
            object.__setattr__(self, _CONFIG_ATTR, arguments)
        init(self, *args, **kwargs)

    __init__._genvae_records = True  # type: ignore[attr-defined]
    cls.__init__ = __init__  # type: ignore[misc]


def _unsaveable(path: str, obj: Any) -> ValueError:
    cls = type(obj)
    return ValueError(
        f"{path}: cannot save a {cls.__name__} because it is not a registered genvae part, so its "
        "constructor arguments were not recorded. Register the class before constructing it, e.g. "
        f"@gv.encoders.register({cls.__name__.lower()!r}) above `class {cls.__name__}` (use the "
        "registry of its kind: encoders, decoders, conditioners, likelihoods or models)"
    )


def get_config(obj: Any, path: str = "model") -> Any:
    """Return the JSON-ready description of ``obj``: a nested spec for a registered part, the
    value itself for JSON scalars, lists and string-keyed dicts. Anything else is an error that
    names where in the model it sits (``path``)."""
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, list | tuple):
        return [get_config(v, f"{path}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        if not all(isinstance(k, str) for k in obj):
            raise ValueError(f"{path}: cannot save a dict with non-string keys")
        return {k: get_config(v, f"{path}.{k}") for k, v in obj.items()}
    name = registered_name(type(obj))
    arguments = getattr(obj, _CONFIG_ATTR, None)
    if name is None or arguments is None:
        if isinstance(obj, nn.Module | type) or callable(obj):
            raise _unsaveable(path, obj)
        raise ValueError(f"{path}: cannot save a value of type {type(obj).__name__}: {obj!r}")
    kind, key = name
    return {
        _SPEC_KEY: f"{kind}/{key}",
        "args": {k: get_config(v, f"{path}.{k}") for k, v in arguments.items()},
    }


def from_config(spec: Any) -> Any:
    """Inverse of :func:`get_config`: build the object a spec describes."""
    if isinstance(spec, list):
        return [from_config(v) for v in spec]
    if isinstance(spec, dict):
        if _SPEC_KEY not in spec:
            return {k: from_config(v) for k, v in spec.items()}
        kind, _, name = str(spec[_SPEC_KEY]).partition("/")
        cls = registry_of(kind).get(name)
        args = {k: from_config(v) for k, v in spec.get("args", {}).items()}
        positional = [args.pop(k) for k in [k for k in args if k.startswith("*")]]
        return cls(*(positional[0] if positional else []), **args)
    return spec


def save(model: nn.Module, directory: str | os.PathLike[str]) -> Path:
    """Save ``model``'s constructor arguments (``model.json``) and weights (``weights.pt``) in
    ``directory`` (created if needed). Returns the directory.

    The model and each of its parts must be registered genvae classes (all built-in parts
    are); an unregistered custom part is an error that says how to register it. Both files are
    written atomically, and ``model.json`` carries the SHA-256 of the weights so :func:`load`
    refuses a weights file that does not belong to it.
    """
    config = get_config(model)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    weights = buffer.getvalue()
    from genvae import __version__

    document = {
        "format": FORMAT_VERSION,
        "genvae_version": __version__,
        "weights_sha256": hashlib.sha256(weights).hexdigest(),
        "model": config,
    }
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / WEIGHTS_FILE, weights)
    atomic_write(out / MODEL_FILE, (json.dumps(document, indent=2) + "\n").encode())
    return out


def load(directory: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """Rebuild the model saved by :func:`save` in ``directory`` and load its weights.

    Raises:
        FileNotFoundError: ``directory`` holds no ``model.json`` or ``weights.pt``.
        ValueError: a file is not valid, or the weights do not match their checksum.
    """
    root = Path(directory)
    config_path, weights_path = root / MODEL_FILE, root / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(
                f"directory: expected {path.name} in {str(root)!r} (written by gv.save), but it is not there"
            )
    try:
        document = json.loads(config_path.read_text())
        spec = document["model"]
        expected_sha = document["weights_sha256"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{config_path}: not a genvae model description ({err})") from None
    weights = weights_path.read_bytes()
    actual_sha = hashlib.sha256(weights).hexdigest()
    if actual_sha != expected_sha:
        raise ValueError(
            f"{weights_path}: checksum mismatch (expected sha256 {expected_sha}, got {actual_sha}); "
            "the file is corrupted or belongs to another model"
        )
    try:
        model = from_config(spec)
    except (TypeError, ValueError, KeyError, AttributeError) as err:
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise ValueError(f"{config_path}: cannot rebuild the model it describes: {message}") from None
    try:
        state = torch.load(io.BytesIO(weights), map_location=map_location, weights_only=True)
        model.load_state_dict(state)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise ValueError(f"{weights_path}: the weights do not fit the model in {MODEL_FILE}: {err}") from None
    return model.to(map_location)
