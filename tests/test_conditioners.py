"""Conditioners against their formulas, with every learned part non-zero."""

from __future__ import annotations

import torch
from torch import nn

import genvae as gv


def test_film_scales_and_shifts_each_channel_by_its_condition() -> None:
    torch.manual_seed(0)
    layer = gv.conditioners.FiLMConditioner().build(lambda extra: nn.Conv2d(2 + extra, 3, 3), (2, 6, 6), (3, 4, 4), 5)
    with torch.no_grad():  # a shift far from zero: leaving it out changes every output
        layer.shift.bias.add_(1.0)
    h, c = torch.randn(4, 2, 6, 6), torch.randn(4, 5)
    gamma = c @ layer.scale.weight.T + layer.scale.bias
    beta = c @ layer.shift.weight.T + layer.shift.bias
    expected = layer.layer(h) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None]
    torch.testing.assert_close(layer(h, c), expected)


def test_film_on_a_linear_layer_modulates_each_feature() -> None:
    torch.manual_seed(1)
    layer = gv.conditioners.FiLMConditioner().build(lambda extra: nn.Linear(3 + extra, 4), (3,), (4,), 2)
    h, c = torch.randn(5, 3), torch.randn(5, 2)
    expected = layer.layer(h) * (1 + layer.scale(c)) + layer.shift(c)
    torch.testing.assert_close(layer(h, c), expected)
    assert not torch.allclose(layer(h, c), layer.layer(h) * (1 + layer.scale(c)))
