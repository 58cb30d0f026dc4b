"""Ex-post density estimation (Ghosh et al., 2020, "From variational to deterministic
autoencoders"): a Gaussian mixture fitted to the posterior means of the training data, sampled in
place of the prior, so that samples come from where the encoder actually puts the data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from genvae._memory import check_draws
from genvae._validation import as_labels, check_non_negative, check_positive_int, fmt_shape
from genvae.inference import check_continuous, labels_for, model_inputs
from genvae.models import Labels
from genvae.samplers.base import Sampler, encode_means, register
from genvae.samplers.mixture import COVARIANCES, GaussianMixture

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["GaussianMixtureSampler"]


@register("gmm")
class GaussianMixtureSampler(Sampler):
    """Latents from a Gaussian mixture fitted by EM to the posterior means of the training data
    (the aggregate posterior, which a VAE's prior often does not match; Ghosh et al., 2020).

    A conditional model gets one mixture per class, fitted to the means of that class's inputs
    (encoded with their labels), and draws each latent from the mixture of its label; a class
    with fewer inputs than ``components`` gets one component per input. Conditioning by class
    rather than on ``y`` as an input keeps each class's density exact and needs no model of its
    own; it takes integer class labels (a model built with ``num_classes``), in ``fit``'s data and
    in ``y``: one-hot or soft float labels are refused (a soft label has no mixture of its own).

    Args:
        model: the trained model.
        components: Gaussians in each mixture (Ghosh et al. use 10).
        covariance: ``"full"`` or ``"diag"`` covariances.
        iterations: the most EM steps.
        tol: EM stops once the mean log-density of the means gains less than this.
        reg: added to the diagonal of each covariance, to keep it positive definite.
        seed: seeds the k-means++ start, so a fit is reproducible.

    Example:
        >>> import torch, genvae as gv
        >>> model = gv.presets.seed_vae(latent_dim=2)
        >>> sampler = gv.samplers.GaussianMixtureSampler(model, components=3).fit(torch.rand(50, 1, 28, 28))
        >>> sampler.sample(4).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(
        self,
        model: Any,
        components: int = 10,
        *,
        covariance: str = "full",
        iterations: int = 100,
        tol: float = 1e-4,
        reg: float = 1e-6,
        seed: int = 0,
    ) -> None:
        super().__init__(model)
        check_continuous(model)  # it fits the posterior means: a VQ-VAE has none
        self.components = check_positive_int("components", components)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance: expected one of {', '.join(COVARIANCES)}, got {covariance!r}")
        if model.conditional and getattr(model, "num_classes", None) is None:
            raise ValueError(
                "model: expected a model with class labels (num_classes) for one mixture per class, "
                "got one with float condition vectors"
            )
        self.covariance = covariance
        self.iterations = check_positive_int("iterations", iterations)
        self.tol, self.reg, self.seed = check_non_negative("tol", tol), check_non_negative("reg", reg), seed
        #: The fitted mixtures: one for an unconditional model, one per class (None for a class
        #: without training inputs) for a conditional one; empty before :meth:`fit`.
        self.mixtures: list[GaussianMixture | None] = []

    def fit(self, data: Any, *, batch_size: int = 256, progress: bool | None = None) -> Self:
        """Encode ``data`` (see :meth:`Sampler.fit`) to its posterior means, in eval mode and
        ``batch_size`` inputs at a time (:func:`~genvae.samplers.base.encode_means`), then fit
        the mixture(s) by EM; progress bars of both steps on stderr when ``progress``."""
        if self.model.conditional:  # the labels checked before anything is encoded
            x, labels = model_inputs(self.model, data)
            data = (x, _class_indices("data", labels_for(self.model, labels), "labels"))
        means, labels = encode_means(self.model, data, batch_size=batch_size, progress=progress)
        if not self.model.conditional:
            self.mixtures = [self._fit_one(means, self.components, progress)]
            return self
        assert labels is not None  # encode_means asked for them
        classes = labels.cpu()
        self.mixtures = []
        for k in range(self.model.num_classes):
            points = means[classes == k]
            fitted = self._fit_one(points, min(self.components, len(points)), progress) if len(points) else None
            self.mixtures.append(fitted)
        return self

    def _fit_one(self, points: torch.Tensor, components: int, progress: bool | None) -> GaussianMixture:
        if points.shape[0] < components:
            raise ValueError(f"data: expected at least components={components} inputs, got {points.shape[0]}")
        return GaussianMixture.fit(
            points, components, covariance=self.covariance, iterations=self.iterations, tol=self.tol, reg=self.reg,
            seed=self.seed, progress=progress,
        )  # fmt: skip

    def sample_latent(
        self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``n`` draws from the fitted mixture (for a conditional model, each from the mixture of
        its label in ``y``: one label, or ``n`` of them), in the model's dtype on its device.
        An ``n`` whose draws (float64 on the CPU first) cannot fit in memory is refused before
        any is drawn."""
        check_positive_int("n", n)
        check_draws(n, self.model.latent_dim, torch.float64, "cpu")  # the mixture draws in float64
        check_draws(n, self.model.latent_dim, self.model.dtype, self.model.device)
        self.check_fitted("sampling")
        if y is not None and self.model.conditional:
            y = _class_indices("y", y, "indices")
        c = self.model.condition(y, n)  # checks y: None for an unconditional model, labels otherwise
        if c is None:
            return self._placed(self.mixtures[0], n, generator)  # type: ignore[arg-type]
        classes = c.argmax(1).cpu()  # c one-hot encodes the checked class indices: argmax gives them back
        z = torch.empty(n, self.model.latent_dim, dtype=self.model.dtype, device=self.model.device)
        for k in classes.unique().tolist():
            rows = (classes == k).nonzero().squeeze(1)
            mixture = self.mixtures[k]
            if mixture is None:
                raise ValueError(f"y: class {k} had no inputs when the sampler was fitted")
            z[rows.to(z.device)] = self._placed(mixture, rows.numel(), generator)
        return z

    def _placed(self, mixture: GaussianMixture, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return mixture.sample(n, generator=generator).to(self.model.device, self.model.dtype)

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run (or mixtures were set): :attr:`mixtures` is not empty."""
        return bool(self.mixtures)

    def settings(self) -> dict[str, Any]:
        """The settings :func:`repr` shows: ``components`` and ``covariance``."""
        return {"components": self.components, "covariance": self.covariance}


def _class_indices(name: str, y: Any, what: str) -> Any:
    """``y`` as labels (:func:`~genvae._validation.as_labels`); float labels (one-hot or soft
    vectors, float indices) are a one-line ValueError naming ``name``: the sampler has one mixture
    per class, and a soft label has no mixture of its own (no longer reduced to its argmax)."""
    y = as_labels(name, y)
    if isinstance(y, torch.Tensor) and y.is_floating_point():
        hint = f"; for one-hot vectors pass {name}.argmax(1)" if name == "y" and y.dim() == 2 else ""
        raise ValueError(
            f"{name}: expected integer class {what} (one mixture per class), got float labels of shape "
            f"{fmt_shape(y.shape)}{hint}"
        )
    return y
