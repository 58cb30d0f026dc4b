"""A transposed convolution with a faster no-grad CPU path for layers with few output channels.

oneDNN computes a transposed convolution with a handful of output channels (the last layer of an
image decoder: one grey or three colour channels) far below the machine's speed: on the seed
decoder's ``ConvTranspose2d(32, 1, 3, stride 2)`` it took longer than the 16× more expensive
layer before it (benchmarks/eval_throughput.py). Written as what it is, one matrix product
``x · W`` giving every kernel tap of every input pixel, then each tap added into the output at
its stride ("col2im"), it is about twice as fast there. Training keeps PyTorch's kernel (its
backward pass is the fast one); the product form runs only where no gradient is recorded, which
is where the importance-weighted likelihood, the classifier and the figures spend their time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: Up to this many output channels the product form is used (measured faster for 1 and 3
#: channels on the seed decoder's shapes; with 32 channels oneDNN's kernel is twice as fast).
COL2IM_MAX_OUT_CHANNELS = 4


class ConvTranspose2d(nn.ConvTranspose2d):
    """:class:`torch.nn.ConvTranspose2d` (same arguments, parameters and state dict) that, with
    gradients off on the CPU, computes a layer of at most :data:`COL2IM_MAX_OUT_CHANNELS` output
    channels as a matrix product and strided additions (same result to float rounding)."""

    def forward(self, input: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        padding = self.padding
        if output_size is None and isinstance(padding, tuple) and self._product_form_applies(input):
            device = input.device.type
            if torch.is_autocast_enabled(device) and input.dtype in (torch.bfloat16, torch.float16):
                # an output layer in low precision: computed in float32, as the likelihood's
                # parameters (bf16 logits more than doubled the bf16 likelihood's error)
                input = input.float()
            with torch.autocast(device, enabled=False):
                return conv_transpose2d_col2im(input, self.weight, self.bias, self.stride, padding, self.output_padding)
        return super().forward(input, output_size)

    def _product_form_applies(self, input: torch.Tensor) -> bool:
        return (
            not torch.is_grad_enabled()
            and input.device.type == "cpu"
            and input.dim() == 4
            and self.out_channels <= COL2IM_MAX_OUT_CHANNELS
            and self.groups == 1
            and self.dilation == (1, 1)
            and self.padding_mode == "zeros"
        )


def conv_transpose2d_col2im(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    output_padding: tuple[int, ...],
) -> torch.Tensor:
    """``F.conv_transpose2d(x, weight, bias, stride, padding, output_padding)`` (groups 1,
    dilation 1) as one matrix product and ``kh·kw`` strided additions: a fresh tensor laid out
    channels-last, in the dtype of ``x`` and ``weight``."""
    batch, cin, h, w = x.shape
    _, cout, kh, kw = weight.shape
    (sh, sw), (ph, pw), (oh, ow) = stride, padding, output_padding
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
    out = full[:, ph : ph + out_h, pw : pw + out_w]
    out = out + bias if bias is not None else out.clone()
    return out.permute(0, 3, 1, 2)
