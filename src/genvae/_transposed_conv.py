"""A transposed convolution with a faster no-grad CPU path for thin output layers.

oneDNN computes a transposed convolution with few output channels (the last layer of an image
decoder: one grey or three colour channels) far below the machine's speed: on the seed decoder's
``ConvTranspose2d(32, 1, 3, stride 2)`` it took longer than the 16× more expensive layer before
it (benchmarks/eval_throughput.py). Written as what it is, a 1×1 convolution giving every kernel
tap of every input pixel, then each tap added into the output at its stride ("col2im"), it is
3× faster there. That pays while the taps are no more numbers than the input
(``out_channels · kh · kw ≤ in_channels``): 32 → 1 and 32 → 3 channels with a 3×3 kernel were 3.1×
and 1.5× faster, while 8 → 4 channels with a 5×5 kernel was 5× slower. Training keeps PyTorch's
kernel (its backward pass is the fast one); the product form runs only where no gradient is
recorded, which is where the importance-weighted likelihood, the classifier and the figures
spend their time. Traced, compiled or exported, the layer is always PyTorch's kernel, so
``torch.jit.trace``'s check sees one graph.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from genvae._validation import tracing


class ConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` (same arguments, parameters and state dict) that, with
    gradients off on the CPU, computes a float32 or float64 layer whose taps are no more numbers
    than its input (``out_channels · kh · kw ≤ in_channels``, groups 1, dilation 1) as a 1×1 convolution and
    strided additions: the same result to float rounding, in the memory format of the input.

    Under autocast that product form computes in the weights' dtype (float32 for a float32
    model): the last layer's outputs are the likelihood's parameters, and rounding them to
    bfloat16 more than doubled the bf16 likelihood's error on the seed VAE.
    """

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        padding = self.padding
        if output_size is None and isinstance(padding, tuple) and self._product_form_applies(input):
            device = input.device.type
            if torch.is_autocast_enabled(device):
                input = input.to(self.weight.dtype)
            with torch.autocast(device, enabled=False):
                return conv_transpose2d_col2im(input, self.weight, self.bias, self.stride, padding, self.output_padding)
        return super().forward(input, output_size)

    def _product_form_applies(self, input: torch.Tensor) -> bool:
        kh, kw = self.kernel_size
        return (
            not torch.is_grad_enabled()
            # a traced or exported graph records one path: PyTorch's kernel, whatever the grad mode
            and not tracing()
            and input.device.type == "cpu"
            and input.dim() == 4
            and self.out_channels * kh * kw <= self.in_channels
            # half-precision weights would add the taps up in half precision: PyTorch's kernel
            # accumulates in float32
            and self.weight.dtype in (torch.float32, torch.float64)
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
            and all(self._output_length(input, i) > 0 for i in (0, 1))  # else PyTorch's error
        )

    def _output_length(self, input: torch.Tensor, dim: int) -> int:
        size, stride, kernel = input.shape[2 + dim], self.stride[dim], self.kernel_size[dim]
        padding = self.padding[dim] if isinstance(self.padding, tuple) else 0
        return (size - 1) * stride - 2 * padding + kernel + self.output_padding[dim]


def conv_transpose2d_col2im(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)`` (groups 1,
    dilation 1) as a 1×1 convolution and ``kh·kw`` strided additions. The result is a fresh
    tensor, channels-last if ``x`` is (and has more than one channel), contiguous otherwise."""
    batch, cin, h, w = x.shape
    _, cout, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
    channels_last = cin > 1 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    # every tap of every input pixel, (batch, h, w, cout, kh, kw), as a 1×1 convolution on the
    # channels-last input: oneDNN runs it 5× faster than the same product through matmul, whose
    # kernels are slow for so few columns (32 → 9 on the seed decoder)
    pointwise = weight.reshape(cin, cout * kh * kw).T.reshape(cout * kh * kw, cin, 1, 1)
    taps = F.conv2d(x.contiguous(memory_format=torch.channels_last), pointwise)
    taps = taps.permute(0, 2, 3, 1).reshape(batch, h, w, cout, kh, kw)
    out_h, out_w = (h - 1) * sh - 2 * ph + kh + oh, (w - 1) * sw - 2 * pw + kw + ow
    # the uncropped output: tap (ki, kj) of pixel (i, j) lands at (i·sh + ki, j·sw + kj)
    full_h, full_w = max((h - 1) * sh + kh, ph + out_h), max((w - 1) * sw + kw, pw + out_w)
    full = taps.new_zeros(batch, full_h, full_w, cout)
    for ki in range(kh):
        for kj in range(kw):
            full[:, ki : ki + (h - 1) * sh + 1 : sh, kj : kj + (w - 1) * sw + 1 : sw] += taps[..., ki, kj]
    window = full[:, ph : ph + out_h, pw : pw + out_w].permute(0, 3, 1, 2)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    out = torch.empty((batch, cout, out_h, out_w), dtype=full.dtype, device=full.device, memory_format=layout)
    if bias is None:
        return out.copy_(window)
    return torch.add(window, bias.view(1, -1, 1, 1), out=out)
