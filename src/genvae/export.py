"""Getting a model out of genvae: an ONNX graph of its decoder or its encoder.

:func:`to_onnx` writes one part of a :class:`~genvae.VAE` or :class:`~genvae.ConditionalVAE` as an
ONNX file that runs without genvae or PyTorch (e.g. under onnxruntime):

- ``part="decoder"``: input ``z`` ``(batch, latent_dim)`` (and ``y``), output ``x_mean``, the
  data-space mean of p(x | z), equal to :meth:`VAE.decode <genvae.VAE.decode>`;
- ``part="encoder"``: input ``x`` ``(batch, *input_shape)`` (and ``y``), outputs ``mean`` and
  ``logvar`` of q(z | x), equal to :meth:`VAE.encode <genvae.VAE.encode>`. For a model with a flow
  posterior (``posterior="iaf"``) this is the Gaussian part q₀ only: the flow's steps are not in
  the graph (draw from q itself with :meth:`VAE.sample_posterior <genvae.VAE.sample_posterior>`).

A conditional model built with ``num_classes`` takes ``y`` as integer class indices ``(batch,)``
(int64; one-hot encoded inside the graph); one built with only ``condition_dim`` takes float
condition vectors ``(batch, condition_dim)``. The batch size is dynamic. The graph holds no input
checks: validate inputs before calling it.

Needs the ``export`` extra: ``pip install genvae[export]`` (onnx, onnxruntime, onnxscript).
Whole-model export without ONNX works with PyTorch alone: ``torch.export.export(model, (x,))``.

Example:
    >>> import genvae as gv
    >>> model = gv.presets.seed_vae(latent_dim=2)
    >>> gv.export.to_onnx(model, "decoder.onnx", part="decoder")  # doctest: +SKIP
    PosixPath('decoder.onnx')
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from genvae.inference import eval_mode
from genvae.models import VAE

__all__ = ["PARTS", "example_inputs", "to_onnx"]

PARTS = ("decoder", "encoder")
"""The parts :func:`to_onnx` writes."""

_EXTRA = "ONNX export needs the export extra: pip install 'genvae[export]' (onnx, onnxruntime, onnxscript)"


def _require_onnx() -> None:
    missing = [name for name in ("onnx", "onnxscript") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"{_EXTRA}; missing: {', '.join(missing)}")


class _Condition(nn.Module):
    """The condition vectors of a conditional model, as a graph can compute them: integer class
    indices one-hot encoded, float condition vectors cast to the model's dtype."""

    def __init__(self, model: VAE) -> None:
        super().__init__()
        self.model = model

    def condition(self, y: torch.Tensor | None) -> torch.Tensor | None:
        if y is None:
            return None
        num_classes = getattr(self.model, "num_classes", None)
        if num_classes is not None and not y.is_floating_point():
            return F.one_hot(y.long(), num_classes).to(self.model.dtype)
        return y.to(self.model.dtype)


class DecoderGraph(_Condition):
    """``model.decode`` without its checks: ``z`` (and ``y``) to the data-space mean."""

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.model.likelihood.mean(self.model.decoder_params(z, self.condition(y)))


class EncoderGraph(_Condition):
    """``model.encode`` without its checks: ``x`` (and ``y``) to the posterior mean and log-variance."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.posterior(x, self.condition(y))


def example_inputs(model: VAE, part: str, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Inputs of ``part`` (``"decoder"`` or ``"encoder"``) for ``model``, ``batch`` of each, on its
    device and in its dtype: what :func:`to_onnx` traces with, and the arrays the graph takes.

    Raises:
        ValueError: ``part`` is not one of :data:`PARTS`, or the encoder of a model that does not
            know its input shape.
    """
    _check_part(part)
    device, dtype = model.device, model.dtype
    if part == "decoder":
        first = torch.randn(batch, model.latent_dim, device=device, dtype=dtype)
    else:
        shape = model.input_shape
        if shape is None:
            raise ValueError(f"model: expected a model that knows its input shape to export its encoder, got {model}")
        first = torch.rand(batch, *shape, device=device, dtype=dtype)
    if not getattr(model, "conditional", False):
        return (first,)
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None:
        y = torch.arange(batch, device=device) % num_classes
    else:
        y = torch.rand(batch, model.condition_dim, device=device, dtype=dtype)
    return first, y


def to_onnx(
    model: VAE, path: str | os.PathLike[str], *, part: Literal["decoder", "encoder"] = "decoder", opset: int = 18
) -> Path:
    """Write ``part`` of ``model`` (``"decoder"`` or ``"encoder"``) to the ONNX file ``path``.

    The decoder graph maps ``z`` (``(batch, latent_dim)``, float) and, for a conditional model,
    ``y`` to ``x_mean``; the encoder graph maps ``x`` (and ``y``) to ``mean`` and ``logvar``. ``y``
    is int64 class indices ``(batch,)`` for a model with ``num_classes``, float condition vectors
    ``(batch, condition_dim)`` otherwise. The batch dimension is dynamic. Returns the path.

    Raises:
        ImportError: the ``export`` extra (onnx, onnxscript) is not installed.
        ValueError: ``part`` is not ``"decoder"`` or ``"encoder"``.
        TypeError: ``model`` is not a genvae VAE.
    """
    if not isinstance(model, VAE):
        raise TypeError(f"model: expected a genvae VAE or ConditionalVAE, got {type(model).__name__}")
    _check_part(part)
    _require_onnx()
    graph = DecoderGraph(model) if part == "decoder" else EncoderGraph(model)
    inputs = example_inputs(model, part)
    names = ["z" if part == "decoder" else "x", "y"][: len(inputs)]
    outputs = ["x_mean"] if part == "decoder" else ["mean", "logvar"]
    batch = torch.export.Dim("batch")
    shapes: dict[str, Any] = {name: {0: batch} for name in names}
    path = Path(path)
    with eval_mode(model), warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's notes on its own internals
        program = torch.onnx.export(
            graph, inputs, input_names=names, output_names=outputs, dynamic_shapes=shapes,
            opset_version=opset, dynamo=True, verbose=False,
        )  # fmt: skip
    if program is None:  # pragma: no cover - the dynamo exporter returns its program
        raise RuntimeError("to_onnx: torch.onnx.export returned no program")
    program.save(str(path))
    return path


def _check_part(part: str) -> None:
    if part not in PARTS:
        raise ValueError(f"part: expected one of {', '.join(map(repr, PARTS))}, got {part!r}")
