"""The notebook's architectures, as configurations of the built-in parts.

Example:
    >>> import genvae as gv
    >>> sum(p.numel() for p in gv.presets.seed_vae(latent_dim=2).parameters())
    97237
    >>> sum(p.numel() for p in gv.presets.seed_cvae(latent_dim=2, num_classes=10).parameters())
    200725
"""

from __future__ import annotations

from genvae._seed_networks import seed_decoder, seed_encoder
from genvae.conditioners import Conditioner
from genvae.models import VAE, ConditionalVAE
from genvae.priors import Prior
from genvae.semisupervised import seed_m2

__all__ = ["seed_cvae", "seed_m2", "seed_vae"]


def seed_vae(latent_dim: int = 2, likelihood: str = "bernoulli", prior: str | Prior = "normal") -> VAE:
    """The notebook's VAE (97,237 parameters at ``latent_dim=2``): a convolutional encoder for
    28×28 grey images and a transposed-convolution decoder returning logits. ``prior`` is a
    registered prior's name (``"normal"``, ``"mog"``, ``"vamp"``) or a :class:`~genvae.priors.Prior`."""
    return VAE(
        encoder=seed_encoder(),
        decoder=seed_decoder(latent_dim),
        latent_dim=latent_dim,
        likelihood=likelihood,
        prior=prior,
    )


def seed_cvae(
    latent_dim: int = 2,
    num_classes: int = 10,
    conditioner: str | Conditioner = "split",
    likelihood: str = "bernoulli",
    prior: str | Prior = "normal",
) -> ConditionalVAE:
    """The notebook's conditional VAE (200,725 parameters with ``"split"``, ``latent_dim=2``,
    ten classes). With ``"split"`` the label enters the encoder as ``Linear(num_classes, 32·14·14)``
    added to the first convolution's output and the decoder as ``W_y·y`` added to ``W_z·z``;
    ``"concat"`` and ``"film"`` are the alternatives. ``prior`` as for :func:`seed_vae`, and
    ``"conditional"`` (p(z | y))."""
    return ConditionalVAE(
        encoder=seed_encoder(num_classes, conditioner),
        decoder=seed_decoder(latent_dim, num_classes, conditioner),
        latent_dim=latent_dim,
        num_classes=num_classes,
        likelihood=likelihood,
        prior=prior,
    )
