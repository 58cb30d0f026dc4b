"""gv.save / gv.load: rebuilding models from their recorded constructor arguments."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hypothesis import given
from torch import nn

import genvae as gv
from tests.helpers import batch_for, build
from tests.strategies import architectures


def same_outputs(a: gv.VAE, b: gv.VAE) -> None:
    x, y = batch_for(a, 4)
    a.eval(), b.eval()
    torch.manual_seed(5)
    out_a = a(x, y)
    torch.manual_seed(5)
    out_b = b(x, y)
    for field in ("params", "mean", "logvar", "z"):
        assert torch.equal(getattr(out_a, field), getattr(out_b, field)), field


@given(architectures())
def test_save_then_load_gives_identical_outputs(tmp_path_factory: pytest.TempPathFactory, arch: dict) -> None:
    model = build(arch)
    with torch.no_grad():  # move away from the initialisation so a fresh build would differ
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    directory = tmp_path_factory.mktemp("model")
    gv.save(model, directory)
    loaded = gv.load(directory)
    assert type(loaded) is type(model)
    same_outputs(model, loaded)


@pytest.mark.parametrize("conditioner", ["split", "concat", "film"])
def test_presets_round_trip(tmp_path: Path, conditioner: str) -> None:
    model = gv.presets.seed_cvae(conditioner=conditioner)
    gv.save(model, tmp_path)
    same_outputs(model, gv.load(tmp_path))
    spec = json.loads((tmp_path / "model.json").read_text())
    assert spec["model"]["genvae"] == "models/cvae"
    assert spec["model"]["args"]["encoder"]["args"]["conditioner"] == conditioner


def test_a_learned_likelihood_scale_is_saved(tmp_path: Path) -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=2, likelihood=gv.likelihoods.Gaussian(0.3, learn_scale=True))
    with torch.no_grad():
        model.likelihood.log_scale.fill_(-0.7)
    gv.save(model, tmp_path)
    loaded = gv.load(tmp_path)
    assert loaded.likelihood.log_scale.item() == pytest.approx(-0.7)


class UnregisteredEncoder(nn.Module):
    out_features = 8

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(784, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_an_unregistered_part_is_a_clear_error(tmp_path: Path) -> None:
    model = gv.VAE(UnregisteredEncoder(), "conv", latent_dim=2)
    with pytest.raises(ValueError) as info:
        gv.save(model, tmp_path)
    message = str(info.value)
    assert message.startswith(
        "model.encoder: cannot save a UnregisteredEncoder because it is not a registered genvae part"
    )
    assert "@gv.encoders.register('unregisteredencoder')" in message
    assert not (tmp_path / "model.json").exists() and not (tmp_path / "weights.pt").exists()


def test_a_registered_user_part_round_trips(tmp_path: Path) -> None:
    @gv.encoders.register("test_user_encoder")
    class UserEncoder(UnregisteredEncoder):
        pass

    try:
        model = gv.VAE(UserEncoder(width=8), "conv", latent_dim=2)
        gv.save(model, tmp_path)
        loaded = gv.load(tmp_path)
        assert type(loaded.encoder) is UserEncoder
        same_outputs(model, loaded)
    finally:
        gv.encoders.registry.unregister("test_user_encoder")


def test_an_unregistered_subclass_of_a_registered_part_is_refused(tmp_path: Path) -> None:
    class MyConv(gv.encoders.ConvEncoder):
        pass

    with pytest.raises(ValueError, match=r"model.encoder: cannot save a MyConv"):
        gv.save(gv.VAE(MyConv(), "conv", latent_dim=2), tmp_path)


def test_an_argument_that_is_not_json_is_named(tmp_path: Path) -> None:
    @gv.likelihoods.register("test_tensor_arg")
    class Odd(gv.likelihoods.Bernoulli):
        def __init__(self, weights: torch.Tensor) -> None:
            super().__init__()

    try:
        with pytest.raises(ValueError, match=r"model.likelihood.weights: cannot save a value of type Tensor"):
            gv.save(gv.VAE("mlp", "mlp", likelihood=Odd(torch.ones(2))), tmp_path)
    finally:
        gv.likelihoods.registry.unregister("test_tensor_arg")


def test_load_refuses_weights_that_fail_their_checksum(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    weights = tmp_path / "weights.pt"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"weights.pt: checksum mismatch"):
        gv.load(tmp_path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"directory: expected model.json in"):
        gv.load(tmp_path)


def test_load_refuses_a_file_that_is_not_a_model_description(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a genvae model description"):
        gv.load(tmp_path)


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json", "weights.pt"]


def test_saved_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    gv.save(gv.presets.seed_vae(), tmp_path)
    for name in ("model.json", "weights.pt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask
