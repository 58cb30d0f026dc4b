"""Small building blocks shared by the built-in encoders and decoders."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from genvae._validation import as_size_tuple, check_positive_int

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "softplus": nn.Softplus,
}


def activation(name: str) -> nn.Module:
    """A fresh activation module by name (names, not modules, so a config stays JSON)."""
    try:
        return _ACTIVATIONS[name]()
    except (KeyError, TypeError):
        raise ValueError(f"activation: expected one of {', '.join(sorted(_ACTIVATIONS))}, got {name!r}") from None


def int_sequence(name: str, value: Any, *, allow_empty: bool = True, allow_zero: bool = False) -> tuple[int, ...]:
    """A tuple of positive (or, with ``allow_zero``, non-negative) ints from an int or a sequence."""
    if isinstance(value, int) and not isinstance(value, bool):
        items: Sequence[Any] = (value,)
    elif isinstance(value, Sequence) and not isinstance(value, str):
        items = value
    else:
        raise ValueError(f"{name}: expected an int or a sequence of ints, got {value!r}")
    for item in items:
        check_positive_int(name, item, allow_zero=allow_zero)
    if not items and not allow_empty:
        raise ValueError(f"{name}: expected at least one entry, got {value!r}")
    return tuple(items)


def per_layer(name: str, value: Any, count: int, *, allow_zero: bool = False) -> tuple[int, ...]:
    """One int per layer: a single int is repeated."""
    values = int_sequence(name, value, allow_zero=allow_zero)
    if len(values) == 1 and isinstance(value, int):
        return values * count
    if len(values) != count:
        raise ValueError(f"{name}: expected an int or {count} ints (one per layer), got {value!r}")
    return values


def image_shape(name: str, channels: Any, size: Any) -> tuple[int, int, int]:
    c = check_positive_int(name.replace("image_size", "channels"), channels)
    h, w = as_size_tuple(name, size, 2)
    return (c, h, w)


def conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def mlp_parameters(sizes: Sequence[int]) -> int:
    """The parameters of :func:`mlp` ``(sizes)``: a weight and a bias per pair of consecutive sizes."""
    return sum(a * b + b for a, b in itertools.pairwise(sizes))


def conv_parameters(channels: Sequence[int], kernels: Sequence[int]) -> int:
    """The parameters of square convolutions (plain or transposed) from ``channels[i]`` to
    ``channels[i + 1]`` channels with kernel ``kernels[i]``: weights and biases."""
    return sum(a * b * k * k + b for (a, b), k in zip(itertools.pairwise(channels), kernels, strict=True))


def mlp(sizes: Sequence[int], act: str, *, last_activation: bool) -> list[nn.Module]:
    """Linear layers between consecutive ``sizes``, each followed by the activation (the last
    one only if ``last_activation``)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(a, b))
        if last_activation or i < len(sizes) - 2:
            layers.append(activation(act))
    return layers


class Unflatten(nn.Module):
    """``(B, prod(shape)) → (B, *shape)``; unlike ``nn.Unflatten`` it also takes one unbatched vector."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h.reshape(-1, *self.shape)


#: Layers whose output is a new tensor that only the next module sees, so an activation after them
#: may overwrite it (a ConditionedLayer says so with ``fresh_output = True``).
_FRESH_OUTPUT = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
_IN_PLACE_CAPABLE = (nn.ReLU, nn.LeakyReLU, nn.ELU)


def activations_to_run_in_place(model: nn.Module) -> list[nn.ReLU | nn.LeakyReLU | nn.ELU]:
    """The activations of ``model`` that may overwrite their input while no gradient is recorded.

    That is each out-of-place ReLU, LeakyReLU or ELU that directly follows a layer whose output
    is a fresh tensor, in a plain ``nn.Sequential`` (not a subclass with its own ``forward``) or
    after a built-in network's first layer, and that is registered in the model only once (an
    activation that hand-written ``forward`` code also calls elsewhere is the one case this
    cannot see). In place, they save an allocation and a pass over memory each, a sixth of the
    seed decoder's inference time. A layer the library does not know (a user's conditioned layer
    without ``fresh_output``) keeps the activation after it out of place.
    """
    paths: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        paths[id(module)] = paths.get(id(module), 0) + 1
    found: list[nn.ReLU | nn.LeakyReLU | nn.ELU] = []
    for module in model.modules():
        # a Sequential subclass with its own forward may reuse an input (a residual block): not a chain
        chains: list[list[nn.Module]] = []
        if isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward:
            chains.append([module[i] for i in range(len(module))])  # in order, repeats included
        if isinstance(module, FirstLayerNetwork) and _built_in(module) and len(module.rest):
            chains.append([module.first, module.rest[0]])  # as _run calls them (a subclass may not)
        for chain in chains:
            for before, act in itertools.pairwise(chain):
                fresh = isinstance(before, _FRESH_OUTPUT) or getattr(before, "fresh_output", False) is True
                if fresh and isinstance(act, _IN_PLACE_CAPABLE) and not act.inplace and paths[id(act)] == 1:
                    found.append(act)
    return found


def _built_in(module: nn.Module) -> bool:
    return type(module).__module__ in ("genvae.encoders", "genvae.decoders")


class FirstLayerNetwork(nn.Module):
    """A network whose first layer may be conditioned: ``first`` (plain, or a conditioned layer
    taking ``(h, c)``) followed by ``rest``. Shared by the built-in encoders and decoders."""

    condition_dim: int
    #: Run ``first`` outside autocast (decoders: their input is the latent code, whose rounding to
    #: bfloat16's 8 significant bits moves every output; the layer is small, latent → width).
    first_in_full_precision: bool = False

    def _setup(self, first: nn.Module, rest: Sequence[nn.Module], condition_dim: int) -> None:
        self.condition_dim = condition_dim
        self.first = first
        self.rest = nn.Sequential(*rest)

    def _run(self, h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        if self.condition_dim and c is None:
            raise ValueError(
                f"c: expected a condition of shape (batch, {self.condition_dim}) for this "
                f"conditioned {type(self).__name__}, got None"
            )
        device = h.device.type
        full = self.first_in_full_precision and device in ("cpu", "cuda") and torch.is_autocast_enabled(device)
        full = full and all(p.dtype == torch.float32 for p in self.first.parameters())  # not a half-precision model
        if full:
            h, c = _widen(h), None if c is None else _widen(c)
        with torch.autocast(device, enabled=False) if full else contextlib.nullcontext():
            h = self.first(h, c) if self.condition_dim else self.first(h)
        return self.rest(h)


def _widen(t: torch.Tensor) -> torch.Tensor:
    """``t`` in float32 if it is in a half-precision type (the parameters' type outside autocast)."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t
