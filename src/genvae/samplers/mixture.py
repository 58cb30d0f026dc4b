"""A Gaussian mixture fitted by expectation-maximisation, in torch: the density that
:class:`~genvae.samplers.GaussianMixtureSampler` fits to posterior means.

Written here rather than taken from scikit-learn, which genvae does not depend on: the points are
``(N, latent_dim)`` posterior means, small enough for a plain EM. The fit is seeded k-means++
(Arthur & Vassilvitskii, 2007), a few Lloyd steps, then EM with full or diagonal covariances, each
with ``reg`` added to its diagonal (scikit-learn's ``reg_covar``), all in float64. Memory: the
points, the ``(N, components)`` responsibilities and one ``(N, latent_dim)`` difference at a time.

Example:
    >>> import torch
    >>> from genvae.samplers.mixture import GaussianMixture
    >>> g = torch.Generator().manual_seed(0)
    >>> points = torch.cat([torch.randn(200, 2, generator=g) - 5, torch.randn(200, 2, generator=g) + 5])
    >>> mixture = GaussianMixture.fit(points, 2)
    >>> mixture.means[mixture.means[:, 0].argsort()].round().tolist()
    [[-5.0, -5.0], [5.0, 5.0]]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from genvae._progress import progress_bar
from genvae._validation import check_non_negative, check_positive_int

__all__ = ["COVARIANCES", "GaussianMixture", "kmeans_plus_plus"]

#: The covariance kinds :meth:`GaussianMixture.fit` takes.
COVARIANCES = ("full", "diag")

_LLOYD_STEPS = 10
_TINY = 10 * torch.finfo(torch.float64).eps  # keeps an emptied component's weight above zero, as scikit-learn


@dataclass
class GaussianMixture:
    """A mixture of Gaussians ``Σ_k w_k N(μ_k, L_k L_kᵀ)`` (float64, on the CPU).

    Attributes:
        weights: the mixture weights, ``(components,)``, summing to 1.
        means: the component means, ``(components, dim)``.
        scale_tril: the Cholesky factors of the covariances, ``(components, dim, dim)``
            (diagonal for ``covariance="diag"``).
        log_likelihood: the mean log-density of the fitted points at the end of the fit.
        iterations: EM iterations run.
        converged: whether the mean log-density changed by less than ``tol`` before ``iterations``.
    """

    weights: torch.Tensor
    means: torch.Tensor
    scale_tril: torch.Tensor
    log_likelihood: float = math.nan
    iterations: int = 0
    converged: bool = False

    @property
    def covariances(self) -> torch.Tensor:
        """The component covariances ``L_k L_kᵀ``, ``(components, dim, dim)``."""
        return self.scale_tril @ self.scale_tril.mT

    @classmethod
    def fit(
        cls,
        points: torch.Tensor,
        components: int,
        *,
        covariance: str = "full",
        iterations: int = 100,
        tol: float = 1e-4,
        reg: float = 1e-6,
        seed: int = 0,
        progress: bool | None = False,
    ) -> GaussianMixture:
        """Fit ``components`` Gaussians to ``points`` ``(N, dim)`` by EM from a seeded k-means++
        start, until the mean log-density gains less than ``tol`` or after ``iterations`` steps
        (a progress bar of the steps on stderr when ``progress``; None: when stderr is a terminal)."""
        check_positive_int("components", components)
        check_positive_int("iterations", iterations)
        check_non_negative("tol", tol)
        check_non_negative("reg", reg)
        if covariance not in COVARIANCES:
            raise ValueError(f"covariance: expected one of {', '.join(COVARIANCES)}, got {covariance!r}")
        if points.dim() != 2 or points.shape[0] < components:
            raise ValueError(
                f"points: expected at least components={components} points of shape (N, dim), got {tuple(points.shape)}"
            )
        x = points.detach().to("cpu", torch.float64)
        generator = torch.Generator().manual_seed(seed)
        resp = torch.nn.functional.one_hot(_lloyd(x, kmeans_plus_plus(x, components, generator)), components)
        mixture = _m_step(x, resp.to(torch.float64), covariance, reg)
        previous = -math.inf
        with progress_bar(iterations, progress, "EM", unit="it") as bar:
            for step in range(1, iterations + 1):
                log_lik, resp = mixture._e_step(x)
                mixture = _m_step(x, resp, covariance, reg)
                mixture.log_likelihood, mixture.iterations = float(log_lik), step
                bar.update(1)
                if abs(mixture.log_likelihood - previous) < tol:
                    mixture.converged = True
                    break
                previous = mixture.log_likelihood
        return mixture

    def component_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """``log w_k + log N(z; μ_k, Σ_k)`` of each point and component, ``(N, components)``, one
        component at a time (one ``(N, dim)`` difference in memory)."""
        z = z.to(self.means.dtype)
        half_log_2pi = 0.5 * math.log(2 * math.pi) * z.shape[-1]
        columns = []
        for mean, tril in zip(self.means, self.scale_tril, strict=True):
            solved = torch.linalg.solve_triangular(tril, (z - mean).T, upper=False)  # L⁻¹(z − μ), (dim, N)
            log_det = tril.diagonal().log().sum()
            columns.append(-0.5 * solved.square().sum(0) - log_det - half_log_2pi)
        return torch.stack(columns, dim=1) + self.weights.log()

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """The mixture's log-density at each row of ``z`` ``(N, dim)``: shape ``(N,)``."""
        return torch.logsumexp(self.component_log_prob(z), dim=1)

    def _e_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean log-density of ``x`` and the responsibilities ``(N, components)``."""
        joint = self.component_log_prob(x)
        log_px = torch.logsumexp(joint, dim=1, keepdim=True)
        return log_px.mean(), torch.exp(joint - log_px)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws ``(n, dim)`` (float64, on the CPU): a component per draw, then its Gaussian.
        A generator on another device draws there and the result is moved."""
        check_positive_int("n", n)
        where = generator.device if generator is not None else torch.device("cpu")
        index = torch.multinomial(self.weights.to(where), n, replacement=True, generator=generator).cpu()
        eps = torch.randn(n, self.means.shape[1], generator=generator, device=where, dtype=torch.float64).cpu()
        return self.means[index] + (self.scale_tril[index] @ eps.unsqueeze(-1)).squeeze(-1)


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """``k`` rows of ``x`` chosen by k-means++: the first uniformly, each next one with probability
    proportional to its squared distance from the nearest chosen so far. Returns ``(k, dim)``."""
    chosen = [int(torch.randint(x.shape[0], (1,), generator=generator))]
    nearest = (x - x[chosen[0]]).square().sum(1)
    for _ in range(1, k):
        # all points on the chosen ones (fewer distinct points than k): any point will do
        weights = nearest if float(nearest.sum()) > 0 else torch.ones_like(nearest)
        chosen.append(int(torch.multinomial(weights, 1, generator=generator)))
        nearest = torch.minimum(nearest, (x - x[chosen[-1]]).square().sum(1))
    return x[chosen]


def _lloyd(x: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """A few k-means (Lloyd) steps from ``centres``; the final assignment of each point."""
    assign = torch.cdist(x, centres).argmin(1)
    for _ in range(_LLOYD_STEPS):
        counts = torch.bincount(assign, minlength=centres.shape[0]).unsqueeze(1)
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        centres = torch.where(counts > 0, sums / counts.clamp(min=1), centres)  # an emptied centre stays put
        new = torch.cdist(x, centres).argmin(1)
        if torch.equal(new, assign):
            break
        assign = new
    return assign


def _m_step(x: torch.Tensor, resp: torch.Tensor, covariance: str, reg: float) -> GaussianMixture:
    """The weights, means and covariances that maximise the expected log-likelihood given the
    responsibilities ``resp`` ``(N, components)``."""
    counts = resp.sum(0) + _TINY
    means = resp.T @ x / counts.unsqueeze(1)
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    trils = []
    for k in range(resp.shape[1]):
        diff = x - means[k]
        weighted = resp[:, k : k + 1] * diff
        if covariance == "full":
            cov = weighted.T @ diff / counts[k] + reg * eye
            trils.append(torch.linalg.cholesky(cov))
        else:
            var = (weighted * diff).sum(0) / counts[k] + reg
            trils.append(torch.diag(var.sqrt()))
    return GaussianMixture(weights=counts / counts.sum(), means=means, scale_tril=torch.stack(trils))
