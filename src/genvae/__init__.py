"""genvae: composable variational autoencoders in PyTorch.

>>> import genvae as gv
>>> model = gv.presets.seed_vae(latent_dim=2)
"""

from genvae import (
    conditioners,
    data,
    decoders,
    encoders,
    evaluation,
    likelihoods,
    losses,
    models,
    presets,
    registry,
    training,
    viz,
)
from genvae.config import load, save
from genvae.losses import ELBO, Objective
from genvae.models import VAE, ConditionalVAE, VAEOutput
from genvae.registry import Registry
from genvae.training import DivergenceError, History, Trainer

__version__ = "0.1.0"

__all__ = [
    "ELBO",
    "VAE",
    "ConditionalVAE",
    "DivergenceError",
    "History",
    "Objective",
    "Registry",
    "Trainer",
    "VAEOutput",
    "__version__",
    "conditioners",
    "data",
    "decoders",
    "encoders",
    "evaluation",
    "likelihoods",
    "load",
    "losses",
    "models",
    "presets",
    "registry",
    "save",
    "training",
    "viz",
]
