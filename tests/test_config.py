"""gv.save / gv.load: rebuilding models from their recorded constructor arguments."""

from __future__ import annotations

import hashlib
import json
import re
import threading
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


def weights_file(folder: Path) -> Path:
    (path,) = folder.glob("weights-*.safetensors")
    return path


def test_load_refuses_weights_that_fail_their_checksum(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    weights = weights_file(tmp_path)
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{weights.name}: checksum mismatch"):
        gv.load(tmp_path)


def test_load_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"directory: expected model.json in"):
        gv.load(tmp_path)


def test_load_refuses_a_file_that_is_not_a_model_description(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a genvae model description"):
        gv.load(tmp_path)


def test_model_json_records_the_package_version(tmp_path: Path) -> None:
    """The version comes from genvae/_version.py (which pyproject.toml's hatch reads), not from
    the package's __init__, so config.py imports no module that imports it back."""
    from genvae._version import __version__

    gv.save(gv.presets.seed_vae(), tmp_path)
    assert json.loads((tmp_path / "model.json").read_text())["genvae_version"] == __version__ == gv.__version__
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'path = "src/genvae/_version.py"' in pyproject


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    gv.save(gv.presets.seed_vae(latent_dim=3), tmp_path)  # again: the first weights file goes
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "model.json" and len(names) == 2 and re.fullmatch(r"weights-[0-9a-f]{16}\.safetensors", names[1])
    document = json.loads((tmp_path / "model.json").read_text())
    assert document["weights"] == names[1] and document["format"] == 3 and document["dtype"] == "float32"
    assert gv.load(tmp_path).latent_dim == 3


def test_saved_files_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    umask = os.umask(0)
    os.umask(umask)
    gv.save(gv.presets.seed_vae(), tmp_path)
    for path in (tmp_path / "model.json", weights_file(tmp_path)):
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask


# -- the format: dtype, versions, non-finite weights -------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_dtype_round_trips(tmp_path: Path, dtype: torch.dtype) -> None:
    model = gv.presets.seed_cvae().to(dtype)
    gv.save(model, tmp_path)
    loaded = gv.load(tmp_path)
    assert loaded.dtype == dtype and all(p.dtype == dtype for p in loaded.parameters())
    x, y = torch.rand(3, 1, 28, 28, dtype=dtype), torch.tensor([0, 1, 2])
    torch.testing.assert_close(loaded.reconstruct(x, y), model.reconstruct(x, y), rtol=0, atol=0)


def write_format_1(model: torch.nn.Module, folder: Path) -> None:
    """A model folder as genvae 0.1 wrote it: model.json (format 1) beside weights.pt."""
    import hashlib
    import io

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    (folder / "weights.pt").write_bytes(buffer.getvalue())
    document = {"format": 1, "genvae_version": "0.1.0", "weights_sha256": hashlib.sha256(buffer.getvalue()).hexdigest(),
                "model": gv.config.get_config(model)}  # fmt: skip
    (folder / "model.json").write_text(json.dumps(document))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_folder_of_the_previous_format_still_loads(tmp_path: Path, dtype: torch.dtype) -> None:
    model = gv.presets.seed_vae().to(dtype)
    write_format_1(model, tmp_path)
    loaded = gv.load(tmp_path)
    assert loaded.dtype == dtype
    assert same_weights(model, loaded)
    gv.save(loaded, tmp_path)  # saving again moves it to the current format
    assert not (tmp_path / "weights.pt").exists() and gv.load(tmp_path).dtype == dtype


@pytest.mark.parametrize("version", [0, 4, 999, "2", 2.0, True, None])
def test_an_unknown_format_version_is_refused(tmp_path: Path, version: object) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["format"] = version
    (tmp_path / "model.json").write_text(json.dumps(document))
    with pytest.raises(
        ValueError, match=r"model.json: format: expected 1, 2 or 3 \(the versions this genvae reads\), got"
    ):
        gv.load(tmp_path)


def test_non_finite_weights_are_not_saved_unless_allowed(tmp_path: Path) -> None:
    model = gv.presets.seed_vae()
    with torch.no_grad():
        model.mean_head.bias[0] = float("nan")
    with pytest.raises(ValueError, match=r"^model: mean_head.bias: expected finite weights, got NaN or inf"):
        gv.save(model, tmp_path / "refused")
    assert not (tmp_path / "refused" / "model.json").exists()
    gv.save(model, tmp_path / "allowed", allow_non_finite=True)
    message = r"weights-[0-9a-f]+\.safetensors: mean_head.bias: expected finite values, got NaN"
    with pytest.raises(ValueError, match=message):
        gv.load(tmp_path / "allowed")
    assert gv.load(tmp_path / "allowed", allow_non_finite=True).mean_head.bias.isnan().any()


def test_a_model_with_two_float_dtypes_is_refused(tmp_path: Path) -> None:
    model = gv.presets.seed_vae()
    model.mean_head.double()
    with pytest.raises(
        ValueError, match=r"^model: expected one floating-point dtype for all weights, got float32, float64"
    ):
        gv.save(model, tmp_path)


# -- atomic saving: whatever stops a save, the folder holds the old model or the new one ---------------


def perturbed(seed: int) -> gv.VAE:
    torch.manual_seed(seed)
    model = gv.presets.seed_vae()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


#: The steps of a save (see genvae._io.step), and which model a failure there leaves.
SAVE_STEPS = {
    "save:start": "old",
    "save:weights-written": "old",
    "save:weights-renamed": "old",
    "save:model-written": "old",
    "save:model-renamed": "new",  # model.json replaced: the switch
    "save:cleaned": "new",
}


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_failure_at_any_step_of_a_save_leaves_a_complete_model(
    tmp_path: Path, step: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = perturbed(1), perturbed(2)
    gv.save(old, tmp_path)
    monkeypatch.setenv("GENVAE_TEST_FAIL_AT", step)  # an OSError(ENOSPC) at that step
    with pytest.raises(OSError, match="No space left on device"):
        gv.save(new, tmp_path)
    assert same_weights(gv.load(tmp_path), old if SAVE_STEPS[step] == "old" else new)
    monkeypatch.delenv("GENVAE_TEST_FAIL_AT")
    gv.save(new, tmp_path)  # the next save clears what the failed one left
    assert len(list(tmp_path.iterdir())) == 2 and same_weights(gv.load(tmp_path), new)


def test_concurrent_saves_into_one_folder_take_turns(tmp_path: Path) -> None:
    models = [perturbed(1), perturbed(2)]
    errors: list[BaseException] = []

    def save_many(model: torch.nn.Module) -> None:
        try:
            for _ in range(8):
                gv.save(model, tmp_path)
                loaded = gv.load(tmp_path)  # while the other thread saves: one of the two, complete
                assert any(same_weights(loaded, m) for m in models)
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    threads = [threading.Thread(target=save_many, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(list(tmp_path.glob("weights-*.safetensors"))) == 1


def test_save_refuses_a_run_directory(tmp_path: Path) -> None:
    (tmp_path / "published").mkdir()
    (tmp_path / "model.json").symlink_to("published/current/model.json")
    with pytest.raises(ValueError, match=r"^directory: expected a model folder, got .*a run directory"):
        gv.save(gv.presets.seed_vae(), tmp_path)


def test_a_part_with_tensors_outside_its_state_dict_is_built_for_real(tmp_path: Path) -> None:
    """A non-persistent buffer is not in the weights file: load must compute it, not leave it empty."""

    @gv.likelihoods.register("test_scaled_bernoulli")
    class Scaled(gv.likelihoods.Bernoulli):
        def __init__(self, scale: float = 3.0) -> None:
            super().__init__()
            self.register_buffer("scale", torch.tensor(scale), persistent=False)

    try:
        gv.save(gv.VAE("mlp", "mlp", latent_dim=2, likelihood=Scaled(2.5)), tmp_path)
        loaded = gv.load(tmp_path)
        assert loaded.likelihood.scale.device.type == "cpu" and loaded.likelihood.scale.item() == 2.5
    finally:
        gv.likelihoods.registry.unregister("test_scaled_bernoulli")


def test_load_refuses_a_link_out_of_the_model_folder(tmp_path: Path) -> None:
    # the folder would load another model under its name (before: model.json followed anywhere)
    gv.save(gv.presets.seed_vae(latent_dim=3), tmp_path / "other")
    gv.save(gv.presets.seed_vae(latent_dim=2), tmp_path / "mine")
    (tmp_path / "mine" / "model.json").unlink()
    (tmp_path / "mine" / "model.json").symlink_to(tmp_path / "other" / "model.json")
    target = tmp_path / "other" / "model.json"
    expected = (
        rf"^{re.escape(str(tmp_path / 'mine' / 'model.json'))}: expected a file of the model folder "
        rf"{re.escape(repr(str(tmp_path / 'mine')))}, got a link to {re.escape(repr(str(target)))} outside it; "
        "not following it$"
    )
    with pytest.raises(ValueError, match=expected):
        gv.load(tmp_path / "mine")


def test_load_refuses_weights_linked_out_of_the_model_folder(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path / "mine")
    weights = weights_file(tmp_path / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    weights.rename(elsewhere / weights.name)
    weights.symlink_to(elsewhere / weights.name)
    with pytest.raises(
        ValueError, match=rf"^{re.escape(str(weights))}: expected a file of the model folder .* outside it"
    ):
        gv.load(tmp_path / "mine")


def test_load_follows_links_inside_the_folder_and_a_link_to_the_folder(tmp_path: Path) -> None:
    model = gv.presets.seed_vae(latent_dim=3)
    gv.save(model, tmp_path / "mine" / "v1")  # mine/model.json → v1/model.json, as a run's links do
    (tmp_path / "mine" / "model.json").symlink_to(Path("v1", "model.json"))
    (tmp_path / "alias").symlink_to(tmp_path / "mine")  # the folder itself named through a link
    for folder in (tmp_path / "mine", tmp_path / "alias"):
        assert torch.equal(gv.load(folder).mean_head.weight, model.mean_head.weight)


def hub_cache_snapshot(cache: Path, folder: Path) -> Path:
    """``folder`` laid out as huggingface_hub's cache does: blobs named by their hash, and a
    snapshot folder of links ``../../blobs/<hash>`` (what gv.load("hf://...") gets)."""
    repo = cache / "models--alice--vae"
    (repo / "blobs").mkdir(parents=True)
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    for path in folder.iterdir():
        blob = hashlib.sha256(path.read_bytes()).hexdigest()
        (repo / "blobs" / blob).write_bytes(path.read_bytes())
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob))
    return snapshot


def test_load_reads_a_hugging_face_cache_snapshot_whose_files_link_to_its_blobs(tmp_path: Path) -> None:
    model = gv.presets.seed_vae(latent_dim=3)
    gv.hub.save_for_hub(model, tmp_path / "repo")
    snapshot = hub_cache_snapshot(tmp_path / "cache", tmp_path / "repo")
    assert torch.equal(gv.load(snapshot).mean_head.weight, model.mean_head.weight)
    # a snapshot's link out of its repository's blobs is refused as any other
    weights = snapshot / "model.safetensors"
    stray = tmp_path / "stray.safetensors"
    stray.write_bytes(weights.read_bytes())
    weights.unlink()
    weights.symlink_to(stray)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(weights))}: expected a file of the model folder"):
        gv.load(snapshot)
