"""Bad input, corrupted files, extreme numbers: every public entry point fails loudly and precisely.

Each case must raise an exception whose message names the argument and says what was expected
and what was given; never a bare error from deep inside torch, a silent wrong result, or a hang.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import genvae as gv
from genvae.data.idx import IDXError, read_idx, write_idx
from genvae.training import CheckpointError, read_checkpoint
from genvae.training.checkpoint import check_fields

# One model of each kind for the whole module: building them per example would dominate the time.
VAE = gv.presets.seed_vae().eval()
CVAE = gv.presets.seed_cvae().eval()
named = settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def assert_named(err: BaseException, argument: str) -> None:
    message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    assert message.startswith(f"{argument}:"), message
    assert "expected" in message and "got" in message, message


# -- shapes, dtypes, values ---------------------------------------------------------------------------

shapes = st.lists(st.integers(1, 6), min_size=1, max_size=5).map(tuple).filter(lambda s: s[1:] != (1, 28, 28))


@given(shapes)
def test_any_wrong_image_shape_is_named(shape: tuple[int, ...]) -> None:
    for call in (lambda x: VAE(x), lambda x: VAE.encode(x), lambda x: VAE.reconstruct(x), lambda x: CVAE(x, 0)):
        with pytest.raises(ValueError) as info:
            call(torch.rand(*shape))
        assert_named(info.value, "x")
        assert re.search(r"\(batch, 1, 28, 28\), got \(" + ", ".join(map(str, shape)), str(info.value))


@given(st.sampled_from([torch.uint8, torch.int32, torch.int64, torch.bool, torch.complex64]))
def test_non_float_images_are_named(dtype: torch.dtype) -> None:
    with pytest.raises(TypeError) as info:
        VAE(torch.zeros(2, 1, 28, 28, dtype=dtype))
    assert_named(info.value, "x")


@given(st.sampled_from([None, "x", 3, 2.5, [1.0, 2.0], {"x": 1}, np.zeros((2, 1, 28, 28))]))
def test_non_tensor_inputs_are_named(value: Any) -> None:
    for call in (VAE, VAE.encode, VAE.decode):
        with pytest.raises(TypeError) as info:
            call(value)
        assert str(info.value).split(":")[0] in ("x", "z")


@given(st.integers(0, 2 * 28 * 28 - 1), st.sampled_from([math.nan, math.inf, -math.inf]))
def test_a_single_non_finite_pixel_is_found(position: int, value: float) -> None:
    x = torch.rand(2, 1, 28, 28)
    x.view(-1)[position] = value
    with pytest.raises(ValueError) as info:
        VAE(x)
    assert_named(info.value, "x")
    assert ("NaN" if math.isnan(value) else "inf") in str(info.value)


@given(st.integers(-50, 50).filter(lambda v: not 0 <= v <= 9))
def test_labels_out_of_range_are_named(label: int) -> None:
    y = torch.tensor([0, label])
    for call in (
        lambda: CVAE(torch.rand(2, 1, 28, 28), y),
        lambda: CVAE.decode(torch.zeros(2, 2), y),
        lambda: CVAE.sample(2, y),
    ):
        with pytest.raises(ValueError, match=rf"y: expected class indices in \[0, 9\], got {label}"):
            call()


@given(st.integers(-5, 0))
def test_non_positive_sizes_are_named(n: int) -> None:
    cases = {
        "n": [lambda: VAE.sample(n), lambda: gv.viz.latent_manifold(VAE, n=n), lambda: gv.viz.samples(VAE, n=n),
              lambda: gv.data.SyntheticDigits(n)],
        "k": [lambda: gv.evaluation.nll(VAE, torch.rand(2, 1, 28, 28), k=n)],
        "latent_dim": [lambda: gv.presets.seed_vae(latent_dim=n)],
        "max_epochs": [lambda: gv.Trainer(VAE, max_epochs=n)],
        "batch_size": [lambda: gv.Trainer(VAE, batch_size=n)],
        "hidden": [lambda: gv.encoders.MLPEncoder(hidden=(8, n))],
        "channels": [lambda: gv.encoders.ConvEncoder(channels=(n,))],
    }  # fmt: skip
    for argument, calls in cases.items():
        for call in calls:
            with pytest.raises(ValueError) as info:
                call()
            assert_named(info.value, argument)


def test_empty_batches_are_named() -> None:
    empty = torch.zeros(0, 1, 28, 28)
    for call, argument in (
        (lambda: VAE(empty), "x"),
        (lambda: gv.Trainer(VAE, device="cpu").fit(empty), "train"),
        (lambda: gv.Trainer(VAE, device="cpu").evaluate(empty), "data"),
        (lambda: gv.evaluation.nll(VAE, empty, k=2), "data"),
        (lambda: gv.Trainer(VAE, device="cpu").fit(torch.utils.data.TensorDataset(empty)), "train"),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value).startswith(f"{argument}:"), str(info.value)


def test_losses_refuse_non_finite_and_mismatched_input() -> None:
    with pytest.raises(ValueError) as info:
        gv.losses.kl_normal(torch.tensor([[math.nan]]), torch.zeros(1, 1))
    assert_named(info.value, "mean")
    out = VAE(torch.rand(2, 1, 28, 28))
    with pytest.raises(ValueError) as info:
        gv.ELBO()(out, torch.rand(2, 1, 32, 32))
    assert_named(info.value, "x")
    assert "(2, 1, 28, 28), got (2, 1, 32, 32)" in str(info.value)


def test_latents_with_nan_are_named() -> None:
    with pytest.raises(ValueError) as info:
        VAE.decode(torch.tensor([math.nan, 0.0]))
    assert_named(info.value, "z")


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: gv.Trainer(VAE, device="tpu9"), "device"),
        (lambda: gv.Trainer(VAE, objective=3), "objective"),
        (lambda: gv.viz.latent_manifold(VAE, grid="log"), "grid"),
        (lambda: gv.viz.latent_manifold(VAE, scale=-1.0), "scale"),
        (lambda: gv.viz.traversal(VAE, dims=[5]), "dims"),
        (lambda: gv.evaluation.classify(CVAE, torch.rand(2, 1, 28, 28), prior=torch.ones(3)), "prior"),
        (lambda: gv.data.MNIST(split="validation"), "split"),
        (lambda: gv.data.ImageDataset(torch.rand(2, 1, 4, 4), torch.zeros(2)), "labels"),
        (lambda: gv.data.load_dataset("svhn"), "name"),
        (lambda: gv.ELBO(beta=math.inf), "beta"),
        (lambda: gv.VAE(encoder=3), "encoder"),
        (lambda: gv.VAE(likelihood=3), "likelihood"),
        (lambda: gv.ConditionalVAE(num_classes=None, condition_dim=None), "num_classes"),
        (lambda: gv.ConditionalVAE(num_classes=10, condition_dim=4), "condition_dim"),
    ],
)
def test_bad_arguments_name_themselves(call: Any, argument: str) -> None:
    with pytest.raises((ValueError, TypeError, KeyError)) as info:
        call()
    assert_named(info.value, argument)


# -- numerics --------------------------------------------------------------------------------------------


@given(st.floats(-30, 30), st.floats(-1e3, 1e3))
def test_extreme_log_variances_and_means_give_finite_kl(logvar: float, mean: float) -> None:
    value = gv.losses.kl_normal(torch.tensor([[mean]]), torch.tensor([[logvar]]))
    assert torch.isfinite(value) and value >= 0


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
@pytest.mark.parametrize("fill", [0.0, 1.0])
@pytest.mark.parametrize("logit", [-1e4, -30.0, 0.0, 30.0, 1e4])
def test_huge_logits_and_constant_images_give_finite_losses(likelihood: str, fill: float, logit: float) -> None:
    x = torch.full((2, 1, 4, 4), fill)
    params = torch.full((2, 1, 4, 4), logit)
    for logvar in (-30.0, 30.0):
        stats = torch.full((2, 3), logvar)
        out = gv.VAEOutput(params, torch.zeros(2, 3), stats, torch.zeros(2, 3), gv.likelihoods.get(likelihood)())
        for objective in (gv.ELBO(), gv.ELBO(kl="kl_mc"), gv.ELBO(reconstruction="mse")):
            terms = objective(out, x)
            assert all(torch.isfinite(v) for v in (terms.loss, terms.recon, terms.kl)), (likelihood, logit, logvar)


def test_training_on_all_black_and_all_white_images_stays_finite() -> None:
    x = torch.cat([torch.zeros(16, 1, 28, 28), torch.ones(16, 1, 28, 28)])
    history = gv.Trainer(gv.presets.seed_vae(), max_epochs=2, batch_size=8, device="cpu", seed=0).fit(x)
    assert all(math.isfinite(v) for r in history for v in r.values())


# -- corrupted files -----------------------------------------------------------------------------------------


def valid_idx_bytes(compress: bool) -> bytes:
    import io

    buffer = io.BytesIO()
    path = Path(__import__("tempfile").mkdtemp()) / "a.idx"
    write_idx(path, np.arange(3 * 5 * 4, dtype=np.uint8).reshape(3, 5, 4))
    data = path.read_bytes()
    buffer.write(gzip.compress(data, mtime=0) if compress else data)
    return buffer.getvalue()


@named
@given(st.booleans(), st.data())
def test_corrupted_idx_files_give_a_clear_error_or_a_consistent_array(
    tmp_path: Path, compress: bool, data: st.DataObject
) -> None:
    blob = bytearray(valid_idx_bytes(compress))
    mutation = data.draw(st.sampled_from(["truncate", "flip", "header", "append", "empty"]))
    if mutation == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif mutation == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif mutation == "header":  # random dimension sizes, possibly enormous
        raw = bytearray(gzip.decompress(bytes(blob)) if compress else blob)
        raw[4:16] = data.draw(st.binary(min_size=12, max_size=12))
        blob = bytearray(gzip.compress(bytes(raw)) if compress else raw)
    elif mutation == "append":
        blob += data.draw(st.binary(min_size=1, max_size=64))
    else:
        blob = bytearray()
    path = tmp_path / "f.idx"
    path.write_bytes(bytes(blob))
    try:
        array = read_idx(path)
    except IDXError as err:
        assert str(err).startswith(str(path)), err
        return
    # the file was still valid: what came back must be what its bytes say, decoded independently
    raw = bytes(blob)
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    assert raw[:2] == b"\x00\x00"
    code, ndim = raw[2], raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype({0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code])
    payload = raw[4 + 4 * ndim :]
    assert len(payload) == math.prod(dims) * dtype.itemsize  # no byte missing, none left over
    assert array.shape == dims and array.dtype == dtype.newbyteorder("=")
    expected = np.frombuffer(payload, dtype=dtype).reshape(dims)
    np.testing.assert_array_equal(array, expected)  # NaN payloads of a flipped float compare equal too


def test_reading_an_idx_header_that_claims_terabytes_allocates_nothing(tmp_path: Path) -> None:
    import tracemalloc

    header = bytes([0, 0, 0x0E, 4]) + (0xFFFF).to_bytes(4, "big") * 4  # 2^64 doubles
    path = tmp_path / "huge.idx.gz"
    path.write_bytes(gzip.compress(header + b"\x00" * 1000))
    tracemalloc.start()
    with pytest.raises(IDXError, match="truncated"):
        read_idx(path)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 2**20


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("saved")
    gv.save(gv.presets.seed_cvae(), directory)
    return directory


@named
@given(st.sampled_from(["model.json", "weights"]), st.sampled_from(["truncate", "flip", "empty", "garbage"]), st.data())
def test_corrupted_saved_models_are_refused(
    tmp_path: Path, saved: Path, name: str, how: str, data: st.DataObject
) -> None:
    target = tmp_path / "copy"
    target.mkdir(exist_ok=True)
    for f in target.iterdir():
        f.unlink()
    for f in saved.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    (weights,) = target.glob("weights-*.safetensors")
    path = target / "model.json" if name == "model.json" else weights
    original = path.read_bytes()
    blob = bytearray(original)
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    elif how == "empty":
        blob = bytearray()
    else:
        blob = bytearray(data.draw(st.binary(min_size=1, max_size=200)))
    path.write_bytes(bytes(blob))
    try:
        model = gv.load(target)
    except (ValueError, FileNotFoundError) as err:
        message = str(err)
        # the message starts with the file at fault: the corrupted one, or the weights when a flip
        # in model.json changed the checksum it records for them
        assert "\n" not in message, message
        assert message.startswith((str(path), str(weights), "directory: expected weights-")), message
        return
    # only a flip that keeps model.json meaningful can load; the weights then passed their
    # checksum, so they are exactly the saved ones
    # (or a truncation that cut only the trailing newline)
    assert name == "model.json" and (how == "flip" or bytes(blob).strip() == original.strip())
    (saved_weights,) = saved.glob("weights-*.safetensors")
    saved_state = safetensors.torch.load_file(saved_weights)
    assert model.state_dict().keys() == saved_state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in saved_state.items())


def test_a_model_description_with_wrong_arguments_is_refused(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["model"]["args"]["encoder"]["args"]["colour"] = "blue"
    (tmp_path / "model.json").write_text(json.dumps(document))
    with pytest.raises(ValueError, match=r"model.json: cannot rebuild the model it describes: .*colour"):
        gv.load(tmp_path)


@pytest.mark.parametrize(
    "posterior",
    [
        {"genvae": "posteriors/iaf", "args": {"steps": 5000}},  # a module per step (10**9 ran for hours)
        {"genvae": "posteriors/iaf", "args": {"hidden": [1] * 5000}},  # a layer per width
    ],
)
def test_a_model_description_that_builds_countless_parts_is_refused_at_once(tmp_path: Path, posterior: Any) -> None:
    # on the meta device sizes are free but counts are not: steps=10**9 took hours and gigabytes
    # of Python objects before the weights could be compared
    gv.save(gv.VAE("mlp", "mlp", latent_dim=2, posterior="iaf"), tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["model"]["args"]["posterior"] = posterior
    (tmp_path / "model.json").write_text(json.dumps(document))
    tensors = len(gv.VAE("mlp", "mlp", latent_dim=2, posterior="iaf").state_dict())
    message = rf"model.json: cannot rebuild the model it describes: it builds more than {4 * tensors + 256} parameters"
    with pytest.raises(ValueError, match=message):
        gv.load(tmp_path)


def test_weights_that_do_not_fit_their_description_are_a_one_line_error(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    document = json.loads((tmp_path / "model.json").read_text())
    document["model"]["args"]["encoder"]["args"]["hidden"] = [17]  # a valid description of another model
    (tmp_path / "model.json").write_text(json.dumps(document))
    expected = r"weights-[0-9a-f]+\.safetensors: encoder\.rest\.4\.weight: expected shape \(17, 3136\) \(the model in "
    with pytest.raises(ValueError, match=expected) as info:
        gv.load(tmp_path)
    assert "\n" not in str(info.value), str(info.value)


def test_a_description_of_no_registered_model_is_refused(tmp_path: Path) -> None:
    gv.save(gv.presets.seed_vae(), tmp_path)
    text = (tmp_path / "model.json").read_text()
    (tmp_path / "model.json").write_text(text.replace('"genvae": "models/vae"', '"fenvae": "models/vae"', 1))
    with pytest.raises(ValueError, match=r"model.json: "):
        gv.load(tmp_path)


@named
@given(st.sampled_from(["truncate", "flip", "empty"]), st.data())
def test_corrupted_checkpoints_are_refused(tmp_path: Path, how: str, data: st.DataObject) -> None:
    path = tmp_path / "c.ckpt"
    gv.training.write_checkpoint(path, {"format": 1, "weights": torch.arange(100.0)})
    blob = bytearray(path.read_bytes())
    if how == "truncate":
        blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
    elif how == "flip":
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        blob = bytearray()
    path.write_bytes(bytes(blob))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value).startswith(str(path))


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ([1, 2, 3], "not a genvae checkpoint (unknown payload)"),
        ({"format": 2}, "not a genvae checkpoint (unknown payload)"),
        ({"format": 1, "odd": CheckpointError("x")}, "the payload cannot be read (Weights only load failed"),
    ],
)
def test_checkpoints_with_a_valid_checksum_but_bad_content_are_refused(
    tmp_path: Path, payload: Any, message: str
) -> None:
    path = tmp_path / "c.ckpt"
    try:
        gv.training.write_checkpoint(path, payload)  # a valid checksum over content that is not a checkpoint
    except TypeError:  # a value no checkpoint holds is refused on writing; a format-1 file (torch.save) may hold it
        body = io.BytesIO()
        torch.save(payload, body)
        digest = hashlib.sha256(body.getvalue()).hexdigest().encode()
        path.write_bytes(b"GENVAE-CHECKPOINT 1 sha256=" + digest + b"\n" + body.getvalue())
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_check_fields_names_the_file_and_the_field(tmp_path: Path) -> None:
    path = tmp_path / "c.ckpt"
    payload = {"format": 1, "state": [], "history": []}
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: state: expected dict, got list$"):
        check_fields(path, payload, {"history": list, "state": dict})
    with pytest.raises(CheckpointError, match=r": rng: expected dict or None, got nothing$"):
        check_fields(path, payload, {"rng": (dict, type(None))})
