"""Decoders: ``z, c=None -> distribution parameters`` with the shape of the data.

A decoder returns raw parameters of p(x | z) (logits for the Bernoulli likelihood, the mean for
the Gaussian), never probabilities: the likelihood turns them into a distribution and the loss
uses the numerically stable form. ``model.decode`` gives the data-space mean for plotting.

Example:
    >>> import torch, genvae as gv
    >>> dec = gv.decoders.ConvDecoder(latent_dim=2, out_channels=1, image_size=28, channels=(64, 32))
    >>> dec(torch.randn(8, 2)).shape
    torch.Size([8, 1, 28, 28])
"""

from __future__ import annotations

import math

import torch
from torch import nn

from genvae._layers import (
    FirstLayerNetwork,
    Unflatten,
    conv_parameters,
    image_shape,
    int_sequence,
    mlp,
    mlp_parameters,
    per_layer,
)
from genvae._layers import activation as make_activation
from genvae._memory import check_parameters
from genvae._transposed_conv import ConvTranspose2d
from genvae._validation import check_positive_int
from genvae.conditioners import Conditioner, first_layer
from genvae.registry import Registry

__all__ = ["ConvDecoder", "Decoder", "MLPDecoder", "get", "names", "register", "registry"]

registry: Registry[type[nn.Module]] = Registry("decoders", record_config=True)
register = registry.register
get = registry.get
names = registry.names


class Decoder(nn.Module):
    """Base class for decoders (optional: any ``nn.Module`` with this interface works).

    Attributes:
        latent_dim: size of z.
        output_shape: shape of one output without the batch dimension.
        condition_dim: length of the condition vector it takes (0: unconditioned).
    """

    latent_dim: int
    output_shape: tuple[int, ...]
    condition_dim: int = 0

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The raw likelihood parameters (e.g. logits) for each z: shape ``(batch, *output_shape)``.

        Args:
            z: latent codes of shape ``(batch, latent_dim)``.
            c: the condition vectors ``(batch, condition_dim)``; required when ``condition_dim > 0``.
        """
        raise NotImplementedError


@register("mlp")
class MLPDecoder(Decoder, FirstLayerNetwork):
    """Fully connected layers from z to the data, reshaped to ``output_shape``.

    Args:
        latent_dim: size of z.
        output_shape: shape of one output, e.g. ``(1, 28, 28)``, or a number of features.
        hidden: widths of the hidden layers (may be empty: one linear map).
        activation: name of the activation after each hidden layer.
        condition_dim: length of the condition vector (0 for an unconditioned decoder).
        conditioner: how the condition enters the first layer.
    """

    first_in_full_precision = True

    def __init__(
        self,
        latent_dim: int = 2,
        output_shape: int | tuple[int, ...] | list[int] = (1, 28, 28),
        hidden: tuple[int, ...] | list[int] = (256, 512),
        activation: str = "relu",
        condition_dim: int = 0,
        conditioner: str | Conditioner = "concat",
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.output_shape = int_sequence("output_shape", output_shape, allow_empty=False)
        widths = (latent_dim, *int_sequence("hidden", hidden), math.prod(self.output_shape))
        check_positive_int("condition_dim", condition_dim, allow_zero=True)
        # the condition adds at least a weight per (condition entry, first-layer unit), whatever the conditioner
        check_parameters(
            type(self).__name__,
            mlp_parameters(widths) + condition_dim * widths[1],
            latent_dim=(latent_dim, latent_dim),
            output_shape=(output_shape, widths[-1]),
            hidden=(hidden, max(widths[1:-1], default=0)),
            condition_dim=(condition_dim, condition_dim),
        )
        layers = mlp(widths, activation, last_activation=False)

        def make_layer(extra: int) -> nn.Module:
            return nn.Linear(latent_dim + extra, widths[1])

        first = first_layer(make_layer, (latent_dim,), (widths[1],), condition_dim, conditioner)
        self._setup(first, [*layers[1:], Unflatten(self.output_shape)], condition_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Runs the layers on z and reshapes: raw parameters of shape ``(batch, *output_shape)``.

        Raises:
            ValueError: ``c`` is None for a conditioned decoder.
        """
        return self._run(z, c)


@register("conv")
class ConvDecoder(Decoder, FirstLayerNetwork):
    """A linear map from z onto a small feature map, then strided transposed convolutions.

    With the defaults this is the notebook's decoder: ``Linear(latent, 64·7·7)``, reshape to
    ``(64, 7, 7)``, ReLU, ``ConvTranspose2d(64, 32, 3, stride 2)``, ReLU,
    ``ConvTranspose2d(32, 1, 3, stride 2)``, returning logits (no sigmoid: the likelihood applies it).

    Each transposed convolution multiplies the spatial size by its stride exactly
    (``output_padding = stride + 2·padding − kernel``). The starting feature map has size
    ``ceil(image_size / prod(strides))``; an output larger than ``image_size`` is cropped.

    Args:
        latent_dim: size of z.
        out_channels: channels of the output images.
        image_size: height and width of the output (an int for square images).
        channels: channels of the starting feature map and of each transposed convolution's input.
        kernel_size: kernel size, one for all layers or one per layer.
        strides: stride, one for all layers or one per layer.
        padding: padding per layer; default ``kernel_size // 2``.
        hidden: widths of fully connected layers between z and the feature map (may be empty).
        activation: name of the activation between layers.
        condition_dim: length of the condition vector (0 for an unconditioned decoder).
        conditioner: how the condition enters the first linear layer.
    """

    first_in_full_precision = True

    def __init__(
        self,
        latent_dim: int = 2,
        out_channels: int = 1,
        image_size: int | tuple[int, int] | list[int] = 28,
        channels: tuple[int, ...] | list[int] = (64, 32),
        kernel_size: int | tuple[int, ...] | list[int] = 3,
        strides: int | tuple[int, ...] | list[int] = 2,
        padding: int | tuple[int, ...] | list[int] | None = None,
        hidden: tuple[int, ...] | list[int] = (),
        activation: str = "relu",
        condition_dim: int = 0,
        conditioner: str | Conditioner = "split",
    ) -> None:
        super().__init__()
        self.latent_dim = check_positive_int("latent_dim", latent_dim)
        self.output_shape = image_shape("image_size", out_channels, image_size)
        chans = int_sequence("channels", channels, allow_empty=False)
        n = len(chans)
        kernels = per_layer("kernel_size", kernel_size, n)
        steps = per_layer("strides", strides, n)
        pads = tuple(k // 2 for k in kernels) if padding is None else per_layer("padding", padding, n, allow_zero=True)
        check_positive_int("condition_dim", condition_dim, allow_zero=True)
        out_pads = _output_paddings(kernels, steps, pads)
        _, height, width = self.output_shape
        scale = math.prod(steps)
        start = (chans[0], math.ceil(height / scale), math.ceil(width / scale))
        widths = (latent_dim, *int_sequence("hidden", hidden), math.prod(start))
        count = mlp_parameters(widths) + conv_parameters((*chans, out_channels), kernels) + condition_dim * widths[1]
        check_parameters(type(self).__name__, count, latent_dim=(latent_dim, latent_dim),
                         image_size=(image_size, height * width), channels=(channels, max(chans)),
                         hidden=(hidden, max(widths[1:-1], default=0)), kernel_size=(kernel_size, max(kernels) ** 2),
                         out_channels=(out_channels, out_channels),
                         condition_dim=(condition_dim, condition_dim))  # fmt: skip
        layers = mlp(widths, activation, last_activation=True)

        def make_layer(extra: int) -> nn.Module:
            return nn.Linear(latent_dim + extra, widths[1])

        rest: list[nn.Module] = [*layers[1:], Unflatten(start)]
        outs = (*chans[1:], out_channels)
        for i in range(n):
            rest.append(ConvTranspose2d(chans[i], outs[i], kernels[i], steps[i], pads[i], out_pads[i]))
            if i < n - 1:
                rest.append(make_activation(activation))
        self._crop = (height, width) if start[1] * scale != height or start[2] * scale != width else None
        first = first_layer(make_layer, (latent_dim,), (widths[1],), condition_dim, conditioner)
        self._setup(first, rest, condition_dim)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Runs the linear map and the transposed convolutions, cropped to the image size:
        raw parameters (logits) of shape ``(batch, *output_shape)``.

        Raises:
            ValueError: ``c`` is None for a conditioned decoder.
        """
        out = self._run(z, c)
        if self._crop is not None:
            out = out[..., : self._crop[0], : self._crop[1]]
        return out


def _output_paddings(kernels: tuple[int, ...], strides: tuple[int, ...], pads: tuple[int, ...]) -> list[int]:
    """The output padding that makes each transposed convolution multiply the size by its stride."""
    out_pads = []
    for k, s, p in zip(kernels, strides, pads, strict=True):
        op = s + 2 * p - k
        if not 0 <= op < s:
            raise ValueError(
                f"kernel_size: expected stride + 2·padding − kernel_size in [0, stride) so that each "
                f"transposed convolution multiplies the size by its stride, got kernel {k}, stride {s}, "
                f"padding {p}"
            )
        out_pads.append(op)
    return out_pads
