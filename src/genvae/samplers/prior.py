"""The model's own prior as a sampler: the baseline every fitted sampler is compared with."""

from __future__ import annotations

import torch
from torch import nn

from genvae._validation import check_positive_int
from genvae.inference import check_continuous
from genvae.models import Labels
from genvae.samplers.base import Sampler, register

__all__ = ["PriorSampler"]


@register("prior")
class PriorSampler(Sampler):
    """Latents from the model's prior p(z) (p(z | y) for a conditional prior): what
    :meth:`genvae.VAE.sample` draws. Nothing to fit: :meth:`fit` returns the sampler as it is.
    A VQ-VAE (discrete codes, no continuous z) is refused: its sampler is the ``"code"`` one.

    Example:
        >>> import torch, genvae as gv
        >>> sampler = gv.samplers.PriorSampler(gv.presets.seed_vae(latent_dim=2))
        >>> sampler.sample_latent(4).shape, sampler.sample(4).shape
        (torch.Size([4, 2]), torch.Size([4, 1, 28, 28]))
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        # what it draws from; a VQ-VAE has none (discrete codes): refused here, in one line,
        # rather than with an AttributeError at the first draw
        if not hasattr(model, "sample_prior"):
            check_continuous(model)
            raise TypeError(
                f"model: expected a model with a prior to draw from (sample_prior), got {type(model).__name__}"
            )

    def sample_latent(
        self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` draws from the model's prior (given the condition of ``y`` for a conditional
        model), in the model's dtype on its device."""
        check_positive_int("n", n)
        return self.model.sample_prior(n, self.model.condition(y, n), generator=generator)
