"""The one interface of the samplers: :class:`Sampler`, and :func:`encode_means`, the streamed
encoding that a sampler fitted on the training data starts from.

A sampler draws new inputs from a trained model in two steps: latents from some density
(:meth:`Sampler.sample_latent`), then the model's decoder (:meth:`Sampler.sample`). Samplers
whose density is learnt from data (:class:`~genvae.samplers.GaussianMixtureSampler`) are fitted
first with :meth:`Sampler.fit`; the others (:class:`~genvae.samplers.PriorSampler`) need no fit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from genvae._memory import check_samples
from genvae._progress import progress_bar
from genvae._validation import check_positive_int
from genvae.inference import decode_chunk_size, eval_mode, inference, labels_for, model_inputs
from genvae.models import Labels
from genvae.registry import Registry

if TYPE_CHECKING:  # typing.Self is Python 3.11+; typing_extensions comes with torch
    from typing_extensions import Self

__all__ = ["Sampler", "encode_means", "get", "names", "register", "registry"]


class Sampler(nn.Module):
    """Draws new inputs from a trained ``model``: latents from a density, decoded by the model.

    Subclasses implement :meth:`sample_latent` and, where the density is learnt from data,
    :meth:`fit` (here a no-op) and :attr:`fitted`. A sampler whose latents are not the model's
    continuous ``z`` (a VQ-VAE's code maps) overrides :meth:`decode` as well. Every sampler takes
    the same arguments, so code that compares samplers names them only (:data:`registry`).

    A sampler is a torch module holding its model, and keeps what it learns in tensors of its
    state dict: ``sampler.to(device)`` moves both, and :func:`genvae.save` writes a (fitted)
    sampler to a folder as it writes a model, its constructor arguments (the model's among them)
    and its tensors, which :func:`genvae.load` reads back. A registered sampler of your own saves
    the same way when its constructor arguments are JSON values (and the model).

    Args:
        model: the trained model the latents are decoded by.
    """

    def __init__(self, model: nn.Module) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model: expected a genvae model (an nn.Module), got {type(model).__name__}")
        super().__init__()
        self.model: Any = model

    def fit(self, data: Any, *, batch_size: int = 256, progress: bool | None = None) -> Self:
        """Fit the sampler's density to ``data`` (a tensor of inputs, an
        :class:`~genvae.data.ImageDataset`, or ``(inputs, labels)``; labels are needed for a
        conditional model), ``batch_size`` inputs encoded at a time, with a progress bar on stderr
        when ``progress`` (None: when stderr is a terminal). Returns the sampler. Here: nothing
        to fit."""
        check_positive_int("batch_size", batch_size)
        return self

    def sample_latent(
        self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` latents, in the model's dtype on its device (for a conditional model, of label(s)
        ``y``: one label, or ``n`` of them)."""
        raise NotImplementedError

    def decode(self, latents: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """The data-space means of ``latents`` under the model, in eval mode and without
        gradients, a memory-bounded chunk at a time (:func:`~genvae.inference.decode_chunk_size`)."""
        model = self.model
        z = model.check_latent(latents)
        c = model.condition(y, z.shape[0])
        with torch.no_grad(), eval_mode(model):
            step = decode_chunk_size(model, c=c)
            chunks = [
                model.likelihood.mean(model.decoder_params(z[i : i + step], None if c is None else c[i : i + step]))
                for i in range(0, z.shape[0], step)
            ]
        return torch.cat(chunks)

    def sample(self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` new inputs: :meth:`sample_latent` decoded by :meth:`decode` (for a conditional
        model, of label(s) ``y``: one label, or ``n`` of them). No gradients."""
        check_samples(self.model, "n", check_positive_int("n", n), n)  # before any allocation
        return self.decode(self.sample_latent(n, y, generator=generator), y)

    @property
    def fitted(self) -> bool:
        """Whether the sampler can draw: True once :meth:`fit` has run (or a fitted sampler was
        loaded); always True for a sampler with nothing to fit. A sampler that learns overrides it."""
        return True

    def check_fitted(self, doing: str) -> None:
        """A one-line RuntimeError naming :meth:`fit` unless the sampler is :attr:`fitted`
        (``doing``: what needs the fit, as the message says it)."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__}: call fit(data) before {doing}")

    def settings(self) -> dict[str, Any]:
        """The settings :func:`repr` shows after the model's class (here none)."""
        return {}

    def __repr__(self) -> str:
        shown = [type(self.model).__name__, *(f"{k}={v!r}" for k, v in self.settings().items())]
        if type(self).fit is not Sampler.fit:  # a sampler that learns says whether it has
            shown.append(f"fitted={self.fitted}")
        return f"{type(self).__name__}({', '.join(shown)})"


#: The samplers by name; registering one records its constructor arguments, which :func:`genvae.save` writes.
registry: Registry[type[Sampler]] = Registry("samplers", record_config=True)
register = registry.register
get = registry.get
names = registry.names


def encode_means(
    model: Any, data: Any, *, batch_size: int = 256, progress: bool | None = None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The posterior means of every input of ``data`` (float64, on the CPU) and its labels, if
    any: encoded ``batch_size`` inputs at a time under :func:`~genvae.inference.inference` (eval
    mode, no autograd; the model is left as it was), so memory holds one batch's activations and
    the ``(N, latent_dim)`` means, with a progress bar (as :meth:`Sampler.fit`). A conditional
    model encodes each input with its own label."""
    check_positive_int("batch_size", batch_size)
    x_all, y_all = model_inputs(model, data)
    y_cond = labels_for(model, y_all)
    chunks = []
    with inference(model), progress_bar(x_all.shape[0], progress, "encode") as bar:
        for i in range(0, x_all.shape[0], batch_size):
            x = x_all[i : i + batch_size].to(model.device)
            c = model.condition(y_cond[i : i + batch_size], x.shape[0]) if y_cond is not None else None
            chunks.append(model.posterior(x, c)[0].to("cpu", torch.float64))
            bar.update(x.shape[0])
    return torch.cat(chunks).clone(), y_all  # clone: an ordinary tensor, not an inference tensor
