"""The speed options of the Trainer work on the CPU (their GPU paths are the same code, with CUDA
graphs and fused kernels chosen by torch where a GPU is present)."""

from __future__ import annotations

import math
from pathlib import Path

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
    gv.Trainer(model, device="cpu", channels_last=True)  # converts the model's weights in place
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


# -- each option takes effect (seen from inside the training step) ----------------------------------------


def conv_model() -> gv.VAE:
    """Three input channels, so a channels-last tensor differs from a contiguous one (with one
    channel the two layouts coincide and a memory-format check proves nothing)."""
    torch.manual_seed(0)
    enc = gv.encoders.ConvEncoder(3, 12, channels=(4, 6), hidden=(8,))
    dec = gv.decoders.ConvDecoder(2, 3, 12, channels=(6, 4))
    return gv.VAE(enc, dec, latent_dim=2)


def conv_data() -> torch.Tensor:
    return torch.rand(8, 3, 12, 12, generator=torch.Generator().manual_seed(0))


class Inside(gv.training.Callback):
    """Records what the layers of the training step see: output dtypes of the linear and
    convolution layers, and the memory formats of the convolutions' inputs and weights."""

    kinds = (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d)

    def __init__(self) -> None:
        self.dtypes: set[torch.dtype] = set()
        self.inputs_channels_last: list[bool] = []
        self.weights_channels_last: list[bool] = []

    def on_fit_start(self, trainer: gv.Trainer) -> None:
        self.first_decoder_layer: set[torch.dtype] = set()
        first = trainer.model.decoder.first
        first.register_forward_hook(lambda module, args, output: self.first_decoder_layer.add(output.dtype))
        for module in trainer.model.modules():
            if isinstance(module, self.kinds) and module is not first:
                module.register_forward_hook(self.record)

    def record(self, module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        if not module.training:
            return
        self.dtypes.add(output.dtype)
        if isinstance(module, torch.nn.Conv2d | torch.nn.ConvTranspose2d):
            x, w = args[0], module.weight
            self.inputs_channels_last.append(_channels_last(x))
            self.weights_channels_last.append(_channels_last(w))


def _channels_last(t: torch.Tensor) -> bool:
    """Channels-last and not plain contiguous (tensors with one channel or 1×1 planes are both)."""
    return t.is_contiguous(memory_format=torch.channels_last) and not t.is_contiguous()


def inside(**settings: object) -> tuple[Inside, gv.Trainer]:
    spy = Inside()
    trainer = gv.Trainer(conv_model(), max_epochs=1, batch_size=4, device="cpu", seed=0, callbacks=[spy], **settings)  # type: ignore[arg-type]
    trainer.fit(conv_data())
    return spy, trainer


def test_amp_bf16_runs_the_layers_in_bfloat16() -> None:
    spy, trainer = inside(amp="bf16")
    assert spy.dtypes == {torch.bfloat16}  # every layer but the decoder's first, below
    assert spy.first_decoder_layer == {torch.float32}  # latent code → width, kept in full precision
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # the weights stay float32
    assert all(math.isfinite(v) for v in trainer.history.last.values())


def test_without_amp_the_layers_run_in_float32() -> None:
    spy, _ = inside()
    assert spy.dtypes == {torch.float32}


def test_channels_last_converts_the_weights_and_the_images() -> None:
    spy, trainer = inside(channels_last=True)
    assert spy.weights_channels_last and all(spy.weights_channels_last)
    # the first convolution's input is the batch of images (the decoder's first one is a reshaped
    # linear output, in whatever layout the reshape gives)
    assert spy.inputs_channels_last[0]
    convs = [m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.ConvTranspose2d)]
    assert convs and all(_channels_last(m.weight) for m in convs)


def test_without_channels_last_the_memory_stays_contiguous() -> None:
    spy, _ = inside(channels_last=False)
    assert spy.weights_channels_last and not any(spy.weights_channels_last)
    assert not spy.inputs_channels_last[0]


@pytest.mark.parametrize("fused", [True, False])
def test_fused_sets_the_default_optimisers_kernel(fused: bool) -> None:
    trainer = gv.Trainer(conv_model(), max_epochs=1, device="cpu", fused=fused)
    assert isinstance(trainer.optimizer, torch.optim.Adam)
    assert bool(trainer.optimizer.defaults["fused"]) is fused
    assert all(bool(group["fused"]) is fused for group in trainer.optimizer.param_groups)
    if fused:
        trainer.fit(conv_data())  # and the fused kernel runs here
        assert trainer.state.global_step == 1 and math.isfinite(trainer.history.last["train_total"])


# -- the defaults: what they pick, that it takes effect, and that it trains the same ------------------------


def test_the_defaults_pick_fused_adam_and_keep_the_models_layout() -> None:
    spy, trainer = inside()
    assert trainer.channels_last is False
    assert all(bool(group["fused"]) for group in trainer.optimizer.param_groups)
    assert spy.weights_channels_last and not any(spy.weights_channels_last)  # the user's model is left as it was
    assert not spy.inputs_channels_last[0]


def test_a_model_trained_with_the_defaults_equals_its_saved_and_loaded_copy(tmp_path: Path) -> None:
    model = conv_model()
    gv.Trainer(model, max_epochs=1, batch_size=4, device="cpu", seed=0, quiet=True).fit(conv_data())
    gv.save(model, tmp_path / "m")
    x = conv_data()[:3]
    assert torch.equal(gv.load(tmp_path / "m").reconstruct(x), model.reconstruct(x))


@pytest.mark.parametrize("explicit", [{"fused": False}, {"channels_last": True}], ids=str)
def test_the_defaults_train_as_the_explicit_settings_do(explicit: dict[str, object]) -> None:
    """The same losses and weights, to float rounding, as the unfused kernel and the channels-last layout."""
    runs = []
    for settings in ({}, explicit):
        model = conv_model()
        trainer = gv.Trainer(model, max_epochs=2, batch_size=4, device="cpu", seed=0, quiet=True, **settings)  # type: ignore[arg-type]
        history = trainer.fit(conv_data())
        runs.append((history["train_total"], params(model)))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    assert_same(runs[0][1], runs[1][1], rtol=1e-4, atol=1e-5)


def test_a_channels_last_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    """Adam's moments come back from a checkpoint in their weight's layout: loaded contiguous, the
    fused step would pair each moment of a channels-last weight with another element."""

    def trainer(model: gv.VAE, epochs: int, folder: str) -> gv.Trainer:
        checkpoints = gv.training.ModelCheckpoint(tmp_path / folder)
        return gv.Trainer(model, max_epochs=epochs, batch_size=4, device="cpu", seed=0, quiet=True,
                          channels_last=True, callbacks=[checkpoints])  # fmt: skip

    whole = conv_model()
    trainer(whole, 3, "whole").fit(conv_data())
    first = trainer(conv_model(), 1, "first")
    first.fit(conv_data())
    resumed = conv_model()
    trainer(resumed, 3, "resumed").fit(conv_data(), resume_from=tmp_path / "first" / "last.ckpt")
    for a, b in zip(params(whole), params(resumed), strict=True):
        assert torch.equal(a, b)
