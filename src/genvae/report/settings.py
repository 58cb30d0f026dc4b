"""How much a report measures: :class:`ReportSettings` (more is slower and more precise).

>>> settings = ReportSettings(samplers=("gmm",))
>>> settings.measures_samples, settings.code_epochs
(True, 10)
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ReportSettings"]


@dataclass
class ReportSettings:
    """How much evaluation a report does (more is slower and more precise).

    Attributes:
        eval_size: test images used by the estimates and the scatter plot.
        probe_size: training images the latent probe fits on; the samplers and the sample-quality
            feature network fit on the same first images of the run's training split.
        k: importance samples per image for the NLL.
        classify_k: importance samples per image and class for the CVAE's Bayes-rule accuracy
            (and for reading the labels of its label swaps).
        classify_size: test images classified (and label-swapped).
        samplers: names in :data:`genvae.samplers.registry` to fit and draw from besides the
            model's own (``"prior"``, or ``"code"`` for a VQ-VAE, always shown first).
        sample_quality: measure the samples (Fréchet distance, precision, recall against the test
            images); on whenever ``samplers`` names one.
        code_epochs: epochs a VQ-VAE's code prior (:class:`~genvae.samplers.code.CodeSampler`) trains.
        feature_epochs: epochs the sample-quality feature network trains.
        quality_size: samples drawn per sampler for the sample quality (and test images compared
            with them), at most the test set.
    """

    eval_size: int = 1000
    probe_size: int = 5000
    k: int = 100
    classify_k: int = 20
    classify_size: int = 500
    samplers: tuple[str, ...] = ()
    sample_quality: bool = False
    code_epochs: int = 10
    feature_epochs: int = 3
    quality_size: int = 1000

    @property
    def measures_samples(self) -> bool:
        """Whether the report measures sample quality: asked for, or samplers named."""
        return self.sample_quality or bool(self.samplers)
