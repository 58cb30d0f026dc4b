"""genvae: composable variational autoencoders in PyTorch.

>>> import genvae as gv
>>> model = gv.presets.seed_vae(latent_dim=2)
"""

# First, before torch: Ctrl-C while the `genvae` command starts prints one line, not a traceback.
import genvae._startup

# isort: split
import genvae._output_tree  # noqa: F401  (registers VAEOutput as a pytree, for torch.export)
from genvae import (
    classifiers,
    conditioners,
    data,
    decoders,
    encoders,
    evaluation,
    export,
    flows,
    hierarchical,
    hub,
    inference,
    latent_metrics,
    likelihoods,
    losses,
    models,
    posteriors,
    presets,
    priors,
    quantizers,
    registry,
    sample_quality,
    samplers,
    semisupervised,
    training,
    viz,
    vqvae,
)
from genvae._version import __version__
from genvae.config import load, save
from genvae.hierarchical import HierarchicalVAE
from genvae.hub import push_to_hub
from genvae.losses import ELBO, IWAE, BetaTCVAE, Objective
from genvae.models import VAE, ConditionalVAE, VAEOutput
from genvae.registry import Registry
from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE
from genvae.training import DivergenceError, History, Trainer
from genvae.vqvae import VQVAE, VQObjective

__all__ = [
    "ELBO",
    "IWAE",
    "VAE",
    "VQVAE",
    "BetaTCVAE",
    "ConditionalVAE",
    "DivergenceError",
    "HierarchicalVAE",
    "History",
    "Objective",
    "Registry",
    "SemiSupervisedELBO",
    "SemiSupervisedVAE",
    "Trainer",
    "VAEOutput",
    "VQObjective",
    "__version__",
    "classifiers",
    "conditioners",
    "data",
    "decoders",
    "encoders",
    "evaluation",
    "export",
    "flows",
    "hierarchical",
    "hub",
    "inference",
    "latent_metrics",
    "likelihoods",
    "load",
    "losses",
    "models",
    "posteriors",
    "presets",
    "priors",
    "push_to_hub",
    "quantizers",
    "registry",
    "sample_quality",
    "samplers",
    "save",
    "semisupervised",
    "training",
    "viz",
    "vqvae",
]
