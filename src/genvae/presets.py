"""The notebook's architectures, as configurations of the built-in parts.

Example:
    >>> import genvae as gv
    >>> sum(p.numel() for p in gv.presets.seed_vae(latent_dim=2).parameters())
    97237
    >>> sum(p.numel() for p in gv.presets.seed_cvae(latent_dim=2, num_classes=10).parameters())
    200725

Weights trained in the notebook's own ``VAE`` and ``ConditionalVAE`` classes load into these
presets with :func:`seed_vae_from_notebook` and :func:`seed_cvae_from_notebook`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from genvae._seed_networks import seed_decoder, seed_encoder
from genvae.conditioners import Conditioner
from genvae.hierarchical import seed_hierarchical
from genvae.models import VAE, ConditionalVAE
from genvae.posteriors import Posterior
from genvae.priors import Prior
from genvae.semisupervised import seed_m2
from genvae.vqvae import seed_cvqvae, seed_vqvae

__all__ = ["NOTEBOOK_CVAE_LAYERS", "NOTEBOOK_VAE_LAYERS", "seed_cvae", "seed_cvae_from_notebook", "seed_cvqvae",
           "seed_hierarchical", "seed_m2", "seed_vae", "seed_vae_from_notebook", "seed_vqvae"]  # fmt: skip

#: The notebook's layers (its attribute names) → the presets' layers (weight and bias of each).
NOTEBOOK_VAE_LAYERS = {
    "encoder_part1.0": "encoder.first", "encoder_part1.2": "encoder.rest.1", "encoder_part1.5": "encoder.rest.4",
    "encoder_mean": "mean_head", "encoder_logvar": "logvar_head", "decoder_part1_z": "decoder.first",
    "decoder_part2.1": "decoder.rest.2", "decoder_part2.3": "decoder.rest.4",
}  # fmt: skip
NOTEBOOK_CVAE_LAYERS = {
    "encoder_part1_x": "encoder.first.layer", "encoder_part1_y": "encoder.first.project",
    "encoder_part2.1": "encoder.rest.1", "encoder_part2.4": "encoder.rest.4", "encoder_mean": "mean_head",
    "encoder_logvar": "logvar_head", "decoder_part1_z": "decoder.first.layer",
    "decoder_part1_y": "decoder.first.project", "decoder_part2.1": "decoder.rest.2",
    "decoder_part2.3": "decoder.rest.4",
}  # fmt: skip


def seed_vae(
    latent_dim: int = 2,
    likelihood: str = "bernoulli",
    prior: str | Prior = "normal",
    posterior: str | Posterior = "gaussian",
) -> VAE:
    """The notebook's VAE (97,237 parameters at ``latent_dim=2``): a convolutional encoder for
    28×28 grey images and a transposed-convolution decoder returning logits. ``prior`` is a
    registered prior's name (``"normal"``, ``"mog"``, ``"vamp"``, ``"flow"``) or a
    :class:`~genvae.priors.Prior`; ``posterior`` a registered posterior's name (``"gaussian"``,
    ``"iaf"``) or a :class:`~genvae.posteriors.Posterior`."""
    return VAE(
        encoder=seed_encoder(),
        decoder=seed_decoder(latent_dim),
        latent_dim=latent_dim,
        likelihood=likelihood,
        prior=prior,
        posterior=posterior,
    )


def seed_cvae(
    latent_dim: int = 2,
    num_classes: int = 10,
    conditioner: str | Conditioner = "split",
    likelihood: str = "bernoulli",
    prior: str | Prior = "normal",
    posterior: str | Posterior = "gaussian",
) -> ConditionalVAE:
    """The notebook's conditional VAE (200,725 parameters with ``"split"``, ``latent_dim=2``,
    ten classes). With ``"split"`` the label enters the encoder as ``Linear(num_classes, 32·14·14)``
    added to the first convolution's output and the decoder as ``W_y·y`` added to ``W_z·z``;
    ``"concat"`` and ``"film"`` are the alternatives. ``prior`` as for :func:`seed_vae`, and
    ``"conditional"`` (p(z | y)); ``posterior`` as for :func:`seed_vae`."""
    return ConditionalVAE(
        encoder=seed_encoder(num_classes, conditioner),
        decoder=seed_decoder(latent_dim, num_classes, conditioner),
        latent_dim=latent_dim,
        num_classes=num_classes,
        likelihood=likelihood,
        prior=prior,
        posterior=posterior,
    )


def seed_vae_from_notebook(state_dict: Mapping[str, torch.Tensor]) -> VAE:
    """:func:`seed_vae` holding the weights of the notebook's own ``VAE`` class (``state_dict``:
    ``VAE().state_dict()``, or ``torch.load`` of one). Its encodings equal the notebook model's
    ``encode(x)``, its :meth:`~genvae.VAE.decode` the notebook's ``decode(z)`` (pixel probabilities).

    Example:
        >>> import genvae as gv
        >>> notebook = gv.presets.seed_vae(latent_dim=3)  # stands in for the notebook's state dict here
        >>> state = {nb + "." + p: notebook.state_dict()[ours + "." + p]
        ...          for nb, ours in gv.presets.NOTEBOOK_VAE_LAYERS.items() for p in ("weight", "bias")}
        >>> gv.presets.seed_vae_from_notebook(state).latent_dim
        3
    """
    mapped = _mapped(state_dict, NOTEBOOK_VAE_LAYERS, "VAE")
    model = seed_vae(latent_dim=_size(mapped, "mean_head.weight", 0))
    _load(model, mapped, "VAE")
    return model


def seed_cvae_from_notebook(state_dict: Mapping[str, torch.Tensor]) -> ConditionalVAE:
    """:func:`seed_cvae` (the ``"split"`` conditioner) holding the weights of the notebook's own
    ``ConditionalVAE`` class. The notebook feeds one-hot labels, genvae class indices:
    ``model.encode(x, y)`` equals the notebook's ``encode(x, F.one_hot(y, num_classes).float())``,
    and likewise ``decode``."""
    mapped = _mapped(state_dict, NOTEBOOK_CVAE_LAYERS, "ConditionalVAE")
    num_classes = _size(mapped, "encoder.first.project.weight", 1)
    model = seed_cvae(latent_dim=_size(mapped, "mean_head.weight", 0), num_classes=num_classes)
    _load(model, mapped, "ConditionalVAE")
    return model


def _mapped(state_dict: Mapping[str, torch.Tensor], layers: Mapping[str, str], cls: str) -> dict[str, torch.Tensor]:
    """The notebook's tensors under the presets' names; a missing or unknown name is an error."""
    names = {f"{nb}.{p}": f"{ours}.{p}" for nb, ours in layers.items() for p in ("weight", "bias")}
    missing = [k for k in names if k not in state_dict]
    unknown = [k for k in state_dict if k not in names]
    if missing or unknown:
        what = f"missing {missing[0]!r}" if missing else f"unexpected {unknown[0]!r}"
        raise ValueError(f"state_dict: expected the state dict of the notebook's {cls} class, {what}")
    return {names[k]: v for k, v in state_dict.items()}


def _size(mapped: Mapping[str, torch.Tensor], name: str, dim: int) -> int:
    tensor = mapped[name]
    if not isinstance(tensor, torch.Tensor) or tensor.dim() != 2:
        raise ValueError(f"state_dict: {name}: expected a 2-d weight tensor, got {type(tensor).__name__}")
    return int(tensor.shape[dim])


def _load(model: torch.nn.Module, mapped: Mapping[str, torch.Tensor], cls: str) -> None:
    expected = model.state_dict()
    for key, tensor in mapped.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"state_dict: {key}: expected shape {tuple(expected[key].shape)} (the notebook's {cls}), "
                f"got {tuple(tensor.shape)}"
            )
    model.load_state_dict({k: v.detach().to(expected[k].dtype) for k, v in mapped.items()})
