"""Encoders: feature extractors ``x, c=None -> features`` of shape ``(batch, out_features)``.

The posterior head (the linear maps to the mean and log-variance of q(z | x)) belongs to the
model, not to the encoder, so any ``nn.Module`` that maps a batch to a batch of feature vectors
can be an encoder. The model reads the feature size from the encoder's ``out_features``
attribute (or from its own ``feature_dim`` argument). An encoder of a conditional model is
called as ``encoder(x, c)`` with ``c`` a float condition vector of shape ``(batch, condition_dim)``.

Example:
    >>> import torch, genvae as gv
    >>> enc = gv.encoders.ConvEncoder(in_channels=1, image_size=28, channels=(32, 64), hidden=(16,))
    >>> enc(torch.rand(8, 1, 28, 28)).shape
    torch.Size([8, 16])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genvae._layers import (
    FirstLayerNetwork,
    conv_out,
    conv_parameters,
    image_shape,
    int_sequence,
    mlp,
    mlp_parameters,
    per_layer,
)
from genvae._layers import activation as make_activation
from genvae._memory import check_parameters
from genvae._validation import check_positive_int
from genvae.conditioners import Conditioner, first_layer
from genvae.registry import Registry

__all__ = ["ConvEncoder", "Encoder", "MLPEncoder", "get", "names", "register", "registry"]

registry: Registry[type[nn.Module]] = Registry("encoders", record_config=True)
register = registry.register
get = registry.get
names = registry.names


class Encoder(nn.Module):
    """Base class for encoders (optional: any ``nn.Module`` with this interface works).

    Attributes:
        out_features: size of the feature vector the encoder returns.
        input_shape: shape of one input without the batch dimension, or None if not fixed.
        condition_dim: length of the condition vector it takes (0: unconditioned).
    """

    out_features: int
    input_shape: tuple[int, ...] | None = None
    condition_dim: int = 0

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The feature vector of each input: shape ``(batch, out_features)``.

        Args:
            x: a batch of inputs of shape ``(batch, *input_shape)``.
            c: the condition vectors ``(batch, condition_dim)``; required when ``condition_dim > 0``.
        """
        raise NotImplementedError


@register("mlp")
class MLPEncoder(Encoder, FirstLayerNetwork):
    """Flattens the input and applies fully connected layers, each followed by the activation.

    Args:
        input_shape: shape of one input, e.g. ``(1, 28, 28)``, or the number of features.
        hidden: widths of the hidden layers; the last is ``out_features``.
        activation: name of the activation (``"relu"``, ``"gelu"``, ...).
        condition_dim: length of the condition vector (0 for an unconditioned encoder).
        conditioner: how the condition enters the first layer (a registered name or a
            :class:`~genvae.conditioners.Conditioner`).
    """

    def __init__(
        self,
        input_shape: int | tuple[int, ...] | list[int] = (1, 28, 28),
        hidden: tuple[int, ...] | list[int] = (512, 256),
        activation: str = "relu",
        condition_dim: int = 0,
        conditioner: str | Conditioner = "concat",
    ) -> None:
        super().__init__()
        self.input_shape = int_sequence("input_shape", input_shape, allow_empty=False)
        widths = int_sequence("hidden", hidden, allow_empty=False)
        check_positive_int("condition_dim", condition_dim, allow_zero=True)
        features = math.prod(self.input_shape)
        # the condition adds at least a weight per (condition entry, first-layer unit), whatever the conditioner
        check_parameters(
            type(self).__name__,
            mlp_parameters((features, *widths)) + condition_dim * widths[0],
            hidden=(hidden, max(widths)),
            input_shape=(input_shape, features),
            condition_dim=(condition_dim, condition_dim),
        )
        layers = mlp((features, *widths), activation, last_activation=True)

        def make_layer(extra: int) -> nn.Module:
            return nn.Linear(features + extra, widths[0])

        first = first_layer(make_layer, (features,), (widths[0],), condition_dim, conditioner)
        self._setup(first, layers[1:], condition_dim)
        self.out_features = widths[-1]

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Flattens each input and runs the layers: features of shape ``(batch, out_features)``.

        Raises:
            ValueError: ``c`` is None for a conditioned encoder.
        """
        return self._run(x.flatten(1), c)


@register("conv")
class ConvEncoder(Encoder, FirstLayerNetwork):
    """Strided convolutions, then fully connected layers.

    With the defaults this is the notebook's encoder body: ``Conv2d(1, 32, 3, stride 2, padding 1)``,
    ReLU, ``Conv2d(32, 64, 3, stride 2, padding 1)``, ReLU, flatten, ``Linear(7·7·64, 16)``, ReLU.

    Args:
        in_channels: channels of the input images.
        image_size: height and width of the input (an int for square images).
        channels: output channels of each convolution.
        kernel_size: kernel size, one for all layers or one per layer.
        strides: stride, one for all layers or one per layer.
        padding: padding per layer; default ``kernel_size // 2``.
        hidden: widths of the fully connected layers after the convolutions (may be empty;
            then the flattened feature map is the output).
        activation: name of the activation after every layer.
        condition_dim: length of the condition vector (0 for an unconditioned encoder).
        conditioner: how the condition enters the first convolution.
    """

    def __init__(
        self,
        in_channels: int = 1,
        image_size: int | tuple[int, int] | list[int] = 28,
        channels: tuple[int, ...] | list[int] = (32, 64),
        kernel_size: int | tuple[int, ...] | list[int] = 3,
        strides: int | tuple[int, ...] | list[int] = 2,
        padding: int | tuple[int, ...] | list[int] | None = None,
        hidden: tuple[int, ...] | list[int] = (16,),
        activation: str = "relu",
        condition_dim: int = 0,
        conditioner: str | Conditioner = "split",
    ) -> None:
        super().__init__()
        self.input_shape = image_shape("image_size", in_channels, image_size)
        chans = int_sequence("channels", channels, allow_empty=False)
        n = len(chans)
        kernels = per_layer("kernel_size", kernel_size, n)
        steps = per_layer("strides", strides, n)
        pads = tuple(k // 2 for k in kernels) if padding is None else per_layer("padding", padding, n, allow_zero=True)
        widths = int_sequence("hidden", hidden)
        check_positive_int("condition_dim", condition_dim, allow_zero=True)

        shapes = [self.input_shape]
        for ch, k, s, p in zip(chans, kernels, steps, pads, strict=True):
            _, h, w = shapes[-1]
            h, w = conv_out(h, k, s, p), conv_out(w, k, s, p)
            if h < 1 or w < 1:
                raise ValueError(
                    f"image_size: expected an image large enough for {n} convolutions with strides "
                    f"{steps}, got {self.input_shape[1:]} (a feature map would shrink to {h}×{w})"
                )
            shapes.append((ch, h, w))
        flat = math.prod(shapes[-1])
        count = conv_parameters((in_channels, *chans), kernels) + mlp_parameters((flat, *widths))
        check_parameters(type(self).__name__, count + condition_dim * chans[0],
                         image_size=(image_size, math.prod(self.input_shape[1:])), channels=(channels, max(chans)),
                         hidden=(hidden, max(widths, default=0)), kernel_size=(kernel_size, max(kernels) ** 2),
                         in_channels=(in_channels,) * 2, condition_dim=(condition_dim,) * 2)  # fmt: skip

        def make_layer(extra: int) -> nn.Module:
            return nn.Conv2d(in_channels + extra, chans[0], kernels[0], steps[0], pads[0])

        rest: list[nn.Module] = [make_activation(activation)]
        for i in range(1, n):
            rest += [nn.Conv2d(chans[i - 1], chans[i], kernels[i], steps[i], pads[i]), make_activation(activation)]
        rest += [nn.Flatten(), *mlp((flat, *widths), activation, last_activation=True)]
        first = first_layer(make_layer, shapes[0], shapes[1], condition_dim, conditioner)
        self._setup(first, rest, condition_dim)
        self.out_features = widths[-1] if widths else flat

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Runs the convolutions and the fully connected layers on images ``(batch, C, H, W)``:
        features of shape ``(batch, out_features)``.

        Raises:
            ValueError: ``c`` is None for a conditioned encoder.
        """
        return self._run(x, c)
