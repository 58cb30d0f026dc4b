"""The speed options of the Trainer work on the CPU (their GPU paths are the same code, with CUDA
graphs and fused kernels chosen by torch where a GPU is present)."""

from __future__ import annotations

import pytest
import torch

import genvae as gv


def data() -> gv.data.ImageDataset:
    return gv.data.SyntheticDigits(256, seed=0)


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def trained_params(batch_size: int, **settings: object) -> list[torch.Tensor]:
    """The seed VAE's parameters after one seeded epoch with the given Trainer settings."""
    torch.manual_seed(0)
    model = gv.presets.seed_vae()
    gv.Trainer(model, max_epochs=1, batch_size=batch_size, device="cpu", seed=0, **settings).fit(data())  # type: ignore[arg-type]
    return params(model)


def assert_same(first: list[torch.Tensor], second: list[torch.Tensor], rtol: float, atol: float) -> None:
    for a, b in zip(first, second, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol)


@pytest.mark.parametrize(
    "settings", [{"fused": True}, {"fused": False}, {"channels_last": True}, {"amp": "bf16"}], ids=str
)
def test_each_option_trains(settings: dict[str, object]) -> None:
    torch.manual_seed(0)
    model = gv.presets.seed_cvae()
    history = gv.Trainer(model, max_epochs=2, batch_size=32, device="cpu", seed=0, **settings).fit(data())  # type: ignore[arg-type]
    assert history["train_total"][1] < history["train_total"][0]


def test_fused_and_unfused_adam_take_the_same_steps() -> None:
    assert_same(trained_params(32, fused=True), trained_params(32, fused=False), rtol=1e-4, atol=1e-5)


def test_channels_last_keeps_the_function() -> None:
    torch.manual_seed(0)
    model = gv.presets.seed_vae()
    trainer = gv.Trainer(model, device="cpu", channels_last=True)
    conv = trainer.model.encoder.first
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(1)
    a = model(x.contiguous(memory_format=torch.channels_last)).params
    torch.manual_seed(1)
    b = model(x).params
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
def test_compiled_training_step_matches_eager() -> None:
    """Inductor draws its own random numbers unless told to use eager's, which the comparison
    needs (the reparameterisation noise must be the same)."""
    import torch._inductor.config

    torch._dynamo.reset()
    with torch._inductor.config.patch(fallback_random=True):
        assert_same(trained_params(64, compile=False), trained_params(64, compile=True), rtol=1e-3, atol=1e-4)


@pytest.mark.slow
def test_reduce_overhead_mode_runs_without_cuda() -> None:
    """ "reduce-overhead" captures CUDA graphs on a GPU; without one it compiles and trains plainly."""
    torch._dynamo.reset()
    figures = []
    for compile_ in (False, "reduce-overhead"):
        torch.manual_seed(0)
        trainer = gv.Trainer(gv.presets.seed_vae(), max_epochs=1, batch_size=64, device="cpu", seed=0, compile=compile_)
        figures.append(trainer.fit(data()).last["train_total"])
    assert figures[1] == pytest.approx(figures[0], rel=0.01)  # the same training, up to the noise draws


@pytest.mark.parametrize(("kwargs", "message"), [({"amp": "fp8"}, "amp: expected None or 'bf16'"),
                                                 ({"compile": "fast"}, "compile: expected a bool or")])  # fmt: skip
def test_bad_speed_options_are_named(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gv.Trainer(gv.presets.seed_vae(), **kwargs)  # type: ignore[arg-type]


def test_cuda_device_without_cuda_is_a_clear_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert gv.training.trainer.resolve_device("auto").type == "cpu"
