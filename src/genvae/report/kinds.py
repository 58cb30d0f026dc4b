"""What kind of model a run holds, and so which parts of the report apply to it.

This is the one place the report looks at a model's class: the evaluation, the figures and the
page read the :class:`RunKind` that :func:`run_kind` returns.

    >>> import genvae as gv
    >>> from genvae.presets import seed_cvae
    >>> kind = run_kind(seed_cvae(latent_dim=2, num_classes=10))
    >>> kind.title, kind.conditional, kind.bayes_rule, kind.semi_supervised
    ('Conditional VAE', True, True, False)
    >>> kind = run_kind(gv.presets.seed_vqvae(codebook_size=8, code_dim=2))
    >>> kind.title, kind.discrete, kind.own_sampler
    ('VQ-VAE', True, 'code')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genvae.semisupervised import SemiSupervisedVAE
from genvae.vqvae import VQVAE

__all__ = ["RunKind", "run_kind"]


@dataclass(frozen=True)
class RunKind:
    """The kind of a run's model, as the report needs it.

    Attributes:
        title: what the report calls it: "VAE", "Conditional VAE", "Semi-supervised VAE (M2)",
            "VQ-VAE" or "Conditional VQ-VAE".
        conditional: whether the model encodes and decodes with a label (a CVAE or M2): its
            manifolds and samples are drawn per label.
        semi_supervised: whether the model has a classifier q(y | x) (M2): its accuracy and
            confusion matrix are shown.
        classes: the model's number of classes (0 when it has none).
        discrete: whether the latent is a map of codes (a VQ-VAE): no Gaussian posterior, so no
            IW-NLL, active units, latent figures or Bayes' rule; its codebook and code prior instead.
    """

    title: str
    conditional: bool
    semi_supervised: bool
    classes: int
    discrete: bool = False

    @property
    def own_sampler(self) -> str:
        """The name of the model's own sampler in :data:`genvae.samplers.registry`: ``"code"``
        (a prior learned over the codes) for a VQ-VAE, ``"prior"`` for the others."""
        return "code" if self.discrete else "prior"

    @property
    def bayes_rule(self) -> bool:
        """Whether the model classifies by Bayes' rule (and has label swaps): a conditional model
        with at least two classes."""
        return self.conditional and self.classes >= 2 and not self.discrete


def run_kind(model: Any) -> RunKind:
    """The :class:`RunKind` of ``model``."""
    classes = int(getattr(model, "num_classes", None) or 0)
    if isinstance(model, VQVAE):
        title = "Conditional VQ-VAE" if model.conditional else "VQ-VAE"
        return RunKind(title, conditional=model.conditional, semi_supervised=False, classes=classes, discrete=True)
    if isinstance(model, SemiSupervisedVAE):
        return RunKind("Semi-supervised VAE (M2)", conditional=True, semi_supervised=True, classes=classes)
    if getattr(model, "latent_dims", None):  # levels of latents (a Ladder VAE)
        name = "Conditional hierarchical VAE" if model.conditional else "Hierarchical VAE"
        return RunKind(name, conditional=model.conditional, semi_supervised=False, classes=classes)
    if model.conditional:  # a ConditionalVAE, or another model with a condition
        return RunKind("Conditional VAE", conditional=True, semi_supervised=False, classes=classes)
    return RunKind("VAE", conditional=False, semi_supervised=False, classes=classes)
