"""Vector quantisation: a codebook of vectors and the nearest-code lookup of a VQ-VAE
(van den Oord et al., 2017, "Neural discrete representation learning").

:class:`VectorQuantizer` maps each input vector ``z_e`` to its nearest codebook vector ``e_k``
(squared Euclidean distance) and returns:

- the quantised vectors with a straight-through gradient, ``z_e + sg(e_k − z_e)``: forward
  they are ``e_k``, backward the decoder's gradient passes to the encoder unchanged;
- the codebook term ``‖sg(z_e) − e_k‖²`` (moves the codes towards the encoder's outputs) and the
  commitment term ``‖z_e − sg(e_k)‖²`` (keeps the encoder near its codes), per vector;
- the batch's codebook perplexity ``exp(−Σ_k p_k log p_k)`` (``p_k``: the share of the batch's
  vectors given code k; ``codebook_size`` when every code is used equally) and usage (the
  fraction of codes used at least once).

With ``ema=True`` the codebook is not trained by gradients but follows exponential moving
averages of its assignments (the paper's appendix), with Laplace smoothing of the counts:
``N_k ← γ N_k + (1 − γ) n_k``, ``m_k ← γ m_k + (1 − γ) Σ_{z_e ↦ k} z_e``,
``e_k = m_k / Ñ_k`` with ``Ñ_k = (N_k + ε) / (Σ_j N_j + K ε) · Σ_j N_j``.
Codes no input has used for ``restart_after`` training steps are re-initialised from encoder
outputs of the current batch (dead-code restarts). Both updates happen in a forward pass in
training mode only; under ``torchrun`` the counts are summed over the ranks and the restarts
taken from rank 0, so every rank keeps the same codebook.

Example:
    >>> import torch
    >>> from genvae.quantizers import VectorQuantizer
    >>> vq = VectorQuantizer(codebook_size=4, code_dim=2).eval()
    >>> out = vq(torch.randn(3, 5, 2))
    >>> out.codes.shape, out.quantized.shape, bool(out.codes.max() < 4)
    (torch.Size([3, 5]), torch.Size([3, 5, 2]), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from genvae._memory import check_fits
from genvae._validation import check_positive_int

__all__ = ["Quantized", "VectorQuantizer", "perplexity"]


@dataclass
class Quantized:
    """What :class:`VectorQuantizer` returns for inputs ``z_e`` of shape ``(..., code_dim)``.

    Attributes:
        quantized: the nearest codebook vectors, ``(..., code_dim)``, with the straight-through
            gradient to ``z_e``.
        codes: their indices in the codebook, ``(...)`` (int64).
        codebook: ``‖sg(z_e) − e‖²`` per vector, ``(...)``: its gradient moves the codebook.
        commitment: ``‖z_e − sg(e)‖²`` per vector, ``(...)``: its gradient moves the encoder.
        perplexity: ``exp`` of the entropy of the batch's code frequencies (a scalar).
        usage: the fraction of the codebook the batch used (a scalar).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    codebook: torch.Tensor
    commitment: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor


def perplexity(counts: torch.Tensor) -> torch.Tensor:
    """``exp(−Σ p log p)`` of the frequencies ``p = counts / counts.sum()`` (``0 log 0 = 0``): the
    number of equally used codes with the same entropy.

    Example:
        >>> perplexity(torch.tensor([5.0, 5.0, 5.0, 5.0]))
        tensor(4.)
    """
    p = counts / counts.sum().clamp(min=1e-12)
    return torch.exp(-torch.special.xlogy(p, p).sum())


class VectorQuantizer(nn.Module):
    """A codebook of ``codebook_size`` vectors of ``code_dim`` and the nearest-code lookup.

    Args:
        codebook_size: K, the number of codes.
        code_dim: D, the size of each code vector.
        ema: update the codebook by exponential moving averages instead of gradients.
        decay: γ of the moving averages (with ``ema``).
        epsilon: ε of the Laplace smoothing of the counts (with ``ema``).
        restart_after: re-initialise a code from the current batch's encoder outputs once it has
            been unused for this many training steps; None never restarts.

    The codebook is :attr:`embedding` ``(K, D)``: a parameter, or with ``ema`` a buffer beside the
    moving averages ``cluster_size`` ``(K,)`` and ``embed_sum`` ``(K, D)``; ``unused_steps``
    ``(K,)`` counts the training steps since each code was last used. All are in the state dict,
    so :func:`genvae.save` keeps them.
    """

    embedding: torch.Tensor
    cluster_size: torch.Tensor
    embed_sum: torch.Tensor
    unused_steps: torch.Tensor

    def __init__(
        self,
        codebook_size: int = 64,
        code_dim: int = 8,
        ema: bool = False,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        restart_after: int | None = 100,
    ) -> None:
        super().__init__()
        self.codebook_size = check_positive_int("codebook_size", codebook_size)
        self.code_dim = check_positive_int("code_dim", code_dim)
        if not isinstance(ema, bool):  # bool("false") is True: an edited model.json must not flip it
            raise TypeError(f"ema: expected True or False, got {ema!r}")
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay: expected a number in [0, 1), got {decay!r}")
        if not float(epsilon) > 0.0:
            raise ValueError(f"epsilon: expected a positive number, got {epsilon!r}")
        self.ema, self.decay, self.epsilon = bool(ema), float(decay), float(epsilon)
        self.restart_after = None if restart_after is None else check_positive_int("restart_after", restart_after)
        # the codebook (with ema, its moving sums too) and the per-code counters, before allocating
        # them: codebook_size=2**40 was the allocator's RuntimeError, or an OOM for sizes it grants
        vectors = 2 if self.ema else 1
        check_fits(
            "codebook_size", codebook_size, codebook_size, vectors * code_dim * 4 + 12, f"codes of {code_dim} float32"
        )
        # uniform in ±1/K, as the reference implementations start their codebooks
        initial = torch.empty(codebook_size, code_dim).uniform_(-1.0 / codebook_size, 1.0 / codebook_size)
        if self.ema:
            self.register_buffer("embedding", initial)
            # counts of one and sums equal to the codes: a code no input picks keeps its vector
            self.register_buffer("cluster_size", torch.ones(codebook_size))
            self.register_buffer("embed_sum", initial.clone())
        else:
            self.embedding = nn.Parameter(initial)
        self.register_buffer("unused_steps", torch.zeros(codebook_size, dtype=torch.long))

    def lookup(self, z: torch.Tensor) -> torch.Tensor:
        """The index of the nearest code to each vector of ``z`` ``(..., code_dim)``: ``(...)``."""
        flat = z.detach().reshape(-1, self.code_dim).to(self.embedding.dtype)
        # ‖z‖² − 2 z·e + ‖e‖², without the (N, K, D) differences
        codebook = self.embedding.detach()
        distances = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ codebook.t() + codebook.pow(2).sum(1)
        return distances.argmin(1).reshape(z.shape[:-1])

    def embed(self, codes: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of integer ``codes`` ``(...)``: ``(..., code_dim)``."""
        return nn.functional.embedding(codes, self.embedding)

    def forward(self, z: torch.Tensor) -> Quantized:
        """Quantise ``z`` ``(..., code_dim)`` (see :class:`Quantized`); in training mode also update
        the moving averages (with ``ema``) and restart dead codes."""
        codes = self.lookup(z)
        e = self.embed(codes).to(z.dtype)
        counts = torch.bincount(codes.reshape(-1), minlength=self.codebook_size).to(self.embedding.dtype)
        if self.training and torch.is_grad_enabled():
            self._update(z.detach(), codes, counts)
        return Quantized(
            quantized=z + (e - z).detach(),
            codes=codes,
            codebook=(z.detach() - e).pow(2).sum(-1),
            commitment=(z - e.detach()).pow(2).sum(-1),
            perplexity=perplexity(counts),
            usage=(counts > 0).to(z.dtype).mean(),
        )

    @torch.no_grad()
    def _update(self, z: torch.Tensor, codes: torch.Tensor, counts: torch.Tensor) -> None:
        flat = z.reshape(-1, self.code_dim).to(self.embedding.dtype)
        counts = _summed_over_ranks(counts)
        if self.ema:
            sums = _summed_over_ranks(torch.zeros_like(self.embed_sum).index_add_(0, codes.reshape(-1), flat))
            self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
            self.embedding.copy_(self.embed_sum / smoothed.unsqueeze(1))
        if self.restart_after is not None:
            self._restart(flat, counts, self.restart_after)

    def _restart(self, flat: torch.Tensor, counts: torch.Tensor, after: int) -> None:
        """Give each code unused for ``restart_after`` steps a random row of ``flat``. No host sync:
        every code draws a candidate and only the dead ones take it."""
        self.unused_steps.add_(1).masked_fill_(counts > 0, 0)
        dead = self.unused_steps >= after
        candidates = flat[torch.randint(flat.shape[0], (self.codebook_size,), device=flat.device)]
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.broadcast(candidates, src=0)  # every rank restarts to rank 0's choice
        mask = dead.unsqueeze(1)
        self.embedding.data.copy_(torch.where(mask, candidates, self.embedding.data))
        if self.ema:
            self.embed_sum.copy_(torch.where(mask, candidates, self.embed_sum))
            self.cluster_size.masked_fill_(dead, 1.0)
        self.unused_steps.masked_fill_(dead, 0)

    def extra_repr(self) -> str:
        """The codebook's size, shown in the module's ``repr``."""
        return f"codebook_size={self.codebook_size}, code_dim={self.code_dim}, ema={self.ema}"


def _summed_over_ranks(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over the ranks under ``torchrun``; itself otherwise."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
    return tensor
