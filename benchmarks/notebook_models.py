"""The course notebook's models and training loop, written plainly as the notebook does: the
baseline the benchmarks compare genvae with."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from genvae.presets import NOTEBOOK_CVAE_LAYERS


class NotebookVAE(nn.Module):
    """The notebook's VAE (sigmoid output, BCE on probabilities); with ``num_classes`` its
    conditional VAE (label projections added after the first layers, as in the notebook)."""

    def __init__(self, latent_size: int = 2, num_classes: int = 0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.encoder_part1_x = nn.Conv2d(1, 32, kernel_size=3, padding=1, stride=2)
        self.encoder_part2 = nn.Sequential(
            nn.ReLU(), nn.Conv2d(32, 64, kernel_size=3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(7 * 7 * 64, 16), nn.ReLU(),
        )  # fmt: skip
        self.encoder_mean = nn.Linear(16, latent_size)
        self.encoder_logvar = nn.Linear(16, latent_size)
        self.decoder_part1_z = nn.Linear(latent_size, 7 * 7 * 64)
        if num_classes:
            self.encoder_part1_y = nn.Linear(num_classes, 32 * 14 * 14)
            self.decoder_part1_y = nn.Linear(num_classes, 7 * 7 * 64)
        self.decoder_part2 = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, kernel_size=3, padding=1, output_padding=1, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(32, 1, kernel_size=3, padding=1, output_padding=1, stride=2), nn.Sigmoid(),
        )  # fmt: skip

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder_part1_x(x)
        if y is not None:
            h = h + self.encoder_part1_y(y).reshape(-1, 32, 14, 14)
        h = self.encoder_part2(h)
        return self.encoder_mean(h), self.encoder_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.decoder_part1_z(z)
        if y is not None:
            h = h + self.decoder_part1_y(y)
        return self.decoder_part2(h.reshape(-1, 64, 7, 7))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, ...]:
        mean_z, logvar_z = self.encode(x, y)
        z = mean_z + torch.randn_like(mean_z) * torch.exp(0.5 * logvar_z)
        return self.decode(z, y), mean_z, logvar_z


def loss_function(recon_x, x, mean_z, logvar_z):  # type: ignore[no-untyped-def]
    """The notebook's loss: per-sample BCE and analytic KL."""
    l_recon = F.binary_cross_entropy(recon_x, x, reduction="sum") / len(x)
    l_kl = -0.5 * torch.sum(1 + logvar_z - mean_z.pow(2) - logvar_z.exp()) / len(mean_z)
    return l_recon + l_kl, l_recon, l_kl


def copy_weights(source: nn.Module, target: NotebookVAE) -> None:
    """Give the notebook model a genvae preset's weights, matching layers by role."""
    # the library's table (notebook layer -> preset layer), read the other way; NotebookVAE names
    # its layers as the notebook's ConditionalVAE does, with or without the label projections
    pairs = {nb: ours for nb, ours in NOTEBOOK_CVAE_LAYERS.items() if target.num_classes or "_y" not in nb}
    if not target.num_classes:
        pairs = {nb: ours.removesuffix(".layer") for nb, ours in pairs.items()}
    src, tgt = dict(source.named_modules()), dict(target.named_modules())
    with torch.no_grad():
        for t, s in pairs.items():
            tgt[t].weight.copy_(src[s].weight)
            tgt[t].bias.copy_(src[s].bias)


def plain_epoch(
    model: NotebookVAE, loader: DataLoader, optimizer: torch.optim.Optimizer, max_steps: int | None = None
) -> tuple[float, float, int]:
    """One epoch of the notebook's loop: (seconds, per-sample train loss, samples)."""
    model.train()
    start, total, seen = time.perf_counter(), 0.0, 0
    for step, (x, y) in enumerate(loader):
        if max_steps is not None and step >= max_steps:
            break
        onehot = F.one_hot(y, model.num_classes).float() if model.num_classes else None
        optimizer.zero_grad()
        recon_x, mean_z, logvar_z = model(x, onehot)
        loss, _, _ = loss_function(recon_x, x, mean_z, logvar_z)
        loss.backward()
        optimizer.step()
        total += loss.item() * len(x)
        seen += len(x)
    return time.perf_counter() - start, total / seen, seen


@torch.no_grad()
def plain_test(model: NotebookVAE, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Per-sample test loss of the notebook's model (one sampled z per image)."""
    model.eval()
    total = 0.0
    for i in range(0, len(images), 1000):
        x, y = images[i : i + 1000], labels[i : i + 1000]
        onehot = F.one_hot(y, model.num_classes).float() if model.num_classes else None
        recon_x, mean_z, logvar_z = model(x, onehot)
        loss, _, _ = loss_function(recon_x, x, mean_z, logvar_z)
        total += float(loss) * len(x)
    return total / len(images)
