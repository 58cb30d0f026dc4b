"""Export: torch.export and torch.jit.trace of genvae models, and gv.export.to_onnx under onnxruntime."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

import genvae as gv
import genvae.export as gx
from genvae._validation import tracing
from genvae.testing import build_model


def _kind(i: int) -> str:
    return ("mlp", "conv")[i % 2]


def _models() -> list[object]:
    """A VAE per unconditional prior and a CVAE per conditioner × prior (MLP and conv parts
    alternate). Each conditioner and each prior is in the default run; the rest of the product is slow."""
    built: list[object] = []
    for i, prior in enumerate(["normal", "mog", "vamp"]):
        built.append(pytest.param(build_model(kind=_kind(i), prior=prior), id=f"vae-{prior}"))
    for i, conditioner in enumerate(["split", "concat", "film"]):
        for j, prior in enumerate(["normal", "conditional", "mog", "vamp"]):
            model = build_model(kind=_kind(i + j), classes=3, conditioner=conditioner, prior=prior)
            marks = () if conditioner == "split" or prior == "normal" else (pytest.mark.slow,)
            built.append(pytest.param(model, id=f"cvae-{conditioner}-{prior}", marks=marks))
    return built


MODELS = _models()


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
def test_checks_run_eagerly_and_are_skipped_only_while_tracing() -> None:
    model = build_model()
    assert not tracing()
    with pytest.raises(ValueError, match="x: expected values in"):
        model(torch.full((2, 1, 8, 8), 2.0))
    seen = []

    def probe(z: torch.Tensor) -> torch.Tensor:
        seen.append(tracing())
        return z * 2

    torch.jit.trace(probe, torch.ones(2), check_trace=False)
    assert seen == [True]


@pytest.mark.parametrize("conditional", [False, True])
def test_the_whole_model_passes_torch_export(conditional: bool) -> None:
    model = build_model(kind="conv", classes=3 if conditional else 0).eval()
    x = torch.rand(4, 1, 8, 8)
    args = (x, torch.tensor([0, 1, 2, 0])) if conditional else (x,)
    program = torch.export.export(model, args)
    out = program.module()(*args)
    assert isinstance(out, gv.VAEOutput)
    mean, logvar = model.encode(*args)
    torch.testing.assert_close(out.mean, mean)
    torch.testing.assert_close(out.logvar, logvar)
    assert out.recon.shape == x.shape


@pytest.mark.filterwarnings("ignore:`torch.jit.trace:DeprecationWarning")
@pytest.mark.parametrize("grad", [False, True])
def test_jit_trace_of_the_decoder_passes_its_own_check(grad: bool) -> None:
    model = gv.presets.seed_vae(latent_dim=2).eval()  # its last layer is the product-form transposed conv
    z = torch.randn(3, 2)
    with torch.set_grad_enabled(grad):
        traced = torch.jit.trace(model.decoder, z)  # check_trace=True: raises if the graphs diverge
        other = torch.randn(5, 2) + 1  # another batch size and other values: the same graph
        torch.testing.assert_close(traced(other), model.decoder(other))


def test_example_inputs_and_errors() -> None:
    model = build_model(classes=3)
    z, y = gx.example_inputs(model, "decoder", batch=4)
    assert z.shape == (4, 2) and y.dtype == torch.long and int(y.max()) < 3
    with pytest.raises(ValueError, match="part: expected one of 'decoder', 'encoder', got 'prior'"):
        gx.to_onnx(model, "x.onnx", part="prior")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="model: expected a genvae VAE"):
        gx.to_onnx(torch.nn.Linear(2, 2), "x.onnx")  # type: ignore[arg-type]


def test_a_missing_extra_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install 'genvae\[export\]'.*missing: onnx$"):
        gx.to_onnx(build_model(), tmp_path / "m.onnx")


def _run_onnx(path: Path, inputs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
    ort = pytest.importorskip("onnxruntime")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = {spec.name: value.numpy() for spec, value in zip(session.get_inputs(), inputs, strict=True)}
    return [torch.from_numpy(value) for value in session.run(None, feed)]


@pytest.mark.parametrize("part", gx.PARTS)
@pytest.mark.parametrize("model", MODELS)
def test_onnx_graphs_equal_decode_and_encode(model: gv.VAE, part: str, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    path = gx.to_onnx(model, tmp_path / "model.onnx", part=part)  # type: ignore[arg-type]
    inputs = gx.example_inputs(model, part, batch=5)  # exported with 2: the batch is dynamic
    got = _run_onnx(path, inputs)
    expected = [model.decode(*inputs)] if part == "decoder" else list(model.encode(*inputs))
    assert len(got) == len(expected)
    for value, reference in zip(got, expected, strict=True):
        torch.testing.assert_close(value, reference.detach(), rtol=0, atol=1e-5)


def test_onnx_takes_float_conditions_for_a_model_without_classes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    enc = gv.encoders.MLPEncoder((1, 8, 8), hidden=(4,), condition_dim=2)
    dec = gv.decoders.MLPDecoder(2, (1, 8, 8), hidden=(4,), condition_dim=2)
    model = gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=None, condition_dim=2)
    z, c = gx.example_inputs(model, "decoder", batch=3)
    assert c.dtype == torch.float32 and c.shape == (3, 2)
    (got,) = _run_onnx(gx.to_onnx(model, tmp_path / "d.onnx"), (z, c))
    torch.testing.assert_close(got, model.decode(z, c), rtol=0, atol=1e-5)
