"""The parts a run builds from its settings: :class:`TrainConfig`, the data it names, its model and
objective (each chosen by name from its registry), and the modules ``--import`` loads to register
parts. :mod:`genvae.experiment` trains and publishes the run; it re-exports every name here."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from genvae import models, presets
from genvae._memory import meta_builds_checked_on
from genvae.data import MNIST, FashionMNIST, ImageDataset, datasets, load_dataset, partially_labeled
from genvae.data.files import DownloadError
from genvae.losses import Objective, objectives
from genvae.semisupervised import SemiSupervisedVAE
from genvae.training.devices import resolve_device

__all__ = ["DEFAULT_LATENT_DIM", "MODEL_BUILDERS", "ConfigError", "DataChoice", "Interrupted", "TrainConfig",
           "build_model", "build_objective", "check_config", "choose_dataset", "import_modules", "imported_modules",
           "load_splits", "objective_name", "partly_labelled", "seed_hierarchical_run", "seed_vqvae_run"]  # fmt: skip


class ConfigError(ValueError):
    """A setting of a run that cannot be used (one line, naming the setting as ``genvae train``'s flag)."""


class Interrupted(Exception):
    """Ctrl-C stopped a run; the message says where and how to resume."""


@dataclass
class TrainConfig:
    """The settings of one training run (what ``genvae train`` takes; saved as ``config.json``).

    ``conditioner``, ``likelihood``, ``prior`` and ``posterior`` left as None take the model's default;
    ``latent_dims`` sizes the levels of a hierarchical model (bottom first; ``latent_dim`` is then
    None or the bottom level's size); ``codebook_size`` and ``code_dim`` size a VQ-VAE's codebook;
    ``dataset`` names an entry of :data:`genvae.data.datasets`, or ``"auto"``: MNIST, else
    Fashion-MNIST, else SyntheticDigits (see :func:`choose_dataset`). ``objective`` names an entry
    of :data:`genvae.losses.objectives`; None takes the model's own (its class attribute
    ``default_objective``), see :func:`build_objective`
    (``k``: IWAE's samples). ``labels`` keeps that many training labels (balanced over the
    classes) for the semi-supervised ``"m2"``; ``tensorboard`` is a folder for TensorBoard's event files;
    ``mlflow`` a tracking URI and ``wandb`` a W&B project to log the run to (see :mod:`genvae.training.trackers`)."""

    model: str = "vae"
    dataset: str = "synthetic-digits"
    data_root: str | None = None
    download: bool = False
    latent_dim: int | None = 2
    latent_dims: tuple[int, ...] | None = None
    codebook_size: int | None = None
    code_dim: int | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    conditioner: str | None = None
    likelihood: str | None = None
    seed: int = 0
    device: str = "auto"
    train_size: int | None = None
    test_size: int | None = None
    threads: int | None = None
    prior: str | None = None
    posterior: str | None = None
    objective: str | None = None
    k: int | None = None
    labels: int | None = None
    tensorboard: str | None = None
    mlflow: str | None = None
    mlflow_experiment: str = "genvae"
    wandb: str | None = None
    wandb_mode: str = "online"


# -- the data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataChoice:
    """What ``--dataset auto`` chose: the dataset's name, a short reason (for one line of output)
    and the details of what was tried (download errors and so on, for the run's notes)."""

    name: str
    summary: str
    details: str


_REAL_DATA = (("mnist", MNIST, "MNIST"), ("fashion-mnist", FashionMNIST, "Fashion-MNIST"))


def choose_dataset(root: str | None, download: bool) -> DataChoice:
    """MNIST if its files are found (or, with ``download``, can be downloaded), else Fashion-MNIST
    likewise, else the offline SyntheticDigits."""
    tried: list[str] = []
    for name, dataset, label in _REAL_DATA:
        unavailable = f"; {tried[0].split(':')[0]} is not available" if tried else ""
        if all(dataset.available(root, split) for split in ("train", "test")):
            return DataChoice(name, f"{label} (found locally{unavailable})", "; ".join([*tried, f"{label}: found"]))
        if not download:
            tried.append(f"{label}: not found locally, and downloading is off")
            continue
        try:
            for split in ("train", "test"):
                dataset(root, split, download=True)
            return DataChoice(name, f"{label} (downloaded{unavailable})", "; ".join([*tried, f"{label}: downloaded"]))
        except (DownloadError, OSError, ValueError) as err:
            reason = " ".join(str(err).split())
            tried.append(f"{label}: not found locally, and the download failed ({reason[:400]})")
    summary = "SyntheticDigits (rendered offline; neither MNIST nor Fashion-MNIST is available)"
    return DataChoice("synthetic-digits", summary, "; ".join(tried))


def load_splits(config: TrainConfig) -> tuple[ImageDataset, ImageDataset]:
    """The training and test splits of ``config.dataset`` (a :data:`genvae.data.datasets` name),
    cut to ``config.train_size`` and ``config.test_size``."""
    if config.dataset not in datasets:
        known = ", ".join([*datasets.names(), "auto"])
        raise ConfigError(f"--dataset: expected one of {known}, got {config.dataset!r}")
    train = load_dataset(config.dataset, "train", config.data_root, config.download, config.train_size)
    test = load_dataset(config.dataset, "test", config.data_root, config.download, config.test_size)
    return train, test


# -- the model and its objective -----------------------------------------------------------------


def seed_vqvae_run(
    codebook_size: int = 64,
    code_dim: int = 8,
    num_classes: int = 10,
    conditioner: str | None = None,
    likelihood: str = "bernoulli",
) -> torch.nn.Module:
    """``--model vqvae``: :func:`~genvae.presets.seed_vqvae`, or with a ``conditioner``
    :func:`~genvae.presets.seed_cvqvae` (a run passes ``num_classes`` for every dataset, so the
    conditioner decides)."""
    if conditioner is None:
        return presets.seed_vqvae(codebook_size, code_dim, likelihood)
    return presets.seed_cvqvae(codebook_size, code_dim, num_classes, conditioner, likelihood)


def seed_hierarchical_run(
    latent_dims: tuple[int, ...] = (32, 16),
    num_classes: int = 10,
    conditioner: str | None = None,
    likelihood: str = "bernoulli",
    prior: str = "normal",
    latent_dim: int | None = None,
) -> torch.nn.Module:
    """``--model hierarchical``: :func:`~genvae.presets.seed_hierarchical`, conditional when a
    ``conditioner`` is given (a run passes ``num_classes`` for every dataset)."""
    classes = num_classes if conditioner is not None else None
    return presets.seed_hierarchical(latent_dims, classes, conditioner or "split", likelihood, prior, latent_dim)


#: How a run builds the model its config names: the notebook's networks for the built-in
#: names; any other registered model is built by its class. Add a preset here to make a new
#: registered model build like the notebook's.
MODEL_BUILDERS: dict[str, Callable[..., torch.nn.Module]] = {
    "vae": presets.seed_vae,
    "cvae": presets.seed_cvae,
    "m2": presets.seed_m2,
    "hierarchical": seed_hierarchical_run,
    "vqvae": seed_vqvae_run,
}

#: The size of z when a run names none and its model has no levels (``latent_dims``) to size it.
DEFAULT_LATENT_DIM = 2


def build_model(config: TrainConfig, num_classes: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The model ``config.model`` names (from the model registry), and the settings it was built
    with. Every setting goes to the builder's keyword argument of the same name; a setting the
    builder does not take is an error when it was given, and recorded as None otherwise."""
    builder = MODEL_BUILDERS.get(config.model) or models.get(config.model)
    latent_dim, takes = config.latent_dim, inspect.signature(builder).parameters
    if latent_dim is None and "latent_dim" in takes and "latent_dims" not in takes:
        latent_dim = DEFAULT_LATENT_DIM  # a hierarchical model sizes its levels itself, a VQ-VAE has codes
    chosen = {
        "latent_dim": latent_dim,
        "latent_dims": config.latent_dims,
        "codebook_size": config.codebook_size,
        "code_dim": config.code_dim,
        "conditioner": config.conditioner,
        "likelihood": config.likelihood,
        "prior": config.prior,
        "posterior": config.posterior,
    }
    others = {name: MODEL_BUILDERS.get(name) or models.get(name) for name in models.names() if name != config.model}
    arguments, settings = _arguments(
        builder, chosen, {"num_classes": num_classes}, f"the model {config.model!r}", others
    )
    torch.manual_seed(config.seed)  # the model's initialisation follows the seed too
    try:
        return builder(**arguments), settings
    except ValueError as err:  # the builder names its own arguments; the run's settings are flags
        raise ConfigError(_flag_message(str(err), config)) from None


def objective_name(config: TrainConfig, model: torch.nn.Module) -> str:
    """The objective ``config`` names, or the model's own (its class attribute
    ``default_objective``, as for :class:`~genvae.Trainer`; ``"elbo"`` for a VAE, ``"m2"`` for M2).
    A model class may also list in ``trains_with`` the only objectives it trains with (M2 lists
    ``"m2"``), and such an objective trains only the models that list it."""
    own: tuple[str, ...] = getattr(model, "trains_with", ())
    if config.objective is None:
        default = getattr(model, "default_objective", "elbo")
        return default if isinstance(default, str) else "elbo"
    if own and config.objective not in own:
        raise ConfigError(
            f"--objective: the model {config.model!r} trains with its own bound; "
            f"expected {', '.join(own)}, got {config.objective!r}"
        )
    owners = [name for name in models.names() if config.objective in getattr(models.get(name), "trains_with", ())]
    if owners and config.objective not in own:  # another model's own bound: it needs that model's outputs
        raise ConfigError(
            f"--objective: {config.objective!r} is the own bound of --model {', '.join(owners)}, "
            f"got --model {config.model}"
        )
    return config.objective


def build_objective(config: TrainConfig, model: torch.nn.Module, train_size: int) -> tuple[Objective, dict[str, Any]]:
    """The objective of :func:`objective_name` (a class of :data:`genvae.losses.objectives`) for
    ``model``, and the run's options as it was built with them. The class gets those of the
    run's options it declares: ``k`` (as given) and ``dataset_size`` (the training set's size,
    which β-TCVAE's estimator needs); ``k`` given to a class that does not take it is an error."""
    name = objective_name(config, model)
    if name not in objectives:
        raise ConfigError(f"--objective: expected one of {', '.join(objectives.names())}, got {name!r}")
    cls = objectives.get(name)
    arguments, settings = _arguments(cls, {"k": config.k}, {"dataset_size": train_size}, f"the objective {name!r}")
    return cls(**arguments), {"objective": name, **settings}


def _arguments(
    build: Callable[..., Any],
    chosen: Mapping[str, Any],
    derived: Mapping[str, Any],
    what: str,
    others: Mapping[str, Callable[..., Any]] | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The keyword arguments ``build`` gets: the ``chosen`` settings that were given (an error
    naming the flag where it does not take one, and which ``others``, ``--model`` name → builder,
    take it) and the ``derived`` values it declares; and the chosen settings as used (``build``'s
    default where not given, None where it takes none)."""
    parameters = inspect.signature(build).parameters
    for name, value in chosen.items():
        if value is not None and name not in parameters:
            flag = "--" + name.replace("_", "-")
            raise ConfigError(f"{flag}: {what} takes no {name}, got {value!r}{_taken_by(name, others)}")
    arguments = {k: v for k, v in {**chosen, **derived}.items() if v is not None and k in parameters}
    settings = {name: arguments.get(name, _default(parameters, name)) for name in chosen}
    return arguments, settings


def _taken_by(name: str, others: Mapping[str, Callable[..., Any]] | None) -> str:
    """``"; --model hierarchical takes it"``: the other models whose builder takes setting ``name``
    (what the user most likely meant), or nothing."""
    takers = [model for model, build in (others or {}).items() if name in inspect.signature(build).parameters]
    if not takers:
        return ""
    names = takers[0] if len(takers) == 1 else f"{', '.join(takers[:-1])} and {takers[-1]}"
    return f"; --model {names} take{'s' if len(takers) == 1 else ''} it"


def _default(parameters: Mapping[str, inspect.Parameter], name: str) -> Any:
    parameter = parameters.get(name)
    if parameter is None or parameter.default is inspect.Parameter.empty:
        return None
    return parameter.default


def partly_labelled(config: TrainConfig, model: torch.nn.Module, train: ImageDataset) -> ImageDataset:
    """The training data with only ``config.labels`` labels kept (for M2), oversampled to half of
    every batch as the semi-supervised papers do."""
    if config.labels is None:
        return train
    _check_labels_option(config, model)
    return partially_labeled(train, config.labels, seed=config.seed, labelled_share=0.5)


def _check_labels_option(config: TrainConfig, model: torch.nn.Module) -> None:
    if config.labels is not None and not isinstance(model, SemiSupervisedVAE):
        raise ConfigError(f"--labels: only --model m2 learns from partly labelled data, got --model {config.model}")


# -- the settings, checked before the data is read ---------------------------------------------------

#: The settings a model builder takes as keyword arguments of the same name, each with its flag.
_FLAGS = {
    name: "--" + name.replace("_", "-")
    for name in ("latent_dim", "latent_dims", "codebook_size", "code_dim", "conditioner", "likelihood", "prior",
                 "posterior")
}  # fmt: skip
_PARTS = ("conditioner", "likelihood", "prior", "posterior")  # the model's parts, chosen by name
_LEADING_NAME = re.compile(r"^(\w+): ")
#: ``prior='flow'``, ``latent_dims=(5, 16)`` or ``latent_dim=5`` in a message: the setting and its value
_QUOTED_SETTING = re.compile(r"\b(" + "|".join(_FLAGS) + r")=(?:'([^']*)'|\(([\d, ]*)\)|(\S+?))(?=[,;)\s]|$)")
_FIRST_OF = re.compile(r"(--[\w-]+)\[0\] = (\S+?),")  # "--latent-dims[0] = 32," (after _SNAKE_SETTING)
_SNAKE_SETTING = re.compile(r"(?<![\w.-])(" + "|".join(name for name in _FLAGS if "_" in name) + r")\b")


def _flag_message(message: str, config: TrainConfig) -> str:
    """A builder's one-line error in ``genvae train``'s terms: the argument it starts with
    (``latent_dims: ...``) becomes the flag; a message that starts with no setting's name is put
    under ``--model``."""
    flag, rest = _in_flags(message)
    return f"{flag}: {rest}" if flag else f"--model: the model {config.model!r} cannot be built ({rest})"


def _flag_value(match: re.Match[str]) -> str:
    """A quoted setting's value as its flag takes it: a tuple of sizes ``(5, 16)`` is ``5,16``."""
    quoted, sizes, plain = match[2], match[3], match[4]
    return quoted if quoted is not None else sizes.replace(" ", "") if sizes is not None else plain


def _in_flags(message: str) -> tuple[str | None, str]:
    """The flag a message starts with (its leading ``name: ``, when a setting's; else None) and
    the rest, in which the settings it quotes (``posterior='gaussian'``, ``latent_dims[0]``) are
    flags. An unknown leading name stays in the rest."""
    message = " ".join(message.split())
    message = _QUOTED_SETTING.sub(lambda m: f"{_FLAGS[m[1]]} {_flag_value(m)}", message)
    leading = _LEADING_NAME.match(message)
    flag = _FLAGS.get(leading[1]) if leading else None
    rest = message[leading.end() :] if leading and flag else message
    rest = _FIRST_OF.sub(r"\2 (the first of \1),", _SNAKE_SETTING.sub(lambda m: _FLAGS[m[1]], rest))
    return flag, rest.replace("expected None or ", "expected no value or ")


#: Stands in for the dataset's class count while the settings are checked before the data is read:
#: no builder rule depends on the count, and the run builds the model again with the real one.
_STAND_IN_CLASSES = 10


def check_config(config: TrainConfig) -> None:
    """Refuse settings that cannot go together before the data is read (reading, rendering or
    downloading it can take minutes): one :class:`ConfigError` naming the flag.

    The rules stay the builders' own (a flag the model does not take, a hierarchical model's
    ``latent_dim`` that is not its bottom level's size, a conditional prior without a condition,
    ``--k`` or ``--labels`` where they mean nothing, an objective that cannot train the model):
    restating them here would let the two drift apart. So the model is built as the run builds it,
    but on the meta device (shapes without memory, no data) with a stand-in class count; then its
    objective; then the objective runs once on a meta batch of the model's input shape, which is
    where an objective such as β-TCVAE looks at the model's outputs. A model or objective that
    cannot run on the meta device (an operation without a meta kernel, such as a VQ-VAE's code
    counts) is not refused here: the run builds and trains it on the data and reports there.
    Settings that depend on the data (its class count, its size) are also checked only there."""
    if config.dataset != "auto" and config.dataset not in datasets:
        known = ", ".join([*datasets.names(), "auto"])
        raise ConfigError(f"--dataset: expected one of {known}, got {config.dataset!r}")
    # the run's random state stays as it was: build_model seeds torch; sizes whose parameters cannot
    # fit on the run's device are refused here too, not after the data is read
    with torch.random.fork_rng(devices=[]), torch.device("meta"), meta_builds_checked_on(resolve_device(config.device)):
        try:
            model, _ = build_model(config, _STAND_IN_CLASSES)
        except ConfigError:
            raise
        except Exception:  # e.g. NotImplementedError: a user's model that cannot be built on meta
            return
        objective, _ = build_objective(config, model, config.train_size or 1)
        _check_labels_option(config, model)
        _check_objective_runs(config, model, objective)


class _ForwardFailed(Exception):
    """The model's own forward pass failed on the meta batch: not the objective's verdict."""


def _check_objective_runs(config: TrainConfig, model: torch.nn.Module, objective: Objective) -> None:
    """Run ``objective`` once on a meta batch of ``model``'s input shape: a ValueError it raises
    is about the model it was given (e.g. β-TCVAE and a model with latent levels)."""
    shape = getattr(model, "input_shape", None)
    if not isinstance(shape, tuple):
        return
    x = torch.zeros((2, *shape), device="meta")
    y = torch.zeros(2, dtype=torch.long, device="meta") if getattr(model, "conditional", False) else None
    if hasattr(model, "check_inputs"):  # the input checks read values, which meta tensors do not have
        cast(Any, model).check_inputs = False

    def forward(*args: Any, **kwargs: Any) -> Any:
        try:
            return model(*args, **kwargs)
        except Exception as err:
            raise _ForwardFailed from err

    name = objective_name(config, model)
    try:
        objective.compute(forward, x, y)
    except ValueError as err:
        # the message's leading name (model:, posterior:) is said by the flags quoted before it
        reason = _LEADING_NAME.sub("", _in_flags(str(err))[1])
        raise ConfigError(
            f"--objective: {name!r} cannot train --model {config.model}{_given(config)} ({reason})"
        ) from None
    except Exception:  # _ForwardFailed, or an operation with no meta kernel: the run decides on the data
        return


def _given(config: TrainConfig) -> str:
    """The model flags given besides ``--model``, as typed (``" --posterior iaf"``)."""
    parts = [(flag, getattr(config, name)) for name, flag in _FLAGS.items() if name in _PARTS]
    return "".join(f" {flag} {value}" for flag, value in parts if value is not None)


# -- modules that register parts ------------------------------------------------------------------


_IMPORTED: list[str] = []  # the modules import_modules loaded, recorded in each run's config


def import_modules(targets: Iterable[str]) -> None:
    """Import the modules ``targets`` (``genvae train --import``), e.g. ones that register parts.
    A name is imported as ``python -m`` would (the current folder first); a path ending in
    ``.py`` is loaded from that file. Each run's ``config.json`` records them (``imports``)."""
    _IMPORTED.clear()
    for target in targets:
        try:
            _import(target)
        except Exception as err:  # the module's own code may fail in any way
            raise ConfigError(f"--import: cannot import {target!r} ({type(err).__name__}: {err})") from None
        _IMPORTED.append(target)


def imported_modules() -> list[str]:
    """The modules the last :func:`import_modules` imported, in order."""
    return list(_IMPORTED)


def _import(target: str) -> None:
    if target.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(target).stem, target)
        if spec is None or spec.loader is None or not Path(target).is_file():
            raise ImportError(f"no such file: {target!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        return
    sys.path.insert(0, os.getcwd())
    try:
        importlib.import_module(target)
    finally:
        sys.path.remove(os.getcwd())
