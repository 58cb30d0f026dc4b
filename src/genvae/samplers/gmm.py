"""Ex-post density estimation (Ghosh et al., 2020, "From variational to deterministic
autoencoders"): a Gaussian mixture fitted to the posterior means of the training data, sampled in
place of the prior, so that samples come from where the encoder actually puts the data."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from genvae._memory import check_draws
from genvae._validation import as_labels, check_non_negative, check_positive_int, fmt_shape
from genvae._weights import FixedBuffers
from genvae.inference import check_continuous, labels_for, model_inputs
from genvae.models import Labels
from genvae.samplers.base import Sampler, encode_means, register
from genvae.samplers.mixture import COVARIANCES, GaussianMixture

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["GaussianMixtureSampler", "MixtureTensors"]


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
        groups = model.num_classes if model.conditional else 1
        self.mixture_tensors = MixtureTensors(groups, self.components, model.latent_dim)

    @property
    def mixtures(self) -> list[GaussianMixture | None]:
        """The fitted mixtures: one for an unconditional model, one per class (None for a class
        without training inputs) for a conditional one; empty before :meth:`fit`. Set it to use
        mixtures fitted elsewhere (each of at most ``components`` Gaussians in ``latent_dim``
        dimensions; ``[]``: unfitted). Kept in :attr:`mixture_tensors`, float64 on the CPU."""
        return self.mixture_tensors.read()

    @mixtures.setter
    def mixtures(self, mixtures: list[GaussianMixture | None]) -> None:
        self.mixture_tensors.write(mixtures, conditional=bool(self.model.conditional))

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
        mixtures = []
        for k in range(self.model.num_classes):
            points = means[classes == k]
            mixtures.append(self._fit_one(points, min(self.components, len(points)), progress) if len(points) else None)
        self.mixtures = mixtures
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
        mixtures = self.mixtures
        for k in classes.unique().tolist():
            rows = (classes == k).nonzero().squeeze(1)
            mixture = mixtures[k]
            if mixture is None:
                raise ValueError(f"y: class {k} had no inputs when the sampler was fitted")
            z[rows.to(z.device)] = self._placed(mixture, rows.numel(), generator)
        return z

    def _placed(self, mixture: GaussianMixture, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return mixture.sample(n, generator=generator).to(self.model.device, self.model.dtype)

    @property
    def fitted(self) -> bool:
        """Whether :meth:`fit` has run (or mixtures were set): :attr:`mixtures` is not empty."""
        return bool(self.mixture_tensors.sizes.any())

    def settings(self) -> dict[str, Any]:
        """The settings :func:`repr` shows: ``components`` and ``covariance``."""
        return {"components": self.components, "covariance": self.covariance}


class MixtureTensors(FixedBuffers):
    """The mixtures of a :class:`GaussianMixtureSampler` as tensors of fixed sizes, float64 on the
    CPU whatever the model is moved or cast to: room for ``groups`` mixtures (one, or one per
    class) of up to ``components`` Gaussians in ``dim`` dimensions, so that a sampler built from
    its constructor arguments (as :func:`genvae.load` builds it) has the tensors a fitted one saved.
    ``sizes[g]`` is the number of Gaussians of mixture g; 0: none (not fitted, or a class without
    inputs). Rows past a mixture's size are zeros."""

    sizes: torch.Tensor
    weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor
    log_likelihood: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor

    def __init__(self, groups: int, components: int, dim: int) -> None:
        super().__init__()
        f64 = torch.float64
        self.register_buffer("sizes", torch.zeros(groups, dtype=torch.long))
        self.register_buffer("weights", torch.zeros(groups, components, dtype=f64))
        self.register_buffer("means", torch.zeros(groups, components, dim, dtype=f64))
        self.register_buffer("scale_tril", torch.zeros(groups, components, dim, dim, dtype=f64))
        self.register_buffer("log_likelihood", torch.zeros(groups, dtype=f64))
        self.register_buffer("iterations", torch.zeros(groups, dtype=torch.long))
        self.register_buffer("converged", torch.zeros(groups, dtype=torch.bool))

    def read(self) -> list[GaussianMixture | None]:
        """The mixtures (views of the tensors); empty when none is held."""
        if not bool(self.sizes.any()):
            return []
        return [
            None if k == 0 else GaussianMixture(
                self.weights[g, :k].cpu(), self.means[g, :k].cpu(), self.scale_tril[g, :k].cpu(),
                float(self.log_likelihood[g]), int(self.iterations[g]), bool(self.converged[g]),
            )
            for g, k in enumerate(self.sizes.tolist())
        ]  # fmt: skip

    def write(self, mixtures: list[GaussianMixture | None], *, conditional: bool) -> None:
        """Hold ``mixtures`` (checked: one per group, each fitting the tensors; None only for a
        class of a conditional model); ``[]`` holds none."""
        groups, components, dim = self.means.shape[:3]
        if mixtures and len(mixtures) != groups:
            what = "one per class" if conditional else "the model is unconditional"
            raise ValueError(f"mixtures: expected {groups} mixture{'s' * (groups > 1)} ({what}), got {len(mixtures)}")
        for g, mixture in enumerate(mixtures):
            if mixture is None and not conditional:
                raise ValueError(f"mixtures[{g}]: expected a GaussianMixture, got None")
            if mixture is not None and (mixture.means.shape[0] > components or mixture.means.shape[1:] != (dim,)):
                k, got = mixture.means.shape[0], mixture.means.shape[-1]
                raise ValueError(
                    f"mixtures[{g}]: expected at most components={components} components of dim {dim}, "
                    f"got {k} of dim {got}"
                )
        for tensor in self.buffers():
            tensor.zero_()
        for g, mixture in enumerate(mixtures):
            if mixture is not None:
                k = mixture.means.shape[0]
                self.sizes[g] = k
                self.weights[g, :k], self.means[g, :k] = mixture.weights, mixture.means
                self.scale_tril[g, :k] = mixture.scale_tril
                self.log_likelihood[g], self.iterations[g] = mixture.log_likelihood, mixture.iterations
                self.converged[g] = mixture.converged


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
