""":class:`~genvae.models.VAEOutput` as a pytree, so that ``torch.export.export(model, (x,))``
can return one. Registered when genvae is imported (``genvae/__init__.py`` imports this module),
so every model a user can build exports."""

from __future__ import annotations

from typing import Any

from torch.utils import _pytree as pytree

from genvae.models import VAEOutput

# A pytree, so that ``torch.export.export(model, (x,))`` can return one: the tensors are its
# children, the likelihood and the prior (modules of the model) and the posterior's kind its context.
_OUTPUT_TENSORS = ("params", "mean", "logvar", "z", "c", "log_q")


def _flatten_output(out: VAEOutput) -> tuple[list[Any], Any]:
    return [getattr(out, name) for name in _OUTPUT_TENSORS], (out.likelihood, out.prior, out.gaussian_posterior)


def _flatten_output_with_keys(out: VAEOutput) -> tuple[list[tuple[Any, Any]], Any]:
    children, context = _flatten_output(out)
    return [(pytree.GetAttrKey(name), child) for name, child in zip(_OUTPUT_TENSORS, children, strict=True)], context


def _unflatten_output(children: Any, context: Any) -> VAEOutput:
    params, mean, logvar, z, c, log_q = children
    return VAEOutput(params, mean, logvar, z, context[0], c, context[1], log_q, context[2])


pytree.register_pytree_node(
    VAEOutput,
    _flatten_output,
    _unflatten_output,
    serialized_type_name="genvae.models.VAEOutput",
    flatten_with_keys_fn=_flatten_output_with_keys,
)
