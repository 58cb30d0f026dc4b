"""A learned prior over a VQ-VAE's codes: :class:`CodeSampler`.

A VQ-VAE trains under a uniform prior over its code maps, and code maps drawn uniformly decode to
noise. :class:`CodeSampler` fits an autoregressive model to the code maps of the training data
afterwards (van den Oord et al., 2017, fitted a PixelCNN): here a small causal transformer over
the map read row by row, ``p(codes) = Π_t p(code_t | code_<t)`` (``p(codes | y)`` for a
conditional model, the label added to every position). New code maps are drawn one code at a
time and decoded by the VQ-VAE.

Example:
    >>> import torch, genvae as gv
    >>> from genvae.samplers.code import CodeSampler
    >>> vq = gv.presets.seed_vqvae(codebook_size=8, code_dim=4)
    >>> sampler = CodeSampler(vq, width=16, layers=1).fit(torch.rand(32, 1, 28, 28), epochs=1)
    >>> sampler.sample_latent(2).shape, sampler.sample(2).shape
    (torch.Size([2, 7, 7]), torch.Size([2, 1, 28, 28]))
"""

from __future__ import annotations

import math
import sys
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from genvae._memory import check_fits
from genvae._validation import check_positive_int
from genvae.data import as_tensors
from genvae.inference import eval_mode
from genvae.samplers.base import Sampler, register
from genvae.vqvae import VQVAE

__all__ = ["CodePrior", "CodeSampler"]

#: Code maps drawn, or inputs encoded, at once: memory stays bounded whatever ``n`` or the data's size.
CHUNK = 1024


class CodePrior(nn.Module):
    """A causal transformer over a flattened code map: logits of each code given those before it.

    Args:
        codebook_size: K, the number of codes.
        length: L, the codes in a map.
        condition_dim: length of the condition vector (0: unconditional).
        width: the transformer's model dimension.
        layers: transformer layers.
        heads: attention heads.
    """

    mask: torch.Tensor

    def __init__(
        self, codebook_size: int, length: int, condition_dim: int = 0, width: int = 64, layers: int = 2, heads: int = 4
    ) -> None:
        super().__init__()
        self.codebook_size, self.length = codebook_size, length
        self.tokens = nn.Embedding(codebook_size + 1, width)  # the last one: the start token
        self.positions = nn.Parameter(torch.zeros(length, width))
        self.condition = nn.Linear(condition_dim, width) if condition_dim else None
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
        self.body = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, codebook_size))
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(length), persistent=False)

    def forward(self, codes: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, t + 1, K)`` of the codes at positions 0 … t, given ``codes`` ``(batch, t)``
        (the first t codes of each map; t may be 0)."""
        start = torch.full((codes.shape[0], 1), self.codebook_size, dtype=torch.long, device=codes.device)
        tokens = torch.cat([start, codes], 1)[:, : self.length]
        t = tokens.shape[1]
        h = self.tokens(tokens) + self.positions[:t]
        if self.condition is not None and c is not None:
            h = h + self.condition(c).unsqueeze(1)
        return self.out(self.body(h, mask=self.mask[:t, :t], is_causal=True))

    def step(
        self, tokens: torch.Tensor, position: int, c: torch.Tensor | None, cache: list[torch.Tensor]
    ) -> torch.Tensor:
        """Logits ``(batch, K)`` of the code at ``position`` given the token before it (``tokens``
        ``(batch,)``: the start token at position 0) and the keys and values of the earlier
        positions in ``cache`` (an empty list before position 0; extended in place).

        The same function as :meth:`forward`'s last row: drawing a map one code at a time costs
        one position per step instead of the whole prefix again (L steps instead of L²/2
        positions). It reads the weights of the ``nn.TransformerEncoderLayer`` blocks, which
        are kept so that :meth:`forward` (training, log-probabilities) uses torch's fused kernels.
        """
        h = self.tokens(tokens) + self.positions[position]
        if self.condition is not None and c is not None:
            h = h + self.condition(c)
        h = h.unsqueeze(1)  # (batch, 1, width)
        for i, layer in enumerate(cast(Any, self.body.layers)):
            h = _cached_block(layer, h, cache, i)
        return self.out(h[:, 0])


def _cached_block(
    layer: nn.TransformerEncoderLayer, h: torch.Tensor, cache: list[torch.Tensor], i: int
) -> torch.Tensor:
    """One pre-norm encoder block (``norm_first=True``, no dropout: the prior's) applied to the newest
    position ``h`` ``(batch, 1, width)``, attending to itself and the cached earlier positions."""
    attention = layer.self_attn
    heads, batch, width = attention.num_heads, h.shape[0], h.shape[-1]
    q, k, v = F.linear(layer.norm1(h), attention.in_proj_weight, attention.in_proj_bias).chunk(3, -1)
    q, k, v = (t.reshape(batch, 1, heads, width // heads).transpose(1, 2) for t in (q, k, v))
    if len(cache) > 2 * i:  # keys and values of the earlier positions: (batch, heads, t, width / heads)
        k, v = torch.cat([cache[2 * i], k], 2), torch.cat([cache[2 * i + 1], v], 2)
        cache[2 * i], cache[2 * i + 1] = k, v
    else:
        cache += [k, v]
    mixed = F.scaled_dot_product_attention(q, k, v)  # no mask: every cached position is earlier
    h = h + attention.out_proj(mixed.transpose(1, 2).reshape(batch, 1, width))
    return h + layer.linear2(layer.activation(layer.linear1(layer.norm2(h))))


@register("code")
class CodeSampler(Sampler):
    """Samples from a VQ-VAE through a prior learned over its code maps (``"code"`` in
    :data:`genvae.samplers.registry`).

    Args:
        model: a trained :class:`~genvae.vqvae.VQVAE` (conditional or not).
        width: the prior's model dimension.
        layers: the prior's transformer layers.
        heads: its attention heads.
        lr: the learning rate of its Adam optimiser.

    :meth:`fit` encodes the data to code maps (in chunks) and trains the prior by maximum
    likelihood; :meth:`log_prob` is the prior's log-probability of code maps (a normalised
    distribution over the ``K^L`` maps); :meth:`sample_latent` draws code maps,
    :meth:`sample` decodes them (:meth:`decode`: code maps to data-space means). The prior is
    built in the model's dtype on its device; ``gv.save(sampler, folder)`` keeps the model, the
    prior and whether it was fitted.
    """

    model: VQVAE
    _fitted: torch.Tensor

    def __init__(self, model: VQVAE, *, width: int = 64, layers: int = 2, heads: int = 4, lr: float = 1e-3) -> None:
        if not isinstance(model, VQVAE):
            raise TypeError(f"model: expected a VQVAE, got {type(model).__name__}")
        super().__init__(model)
        self.lr = float(lr)
        width, layers, heads = (
            check_positive_int(k, v) for k, v in (("width", width), ("layers", layers), ("heads", heads))
        )
        self.width, self.layers, self.heads = width, layers, heads
        if width % heads:  # attention splits the width into equal heads (torch would assert)
            raise ValueError(f"heads: expected a divisor of width ({width}), got {heads}")
        length = math.prod(model.code_shape)
        # a lower bound of the prior's parameters (embeddings, positions, 12·width² per layer), in the
        # model's dtype, checked before any is allocated
        embeddings, body = (model.codebook_size + 1 + length) * width, layers * 12 * width * width
        count = embeddings + body
        name, given = ("layers", layers) if body > embeddings and layers > width else ("width", width)
        dtype = model.dtype  # the prior's: it takes the model's condition vectors, and saves with it
        item = torch.empty((), dtype=dtype).element_size()
        check_fits(name, given, count, item, f"{str(dtype).removeprefix('torch.')} parameters of the code prior",
                   model.device)  # fmt: skip
        prior = CodePrior(model.codebook_size, length, model.condition_dim, width, layers, heads)
        self.prior = prior.to(model.device, dtype)
        # a tensor, so that gv.save keeps it and gv.load gives a fitted sampler back
        self.register_buffer("_fitted", torch.tensor(False, device=model.device))

    @property
    def fitted(self) -> bool:
        """Whether the prior has been fitted (:meth:`fit`, :meth:`fit_codes`): before, its weights are random."""
        return bool(self._fitted)

    def settings(self) -> dict[str, Any]:
        """The settings :func:`repr` shows: the prior's ``width``, ``layers`` and ``heads``."""
        return {"width": self.width, "layers": self.layers, "heads": self.heads}

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, data: Any, *, batch_size: int = 256, epochs: int = 10, progress: bool | None = False) -> CodeSampler:
        """Encode ``data`` (a tensor, an ``(inputs, labels)`` pair, an ImageDataset, ...; labels for
        a conditional model) to code maps and fit the prior to them for ``epochs``. Returns ``self``."""
        x, y = as_tensors(data, argument="data", dtype=self.model.dtype)
        self.model.check_input(x, "data")
        if self.model.conditional and y is None:
            raise ValueError("data: expected labels for a conditional model, got images only")
        codes = self.encode(x, y if self.model.conditional else None)
        return self.fit_codes(codes, y if self.model.conditional else None, batch_size=batch_size, epochs=epochs,
                              progress=bool(progress))  # fmt: skip

    @torch.no_grad()
    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The code maps of inputs ``x`` (labels ``y`` for a conditional model), on the CPU,
        encoded :data:`CHUNK` at a time."""
        out = []
        with eval_mode(self.model):
            for i in range(0, x.shape[0], CHUNK):
                labels = y[i : i + CHUNK] if y is not None else None
                out.append(self.model.codes(x[i : i + CHUNK].to(self.model.device), labels).cpu())
        return torch.cat(out)

    def fit_codes(
        self, codes: torch.Tensor, y: Any = None, *, batch_size: int = 256, epochs: int = 10, progress: bool = False
    ) -> CodeSampler:
        """Fit the prior to code maps ``(N, *code_shape)`` (and their labels). Returns ``self``."""
        check_positive_int("batch_size", batch_size)
        check_positive_int("epochs", epochs)
        flat = self.model.check_codes(codes).reshape(codes.shape[0], -1).cpu()
        c = self.model.condition(y, flat.shape[0]) if self.model.conditional else None
        c = c.cpu() if c is not None else None
        optimizer = torch.optim.Adam(self.prior.parameters(), lr=self.lr)
        steps = epochs * math.ceil(flat.shape[0] / batch_size)
        with _bar(steps, progress) as bar, eval_mode(self.model):
            self.prior.train()
            for _ in range(epochs):
                order = torch.randperm(flat.shape[0])
                for i in range(0, flat.shape[0], batch_size):
                    rows = order[i : i + batch_size]
                    batch_c = c[rows].to(self.model.device) if c is not None else None
                    loss = -self._log_prob_flat(flat[rows].to(self.model.device), batch_c).mean()
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bar.update(1)
                    if progress:  # a host sync per step, only to show the figure
                        bar.set_postfix(nll=float(loss.detach()))
        self.prior.eval()
        self._fitted.fill_(True)
        return self

    # -- the distribution ---------------------------------------------------------------------------

    def _log_prob_flat(self, flat: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
        logits = self.prior(flat, c)
        return -F.cross_entropy(logits.transpose(1, 2), flat, reduction="none").sum(1)

    def log_prob(self, codes: torch.Tensor, y: Any = None) -> torch.Tensor:
        """log p(codes) (log p(codes | y)) of each code map ``(batch, *code_shape)``: ``(batch,)``, in
        nats, under the fitted prior (an error before :meth:`fit`: the untrained prior's figures mean nothing)."""
        codes = self.model.check_codes(codes)
        self.check_fitted("log_prob")
        flat = codes.reshape(codes.shape[0], -1)
        c = self.model.condition(y, flat.shape[0])
        with torch.no_grad():
            return self._log_prob_flat(flat, c)

    @torch.no_grad()
    def sample_latent(self, n: int, y: Any = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` code maps ``(n, *code_shape)`` (int64) drawn from the prior, one code at a time
        (given labels ``y``: one, or ``n``, for a conditional model)."""
        check_positive_int("n", n)
        length = self.prior.length
        check_fits("n", n, n, 8 * length, f"code maps of {length} int64", self.model.device)  # before drawing
        self.check_fitted("sampling")
        c = self.model.condition(y, n)
        maps = [self._draw(c[i : i + CHUNK] if c is not None else None, min(CHUNK, n - i), generator)
                for i in range(0, n, CHUNK)]  # fmt: skip
        return torch.cat(maps).reshape(n, *self.model.code_shape)

    def _draw(self, c: torch.Tensor | None, n: int, generator: torch.Generator | None) -> torch.Tensor:
        codes = torch.empty(n, self.prior.length, dtype=torch.long, device=self.model.device)
        token = torch.full((n,), self.prior.codebook_size, dtype=torch.long, device=self.model.device)  # start
        cache: list[torch.Tensor] = []
        with eval_mode(self.prior):
            for position in range(self.prior.length):
                probs = F.softmax(self.prior.step(token, position, c, cache).float(), -1)
                if generator is not None:
                    probs = probs.to(generator.device)
                token = torch.multinomial(probs, 1, generator=generator).to(self.model.device)[:, 0]
                codes[:, position] = token
        return codes

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, y: Any = None) -> torch.Tensor:
        """The data-space means of code maps ``latents`` ``(n, *code_shape)`` under the VQ-VAE (given
        labels ``y``: one, or ``n``), :data:`CHUNK` maps at a time."""
        codes, n = latents, latents.shape[0]
        c_all = y if isinstance(y, torch.Tensor) and y.dim() > 0 and y.shape[0] == n else None
        out = []
        with eval_mode(self.model):
            for i in range(0, n, CHUNK):
                labels = c_all[i : i + CHUNK] if c_all is not None else y
                out.append(self.model.decode_codes(codes[i : i + CHUNK], labels))
        return torch.cat(out)


class _NoBar:
    def update(self, n: int) -> None:
        return None

    def set_postfix(self, **values: Any) -> None:
        return None

    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *args: object) -> None:
        return None


def _bar(total: int, enabled: bool) -> Any:
    """A tqdm bar of training steps on stderr when ``enabled``; otherwise one that does nothing."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="step", desc="code prior", file=sys.stderr, leave=False, dynamic_ncols=True)
