"""Which parts of the report apply to a run (genvae.report.kinds): the one place that looks at
the model's class."""

from __future__ import annotations

from genvae.models import ConditionalVAE
from genvae.presets import seed_cvae, seed_vae
from genvae.report import RunKind, run_kind
from genvae.semisupervised import seed_m2


def test_each_model_family_gets_its_kind() -> None:
    assert run_kind(seed_vae(latent_dim=2)) == RunKind("VAE", conditional=False, semi_supervised=False, classes=0)
    cvae = run_kind(seed_cvae(latent_dim=2, num_classes=10))
    assert cvae == RunKind("Conditional VAE", conditional=True, semi_supervised=False, classes=10)
    m2 = run_kind(seed_m2(latent_dim=2, classifier_hidden=(16,)))
    assert m2 == RunKind("Semi-supervised VAE (M2)", conditional=True, semi_supervised=True, classes=10)
    assert not run_kind(seed_vae(latent_dim=2)).bayes_rule and cvae.bayes_rule and m2.bayes_rule


def test_bayes_rule_needs_at_least_two_classes() -> None:
    """A model conditioned on float vectors has no classes to choose between."""
    kind = run_kind(ConditionalVAE(latent_dim=2, num_classes=None, condition_dim=3))
    assert kind.conditional and kind.classes == 0 and not kind.bayes_rule
