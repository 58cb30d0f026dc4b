"""Discrete codes: the VQ-VAE (van den Oord et al., 2017) and its objective.

A :class:`VQVAE` encodes an input to a map of vectors (a ``H × W`` grid for a convolutional
encoder, ``n`` vectors for any other), replaces each by its nearest codebook vector
(:class:`~genvae.quantizers.VectorQuantizer`), and decodes the quantised map. Its latent code is
the integer map :meth:`VQVAE.codes` gives; :meth:`VQVAE.decode_codes` turns a map back into data.
It trains with :class:`VQObjective` (``"vq"`` in :data:`genvae.losses.objectives`):
reconstruction + codebook + β · commitment. Samples worth looking at come from a prior learned
over the codes afterwards: :class:`genvae.samplers.code.CodeSampler`.

Example:
    >>> import torch, genvae as gv
    >>> model = gv.presets.seed_vqvae(codebook_size=16, code_dim=4)
    >>> x = torch.rand(3, 1, 28, 28)
    >>> codes = model.codes(x)
    >>> codes.shape, codes.dtype
    (torch.Size([3, 7, 7]), torch.int64)
    >>> model.decode_codes(codes).shape
    torch.Size([3, 1, 28, 28])
    >>> sorted(gv.losses.objectives.get("vq")()(model(x), x).extra)
    ['codebook', 'commitment', 'perplexity', 'usage']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from genvae import decoders, encoders, likelihoods
from genvae._memory import arguments_named, check_samples
from genvae._model_inputs import EncoderDecoderInputs
from genvae._seed_networks import seed_decoder
from genvae._validation import (
    check_condition_size,
    check_labels,
    check_non_negative,
    check_positive_int,
    check_tensor,
    fmt_shape,
)
from genvae.conditioners import Conditioner
from genvae.likelihoods import Likelihood
from genvae.losses import ELBOTerms, LossTerm, Objective, objectives, resolve_term, term_name
from genvae.models import ConditionalVAE, Labels, register
from genvae.quantizers import Quantized, VectorQuantizer

__all__ = ["VQVAE", "VQObjective", "VQOutput", "seed_cvqvae", "seed_vqvae"]

# built by name for a grid of codes, the convolutional encoder keeps its last feature map
_GRID_ENCODERS: dict[str, dict[str, Any]] = {"conv": {"hidden": ()}}
# the notebook's encoder convolutions (genvae._seed_networks) without its fully connected layer:
# a 64-channel 7×7 feature map for 28×28 images
_SEED_CONVOLUTIONS: dict[str, Any] = {
    "in_channels": 1, "image_size": 28, "channels": (32, 64), "kernel_size": 3, "strides": 2, "hidden": ()
}  # fmt: skip


@dataclass
class VQOutput:
    """What :meth:`VQVAE.forward` returns.

    Attributes:
        params: the decoder's raw output (logits for a Bernoulli likelihood).
        quantized: the codebook's answer (:class:`~genvae.quantizers.Quantized`): the codes, the
            per-vector codebook and commitment terms, the batch's perplexity and usage.
        z_e: the encoder's vectors before quantisation, ``(batch, *code_shape, code_dim)``.
        likelihood: the model's likelihood, which interprets ``params``.
        codebook_size: K, the number of codes.
        c: the condition vectors of a conditional model (None otherwise).
        ema: whether the codebook follows moving averages (then the codebook term trains nothing).
    """

    params: torch.Tensor
    quantized: Quantized
    z_e: torch.Tensor
    likelihood: Likelihood
    codebook_size: int
    c: torch.Tensor | None = None
    ema: bool = False

    @property
    def codes(self) -> torch.Tensor:
        """The integer code map, ``(batch, *code_shape)``."""
        return self.quantized.codes

    @property
    def recon(self) -> torch.Tensor:
        """The reconstruction in data space: the likelihood's mean."""
        return self.likelihood.mean(self.params)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Elementwise log p(x | z_q) under the decoded distribution."""
        return self.likelihood.log_prob(x, self.params)


@register("vqvae")
class VQVAE(EncoderDecoderInputs, nn.Module):
    """A vector-quantised VAE: encoder, a codebook of ``codebook_size`` vectors of ``code_dim``,
    decoder and likelihood; conditional on a label when built with ``num_classes`` (or
    ``condition_dim``), as :class:`~genvae.ConditionalVAE` is.

    The encoder's features ``(batch, F)`` become ``code_shape`` vectors of ``code_dim``: with
    ``grid=(H, W)`` they are read as a ``(F / (H·W), H, W)`` feature map (a convolutional
    encoder's, flattened) and a 1×1 convolution gives a vector per position; with ``grid=n`` a
    linear map gives ``n`` vectors. The quantised vectors, flattened to ``latent_dim = code_dim ·
    H · W`` (channel first, as a ``(code_dim, H, W)`` map flattens), are the decoder's input.

    Args:
        encoder: a feature extractor ``x (, c) -> (batch, F)``; a registered name builds the
            built-in (``"conv"`` without its fully connected layers, for a grid).
        decoder: ``(batch, latent_dim) (, c) -> raw parameters``; a registered name builds the
            built-in with ``latent_dim``.
        codebook_size: K, the number of codes.
        code_dim: the size of each code vector.
        grid: ``(H, W)`` for a map of codes from a convolutional feature map, or ``n`` for ``n``
            codes from any feature vector.
        likelihood: a registered name or a :class:`~genvae.likelihoods.Likelihood`.
        num_classes: number of classes, for integer labels (a conditional model).
        condition_dim: length of the condition vector, for float conditions.
        conditioner: how the condition enters encoder and decoder built from names.
        feature_dim: F, when the encoder has no ``out_features`` attribute.
        ema: update the codebook by moving averages (decay 0.99, Laplace smoothing) rather than
            by the codebook term's gradient.
        decay: the moving averages' decay.
        restart_after: re-initialise codes unused for this many training steps from the current
            batch's encoder outputs; None never restarts.
    """

    conditional = False
    #: The objective the Trainer uses when given none, and the only ones a run trains it with.
    default_objective: str = "vq"
    trains_with = ("vq",)

    def __init__(
        self,
        encoder: str | nn.Module = "conv",
        decoder: str | nn.Module = "conv",
        codebook_size: int = 64,
        code_dim: int = 8,
        grid: int | tuple[int, int] | list[int] = (7, 7),
        likelihood: str | Likelihood = "bernoulli",
        num_classes: int | None = None,
        condition_dim: int | None = None,
        conditioner: str | Conditioner = "split",
        feature_dim: int | None = None,
        ema: bool = False,
        decay: float = 0.99,
        restart_after: int | None = 100,
    ) -> None:
        super().__init__()
        self.quantizer = VectorQuantizer(codebook_size, code_dim, ema=ema, decay=decay, restart_after=restart_after)
        self.codebook_size, self.code_dim = self.quantizer.codebook_size, self.quantizer.code_dim
        self.code_shape = _code_shape(grid)
        self.latent_dim = code_dim * math.prod(self.code_shape)
        self.num_classes, self.condition_dim = check_condition_size(num_classes, condition_dim)
        self.conditional = self.condition_dim > 0
        condition = {"condition_dim": self.condition_dim, "conditioner": conditioner} if self.conditional else {}
        extra = _GRID_ENCODERS.get(encoder, {}) if isinstance(encoder, str) and len(self.code_shape) == 2 else {}
        # the parts get latent_dim=code_dim·codes (and condition_dim=num_classes): a size error names
        # the argument the user gave, the larger factor of the two
        names: dict[str, tuple[str, Any]] = {
            "latent_dim": ("grid", grid) if math.prod(self.code_shape) >= code_dim else ("code_dim", code_dim)
        }
        if condition_dim is None:
            names["condition_dim"] = ("num_classes", num_classes)
        with arguments_named(**names):
            self.encoder = _part(
                "encoder", encoders.registry.resolve(encoder, argument="encoder", **condition, **extra)
            )
            self.decoder = _part(
                "decoder",
                decoders.registry.resolve(decoder, argument="decoder", latent_dim=self.latent_dim, **condition),
            )
        lik = likelihoods.registry.resolve(likelihood, argument="likelihood")
        if not isinstance(lik, Likelihood):
            raise TypeError(f"likelihood: expected a registered name or a Likelihood, got {type(lik).__name__}")
        self.likelihood = lik
        self._check_parts()
        features = feature_dim if feature_dim is not None else getattr(self.encoder, "out_features", None)
        if features is None:
            raise ValueError("encoder: expected a module with an `out_features` attribute or the feature_dim argument")
        self.head = self._head(check_positive_int("feature_dim", features))

    def _check_parts(self) -> None:
        got = getattr(self.decoder, "latent_dim", self.latent_dim)
        if got != self.latent_dim:
            raise ValueError(
                f"decoder: expected a decoder with latent_dim={self.latent_dim} (code_dim · codes), "
                f"got latent_dim={got}"
            )
        for name, part in (("encoder", self.encoder), ("decoder", self.decoder)):
            got = getattr(part, "condition_dim", self.condition_dim)
            if got != self.condition_dim:
                raise ValueError(f"{name}: expected a part built with condition_dim={self.condition_dim}, got {got}")

    def _head(self, features: int) -> nn.Module:
        """The map from the encoder's features to the vectors to quantise."""
        if len(self.code_shape) == 1:
            return nn.Linear(features, self.latent_dim)
        positions = math.prod(self.code_shape)
        if features % positions:
            raise ValueError(
                f"grid: expected the encoder's {features} features to be a feature map of {self.code_shape[0]}×"
                f"{self.code_shape[1]} positions (a multiple of {positions}), got {features}; use a convolutional "
                "encoder without fully connected layers, or grid=n"
            )
        return nn.Conv2d(features // positions, self.code_dim, 1)

    # -- shapes, dtype and device -------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        """Where the model's parameters are."""
        return self.quantizer.embedding.device

    @property
    def dtype(self) -> torch.dtype:
        """The floating-point dtype of the model's parameters."""
        return self.quantizer.embedding.dtype

    # -- checks ---------------------------------------------------------------------------------

    def condition(self, y: Labels | None, batch: int) -> torch.Tensor | None:
        """The condition vectors for labels ``y``, checked as :meth:`ConditionalVAE.condition
        <genvae.ConditionalVAE.condition>` checks them; None (and no labels) when unconditional."""
        if not self.conditional:
            if y is not None:
                raise ValueError("y: expected None for an unconditional VQVAE, got labels")
            return None
        return ConditionalVAE.condition(cast(Any, self), y, batch)

    def check_codes(self, codes: Any) -> torch.Tensor:
        """Check a code map: integers in ``[0, codebook_size)`` of shape ``(batch, *code_shape)``
        (one map without the batch is made a batch of one). Returns it on the model's device."""
        check_tensor("codes", codes)
        if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
            raise TypeError(f"codes: expected an integer tensor, got dtype {codes.dtype}")
        if tuple(codes.shape) == self.code_shape:
            codes = codes.unsqueeze(0)
        if tuple(codes.shape[1:]) != self.code_shape:
            raise ValueError(
                f"codes: expected a tensor of shape {fmt_shape(('batch', *self.code_shape))}, "
                f"got {fmt_shape(codes.shape)}"
            )
        if self.checking:
            check_labels("codes", codes.reshape(-1), self.codebook_size)
        return codes.to(self.device, torch.long)

    # -- the pieces of a forward pass (unchecked, differentiable) -------------------------------

    def encode_vectors(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The encoder's vectors before quantisation, ``(batch, *code_shape, code_dim)``."""
        h = self.encoder(x) if c is None else self.encoder(x, c)
        if len(self.code_shape) == 1:
            return self.head(h).view(h.shape[0], *self.code_shape, self.code_dim)
        z = self.head(h.view(h.shape[0], -1, *self.code_shape))  # (batch, code_dim, H, W)
        return z.permute(0, 2, 3, 1)

    def decoder_params(self, z_q: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """The decoder's raw parameters for quantised vectors ``(batch, *code_shape, code_dim)``."""
        flat = z_q.permute(0, 3, 1, 2) if z_q.dim() == 4 else z_q  # channel first, as a feature map
        flat = flat.reshape(z_q.shape[0], self.latent_dim)
        return self.decoder(flat) if c is None else self.decoder(flat, c)

    def forward_condition(self, x: torch.Tensor, c: torch.Tensor | None) -> VQOutput:
        """Encode, quantise, decode, given a precomputed condition. No input checks."""
        z_e = self.encode_vectors(x, c)
        q = self.quantizer(z_e)
        params = self.decoder_params(q.quantized, c)
        return VQOutput(params, q, z_e, self.likelihood, self.codebook_size, c, self.quantizer.ema)

    # -- public methods ------------------------------------------------------------------------

    def forward(self, x: torch.Tensor, y: Labels | None = None) -> VQOutput:
        """Encode, quantise (straight-through), decode. In training mode the codebook's moving
        averages and dead-code restarts update (see :class:`~genvae.quantizers.VectorQuantizer`)."""
        if self.checking:
            self.check_input(x)
        return self.forward_condition(x, self.condition(y, x.shape[0]))

    @torch.no_grad()
    def codes(self, x: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """The integer code map of each input: ``(batch, H, W)`` for a grid, ``(batch, n)``
        otherwise (int64, in ``[0, codebook_size)``)."""
        if self.checking:
            self.check_input(x)
        return self.quantizer.lookup(self.encode_vectors(x, self.condition(y, x.shape[0])))

    def embed_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """The codebook vectors of a code map (checked): ``(batch, *code_shape, code_dim)``."""
        return self.quantizer.embed(self.check_codes(codes))

    @torch.no_grad()
    def decode_codes(self, codes: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """The data-space mean of p(x | codes) (pixel probabilities for a Bernoulli). No gradients."""
        z_q = self.embed_codes(codes)
        return self.likelihood.mean(self.decoder_params(z_q, self.condition(y, z_q.shape[0])))

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: Labels | None = None) -> torch.Tensor:
        """Decode each input's own codes: a deterministic reconstruction (no gradients; inputs are
        converted to the model's dtype and device, as :meth:`VAE.reconstruct <genvae.VAE.reconstruct>` does)."""
        return self.decode_codes(self.codes(self.as_input(x), y), y)

    @torch.no_grad()
    def sample(self, n: int, y: Labels | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` inputs decoded from code maps drawn uniformly: the prior the VQ-VAE trains under.
        Such samples are poor; a prior learned over the codes
        (:class:`genvae.samplers.code.CodeSampler`) gives good ones."""
        check_samples(self, "n", check_positive_int("n", n), n)  # before any allocation, as VAE.sample
        dev = generator.device if generator is not None else self.device
        codes = torch.randint(self.codebook_size, (n, *self.code_shape), generator=generator, device=dev)
        return self.decode_codes(codes, y)

    def extra_repr(self) -> str:
        """The codebook and the code map, shown in the module's ``repr``."""
        return f"codebook_size={self.codebook_size}, code_dim={self.code_dim}, code_shape={self.code_shape}"


@objectives.register("vq")
class VQObjective(Objective):
    """The VQ-VAE objective: ``loss = recon + codebook + β · commitment`` (van den Oord et al., 2017,
    eq. 3), every term a per-sample sum (over pixels; over the code map's vectors and dimensions).

    With the paper's uniform prior over the K codes and a one-hot posterior, the KL term is the
    constant ``n · log K`` for a map of ``n`` codes, and ``total = recon + kl`` is the negative
    ELBO. With an EMA codebook (``VQVAE(ema=True)``) the codebook term is reported but trains
    nothing, and is left out of ``loss``.

    The History gets, beside ``total``, ``recon`` and ``kl``: ``codebook``, ``commitment``,
    ``perplexity`` (each batch's codebook perplexity, averaged over batches: K when every code is
    used equally) and ``usage`` (the fraction of codes each batch used).

    Args:
        beta: the weight of the commitment term (0.25 in the paper).
        reconstruction: the reconstruction term, a registered name (``"nll"``: −log p(x | z_q)
            under the model's likelihood) or a function ``(out, x) -> per-sample values``.
    """

    def __init__(self, beta: float = 0.25, reconstruction: str | LossTerm = "nll") -> None:
        super().__init__()
        self.beta = check_non_negative("beta", beta)
        self.reconstruction = resolve_term("reconstruction", reconstruction)
        self._reconstruction_name = term_name(reconstruction)

    def __call__(self, out: Any, x: torch.Tensor) -> ELBOTerms:
        if not isinstance(out, VQOutput):
            raise TypeError(f"out: expected the output of a VQVAE (VQOutput), got {type(out).__name__}")
        if not isinstance(x, torch.Tensor) or x.shape != out.params.shape:
            got = fmt_shape(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(
                f"x: expected a tensor of the decoder's output shape {fmt_shape(out.params.shape)}, got {got}"
            )
        batch = x.shape[0]
        recon = self.reconstruction(cast(Any, out), x).reshape(batch, -1).sum(1).mean()
        q = out.quantized
        codebook = q.codebook.reshape(batch, -1).sum(1).mean()
        commitment = q.commitment.reshape(batch, -1).sum(1).mean()
        kl = recon.new_tensor(q.codes[0].numel() * math.log(out.codebook_size))  # n · log K: uniform prior
        loss = recon + self.beta * commitment + (0.0 if out.ema else codebook)
        extra = {"codebook": codebook, "commitment": commitment, "perplexity": q.perplexity, "usage": q.usage}
        return ELBOTerms(loss=loss, total=recon + kl, recon=recon, kl=kl, extra=extra)

    def config(self) -> dict[str, Any]:
        """β and the reconstruction term's name."""
        return {"beta": self.beta, "reconstruction": self._reconstruction_name}

    def __repr__(self) -> str:
        return f"VQObjective(beta={self.beta}, reconstruction={self._reconstruction_name!r})"


def seed_vqvae(
    codebook_size: int = 64,
    code_dim: int = 8,
    likelihood: str | Likelihood = "bernoulli",
    ema: bool = True,
    restart_after: int | None = 100,
) -> VQVAE:
    """A VQ-VAE with the notebook's networks: its encoder's two stride-2 convolutions give a 7×7
    map of 64-channel features, a 1×1 convolution turns each position into a vector of
    ``code_dim``, quantised against ``codebook_size`` codes; the notebook's decoder
    (``Linear(code_dim·49, 64·7·7)`` and two transposed convolutions) decodes the 7×7 map of
    codes. The codebook follows moving averages (``ema``) by default."""
    check_positive_int("code_dim", code_dim)  # before the decoder is sized by it
    return VQVAE(
        encoder=encoders.ConvEncoder(**_SEED_CONVOLUTIONS),
        decoder=seed_decoder(code_dim * 49),
        codebook_size=codebook_size,
        code_dim=code_dim,
        likelihood=likelihood,
        ema=ema,
        restart_after=restart_after,
    )


def seed_cvqvae(
    codebook_size: int = 64,
    code_dim: int = 8,
    num_classes: int = 10,
    conditioner: str | Conditioner = "split",
    likelihood: str | Likelihood = "bernoulli",
    ema: bool = True,
    restart_after: int | None = 100,
) -> VQVAE:
    """:func:`seed_vqvae` conditional on a label: encoder and decoder see the one-hot label through
    ``conditioner`` (``"split"``, ``"concat"``, ``"film"``), as in :func:`~genvae.presets.seed_cvae`."""
    check_positive_int("code_dim", code_dim)
    condition: dict[str, Any] = {"condition_dim": num_classes, "conditioner": conditioner}
    return VQVAE(
        encoder=encoders.ConvEncoder(**_SEED_CONVOLUTIONS, **condition),
        decoder=seed_decoder(code_dim * 49, num_classes, conditioner),
        codebook_size=codebook_size,
        code_dim=code_dim,
        likelihood=likelihood,
        num_classes=num_classes,
        ema=ema,
        restart_after=restart_after,
    )


def _code_shape(grid: Any) -> tuple[int, ...]:
    if isinstance(grid, int) and not isinstance(grid, bool):
        return (check_positive_int("grid", grid),)
    if isinstance(grid, tuple | list) and len(grid) == 2:
        return tuple(check_positive_int("grid", g) for g in grid)
    raise ValueError(f"grid: expected n (codes) or (H, W) (a map of codes), got {grid!r}")


def _part(name: str, part: Any) -> nn.Module:
    if not isinstance(part, nn.Module):
        raise TypeError(f"{name}: expected an nn.Module or a registered name, got {type(part).__name__}")
    return part
