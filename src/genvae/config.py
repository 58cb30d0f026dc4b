"""Rebuilding models from their constructor arguments: :func:`save` and :func:`load`.

Every class registered in a part registry (encoders, decoders, conditioners, likelihoods,
models, samplers) records the arguments it was constructed with. :func:`save` writes those arguments
as JSON (``model.json``) beside the weights (``weights-<checksum>.safetensors``); :func:`load`
checks the description, calls the constructors again and loads the weights. The constructor signature
is the schema, so there is no separate config class to keep in sync.

A model folder holds ``model.json`` and the one weights file it names. ``model.json`` is replaced
last, in one rename, so it switches from the old model to the new one atomically; see :func:`save`.
Folders written by earlier versions still load: format 2 (torch weights, ``weights-<checksum>.pt``)
and format 1 (``model.json`` and ``weights.pt``). A folder laid out for the Hugging Face Hub
(:mod:`genvae.hub`: ``config.json`` and ``model.safetensors``) loads too.

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

import contextlib
import hashlib
import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from genvae._hub_files import HUB_MODEL_FILE, HUB_WEIGHTS_FILE, download
from genvae._init_arguments import INIT_ARGUMENTS_ATTR
from genvae._io import atomic_write, locked_dir, step
from genvae._json import json_object, json_type
from genvae._validation import NonFiniteWeightsError, check_finite, fmt_shape
from genvae._version import __version__
from genvae._weights import FixedBuffers, WeightsFile, to_bytes
from genvae.registry import registered_name, registry_of

__all__ = ["FORMAT_VERSION", "MAX_JSON_DEPTH", "MAX_MODEL_FILE_BYTES", "MODEL_FILE", "from_config", "get_config",
           "load", "save"]  # fmt: skip

#: The file that describes a saved model (and names its weights file).
MODEL_FILE = "model.json"
LEGACY_WEIGHTS_FILE = "weights.pt"  # format 1
#: The version of ``model.json`` that :func:`save` writes; :func:`load` reads it and format 1.
FORMAT_VERSION = 3
#: Bounds checked before ``model.json`` is parsed: its size, and how deeply its JSON nests.
MAX_MODEL_FILE_BYTES = 1 << 20
MAX_JSON_DEPTH = 32
_FIELDS = {
    1: {"format", "genvae_version", "weights_sha256", "model"},
    2: {"format", "genvae_version", "dtype", "weights", "weights_sha256", "model"},
}
_FIELDS[3] = _FIELDS[2]  # format 3: the same fields, the weights in safetensors
_DTYPES = {"float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16}
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WEIGHTS_NAMES = {  # what a model.json of each format may name; model.safetensors: a Hub folder's
    2: re.compile(r"weights-[0-9a-f]{16}\.pt"),
    3: re.compile(r"weights-[0-9a-f]{16}\.safetensors|model\.safetensors"),
}
_WEIGHTS_WHAT = {2: "'weights-<16 hex digits>.pt'", 3: "'weights-<16 hex digits>.safetensors'"}
_OLD_WEIGHTS = re.compile(r"weights-[0-9a-f]{16}\.(pt|safetensors)")
_SAVE_TEMPORARY = re.compile(r"\.(model\.json|weights-[0-9a-f]{16}\.(pt|safetensors))\..+\.tmp")
_SPEC_KEY = "genvae"  # marks a nested part in a config: {"genvae": "kind/name", "args": {...}}


def _unsaveable(path: str, obj: Any) -> ValueError:
    cls = type(obj)
    return ValueError(
        f"{path}: cannot save a {cls.__name__} because it is not a registered genvae part, so its "
        "constructor arguments were not recorded. Register the class before constructing it, e.g. "
        f"@gv.encoders.register({cls.__name__.lower()!r}) above `class {cls.__name__}` (use the "
        "registry of its kind: encoders, decoders, conditioners, likelihoods, models or samplers)"
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
    arguments = getattr(obj, INIT_ARGUMENTS_ATTR, None)
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
    """Inverse of :func:`get_config`: build the object a spec describes.

    Every failure is a ``ValueError`` that names where in the spec it happened (``model.encoder``)."""
    return _build(spec, "model")


class _SpecError(ValueError):
    """A spec that cannot be built; the message already names where (not wrapped again)."""


def _build(spec: Any, where: str) -> Any:
    if isinstance(spec, list):
        return [_build(v, f"{where}[{i}]") for i, v in enumerate(spec)]
    if not isinstance(spec, dict):
        return spec
    if _SPEC_KEY not in spec:
        return {k: _build(v, _field(where, k)) for k, v in spec.items()}
    cls = _part_class(spec, where)
    args = {k: _build(v, _field(where, k.lstrip("*"))) for k, v in spec.get("args", {}).items()}
    positional = [args.pop(k) for k in [k for k in args if k.startswith("*")]]
    try:
        return cls(*(positional[0] if positional else []), **args)
    except _SpecError:
        raise
    except Exception as err:  # a constructor may fail in any way; the spec is what is wrong
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        raise _SpecError(f"{where}: {' '.join(message.split()) or type(err).__name__}") from None


def _field(where: str, key: str) -> str:
    """``where.key``, with a key that is not a plain name quoted (messages stay one line)."""
    return f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r}]"


def _part_class(spec: dict[str, Any], where: str) -> type:
    """The registered class a ``{"genvae": "kind/name", "args": {...}}`` spec names, after checking
    the spec's own fields."""
    extra = sorted(set(spec) - {_SPEC_KEY, "args"})
    if extra:
        raise _SpecError(f"{where}: expected only the fields 'genvae' and 'args' in a part, got {extra[0]!r}")
    reference = spec[_SPEC_KEY]
    if not isinstance(reference, str) or reference.count("/") != 1:
        raise _SpecError(f"{where}.genvae: expected 'kind/name', got {reference!r}")
    if not isinstance(spec.get("args", {}), dict):
        raise _SpecError(f"{where}.args: expected an object, got {json_type(spec['args'])}")
    for key, value in spec.get("args", {}).items():
        if key.startswith("*") and not isinstance(value, list):
            raise _SpecError(
                f"{_field(where, key[1:])}: expected a list of positional arguments, got {json_type(value)}"
            )
    kind, _, name = reference.partition("/")
    try:
        registry = registry_of(kind)
        cls = registry.get(name)
    except KeyError as err:
        raise _SpecError(f"{where}.genvae: {err}") from None
    if not (registry.record_config and isinstance(cls, type) and registered_name(cls) == (kind, name)):
        raise _SpecError(f"{where}.genvae: expected a registered model part, got {reference!r}")
    return cls


# -- the model directory: model.json names its weights file; replacing model.json switches both --------


def save(model: nn.Module, directory: str | os.PathLike[str], *, allow_non_finite: bool = False) -> Path:
    """Save ``model``'s constructor arguments (``model.json``) and weights in ``directory``
    (created if needed). Returns the directory.

    The model and each of its parts must be registered genvae classes (all built-in parts
    are); an unregistered custom part is an error that says how to register it. A sampler
    (:mod:`genvae.samplers`) saves the same way: its model and its fitted state in one folder. A model with NaN
    or infinite weights is refused unless ``allow_non_finite``.

    The weights are a safetensors file. The save is atomic: the weights go to a new file named by
    their checksum (``weights-<sha256 prefix>.safetensors``), then ``model.json``, which names that file and carries its
    SHA-256, replaces the old one in a single rename. Whenever the save stops (an exception,
    Ctrl-C, a kill, a full disk), :func:`load` gives the complete old model or the complete new one.
    """
    out = Path(directory)
    if (out / MODEL_FILE).is_symlink():
        raise ValueError(
            f"directory: expected a model folder, got {str(out)!r}, a run directory (its {MODEL_FILE} is a link "
            "to the run's published files); save the model to another folder"
        )
    config = get_config(model)
    dtype = _common_dtype(model)
    state = model.state_dict()
    if not allow_non_finite:
        _check_finite_state(state)
    weights = to_bytes(state, {"format": "pt"})  # "pt": the Hub's tag for PyTorch tensors
    sha = hashlib.sha256(weights).hexdigest()
    document = {"format": FORMAT_VERSION, "genvae_version": __version__, "dtype": _dtype_name(dtype),
                "weights": f"weights-{sha[:16]}.safetensors", "weights_sha256": sha, "model": config}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with locked_dir(out):  # two saves into one folder take turns, so neither removes the other's file
        step("save:start")
        atomic_write(out / document["weights"], weights, step_name="save:weights")
        atomic_write(out / MODEL_FILE, (json.dumps(document, indent=2) + "\n").encode(), step_name="save:model")
        _remove_unused_weights(out, keep=document["weights"])
        step("save:cleaned")
    return out


def _cast_tensors(model: nn.Module) -> list[torch.Tensor]:
    """The floating-point tensors ``model.to(dtype)`` casts: all but those of :class:`FixedBuffers`
    parts, which keep their own dtype (a sampler's float64 mixtures in a float32 model)."""
    tensors, parts = [], [model]
    while parts:
        part = parts.pop()
        if not isinstance(part, FixedBuffers):
            own = (*part.parameters(recurse=False), *part.buffers(recurse=False))
            tensors += [t for t in own if t.is_floating_point()]
            parts += part.children()
    return tensors


def _common_dtype(model: nn.Module) -> torch.dtype:
    dtypes = {t.dtype for t in _cast_tensors(model)}
    if len(dtypes) > 1:
        names = ", ".join(sorted(_dtype_name(d) for d in dtypes))
        raise ValueError(f"model: expected one floating-point dtype for all weights, got {names}")
    return dtypes.pop() if dtypes else torch.float32


def _all_finite(tensors: Iterator[torch.Tensor]) -> bool:
    """Whether every floating-point tensor is finite: one float64 sum per tensor and one host sync
    (NaN and inf survive a sum; a float64 sum of finite float32 weights cannot overflow). A False
    may be an overflow of huge float64 values: callers then check each tensor exactly."""
    sums = [t.detach().sum(dtype=torch.float64) for t in tensors if t.is_floating_point() and t.numel()]
    return not sums or math.isfinite(float(torch.stack(sums).sum()))


def _check_finite_state(state: Mapping[str, torch.Tensor]) -> None:
    if _all_finite(iter(state.values())):
        return
    for key, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise NonFiniteWeightsError(key)


def _remove_unused_weights(folder: Path, keep: str) -> None:
    """Remove weights files no model.json names any more, and temporary files of interrupted saves."""
    for path in folder.iterdir():
        name = path.name
        unused = name != keep and (_OLD_WEIGHTS.fullmatch(name) or name == LEGACY_WEIGHTS_FILE)
        if unused or _SAVE_TEMPORARY.fullmatch(name):
            path.unlink(missing_ok=True)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def load(
    directory: str | os.PathLike[str], map_location: str | torch.device = "cpu", *, allow_non_finite: bool = False
) -> Any:
    """Rebuild the model saved by :func:`save` in ``directory`` and load its weights.

    Nothing is built before ``model.json`` has been checked (its size, nesting, fields, format
    version and part names) and the model it describes has been built on the ``meta`` device
    (no memory) and its tensors' shapes and dtypes compared with those in the weights file. The
    model comes back in the dtype it was saved in. Weights holding NaN or inf are refused unless
    ``allow_non_finite``. A run directory (``genvae train``) loads too: its published model; and
    ``"hf://owner/name[@revision]"`` loads a model from the Hugging Face Hub (:mod:`genvae.hub`).

    Raises:
        FileNotFoundError: ``directory`` holds no ``model.json`` or no weights file.
        ValueError: a file is not valid, the weights do not match their checksum or do not fit
            the model; the message names the file and the field.
    """
    if isinstance(directory, str) and directory.startswith("hf://"):  # a model on the Hugging Face Hub
        directory = download(directory)
    root = Path(directory)
    shown = root / MODEL_FILE
    if not shown.is_file() and (root / HUB_WEIGHTS_FILE).is_file():  # a Hub folder (genvae.hub)
        shown = root / HUB_MODEL_FILE
    if not shown.is_file():
        raise FileNotFoundError(
            f"directory: expected {MODEL_FILE} in {str(root)!r} (written by gv.save), but it is not there"
        )
    spec, dtype, weights_path, source = _read_files(root, shown)
    with source:
        # sizes come from the file: build without memory, then compare; the number of parts too
        with torch.device("meta"), _at_most_parameters(_parameter_bound(len(source.shapes)), weights_path):
            skeleton = _in_dtype(_build_checked(spec, shown), dtype)
        _check_fit(skeleton.state_dict(), source.shapes, weights_path)
        saved = source.tensors()
    if not allow_non_finite and not _all_finite(iter(saved.values())):
        for key, tensor in saved.items():
            if tensor.is_floating_point():
                check_finite(f"{weights_path}: {key}", tensor)
    try:
        if _filled_by_state_dict(skeleton):  # the skeleton takes the file's tensors: no second build
            skeleton.load_state_dict(source.owned(saved), assign=True)
            model = skeleton
        else:
            model = _in_dtype(_build_checked(spec, shown), dtype)
            model.load_state_dict(saved)
    except Exception as err:  # shapes and dtypes were checked; anything left is the file's fault
        raise ValueError(f"{weights_path}: the weights do not fit the model in {MODEL_FILE}: {err}") from None
    return model.to(map_location)


def _read_files(root: Path, shown: Path) -> tuple[Any, torch.dtype, Path, WeightsFile]:
    """``model.json`` checked, and the weights file it names, open (the shapes of its tensors
    read); the spec, the dtype, the weights file and its reader."""
    real = _inside(shown, root)  # a run's model.json links to its published files: read them there
    with locked_dir(real.parent, shared=True):  # a save into the folder waits, and does not wait for us
        spec, dtype, weights_path, sha = _read_model_file(real, shown)
        if not weights_path.is_file():
            raise FileNotFoundError(f"directory: expected {weights_path.name} in {str(root)!r} (named by {shown})")
        _inside(weights_path, root)
        source = WeightsFile(weights_path, sha)  # open: a save that follows may unlink it
    return spec, dtype or _saved_dtype(source.shapes), weights_path, source


def _inside(path: Path, root: Path) -> Path:
    """``path`` with its links resolved, refused (a one-line ValueError naming it and where it
    leads) unless it stays in the model folder ``root``: the folder's own tree (a run's
    ``model.json`` links into its ``published/``), or, for a snapshot in huggingface_hub's cache
    (``models--owner--name/snapshots/<revision>``, whose files are links to ``../../blobs/<hash>``),
    that repository's blobs. A link elsewhere would load a model other than the folder's, under
    its name."""
    real, base = path.resolve(), root.resolve()
    allowed = [base]
    if base.parent.name == "snapshots" and base.parent.parent.name.startswith("models--"):
        allowed.append(base.parent.parent / "blobs")
    if not any(real.is_relative_to(folder) for folder in allowed):
        raise ValueError(
            f"{path}: expected a file of the model folder {str(root)!r}, got a link to {str(real)!r} outside it; "
            "not following it"
        )
    return real


def _saved_dtype(saved: Mapping[str, torch.Tensor]) -> torch.dtype:
    """The floating-point dtype of a format-1 file's tensors (that format did not record it)."""
    dtypes = {t.dtype for t in saved.values() if t.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else torch.float32


def _in_dtype(model: nn.Module, dtype: torch.dtype) -> nn.Module:
    return model if all(t.dtype == dtype for t in _cast_tensors(model)) else model.to(dtype)


def _filled_by_state_dict(skeleton: nn.Module) -> bool:
    """Whether loading a state dict into the ``meta`` skeleton gives every tensor it holds real
    values: no parameter is shared between two names, and no part keeps a tensor outside its
    state dict (a non-persistent buffer, a plain attribute), which only a real build computes."""
    state = skeleton.state_dict(keep_vars=True)
    if len({id(t) for t in state.values()}) != len(state):
        return False
    if any(name not in state for name, _ in skeleton.named_buffers()):
        return False
    return not any(isinstance(v, torch.Tensor) for m in skeleton.modules() for v in vars(m).values())


def _parameter_bound(tensors: int) -> int:
    """The most parameters a model whose weights file holds ``tensors`` tensors may register while
    it is built: every parameter is a tensor of its state dict; the slack is for parts that make
    and drop a layer while they build."""
    return 4 * tensors + 256


@contextlib.contextmanager
def _at_most_parameters(bound: int, weights: Path) -> Iterator[None]:
    """Stop a build that registers more than ``bound`` parameters. On the ``meta`` device a spec's
    sizes cost nothing, but its counts (a flow of ``steps=10**9``) still cost a module each: such a
    model.json took hours and gigabytes of Python objects before the comparison with the weights
    could refuse it."""
    count = 0

    def counted(module: nn.Module, name: str, parameter: Any) -> None:
        nonlocal count
        count += 1
        if count > bound:
            raise _SpecError(
                f"it builds more than {bound:,} parameters, far more than the tensors {weights.name} holds"
            )

    handle = nn.modules.module.register_module_parameter_registration_hook(counted)
    try:
        yield
    finally:
        handle.remove()


def _build_checked(spec: Any, shown: Path) -> nn.Module:
    try:
        model = _build(spec, "model")
    except _SpecError as err:
        raise ValueError(f"{shown}: cannot rebuild the model it describes: {err}") from None
    if not isinstance(model, nn.Module):
        raise ValueError(f"{shown}: model: expected a model part, got {json_type(spec)}")
    return model


def _read_model_file(real: Path, shown: Path) -> tuple[dict[str, Any], torch.dtype | None, Path, str]:
    """Check ``model.json``'s fields; returns the model's spec, its dtype (None for format 1, which
    did not record it), the weights file and its SHA-256."""
    document = _read_json(real, shown)
    version = document.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or version not in _FIELDS:
        raise ValueError(
            f"{shown}: format: expected 1, 2 or {FORMAT_VERSION} (the versions this genvae reads), "
            f"got {_short(version)}"
        )
    fields = _FIELDS[version]
    missing, extra = sorted(fields - document.keys()), sorted(document.keys() - fields)
    if missing:
        raise ValueError(f"{shown}: {missing[0]}: expected this field in a format-{version} model description")
    if extra:
        raise ValueError(f"{shown}: {extra[0]!r}: unexpected field in a format-{version} model description")
    checks = {
        "genvae_version": (lambda v: isinstance(v, str) and len(v) <= 64, "a version string"),
        "weights_sha256": (lambda v: isinstance(v, str) and _SHA256.fullmatch(v), "64 hexadecimal digits"),
        "weights": (lambda v: isinstance(v, str) and _WEIGHTS_NAMES[version].fullmatch(v), _WEIGHTS_WHAT.get(version)),
        "dtype": (lambda v: isinstance(v, str) and v in _DTYPES, f"one of {', '.join(_DTYPES)}"),
        "model": (lambda v: isinstance(v, dict), "an object (the model's spec)"),
    }
    for field, (valid, what) in checks.items():
        if field in fields and not valid(document[field]):
            raise ValueError(f"{shown}: {field}: expected {what}, got {_short(document[field])}")
    dtype = _DTYPES[document["dtype"]] if version > 1 else None
    # a run's model.json links into its published folder, beside its weights; in huggingface_hub's
    # cache each file of a Hub folder links to its own blob, so its weights are beside the link
    beside = shown.parent if shown.name == HUB_MODEL_FILE else real.parent
    weights = beside / document.get("weights", LEGACY_WEIGHTS_FILE)
    return document["model"], dtype, weights, document["weights_sha256"]


def _read_json(real: Path, shown: Path) -> dict[str, Any]:
    """The JSON object in ``real``, read only after its size and nesting depth are checked."""
    size = real.stat().st_size
    if size > MAX_MODEL_FILE_BYTES:
        raise ValueError(f"{shown}: expected a model description of at most {MAX_MODEL_FILE_BYTES} bytes, got {size}")
    try:
        text = real.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"{shown}: not a genvae model description (not UTF-8 text at byte {err.start})") from None
    what = "a genvae model description"
    return json_object(text, shown, what, limit=MAX_JSON_DEPTH, object_is=what)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_fit(expected: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], path: Path) -> None:
    """Compare the tensors of the model model.json describes (built on ``meta``) with the file's."""
    missing = [k for k in expected if k not in saved]
    unexpected = [k for k in saved if k not in expected]
    if missing or unexpected:
        what = [
            f"missing {', '.join(missing[:3])}" if missing else "",
            f"unexpected {', '.join(map(repr, unexpected[:3]))}" if unexpected else "",
        ]
        raise ValueError(f"{path}: the weights do not fit the model in {MODEL_FILE}: {'; '.join(w for w in what if w)}")
    for key, tensor in expected.items():
        got = saved[key]
        if tuple(got.shape) != tuple(tensor.shape):
            raise ValueError(
                f"{path}: {key}: expected shape {fmt_shape(tensor.shape)} (the model in {MODEL_FILE}), "
                f"got {fmt_shape(got.shape)}"
            )
        if got.dtype != tensor.dtype:
            raise ValueError(
                f"{path}: {key}: expected dtype {_dtype_name(tensor.dtype)} (the model in {MODEL_FILE}), "
                f"got {_dtype_name(got.dtype)}"
            )
