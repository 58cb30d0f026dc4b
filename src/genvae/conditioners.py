"""Conditioners: how a condition vector ``c`` (a one-hot label, or any float vector) enters the
first layer of an encoder or a decoder.

A :class:`Conditioner` is a small recipe. A network hands it a factory for its first layer
and the shapes around that layer; the conditioner returns a module ``layer(h, c)`` that plays
the first layer's part and also sees ``c``:

- ``"split"`` (:class:`SplitConditioner`): ``layer(h) + W_y·c``: the condition's own linear
  projection, reshaped onto the layer's output and added (the notebook's ``W_z·z + W_y·y + b``;
  for a convolution, a linear map of ``c`` onto the whole first feature map).
- ``"concat"`` (:class:`ConcatConditioner`): ``layer([h, c])``: ``c`` joined to the input, as extra
  features for vectors or as constant planes for images.
- ``"film"`` (:class:`FiLMConditioner`): ``layer(h) · (1 + γ(c)) + β(c)``: feature-wise scale and
  shift, per channel.

For a linear first layer, ``"split"`` and ``"concat"`` compute the same family of functions.

Example:
    >>> import torch, genvae as gv
    >>> enc = gv.encoders.MLPEncoder((1, 28, 28), hidden=(64,), condition_dim=10, conditioner="film")
    >>> enc(torch.rand(4, 1, 28, 28), torch.eye(10)[:4]).shape
    torch.Size([4, 64])
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from genvae.registry import Registry

__all__ = [
    "ConcatConditioner",
    "ConditionedLayer",
    "Conditioner",
    "FiLMConditioner",
    "SplitConditioner",
    "get",
    "names",
    "register",
    "registry",
]

registry: Registry[type[Conditioner]] = Registry("conditioners", record_config=True)
register = registry.register
get = registry.get
names = registry.names

#: ``make_layer(extra_inputs)``: the network's first layer with ``extra_inputs`` more input
#: features (linear) or input channels (convolution).
LayerFactory = Callable[[int], nn.Module]


class ConditionedLayer(nn.Module, ABC):
    """A first layer that also takes the condition: ``forward(h, c)``.

    Attributes:
        fresh_output: True when ``forward`` always returns a new tensor that nothing else
            holds (not its input, nor a tensor it keeps), so that evaluation may apply the
            activation after it in place (see :func:`genvae.evaluation.inference`). The built-in
            layers set it; the default False is always safe.
    """

    fresh_output: bool = False

    @abstractmethod
    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """The first layer's output for input ``h`` under the condition vectors ``c`` ``(batch, condition_dim)``."""


class Conditioner(ABC):
    """The contract: build a :class:`ConditionedLayer` for a network's first layer.

    Args of :meth:`build`:
        make_layer: builds the unconditioned first layer given a number of extra inputs.
        in_shape: shape of one input to that layer, without the batch (``(C, H, W)`` or ``(F,)``).
        out_shape: shape of one output of that layer, without the batch.
        condition_dim: length of the condition vector.
    """

    @abstractmethod
    def build(
        self,
        make_layer: LayerFactory,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        condition_dim: int,
    ) -> ConditionedLayer:
        """The first layer, conditioned: a module called as ``layer(h, c)``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _Split(ConditionedLayer):
    fresh_output = True

    def __init__(self, layer: nn.Module, out_shape: tuple[int, ...], condition_dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.out_shape = out_shape
        self.project = nn.Linear(condition_dim, math.prod(out_shape))

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.layer(h) + self.project(c).view(-1, *self.out_shape)


@register("split")
class SplitConditioner(Conditioner):
    """``layer(h) + W_y·c + b_y``: a linear projection of the condition added to the layer's output.

    This is the notebook's conditional VAE: in the decoder ``W_z·z + W_y·y``; in the
    convolutional encoder a ``Linear(num_classes, 32·14·14)`` reshaped onto the first feature map.
    """

    def build(
        self,
        make_layer: LayerFactory,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        condition_dim: int,
    ) -> ConditionedLayer:
        """The unconditioned first layer plus a ``Linear(condition_dim, prod(out_shape))`` whose output,
        reshaped to ``out_shape``, is added to the layer's output.
        """
        return _Split(make_layer(0), out_shape, condition_dim)


class _Concat(ConditionedLayer):
    fresh_output = True

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer = layer

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        if h.dim() > 2:  # images: the condition as constant planes, one per entry of c
            c = c.view(*c.shape, *([1] * (h.dim() - 2))).expand(-1, -1, *h.shape[2:])
        return self.layer(torch.cat([h, c.to(h.dtype)], dim=1))


@register("concat")
class ConcatConditioner(Conditioner):
    """``layer([h, c])``: the condition joined to the input (features, or constant image planes)."""

    def build(
        self,
        make_layer: LayerFactory,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        condition_dim: int,
    ) -> ConditionedLayer:
        """The first layer built with ``condition_dim`` extra inputs (features, or input channels for
        images), applied to the input joined with the condition.
        """
        return _Concat(make_layer(condition_dim))


class _FiLM(ConditionedLayer):
    fresh_output = True

    def __init__(self, layer: nn.Module, channels: int, spatial_dims: int, condition_dim: int) -> None:
        super().__init__()
        self.layer = layer
        self.scale = nn.Linear(condition_dim, channels)
        self.shift = nn.Linear(condition_dim, channels)
        self.trailing = (1,) * spatial_dims

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        out = self.layer(h)
        gamma = self.scale(c).view(*c.shape[:1], -1, *self.trailing)
        beta = self.shift(c).view(*c.shape[:1], -1, *self.trailing)
        return out * (1 + gamma) + beta


@register("film")
class FiLMConditioner(Conditioner):
    """``layer(h)·(1 + γ(c)) + β(c)``: feature-wise linear modulation (Perez et al., 2018),
    one scale and one shift per output channel (per feature for linear layers)."""

    def build(
        self,
        make_layer: LayerFactory,
        in_shape: tuple[int, ...],
        out_shape: tuple[int, ...],
        condition_dim: int,
    ) -> ConditionedLayer:
        """The unconditioned first layer, followed by a per-channel scale ``1 + γ(c)`` and shift ``β(c)``
        (two ``Linear(condition_dim, out_shape[0])``).
        """
        return _FiLM(make_layer(0), out_shape[0], len(out_shape) - 1, condition_dim)


def first_layer(
    make_layer: LayerFactory,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    condition_dim: int,
    conditioner: str | Conditioner,
) -> nn.Module:
    """The first layer of a built-in network: plain when ``condition_dim`` is 0, otherwise built
    by ``conditioner`` (a registered name or a :class:`Conditioner`)."""
    if condition_dim == 0:
        return make_layer(0)
    resolved: Any = registry.resolve(conditioner, argument="conditioner")
    if not isinstance(resolved, Conditioner):
        raise TypeError(
            f"conditioner: expected a registered name ({', '.join(names())}) or a Conditioner, "
            f"got {type(resolved).__name__}"
        )
    return resolved.build(make_layer, in_shape, out_shape, condition_dim)
