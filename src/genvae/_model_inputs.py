"""What a model made of an encoder, a decoder and a likelihood (a :class:`~genvae.VAE`, a
:class:`~genvae.vqvae.VQVAE`) knows of its inputs: their shape, their check, and their conversion
to the model's dtype and device, written once for both families."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from genvae._validation import check_tensor, fmt_shape, tracing
from genvae.likelihoods import Likelihood

__all__ = ["EncoderDecoderInputs"]


class EncoderDecoderInputs:
    """Mixin for a model with ``encoder``, ``decoder`` and ``likelihood`` parts, a ``check_inputs``
    switch, and ``device`` / ``dtype`` properties (which each model defines from its own parameters)."""

    encoder: nn.Module
    decoder: nn.Module
    likelihood: Likelihood
    #: Check inputs (shape, finiteness, range) in the public methods. Costs one host sync per call;
    #: the Trainer checks in-memory data once and then turns the per-call checks off.
    check_inputs: bool = True

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        raise NotImplementedError(f"{type(self).__name__} must define its device property")

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's parameters."""
        raise NotImplementedError(f"{type(self).__name__} must define its dtype property")

    @property
    def checking(self) -> bool:
        """Whether a call checks its inputs now: ``check_inputs`` is on and no compiler or tracer is
        capturing the call (a check's host sync would break the graph)."""
        return self.check_inputs and not tracing()

    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input (without the batch), when the encoder or decoder fixes it."""
        shape = getattr(self.encoder, "input_shape", None) or getattr(self.decoder, "output_shape", None)
        return tuple(shape) if shape is not None else None

    def as_input(self, x: Any) -> Any:
        """A floating-point tensor moved to the model's device and dtype (for the methods that convert
        for the user, such as ``reconstruct``); anything else is returned as is, for the check to name."""
        return x.to(self.device, self.dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() else x

    def check_input(self, x: Any, name: str = "x") -> torch.Tensor:
        """Check a batch of inputs: a floating-point tensor of the model's input shape and dtype,
        finite, and in the likelihood's support (e.g. [0, 1] for a Bernoulli). Returns ``x``.

        One pass over ``x`` and one host sync; the Trainer checks in-memory data once with it
        and then turns the per-batch checks off (``check_inputs``)."""
        check_tensor(name, x, floating=True)
        shape = self.input_shape
        if shape is not None and tuple(x.shape[1:]) != shape:
            raise ValueError(
                f"{name}: expected a tensor of shape {fmt_shape(('batch', *shape))}, got {fmt_shape(x.shape)}"
            )
        # the layers would raise torch's dtype mismatch; the Trainer, evaluation and reconstruct
        # convert for the user, a direct call does not
        if x.dtype != self.dtype and not torch.is_autocast_enabled(x.device.type):
            raise TypeError(
                f"{name}: expected {str(self.dtype).removeprefix('torch.')} inputs (the model's dtype), got "
                f"{str(x.dtype).removeprefix('torch.')}; convert them with x.to(model.dtype)"
            )
        self.likelihood.check_data(x, name)
        return x
