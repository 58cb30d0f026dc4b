"""What kind of model a run holds, and so which parts of the report apply to it.

This is the one place the report looks at a model's class: the evaluation, the figures and the
page read the :class:`RunKind` that :func:`run_kind` returns.

    >>> from genvae.presets import seed_cvae
    >>> kind = run_kind(seed_cvae(latent_dim=2, num_classes=10))
    >>> kind.title, kind.conditional, kind.bayes_rule, kind.semi_supervised
    ('Conditional VAE', True, True, False)
"""

from __future__ import annotations

from dataclasses import dataclass

from genvae.models import VAE
from genvae.semisupervised import SemiSupervisedVAE

__all__ = ["RunKind", "run_kind"]


@dataclass(frozen=True)
class RunKind:
    """The kind of a run's model, as the report needs it.

    Attributes:
        title: what the report calls it: "VAE", "Conditional VAE" or "Semi-supervised VAE (M2)".
        conditional: whether the model encodes and decodes with a label (a CVAE or M2): its
            manifolds and samples are drawn per label.
        semi_supervised: whether the model has a classifier q(y | x) (M2): its accuracy and
            confusion matrix are shown.
        classes: the model's number of classes (0 when it has none).
    """

    title: str
    conditional: bool
    semi_supervised: bool
    classes: int

    @property
    def bayes_rule(self) -> bool:
        """Whether the model classifies by Bayes' rule (and has label swaps): a conditional model
        with at least two classes."""
        return self.conditional and self.classes >= 2


def run_kind(model: VAE) -> RunKind:
    """The :class:`RunKind` of ``model``."""
    classes = int(getattr(model, "num_classes", None) or 0)
    if isinstance(model, SemiSupervisedVAE):
        return RunKind("Semi-supervised VAE (M2)", conditional=True, semi_supervised=True, classes=classes)
    if model.conditional:  # a ConditionalVAE, or another model with a condition (a conditional hierarchy)
        return RunKind("Conditional VAE", conditional=True, semi_supervised=False, classes=classes)
    return RunKind("VAE", conditional=False, semi_supervised=False, classes=classes)
