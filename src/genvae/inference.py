"""Running a trained model for answers rather than training: the helpers below
:mod:`genvae.evaluation`, :mod:`genvae.latent_metrics` and :mod:`genvae.viz`.

- :func:`eval_mode`: a block in eval mode; the module's training flag is restored afterwards.
- :func:`inference`: eval mode, :func:`torch.inference_mode`, the fastest measured weight layout
  and in-place activations; the model exactly as it was afterwards.
- :func:`decode_chunk_size`: how many latents to decode at once within a memory budget
  (:data:`MEMORY_BUDGET` by default).
- :func:`posteriors` and :func:`posterior_means`: the posterior of every input of a data set.
- :func:`importance_log_weights`: ``log p(x | z) + log p(z) − log q(z | x)``, the one place that
  forms the importance weights of the IWAE bound and of the importance-weighted NLL.

:mod:`genvae.evaluation` re-exports :func:`inference`, :func:`decode_chunk_size`,
:func:`posterior_means` and :data:`MEMORY_BUDGET`, so ``gv.evaluation.inference`` keeps working.

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae().train()
    >>> with gv.inference.eval_mode(model):
    ...     model.training
    False
    >>> model.training
    True
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from genvae._layers import activations_to_run_in_place
from genvae._validation import check_positive_int
from genvae.data.inputs import as_tensors
from genvae.models import VAE

__all__ = [
    "MEMORY_BUDGET",
    "check_continuous",
    "decode_chunk_size",
    "eval_mode",
    "importance_log_weights",
    "inference",
    "labels_for",
    "model_inputs",
    "posterior_means",
    "posteriors",
]

#: Default bytes one chunk of decoded latents may take (the decoder's activations, the decoded
#: parameters and their log-densities); every ``memory_budget`` argument overrides it. Larger
#: chunks are slower on a CPU once they spill out of the cache: 32 MiB (668 latents of the seed
#: VAE, 2,131 of the 50-dimensional MLP VAE) was as fast as any budget from 16 to 64 MiB, and
#: 128 MiB 1.5× slower on the seed VAE (benchmarks/eval_throughput.py). A GPU may want more.
MEMORY_BUDGET = 32 * 2**20

_MEMORY_FORMATS = ("auto", "channels_last", "keep")


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """Run a block with ``module`` in eval mode (no dropout, batch norm on its running
    statistics); afterwards, also after an exception, its training flag is what it was."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _resolve_memory_format(model: VAE, memory_format: str) -> torch.memory_format | None:
    if memory_format not in _MEMORY_FORMATS:
        raise ValueError(f"memory_format: expected one of {', '.join(_MEMORY_FORMATS)}, got {memory_format!r}")
    if memory_format == "keep":
        return None
    has_conv = any(p.dim() == 4 for p in model.parameters())
    if memory_format == "auto":
        # Measured (benchmarks/eval_throughput.py): channels-last weights make the seed VAE's nll
        # 1.2× faster on CPU (oneDNN's channels-last kernels); on other devices the model's own
        # layout is kept, as nothing was measured there.
        return torch.channels_last if has_conv and model.device.type == "cpu" else None
    return torch.channels_last


@contextmanager
def inference(model: VAE, memory_format: str = "auto") -> Iterator[None]:
    """Run a block in eval mode, under :func:`torch.inference_mode`, with the model's convolution
    weights in the fastest measured memory format (``"auto"``: channels-last on CPU for a model
    with convolutions; ``"channels_last"``; ``"keep"``: the model's own layout), and with the
    activations that directly follow a linear or convolution layer (in a plain ``nn.Sequential``
    or a built-in network) applied in place: a forward hook on such a layer sees its output
    overwritten by the activation, so a hook that keeps it should clone it.

    Afterwards, also after an exception or Ctrl-C, the model is exactly as it was: the same
    weight tensors (hence layout), activations and training flag. Tensors made inside the block
    are inference tensors: clone them outside it before using them with autograd.
    """
    target = _resolve_memory_format(model, memory_format)
    saved = [(p, p.data) for p in model.parameters() if p.dim() == 4] if target is not None else []
    in_place = activations_to_run_in_place(model)
    with eval_mode(model):
        try:
            for p, data in saved:
                p.data = data.contiguous(memory_format=target)  # type: ignore[arg-type]
            for act in in_place:
                act.inplace = True
            with torch.inference_mode():
                yield
        finally:
            for act in in_place:
                act.inplace = False
            for p, data in saved:
                p.data = data


def decode_chunk_size(model: VAE, memory_budget: int = MEMORY_BUDGET, c: torch.Tensor | None = None) -> int:
    """How many latents to decode at once within ``memory_budget`` bytes.

    The cost of one latent is measured by decoding one as evaluation does (under
    :func:`inference`, and condition ``c[:1]`` for a conditional model): the memory of every
    output of a leaf module during :meth:`~genvae.VAE.decoder_params`, each storage once (an
    activation run in place returns its input), which bounds what is alive at once, plus the
    decoded parameters, their elementwise log-density and its sum. A layer's own scratch space is
    not seen; the built-in transposed convolution's is at most its input and output again.
    """
    check_positive_int("memory_budget", memory_budget)
    outputs: list[torch.Tensor] = []  # held until the end, so that no two share a freed address

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        if isinstance(output, torch.Tensor):
            outputs.append(output)

    leaves = [m for m in model.modules() if next(m.children(), None) is None]  # only the decoder's will run
    handles = [m.register_forward_hook(record) for m in leaves]
    try:
        with inference(model):  # as evaluation runs it (eval mode: a batch norm would refuse one latent)
            z = torch.zeros(1, model.latent_dim, device=model.device, dtype=model.dtype)
            params = model.decoder_params(z, None if c is None else c[:1])
    finally:
        for handle in handles:
            handle.remove()
    # by storage: an activation run in place returns its input
    sizes = {out.untyped_storage().data_ptr(): out.untyped_storage().nbytes() for out in outputs}
    per_latent = sum(sizes.values()) + 3 * params.numel() * max(params.element_size(), 4)
    return max(1, memory_budget // per_latent)


def model_inputs(
    model: VAE, data: Any, argument: str = "data", limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``data`` as tensors in the model's dtype (see :func:`genvae.data.as_tensors`), its inputs
    checked once by the model; with ``limit``, its first ``limit`` inputs only."""
    x, y = as_tensors(data, argument=argument, dtype=model.dtype, limit=limit)
    model.check_input(x, argument)
    return x, y


def labels_for(model: VAE, y: torch.Tensor | None, argument: str = "data") -> torch.Tensor | None:
    """The labels ``y`` a conditional model needs (a ValueError naming ``argument`` when there are
    none); None for an unconditional model."""
    if model.conditional and y is None:
        raise ValueError(f"{argument}: expected labels for a conditional model, got images only")
    return y if model.conditional else None


def _encoded(
    model: VAE, data: Any, batch_size: int, limit: int | None, encode: Callable[..., Any]
) -> tuple[list[Any], torch.Tensor | None]:
    """``encode(x, c)`` of every batch of ``data`` (in eval mode, without gradients), and its labels.
    A conditional model encodes each input with its own label."""
    x_all, y_all = model_inputs(model, data, limit=limit)
    y_cond = labels_for(model, y_all)
    results = []
    with eval_mode(model), torch.no_grad():
        for i in range(0, x_all.shape[0], batch_size):
            y = y_cond[i : i + batch_size] if y_cond is not None else None
            x = x_all[i : i + batch_size].to(model.device)
            results.append(encode(x, model.condition(y, x.shape[0])))
    return results, y_all


def check_continuous(model: Any, argument: str = "model") -> None:
    """A one-line TypeError naming ``argument`` for a model without a continuous posterior q(z | x)
    (a VQ-VAE's codes are discrete: nothing here applies to them)."""
    if not hasattr(model, "posterior_params"):
        raise TypeError(
            f"{argument}: expected a model with a continuous latent z (a VAE, ConditionalVAE or HierarchicalVAE), "
            f"got {type(model).__name__}; a VQ-VAE's codes are discrete (see its reconstruct, codes and CodeSampler)"
        )


def posteriors(
    model: VAE, data: Any, batch_size: int = 1000, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Posterior means and log-variances of ``data`` (on the CPU, in eval mode) and its labels.
    A conditional model encodes each image with its own label. With a flow posterior, those of
    its Gaussian base q₀."""
    check_continuous(model)
    pairs, labels = _encoded(model, data, batch_size, limit, model.posterior)
    return torch.cat([m.cpu() for m, _ in pairs]), torch.cat([v.cpu() for _, v in pairs]), labels


def posterior_means(
    model: VAE, data: Any, batch_size: int = 1000, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Posterior means of ``data`` (on the CPU) and its labels, if any; with ``limit``, of its
    first ``limit`` inputs only. A conditional model encodes each input with its own label. With a
    flow posterior, the deterministic codes of :meth:`~genvae.VAE.posterior_location` (the flow's
    image of its Gaussian base's mean)."""
    check_continuous(model)
    codes, labels = _encoded(model, data, batch_size, limit, model.posterior_location)
    return torch.cat([z.cpu() for z in codes]), labels


def importance_log_weights(log_px: torch.Tensor, log_pz: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``log w = log p(x | z) + log p(z) − log q(z | x)`` for draws ``z ~ q(z | x)``, elementwise:
    ``log mean_j w_j`` over ``k`` draws is the importance-weighted bound on ``log p(x)`` (Burda
    et al., 2016), used by :class:`~genvae.IWAE` to train and by :func:`genvae.evaluation.nll`."""
    return log_px + log_pz - log_q
