"""Classifiers ``x -> logits (batch, num_classes)``: the q(y | x) of a semi-supervised VAE.

A classifier is any ``nn.Module`` that maps a batch of inputs to class logits. The built-ins are
an encoder body (the genvae :class:`~genvae.encoders.ConvEncoder` or
:class:`~genvae.encoders.MLPEncoder`, unconditioned) followed by a linear layer to the logits;
they are registered, so a model holding one saves and loads with :func:`genvae.save` /
:func:`genvae.load`. Register your own in :data:`registry` to make it saveable too.

Example:
    >>> import torch, genvae as gv
    >>> from genvae.classifiers import ConvClassifier
    >>> ConvClassifier(num_classes=10)(torch.rand(4, 1, 28, 28)).shape
    torch.Size([4, 10])
"""

from __future__ import annotations

import torch
from torch import nn

from genvae._memory import arguments_named, check_parameters
from genvae._validation import check_positive_int
from genvae.encoders import ConvEncoder, MLPEncoder
from genvae.registry import Registry

__all__ = ["ConvClassifier", "MLPClassifier", "get", "names", "register", "registry"]

registry: Registry[type[nn.Module]] = Registry("classifiers", record_config=True)
register = registry.register
get = registry.get
names = registry.names


def _dropout(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1:
        raise ValueError(f"dropout: expected a number in [0, 1), got {value!r}")
    return float(value)


class _EncoderHead(nn.Module):
    """An encoder's features, dropout, then a linear map to ``num_classes`` logits."""

    num_classes: int

    def _setup(self, body: nn.Module, features: int, num_classes: int, dropout: float) -> None:
        self.num_classes = check_positive_int("num_classes", num_classes)
        check_parameters(type(self).__name__, (features + 1) * num_classes, num_classes=(num_classes, num_classes))
        self.body = body
        self.dropout = nn.Dropout(_dropout(dropout))
        self.head = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.body(x)))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"


@register("conv")
class ConvClassifier(_EncoderHead):
    """Strided convolutions, fully connected layers, then class logits: a
    :class:`~genvae.encoders.ConvEncoder` body with a linear head.

    With the defaults (the notebook encoder's convolutions and a 128-unit hidden layer) it has
    421,642 parameters for ten classes of 28×28 grey images.

    Args:
        num_classes: number of classes (logits).
        input_shape: shape of one image ``(channels, height, width)``.
        channels: output channels of each convolution (stride 2, kernel 3).
        hidden: widths of the fully connected layers after the convolutions.
        dropout: dropout probability before the last layer.
        activation: name of the activation.
    """

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: tuple[int, ...] | list[int] = (1, 28, 28),
        channels: tuple[int, ...] | list[int] = (32, 64),
        hidden: tuple[int, ...] | list[int] = (128,),
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) != 3:
            raise ValueError(f"input_shape: expected (channels, height, width), got {input_shape!r}")
        with arguments_named(
            in_channels=("input_shape", input_shape), image_size=("input_shape", input_shape)
        ):  # the body's names for it
            body = ConvEncoder(shape[0], shape[1:], channels=channels, hidden=hidden, activation=activation)
        self.input_shape = body.input_shape
        self._setup(body, body.out_features, num_classes, dropout)


@register("mlp")
class MLPClassifier(_EncoderHead):
    """Fully connected layers, then class logits: a :class:`~genvae.encoders.MLPEncoder` body with
    a linear head.

    Args:
        num_classes: number of classes (logits).
        input_shape: shape of one input, e.g. ``(1, 28, 28)``, or a number of features.
        hidden: widths of the hidden layers.
        dropout: dropout probability before the last layer.
        activation: name of the activation.
    """

    def __init__(
        self,
        num_classes: int = 10,
        input_shape: int | tuple[int, ...] | list[int] = (1, 28, 28),
        hidden: tuple[int, ...] | list[int] = (256, 128),
        dropout: float = 0.0,
        activation: str = "relu",
    ) -> None:
        super().__init__()
        body = MLPEncoder(input_shape, hidden=hidden, activation=activation)
        self.input_shape = body.input_shape
        self._setup(body, body.out_features, num_classes, dropout)
