"""The course notebook's own VAE and ConditionalVAE (copied from the seed, as a student wrote them):
their state dicts load into the presets, which then encode and decode exactly as they do."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import genvae as gv


class VAE(nn.Module):
    """The notebook's VAE (seed, cell 3)."""

    def __init__(self, latent_size: int = 2) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.encoder_part1 = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1, stride=2), nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(7 * 7 * 64, 16), nn.ReLU(),
        )  # fmt: skip
        self.encoder_mean = nn.Linear(16, latent_size)
        self.encoder_logvar = nn.Linear(16, latent_size)
        self.decoder_part1_z = nn.Linear(latent_size, 7 * 7 * 64)
        self.decoder_part2 = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, kernel_size=3, padding=1, output_padding=1, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, kernel_size=3, padding=1, output_padding=1, stride=2),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder_part1(x)
        return self.encoder_mean(h), self.encoder_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = self.decoder_part1_z(z)
        h = torch.reshape(h, (-1, 64, 7, 7))
        return self.decoder_part2(h)


class ConditionalVAE(nn.Module):
    """The notebook's conditional VAE (seed, cell 12)."""

    def __init__(self, latent_size: int = 2, num_classes: int = 10) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.encoder_part1_x = nn.Conv2d(1, 32, kernel_size=3, padding=1, stride=2)
        self.encoder_part1_y = nn.Linear(num_classes, 32 * 14 * 14)
        self.encoder_part2 = nn.Sequential(
            nn.ReLU(),
            nn.Conv2d(32, 64, kernel_size=3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(7 * 7 * 64, 16), nn.ReLU(),
        )  # fmt: skip
        self.encoder_mean = nn.Linear(16, latent_size)
        self.encoder_logvar = nn.Linear(16, latent_size)
        self.decoder_part1_z = nn.Linear(latent_size, 7 * 7 * 64)
        self.decoder_part1_y = nn.Linear(num_classes, 7 * 7 * 64)
        self.decoder_part2 = nn.Sequential(
            nn.ReLU(),
            nn.ConvTranspose2d(64, 32, kernel_size=3, padding=1, output_padding=1, stride=2),
            nn.ReLU(),
            nn.ConvTranspose2d(32, 1, kernel_size=3, padding=1, output_padding=1, stride=2),
            nn.Sigmoid(),
        )

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.encoder_part1_x(x) + self.encoder_part1_y(y).reshape(-1, 32, 14, 14)
        h = self.encoder_part2(h)
        return self.encoder_mean(h), self.encoder_logvar(h)

    def decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.decoder_part1_z(z) + self.decoder_part1_y(y)
        h = torch.reshape(h, (-1, 64, 7, 7))
        return self.decoder_part2(h)


def close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("latent_size", [2, 5])
def test_the_notebook_vae_weights_encode_and_decode_identically(latent_size: int) -> None:
    torch.manual_seed(latent_size)
    notebook = VAE(latent_size).eval()
    model = gv.presets.seed_vae_from_notebook(notebook.state_dict()).eval()
    x, z = torch.rand(6, 1, 28, 28), torch.randn(6, latent_size)
    with torch.no_grad():
        (mean, logvar), (ours_mean, ours_logvar) = notebook.encode(x), model.encode(x)
        assert model.latent_dim == latent_size
        assert close(mean, ours_mean) and close(logvar, ours_logvar)
        assert close(notebook.decode(z), model.decode(z))


@pytest.mark.parametrize("num_classes", [10, 3])
def test_the_notebook_cvae_weights_encode_and_decode_identically(num_classes: int) -> None:
    torch.manual_seed(num_classes)
    notebook = ConditionalVAE(latent_size=2, num_classes=num_classes).eval()
    model = gv.presets.seed_cvae_from_notebook(notebook.state_dict()).eval()
    x, z, y = torch.rand(6, 1, 28, 28), torch.randn(6, 2), torch.arange(6) % num_classes
    onehot = F.one_hot(y, num_classes).float()  # the notebook's labels; genvae takes the indices
    with torch.no_grad():
        (mean, logvar), (ours_mean, ours_logvar) = notebook.encode(x, onehot), model.encode(x, y)
        assert model.num_classes == num_classes
        assert close(mean, ours_mean) and close(logvar, ours_logvar)
        assert close(notebook.decode(z, onehot), model.decode(z, y))


def test_a_saved_notebook_state_dict_loads_from_a_file(tmp_path: Path) -> None:
    """As a student would: torch.save in the notebook, torch.load and convert here, gv.save to keep."""
    path = tmp_path / "cvae.pt"
    torch.save(ConditionalVAE().state_dict(), path)
    model = gv.presets.seed_cvae_from_notebook(torch.load(path, weights_only=True))
    gv.save(model, tmp_path / "model")
    assert isinstance(gv.load(tmp_path / "model"), gv.ConditionalVAE)


def test_the_wrong_class_or_a_changed_layer_is_one_line_naming_it() -> None:
    with pytest.raises(ValueError, match=r"^state_dict: expected the state dict of the notebook's VAE class, "):
        gv.presets.seed_vae_from_notebook(ConditionalVAE().state_dict())
    with pytest.raises(ValueError, match=r"^state_dict: .*ConditionalVAE class, missing 'encoder_part1_x.weight'"):
        gv.presets.seed_cvae_from_notebook(VAE().state_dict())
    state = VAE().state_dict()
    state["decoder_part2.1.weight"] = torch.zeros(64, 16, 3, 3)
    with pytest.raises(ValueError, match=r"^state_dict: decoder.rest.2.weight: expected shape \(64, 32, 3, 3\)"):
        gv.presets.seed_vae_from_notebook(state)


def test_the_benchmark_mapping_is_the_librarys_inverse() -> None:
    """benchmarks/notebook_models.py copies genvae weights into its notebook model with the same table."""
    from benchmarks.notebook_models import NotebookVAE, copy_weights

    source = gv.presets.seed_cvae()
    target = NotebookVAE(num_classes=10)
    copy_weights(source, target)
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 4, 9])
    with torch.no_grad():
        assert close(target.encode(x, F.one_hot(y, 10).float())[0], source.encode(x, y)[0])
