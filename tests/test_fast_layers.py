"""The inference-speed layers: the product-form transposed convolution and in-place activations
give the same numbers as PyTorch's own layers, in training and in evaluation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

import genvae as gv
from genvae import _transposed_conv
from genvae._layers import activations_to_run_in_place
from genvae._transposed_conv import ConvTranspose2d, conv_transpose2d_col2im
from genvae.conditioners import ConditionedLayer, Conditioner


@st.composite
def transposed_convs(draw: st.DrawFn) -> dict:
    kernel = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 3))
    return {
        "cin": draw(st.integers(1, 6)),
        "cout": draw(st.integers(1, 4)),
        "kernel": kernel,
        "stride": stride,
        "padding": draw(st.integers(0, kernel - 1)),
        "output_padding": draw(st.integers(0, stride - 1)),
        "size": (draw(st.integers(1, 6)), draw(st.integers(1, 6))),
        "bias": draw(st.booleans()),
        "dtype": draw(st.sampled_from([torch.float32, torch.float64])),
        "channels_last": draw(st.booleans()),
    }


@settings(max_examples=60, deadline=None)
@given(transposed_convs())
def test_the_product_form_equals_torchs_transposed_convolution(case: dict) -> None:
    torch.manual_seed(0)
    dtype = case["dtype"]
    x = torch.randn(3, case["cin"], *case["size"], dtype=dtype)
    if case["channels_last"]:
        x = x.contiguous(memory_format=torch.channels_last)
    k, s, p, op = case["kernel"], case["stride"], case["padding"], case["output_padding"]
    assume(all((n - 1) * s - 2 * p + k + op >= 1 for n in case["size"]))  # an output at all
    weight = torch.randn(case["cin"], case["cout"], k, k, dtype=dtype)
    bias = torch.randn(case["cout"], dtype=dtype) if case["bias"] else None
    expected = F.conv_transpose2d(x, weight, bias, s, p, op)
    got = conv_transpose2d_col2im(x, weight, bias, (s, s), (p, p), (op, op))
    assert got.shape == expected.shape and got.dtype == dtype
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


# the property above draws one stride, padding and output padding for both axes: these differ
@pytest.mark.parametrize(
    ("kernel", "stride", "padding", "output_padding", "size"),
    [
        ((3, 3), (1, 2), (0, 1), (0, 1), (5, 4)),
        ((3, 4), (2, 1), (1, 0), (1, 0), (4, 5)),
        ((4, 2), (3, 2), (2, 0), (0, 1), (3, 6)),
        ((2, 5), (2, 3), (1, 2), (1, 2), (6, 3)),
    ],
)
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_product_form_handles_each_axis_on_its_own(
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    output_padding: tuple[int, int],
    size: tuple[int, int],
    channels_last: bool,
) -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 32, *size)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    ours = ConvTranspose2d(32, 2, kernel, stride=stride, padding=padding, output_padding=output_padding)
    expected = F.conv_transpose2d(x, ours.weight, ours.bias, stride, padding, output_padding)
    with torch.no_grad():
        got = conv_transpose2d_col2im(x, ours.weight, ours.bias, stride, padding, output_padding)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    with torch.no_grad():  # the layer takes the product form (2·kh·kw ≤ 32 input channels)
        assert ours._product_form_applies(x)
        torch.testing.assert_close(ours(x), expected, rtol=1e-5, atol=1e-5)


def _layer(cin: int = 32, cout: int = 1, kernel: int = 3) -> tuple[ConvTranspose2d, nn.ConvTranspose2d]:
    torch.manual_seed(0)
    ours = ConvTranspose2d(cin, cout, kernel, stride=2, padding=1, output_padding=1)
    theirs = nn.ConvTranspose2d(cin, cout, kernel, stride=2, padding=1, output_padding=1)
    theirs.load_state_dict(ours.state_dict())
    return ours, theirs


def _count_product_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = _transposed_conv.conv_transpose2d_col2im

    def spy(*args: object) -> torch.Tensor:
        calls.append(1)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(_transposed_conv, "conv_transpose2d_col2im", spy)
    return calls


def test_the_layer_takes_the_product_form_only_without_gradients(monkeypatch: pytest.MonkeyPatch) -> None:
    ours, theirs = _layer()
    calls = _count_product_calls(monkeypatch)
    x = torch.randn(4, 32, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x))
    assert len(calls) == 1
    x.requires_grad_(True)
    ours(x).square().sum().backward()  # PyTorch's kernel, with its backward
    assert len(calls) == 1 and x.grad is not None
    with torch.inference_mode():
        ours(x.detach())
    assert len(calls) == 2


@pytest.mark.parametrize(
    ("cin", "cout", "kernel", "product"),
    [(32, 1, 3, True), (32, 3, 3, True), (27, 3, 3, True), (26, 3, 3, False), (8, 4, 5, False), (64, 8, 3, False)],
)
def test_the_product_form_is_taken_while_the_taps_are_no_more_than_the_input(
    monkeypatch: pytest.MonkeyPatch, cin: int, cout: int, kernel: int, product: bool
) -> None:
    calls = _count_product_calls(monkeypatch)
    ours, theirs = _layer(cin, cout, kernel)
    x = torch.randn(2, cin, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)
    assert bool(calls) is product  # out_channels · kernel² ≤ in_channels


def test_half_precision_weights_or_an_empty_output_keep_torchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_product_calls(monkeypatch)
    ours, theirs = _layer()
    with torch.no_grad():
        x = torch.randn(2, 32, 5, 5, dtype=torch.bfloat16)
        torch.testing.assert_close(ours.bfloat16()(x), theirs.bfloat16()(x))  # torch adds up in float32
        shrinking = ConvTranspose2d(32, 1, 3, stride=1, padding=2)  # a 1×1 input would give −1×−1
        with pytest.raises(RuntimeError, match="too small"):
            shrinking(torch.randn(1, 32, 1, 1))
    assert calls == []


def test_an_output_size_keeps_torchs_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_product_calls(monkeypatch)
    ours, theirs = _layer()
    x = torch.randn(2, 32, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(ours(x, output_size=[9, 9]), theirs(x, output_size=[9, 9]))
    assert calls == []


@pytest.mark.parametrize("channels_last", [False, True])
def test_the_output_has_the_memory_format_of_the_input(channels_last: bool) -> None:
    ours, theirs = _layer(cout=3)
    x = torch.randn(2, 32, 5, 5)
    x = x.contiguous(memory_format=torch.channels_last) if channels_last else x
    with torch.no_grad():
        out, expected = ours(x), theirs(x)
    torch.testing.assert_close(out, expected)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    assert out.is_contiguous() is (not channels_last)


def test_the_layer_has_torchs_parameters_and_state_dict() -> None:
    ours, theirs = _layer()
    assert isinstance(ours, nn.ConvTranspose2d)
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    assert repr(ours) == repr(theirs)


def test_under_bf16_autocast_the_last_layer_returns_float32_close_to_the_exact_result() -> None:
    ours, theirs = _layer()
    x = torch.randn(4, 32, 5, 5)
    with torch.no_grad():
        exact = theirs(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approximate = ours(x)
    assert approximate.dtype == torch.float32
    torch.testing.assert_close(approximate, exact, rtol=0.05, atol=0.05)


def test_the_seed_decoder_decodes_the_same_with_and_without_gradients() -> None:
    torch.manual_seed(0)
    decoder = gv.presets.seed_vae().decoder
    z = torch.randn(16, 2)
    with torch.no_grad():
        fast = decoder(z)
    slow = decoder(z)  # gradients on: PyTorch's kernels and out-of-place autograd records
    torch.testing.assert_close(fast, slow.detach())
    assert fast.is_contiguous(memory_format=torch.channels_last) or fast.shape[1] == 1


# -- in-place activations --------------------------------------------------------------------------


def _flags(model: nn.Module) -> list[bool]:
    return [m.inplace for m in model.modules() if isinstance(m, nn.ReLU | nn.LeakyReLU | nn.ELU)]


@pytest.mark.parametrize("conditioner", ["split", "concat", "film"])
@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu"])
def test_evaluation_runs_activations_in_place_and_restores_them(conditioner: str, activation: str) -> None:
    torch.manual_seed(0)
    decoder = gv.decoders.ConvDecoder(
        latent_dim=3, image_size=12, channels=(8, 4), hidden=(16,), activation=activation,
        condition_dim=5, conditioner=conditioner,
    )  # fmt: skip
    model = gv.ConditionalVAE(gv.encoders.MLPEncoder((1, 12, 12), condition_dim=5), decoder, 3, num_classes=5)
    assert not any(_flags(model))  # out of place outside evaluation: training and hooks as with torch's layers
    z, c = torch.randn(6, 3), torch.eye(5)[torch.arange(6) % 5]
    with torch.no_grad():
        expected = decoder(z, c)
    with gv.evaluation.inference(model):
        inside = _flags(model)
        got = decoder(z, c)
    # the decoder's activations follow its first layer, a hidden linear layer and a convolution
    assert sum(inside) >= 3 and not any(_flags(model))
    torch.testing.assert_close(got, expected)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_full_backward_hooks_work_on_the_built_in_networks() -> None:
    model = gv.presets.seed_vae()
    seen: list[int] = []
    for layer in (model.decoder.first, model.encoder.first, model.decoder.rest[0]):
        layer.register_full_backward_hook(lambda module, grad_in, grad_out: seen.append(1))
    x = torch.rand(4, 1, 28, 28)
    (-model(x).log_prob(x).sum()).backward()
    assert len(seen) == 3


class _Passthrough(ConditionedLayer):
    """A user's conditioned layer that hands back its input (so it is not a fresh tensor)."""

    def forward(self, h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return h


class _PassthroughConditioner(Conditioner):
    def build(self, make_layer, in_shape, out_shape, condition_dim):  # type: ignore[no-untyped-def]
        return _Passthrough()


def test_an_activation_after_an_unknown_layer_stays_out_of_place_and_leaves_the_input_alone() -> None:
    encoder = gv.encoders.MLPEncoder(4, hidden=(4, 3), condition_dim=2, conditioner=_PassthroughConditioner())
    chosen = activations_to_run_in_place(encoder)
    assert encoder.rest[0] not in chosen  # after the user's layer
    assert encoder.rest[2] in chosen  # after a Linear
    model = gv.ConditionalVAE(encoder, gv.decoders.MLPDecoder(2, 4, hidden=(), condition_dim=2), 2, num_classes=2)
    x = torch.randn(5, 4) - 1
    before = x.clone()
    with gv.evaluation.inference(model):
        encoder(x, torch.zeros(5, 2))
    torch.testing.assert_close(x, before)


def test_only_activations_after_a_fresh_output_and_used_once_run_in_place() -> None:
    shared = nn.ReLU()
    chain = nn.Sequential(nn.ReLU(), nn.Linear(2, 2), nn.ReLU(), nn.Identity(), nn.ReLU(), nn.Conv2d(1, 1, 1))
    chain.append(nn.Tanh())
    model = nn.ModuleDict({"a": chain, "b": nn.Sequential(nn.Linear(2, 2), shared), "c": nn.Sequential(shared)})
    assert activations_to_run_in_place(model) == [chain[2]]  # not the first (the caller's input), not a shared one


class _Residual(nn.Sequential):
    """A Sequential subclass whose forward reuses each input: not a chain of its children."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for module in self:
            x = x + module(x)
        return x


def test_a_sequential_subclass_with_its_own_forward_keeps_its_activations_out_of_place() -> None:
    torch.manual_seed(0)
    residual = _Residual(nn.Linear(16, 16), nn.ReLU())
    decoder = nn.Sequential(nn.Linear(2, 16), residual, nn.Linear(16, 784), nn.Unflatten(1, (1, 28, 28)))
    model = gv.VAE("mlp", decoder, latent_dim=2)
    assert residual[1] not in activations_to_run_in_place(model)
    z = torch.randn(5, 2)
    with torch.no_grad():
        expected = decoder(z)
    with gv.evaluation.inference(model):
        torch.testing.assert_close(decoder(z), expected)


def test_a_subclass_of_a_built_in_network_keeps_the_activation_after_its_first_layer_out_of_place() -> None:
    class Skip(gv.decoders.MLPDecoder):  # a user's forward that reuses the first layer's output
        def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            h = self.first(z)
            return self.rest(h) + h.sum()

    decoder = Skip(2, (1, 4, 4), hidden=(8,))
    assert decoder.rest[0] not in activations_to_run_in_place(decoder)


def test_the_chunk_size_counts_an_in_place_output_once_and_is_the_same_every_time() -> None:
    budget = 8 * 2**20
    relu = gv.presets.seed_vae()
    sizes = {gv.evaluation.decode_chunk_size(relu, budget) for _ in range(5)}
    # the seed decoder's outputs: 3,136 (linear, relu in place, reshaped) + 6,272 (convolution,
    # relu in place) + 784 floats, plus three times the 784 parameters for the log-density
    assert sizes == {budget // (4 * (3136 + 6272 + 784 + 3 * 784))}
    gelu = gv.VAE(gv.encoders.MLPEncoder((1, 28, 28)), gv.decoders.MLPDecoder(activation="gelu"), latent_dim=2)
    # out of place: every output its own (held, so no two share a freed address)
    assert {gv.evaluation.decode_chunk_size(gelu, budget) for _ in range(10)} == {
        budget // (4 * (2 * 256 + 2 * 512 + 784 + 3 * 784))
    }


# -- precision under autocast --------------------------------------------------------------------


@pytest.mark.parametrize("build", [gv.presets.seed_vae, gv.presets.seed_cvae])
def test_under_autocast_a_decoder_takes_the_latent_code_in_full_precision(build) -> None:  # type: ignore[no-untyped-def]
    model = build()
    decoder = model.decoder
    dtypes: dict[str, torch.dtype] = {}
    for name, layer in (("first", decoder.first), ("hidden", decoder.rest[2])):
        layer.register_forward_hook(lambda m, i, out, name=name: dtypes.update({name: out.dtype}))
    z = torch.randn(4, 2, dtype=torch.bfloat16)  # a low-precision code is widened, not refused
    c = model.condition(torch.arange(4) % 10, 4) if model.conditional else None
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.decoder_params(z, c)
    assert dtypes == {"first": torch.float32, "hidden": torch.bfloat16}
    assert out.dtype == torch.float32 and bool(torch.isfinite(out).all())


def test_a_half_precision_model_evaluates_under_autocast() -> None:
    model = gv.presets.seed_vae().to(torch.bfloat16)  # parameters in bfloat16: nothing to widen to
    result = gv.evaluation.nll(model, torch.rand(3, 1, 28, 28, dtype=torch.bfloat16), k=10, bf16=True)
    assert math.isfinite(result.nats)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model.decode(torch.randn(2, 2, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_an_encoder_keeps_autocast_in_its_first_layer() -> None:
    encoder = gv.presets.seed_vae().encoder
    seen: list[torch.dtype] = []
    encoder.first.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        encoder(torch.rand(2, 1, 28, 28))
    assert seen == [torch.bfloat16]


# -- end to end: the estimates are those of PyTorch's own layers -------------------------------------


def _torch_layers(model: gv.VAE) -> gv.VAE:
    """``model`` with torch.nn.ConvTranspose2d (same weights)."""
    twin = copy.deepcopy(model)
    for parent in twin.modules():
        for name, child in parent.named_children():
            if type(child) is ConvTranspose2d:
                shape = (child.in_channels, child.out_channels, child.kernel_size)
                layout = (child.stride, child.padding, child.output_padding)
                plain = nn.ConvTranspose2d(*shape, *layout, dtype=child.weight.dtype)  # type: ignore[misc]
                plain.load_state_dict(child.state_dict())
                setattr(parent, name, plain)
    assert not any(type(m) is ConvTranspose2d for m in twin.modules())
    return twin  # type: ignore[return-value]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_nll_and_classify_equal_those_of_pytorchs_layers_on_the_same_draws(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    vae, cvae = gv.presets.seed_vae().to(dtype), gv.presets.seed_cvae().to(dtype)
    x = torch.rand(3, 1, 28, 28)
    # one chunk for both (the in-place model fits more latents in a budget, which changes the draws' order)
    for model, run in ((vae, lambda m: gv.evaluation.nll(m, x, k=40, chunk=4096).per_sample),
                       (cvae, lambda m: gv.evaluation.classify(m, x, k=8, chunk=4096).scores)):  # fmt: skip
        twin = _torch_layers(model)
        torch.manual_seed(1)
        fast = run(model)
        torch.manual_seed(1)
        reference = run(twin)
        torch.testing.assert_close(fast, reference, rtol=0, atol=1e-3 if dtype == torch.float32 else 1e-9)
