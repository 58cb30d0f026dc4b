"""The Trainer's opt-in optimisation options, and what it does with the training data at the start
of a fit.

- **Per-parameter-group learning rates**: ``Trainer(lr={"prior": 1e-3, "default": 5e-4})`` gives
  the parameters under each named submodule (a prefix of their name, ``"prior"``, ``"encoder"``,
  ``"classifier"``, ``"decoder.net.0"``...) their own rate, and ``"default"`` to the rest.
- **Per-tensor gradient normalisation** (``normalize_gradients=True``): each parameter's gradient
  is divided by its own L2 norm (plus 1e-7) before the optimiser's step, as the VampPrior
  reference's ``AdamNormGrad`` does (Tomczak & Welling, 2018): every tensor moves at the learning
  rate's pace, however large or small its gradient.
- **Gradient clipping by norm** (``clip_grad_norm=c``): the gradients of all parameters together
  are scaled down to a global L2 norm of at most ``c`` (after the normalisation, when both are on).

At the start of a fresh fit the Trainer also lets the data configure the parts that ask for it
(:func:`prepare_from_data`): a :class:`~genvae.priors.VampPrior` built with ``init="data"`` takes
its pseudo-inputs from training images, and an objective with a ``bind_data(data)`` method (the
:class:`~genvae.semisupervised.SemiSupervisedELBO`) reads the data's labelled fraction and
oversampling.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

from genvae._validation import check_non_negative

__all__ = ["adjust_gradients", "check_clip", "gradient_settings", "param_groups", "prepare_from_data"]

#: Added to each gradient's norm before dividing by it (the reference's value).
NORM_EPS = 1e-7


def param_groups(model: torch.nn.Module, lr: float | Mapping[str, float]) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one with every parameter for a single ``lr``; for a
    mapping, one group per key with the parameters whose name starts with that submodule's name
    (the longest matching key wins), and ``"default"`` (required) for the others. Empty groups are
    left out.

    Raises:
        ValueError: a rate is negative or not a number, ``"default"`` is missing, or a key names no
            parameter of the model.
    """
    if not isinstance(lr, Mapping):
        return [{"params": list(model.parameters()), "lr": check_non_negative("lr", lr)}]
    rates = {str(k): check_non_negative(f"lr[{k!r}]", v) for k, v in lr.items()}
    if "default" not in rates:
        raise ValueError(f"lr: expected a 'default' rate beside the named groups, got keys {sorted(rates)}")
    prefixes = sorted((k for k in rates if k != "default"), key=len, reverse=True)
    members: dict[str, list[torch.nn.Parameter]] = {k: [] for k in rates}
    for name, parameter in model.named_parameters():
        key = next((p for p in prefixes if name == p or name.startswith(p + ".")), "default")
        members[key].append(parameter)
    unused = [p for p in prefixes if not members[p]]
    if unused:
        names = sorted({name.split(".")[0] for name, _ in model.named_parameters()})
        raise ValueError(f"lr: expected submodule names of the model ({', '.join(names)}, ...), got {unused[0]!r}")
    return [{"params": ps, "lr": rates[k], "name": k} for k, ps in members.items() if ps]


def check_clip(clip_grad_norm: float | None) -> float | None:
    """``clip_grad_norm`` checked: None (no clipping) or a number > 0."""
    if clip_grad_norm is None:
        return None
    value = check_non_negative("clip_grad_norm", clip_grad_norm)
    if value == 0:
        raise ValueError("clip_grad_norm: expected a norm > 0 or None, got 0")
    return value


@torch.no_grad()
def adjust_gradients(parameters: Iterable[torch.nn.Parameter], normalize: bool, clip: float | None) -> None:
    """Divide each gradient by its norm (``normalize``), then clip their global norm to ``clip``."""
    with_grads = [p for p in parameters if p.grad is not None]
    if normalize:
        for p in with_grads:
            p.grad.div_(p.grad.norm() + NORM_EPS)  # type: ignore[union-attr]
    if clip is not None and with_grads:
        torch.nn.utils.clip_grad_norm_(with_grads, clip)


def gradient_settings(normalize: bool, clip: float | None) -> dict[str, Any]:
    """The gradient options a resume must match, for :meth:`~genvae.Trainer.settings`: only those
    that are on, so that checkpoints of runs without them still match."""
    settings: dict[str, Any] = {"normalize_gradients": True} if normalize else {}
    return settings | ({} if clip is None else {"clip_grad_norm": clip})


def prepare_from_data(model: torch.nn.Module, objective: Any, data: Any, seed: int | None, *, fresh: bool) -> None:
    """Let the parts that ask for it see the training data: the objective's ``bind_data`` (every
    fit), and, on a ``fresh`` run, a prior's ``initialize_from`` when it was built to start from
    data (``init="data"``), the images drawn with a generator seeded with ``seed`` (0 for None)."""
    dataset = getattr(data, "dataset", data)  # a DataLoader's dataset
    bind = getattr(objective, "bind_data", None)
    if bind is not None:
        bind(dataset)
    prior = getattr(model, "prior", None)
    if fresh and getattr(prior, "init", None) == "data":
        from genvae.data.inputs import as_tensors

        images, _ = as_tensors(dataset, argument="train")
        prior.initialize_from(images, generator=torch.Generator().manual_seed(seed or 0))  # type: ignore[union-attr]
