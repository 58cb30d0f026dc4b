"""The laws every genvae model keeps, checked on one batch: :func:`check_model`."""

from __future__ import annotations

import math
import tempfile
from typing import Any

import torch

from genvae.config import load, save
from genvae.gaussian import kl_per_dim, log_normal
from genvae.inference import eval_mode
from genvae.losses import ELBO
from genvae.models import VAE
from genvae.priors import GaussianPrior

__all__ = ["KL_SAMPLES", "check_model"]

#: Draws of z per input for the Monte-Carlo KL of a prior without a closed form (mixtures).
KL_SAMPLES = 256


def check_model(model: VAE, x: torch.Tensor, y: torch.Tensor | int | None = None, *, roundtrip: bool = True) -> None:
    """Assert the laws a VAE must keep, on the batch ``x`` (and labels ``y`` of a conditional model):

    - shapes: ``encode`` gives ``(batch, latent_dim)`` twice; a forward pass, ``reconstruct``,
      ``decode`` and ``sample`` give data of ``x``'s shape;
    - the ELBO's terms (loss, total, reconstruction, KL) are finite;
    - KL(q(z | x) ‖ p(z)) ≥ 0: per latent dimension where the prior has a closed form (normal,
      conditional), else its Monte-Carlo mean over :data:`KL_SAMPLES` draws, within four standard
      errors;
    - decodings (of the posterior means and of prior draws) are finite and in the likelihood's
      :attr:`~genvae.likelihoods.Likelihood.support` (e.g. [0, 1] for a Bernoulli);
    - with ``roundtrip``, :func:`genvae.save` then :func:`genvae.load` gives a model with identical
      encodings, decodings and reconstructions (needs every part registered).

    The model is checked in eval mode, without gradients, and left in the mode it was in.

    Raises:
        AssertionError: a law does not hold; the message names it and what was found.
    """
    with eval_mode(model), torch.no_grad():
        _check_shapes(model, x, y)
        _check_loss(model, x, y)
        _check_kl(model, x, y)
        _check_support(model, x, y)
        if roundtrip:
            _check_roundtrip(model, x, y)


def _expect(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(f"check_model: {message}")


def _shape(tensor: torch.Tensor) -> tuple[int, ...]:
    return tuple(tensor.shape)


def _check_shapes(model: VAE, x: torch.Tensor, y: Any) -> None:
    batch, latent = x.shape[0], model.latent_dim
    mean, logvar = model.encode(x, y)
    for name, value in (("mean", mean), ("logvar", logvar)):
        _expect(
            _shape(value) == (batch, latent), f"encode: expected {name} of shape {(batch, latent)}, got {_shape(value)}"
        )
    out = model(x, y)
    _expect(_shape(out.z) == (batch, latent), f"forward: expected z of shape {(batch, latent)}, got {_shape(out.z)}")
    data = {"forward's recon": out.recon, "reconstruct": model.reconstruct(x, y), "decode": model.decode(mean, y)}
    data["sample"] = model.sample(batch, y)
    for name, value in data.items():
        _expect(_shape(value) == _shape(x), f"{name}: expected data of shape {_shape(x)}, got {_shape(value)}")


def _check_loss(model: VAE, x: torch.Tensor, y: Any) -> None:
    terms = ELBO().compute(model, x, y if isinstance(y, torch.Tensor) or y is None else torch.tensor([y]))
    for name, value in (("loss", terms.loss), ("total", terms.total), ("recon", terms.recon), ("kl", terms.kl)):
        _expect(bool(torch.isfinite(value).all()), f"the ELBO's {name} is not finite: {value.tolist()}")


def _check_kl(model: VAE, x: torch.Tensor, y: Any) -> None:
    prior = model.prior
    if prior is None or isinstance(prior, GaussianPrior):  # closed form: every dimension's KL ≥ 0
        out = model(x, y)
        kl = kl_per_dim(out.mean, out.logvar) if prior is None else prior.kl(out.mean, out.logvar, out.z, out.c)
        low = float(kl.min())
        _expect(low >= -1e-5 * max(1.0, float(kl.abs().max())), f"KL(q ‖ p) must be >= 0, got {low:g}")
        return
    out = model(x, y, samples=KL_SAMPLES)  # z: (samples, batch, latent_dim)
    estimates = log_normal(out.z, out.mean, out.logvar) - prior.log_prob(out.z, out.c)
    mean, error = estimates.mean(0), estimates.std(0) / math.sqrt(KL_SAMPLES)
    worst = int(torch.argmin(mean + 4 * error))
    _expect(
        bool((mean + 4 * error >= 0).all()),
        f"KL(q ‖ p) must be >= 0, got a Monte-Carlo mean of {float(mean[worst]):g} "
        f"(standard error {float(error[worst]):g}) for input {worst}",
    )


def _check_support(model: VAE, x: torch.Tensor, y: Any) -> None:
    mean, _ = model.encode(x, y)
    decoded = {"decode(posterior mean)": model.decode(mean, y), "sample": model.sample(x.shape[0], y)}
    low, high = model.likelihood.support or (-math.inf, math.inf)
    for name, value in decoded.items():
        _expect(bool(torch.isfinite(value).all()), f"{name}: expected finite data, got NaN or inf")
        lo, hi = float(value.min()), float(value.max())
        _expect(
            low <= lo and hi <= high,
            f"{name}: expected values in the likelihood's support [{low:g}, {high:g}], "
            f"got values from {lo:g} to {hi:g}",
        )


def _check_roundtrip(model: VAE, x: torch.Tensor, y: Any) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            save(model, folder)
            again = load(folder, map_location=model.device).eval()
        except Exception as err:
            raise AssertionError(f"check_model: save → load failed: {type(err).__name__}: {err}") from err
    z = torch.randn(x.shape[0], model.latent_dim, generator=torch.Generator().manual_seed(0)).to(
        model.device, model.dtype
    )
    pairs = {
        "encode": (torch.cat(model.encode(x, y), 1), torch.cat(again.encode(x, y), 1)),
        "decode": (model.decode(z, y), again.decode(z, y)),
        "reconstruct": (model.reconstruct(x, y), again.reconstruct(x, y)),
    }
    for name, (before, after) in pairs.items():
        if not torch.equal(before, after):
            gap = float((before - after).abs().max()) if before.shape == after.shape else math.inf
            raise AssertionError(f"check_model: save → load changed {name}'s outputs (largest difference {gap:g})")
