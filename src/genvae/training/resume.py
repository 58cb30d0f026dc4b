"""What a checkpoint holds of a :class:`~genvae.Trainer`, and how it is put back.

:func:`trainer_payload` gathers what a resume needs (model, optimiser, objective, counters,
history, callbacks, random state, the settings a resume must match, the running sums of an
unfinished epoch); :func:`read_trainer_checkpoint` reads one back with every field checked
(:func:`~genvae.training.checkpoint.check_trainer_payload`) and :func:`restore_trainer` puts it
into a trainer. The file format itself is :mod:`genvae.training.checkpoint`.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch

from genvae.config import get_config
from genvae.training.checkpoint import CheckpointError, check_trainer_payload, read_checkpoint
from genvae.training.state import History, TrainerState

if TYPE_CHECKING:
    from genvae.training.trainer import Trainer

__all__ = [
    "EpochProgress",
    "check_settings",
    "read_trainer_checkpoint",
    "restore_rng",
    "restore_trainer",
    "rng_state",
    "state_copy",
    "trainer_payload",
]

#: The running sums of an unfinished epoch (per figure, weighted by batch size) and the samples counted.
EpochProgress = tuple[dict[str, torch.Tensor], int]


def rng_state(generator: torch.Generator, epoch_start_shuffle: torch.Tensor | None) -> dict[str, Any]:
    """The global torch and CUDA random states, and the shuffling generator's state: mid-epoch
    (``epoch_start_shuffle`` given), the one of the epoch's start, so a resume draws the same order."""
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "shuffle": epoch_start_shuffle if epoch_start_shuffle is not None else generator.get_state(),
    }


def restore_rng(path: str | os.PathLike[str], rng: Mapping[str, Any], generator: torch.Generator) -> None:
    """Set the random states :func:`rng_state` saved (CUDA's only on a machine with CUDA)."""
    try:
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        generator.set_state(rng["shuffle"])
    except (RuntimeError, TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: rng: not a random state this machine takes ({_first_line(err)})") from None


def trainer_payload(trainer: Trainer, epoch_start_shuffle: torch.Tensor, progress: EpochProgress) -> dict[str, Any]:
    """Everything a resume needs, for :func:`~genvae.training.checkpoint.write_checkpoint`;
    mid-epoch, ``epoch_start_shuffle`` and ``progress`` say where the epoch stands."""
    try:
        model_config = get_config(trainer.model)
    except ValueError:
        model_config = None  # a model with unregistered parts still checkpoints its weights
    state_dict = getattr(trainer.objective, "state_dict", None)
    mid_epoch = bool(trainer.state.step_in_epoch)
    return {
        "format": 1,
        "model_state": trainer.model.state_dict(),
        "optimizer_state": trainer.optimizer.state_dict(),
        "objective": state_dict() if state_dict is not None else None,
        "settings": trainer.settings(),
        "state": trainer.state.as_dict(),
        "history": trainer.history.records,
        "callbacks": {cb.state_key: cb.state_dict() for cb in trainer.callbacks},
        "rng": rng_state(trainer.generator, epoch_start_shuffle if mid_epoch else None),
        "partial": {"sums": progress[0], "count": progress[1]} if mid_epoch else None,
        "model_config": model_config,
    }


def read_trainer_checkpoint(path: str | os.PathLike[str], steps_per_epoch: int = 0) -> dict[str, Any]:
    """A Trainer's checkpoint, read and with every field checked (see
    :func:`~genvae.training.checkpoint.check_trainer_payload`)."""
    payload = read_checkpoint(path, map_location="cpu")
    check_trainer_payload(path, payload, steps_per_epoch)
    return payload


def check_settings(path: str | os.PathLike[str], saved: Mapping[str, Any] | None, now: Mapping[str, Any]) -> None:
    """Refuse a resume whose :meth:`~genvae.Trainer.settings` differ from the checkpoint's,
    naming each difference (old → new)."""
    if saved is None:
        return  # a checkpoint from before settings were recorded
    changed = [f"{k} {saved.get(k)!r} → {now.get(k)!r}" for k in now if saved.get(k) != now.get(k)]
    if changed:
        raise ValueError(
            f"resume_from: {path} was written with other settings: {'; '.join(changed)}; resume with the "
            "checkpoint's settings or start a new run"
        )


def restore_trainer(trainer: Trainer, path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    """Put a checked payload's model, optimiser, objective, callback states, counters and history
    into ``trainer`` (the random state and the epoch's progress are the trainer's to restore). When
    a part does not fit, the model and optimiser are put back as they were and the counters and
    history are left untouched."""
    before = state_copy(trainer.model, trainer.optimizer)
    try:
        _load_parts(trainer, path, payload)
    except BaseException:
        trainer.model.load_state_dict(before["model"])
        trainer.optimizer.load_state_dict(before["optimizer"])
        raise
    trainer.state = TrainerState(**payload["state"])
    trainer.history = History([dict(r) for r in payload["history"]])


def _load_parts(trainer: Trainer, path: str | os.PathLike[str], payload: Mapping[str, Any]) -> None:
    try:
        trainer.model.load_state_dict(payload["model_state"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        raise ValueError(f"{path}: the checkpoint's weights do not fit this model ({first})") from None
    _loading(path, "optimizer_state", trainer.optimizer.load_state_dict, payload["optimizer_state"])
    match_layouts(trainer.optimizer)
    state = payload.get("objective")
    if state is not None and hasattr(trainer.objective, "load_state_dict"):
        _loading(path, "objective", trainer.objective.load_state_dict, state)
    elif "beta" in payload and hasattr(trainer.objective, "beta"):  # checkpoints of genvae ≤ 0.1 with β only
        trainer.objective.beta = payload["beta"]
    for cb in trainer.callbacks:
        if cb.state_key in payload["callbacks"]:
            _loading(path, f"callbacks[{cb.state_key!r}]", cb.load_state_dict, payload["callbacks"][cb.state_key])


def match_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each per-parameter state tensor (Adam's moments) its parameter's memory layout. A loaded
    state is contiguous; a channels-last weight's fused Adam step walks both in memory order, so a
    mismatch would pair each moment with another element and a resumed run would drift."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    optimizer.state[param][key] = torch.empty_like(param, dtype=value.dtype).copy_(value)


def _loading(path: str | os.PathLike[str], field: str, load: Callable[[Any], Any], state: Any) -> None:
    """``load(state)``, its errors (a state that does not fit) one line naming the file and the field."""
    try:
        load(state)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as err:
        if isinstance(err, CheckpointError):
            raise
        message = f"{type(err).__name__}: {_first_line(err)}"
        raise CheckpointError(f"{path}: {field}: does not fit this run ({message})") from None


def _first_line(err: BaseException) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:300]


def state_copy(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The model's and optimiser's state copied to the CPU (the trainer keeps one per epoch, so a
    diverged epoch can be undone)."""
    return {
        "model": {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()},
        "optimizer": copy.deepcopy(_to_cpu(optimizer.state_dict())),
    }


def _to_cpu(value: Any) -> Any:
    """``value`` (nested dicts and lists of tensors, e.g. an optimiser's state) with every tensor on the CPU."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value
