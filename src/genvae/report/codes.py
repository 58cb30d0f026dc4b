"""The evaluation of a VQ-VAE run: held-out reconstruction and how the codebook is used.

A VQ-VAE has no Gaussian posterior, so the IW-NLL, active units, latent probe, prior match, MIG
and Bayes' rule of :class:`~genvae.report.evaluation.RunEvaluation` do not apply; a
:class:`CodeEvaluation` holds what does: −log p(x | z_q(x)) and the squared error of each held-out
image's reconstruction, and the codebook's perplexity and usage over the held-out code maps.

    >>> figures = CodeEvaluation.from_json({"codebook": {
    ...     "size": 4, "images": 2, "recon_nats": 80.5, "recon_mse": 0.02, "elbo_nats": 95.0,
    ...     "perplexity": 3.2, "usage": 1.0, "counts": [30, 20, 28, 20]}})
    >>> figures.perplexity, figures.sample_quality is None
    (3.2, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from genvae.data import ImageDataset
from genvae.inference import eval_mode
from genvae.quantizers import perplexity
from genvae.report.sampling import SampleQualityFigures
from genvae.report.settings import ReportSettings
from genvae.vqvae import VQVAE

__all__ = ["CodeEvaluation", "evaluate_codes"]

_BATCH = 256  # held-out images encoded at once


@dataclass(frozen=True)
class CodeEvaluation:
    """The evaluation figures of a VQ-VAE run (``evaluation.json``'s ``codebook``).

    Attributes:
        codebook_size: K, the number of codes.
        images: held-out images measured.
        recon_nats: −log p(x | z_q(x)) per image under the model's likelihood, in nats.
        recon_mse: the mean squared error per pixel of the reconstruction (the likelihood's mean).
        elbo_nats: the negative ELBO under the uniform code prior the model trains with:
            ``recon_nats + n · log K`` for a map of ``n`` codes.
        perplexity: ``exp`` of the entropy of the codes' frequencies over the held-out maps (K when
            every code is used equally).
        usage: the fraction of the K codes that some held-out map uses.
        counts: how often each code occurs in the held-out maps.
        sample_quality: the samplers' sample quality, when measured; else None.
    """

    codebook_size: int
    images: int
    recon_nats: float
    recon_mse: float
    elbo_nats: float
    perplexity: float
    usage: float
    counts: tuple[int, ...]
    sample_quality: SampleQualityFigures | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON-ready figures: ``codebook``, and ``sample_quality`` when measured."""
        figures: dict[str, Any] = {
            "codebook": {
                "size": self.codebook_size,
                "images": self.images,
                "recon_nats": self.recon_nats,
                "recon_mse": self.recon_mse,
                "elbo_nats": self.elbo_nats,
                "perplexity": self.perplexity,
                "usage": self.usage,
                "counts": list(self.counts),
            }
        }
        if self.sample_quality is not None:
            figures["sample_quality"] = self.sample_quality.to_json()
        return figures

    @classmethod
    def from_json(cls, figures: Mapping[str, Any]) -> CodeEvaluation:
        """Read the figures :meth:`to_json` gives."""
        book = figures["codebook"]
        quality = figures.get("sample_quality")
        return cls(
            codebook_size=int(book["size"]),
            images=int(book["images"]),
            recon_nats=float(book["recon_nats"]),
            recon_mse=float(book["recon_mse"]),
            elbo_nats=float(book["elbo_nats"]),
            perplexity=float(book["perplexity"]),
            usage=float(book["usage"]),
            counts=tuple(int(n) for n in book["counts"]),
            sample_quality=SampleQualityFigures.from_json(quality) if quality is not None else None,
        )


@torch.no_grad()
def evaluate_codes(model: VQVAE, test: ImageDataset, settings: ReportSettings) -> CodeEvaluation:
    """Measure a VQ-VAE on the first ``settings.eval_size`` test images (a conditional model
    encodes and decodes each with its label), a batch at a time, in eval mode."""
    n = min(settings.eval_size, len(test))
    counts = torch.zeros(model.codebook_size, dtype=torch.long)
    nats, squared = 0.0, 0.0
    with eval_mode(model):
        for i in range(0, n, _BATCH):
            x = test.images[i : min(i + _BATCH, n)].to(model.device, model.dtype)
            y = test.labels[i : i + x.shape[0]] if model.conditional else None
            out = model(x, y)
            nats -= float(out.log_prob(x).reshape(x.shape[0], -1).sum())
            squared += float((out.recon - x).square().sum())
            counts += torch.bincount(out.codes.reshape(-1).cpu(), minlength=model.codebook_size)
    recon = nats / n
    return CodeEvaluation(
        codebook_size=model.codebook_size,
        images=n,
        recon_nats=recon,
        recon_mse=squared / test.images[:n].numel(),
        elbo_nats=recon + math.prod(model.code_shape) * math.log(model.codebook_size),
        perplexity=float(perplexity(counts.double())),
        usage=float((counts > 0).double().mean()),
        counts=tuple(int(c) for c in counts),
    )
