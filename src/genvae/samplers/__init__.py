"""Samplers: new inputs from a trained model, with latents drawn from its prior or from a density
fitted after training, all through one interface (:class:`Sampler`).

- :class:`PriorSampler` (``"prior"``): the model's own prior p(z), as :meth:`genvae.VAE.sample`.
- :class:`GaussianMixtureSampler` (``"gmm"``): a Gaussian mixture fitted to the posterior means of
  the training data (Ghosh et al., 2020), which often gives better samples than the prior, whose
  regions the encoder leaves empty.
- :class:`~genvae.samplers.code.CodeSampler` (``"code"``): for a :class:`~genvae.VQVAE`, a small
  autoregressive prior fitted to the code maps of the training data.

Every sampler is built from the model alone (``registry.get(name)(model)``), fitted with
``fit(data)`` (a no-op where there is nothing to fit), and draws with ``sample_latent(n, y)`` and
``sample(n, y)``.

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vae(latent_dim=2)
    >>> sampler = gv.samplers.registry.get("gmm")(model, components=2).fit(torch.rand(20, 1, 28, 28))
    >>> sampler.sample(3, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([3, 1, 28, 28])
    >>> gv.samplers.names()
    ['code', 'gmm', 'prior']
"""

from genvae.samplers.base import Sampler, encode_means, get, names, register, registry
from genvae.samplers.code import CodeSampler
from genvae.samplers.gmm import GaussianMixtureSampler
from genvae.samplers.mixture import GaussianMixture
from genvae.samplers.prior import PriorSampler

__all__ = [
    "CodeSampler",
    "GaussianMixture",
    "GaussianMixtureSampler",
    "PriorSampler",
    "Sampler",
    "encode_means",
    "get",
    "names",
    "register",
    "registry",
]
