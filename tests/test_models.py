"""Models, parts and presets: shapes, the notebook's architectures, conditioning, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import genvae as gv
from tests.helpers import batch_for, build
from tests.strategies import architectures


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# -- the notebook's unit test of sample_latent -------------------------------------------------------


def test_seed_sample_latent_moments() -> None:
    samples = gv.presets.seed_vae().sample_latent(torch.ones(10000), torch.ones(10000))
    assert F.mse_loss(torch.mean(samples), torch.tensor(1.0)) < 1e-3
    assert F.mse_loss(torch.std(samples), torch.exp(torch.tensor(0.5))) < 1e-3


@given(st.floats(-5, 5), st.floats(-4, 4))
def test_reparameterised_samples_have_the_requested_moments(mean: float, logvar: float) -> None:
    n = 200_000
    gen_mean, gen_logvar = torch.full((n,), mean, dtype=torch.float64), torch.full((n,), logvar, dtype=torch.float64)
    samples = gv.VAE.sample_latent(gen_mean, gen_logvar)
    std = np.exp(logvar / 2)
    # 6 standard errors: the test fails by chance about once in 10^8 draws.
    assert abs(samples.mean().item() - mean) < 6 * std / np.sqrt(n)
    assert abs(samples.var().item() / std**2 - 1) < 6 * np.sqrt(2 / n)


# -- presets ---------------------------------------------------------------------------------------


def test_seed_presets_have_the_notebooks_parameter_counts() -> None:
    assert n_params(gv.presets.seed_vae(latent_dim=2)) == 97_237
    assert n_params(gv.presets.seed_cvae(latent_dim=2, num_classes=10, conditioner="split")) == 200_725


def test_seed_vae_is_the_notebooks_network_layer_for_layer() -> None:
    model = gv.presets.seed_vae(latent_dim=2)
    layers = [m for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear)]
    shapes = [tuple(m.weight.shape) for m in layers]
    assert shapes == [
        (32, 1, 3, 3),  # Conv2d(1, 32, 3, stride 2, padding 1)
        (64, 32, 3, 3),  # Conv2d(32, 64, 3, stride 2, padding 1)
        (16, 3136),  # Linear(7*7*64, 16)
        (3136, 2),  # decoder_part1_z
        (64, 32, 3, 3),  # ConvTranspose2d(64, 32, ...)
        (32, 1, 3, 3),  # ConvTranspose2d(32, 1, ...)
        (2, 16),  # encoder_mean
        (2, 16),  # encoder_logvar
    ]
    assert [m.stride for m in layers if not isinstance(m, nn.Linear)] == [(2, 2)] * 4
    assert [m.output_padding for m in layers if isinstance(m, nn.ConvTranspose2d)] == [(1, 1)] * 2


def test_seed_cvae_split_adds_the_notebooks_label_layers() -> None:
    cvae = gv.presets.seed_cvae()
    label_layers = [m for n, m in cvae.named_modules() if n.endswith("project")]
    assert [tuple(m.weight.shape) for m in label_layers] == [(32 * 14 * 14, 10), (64 * 7 * 7, 10)]


def test_seed_cvae_split_computes_the_notebooks_encoder() -> None:
    cvae = gv.presets.seed_cvae()
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([1, 5, 9])
    onehot = F.one_hot(y, 10).float()
    first = cvae.encoder.first
    h = first.layer(x) + first.project(onehot).reshape(-1, 32, 14, 14)  # the notebook's encode()
    h = cvae.encoder.rest(h)
    mean, logvar = cvae.encode(x, y)
    torch.testing.assert_close(mean, cvae.mean_head(h))
    torch.testing.assert_close(logvar, cvae.logvar_head(h))


@pytest.mark.parametrize("conditioner", ["split", "concat", "film"])
def test_seed_cvae_accepts_each_conditioner(conditioner: str) -> None:
    cvae = gv.presets.seed_cvae(conditioner=conditioner)
    out = cvae(torch.rand(4, 1, 28, 28), torch.tensor([0, 1, 2, 3]))
    assert out.params.shape == (4, 1, 28, 28)


# -- shapes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["mlp", "conv"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 32), (1, 16), (2, 30), (3, 12)])
@pytest.mark.parametrize("latent", [1, 2, 16])
def test_shapes(kind: str, channels: int, size: int, latent: int) -> None:
    if kind == "mlp":
        enc = gv.encoders.MLPEncoder((channels, size, size), hidden=(32, 16))
        dec = gv.decoders.MLPDecoder(latent, (channels, size, size), hidden=(16, 32))
    else:
        enc = gv.encoders.ConvEncoder(channels, size, channels=(8, 16), hidden=(16,))
        dec = gv.decoders.ConvDecoder(latent, channels, size, channels=(16, 8))
    model = gv.VAE(enc, dec, latent_dim=latent)
    x = torch.rand(5, channels, size, size)
    out = model(x)
    assert out.params.shape == x.shape
    assert out.mean.shape == out.logvar.shape == out.z.shape == (5, latent)
    assert model.decode(torch.randn(7, latent)).shape == (7, channels, size, size)
    assert model.sample(3).shape == (3, channels, size, size)
    assert model.reconstruct(x).shape == x.shape


def test_rectangular_images() -> None:
    enc = gv.encoders.ConvEncoder(1, (20, 12), channels=(4, 8), hidden=())
    dec = gv.decoders.ConvDecoder(3, 1, (20, 12), channels=(8, 4))
    model = gv.VAE(enc, dec, latent_dim=3)
    assert model(torch.rand(2, 1, 20, 12)).params.shape == (2, 1, 20, 12)
    assert enc.out_features == 8 * 5 * 3


@given(architectures())
def test_random_architectures_produce_the_data_shape(arch: dict) -> None:
    model = build(arch)
    x, y = batch_for(model, 4)
    out = model(x, y)
    assert out.params.shape == x.shape
    recon = out.recon
    assert recon.shape == x.shape and torch.isfinite(recon).all()


def test_decode_returns_probabilities_and_takes_one_vector() -> None:
    model = gv.presets.seed_vae()
    images = model.decode(torch.tensor([0.5, -1.0]))
    assert images.shape == (1, 1, 28, 28)
    assert images.min() >= 0 and images.max() <= 1


def test_the_notebooks_plotting_loop_runs_unchanged() -> None:
    model, cvae = gv.presets.seed_vae(), gv.presets.seed_cvae()
    figure = np.zeros((28 * 2, 28 * 2))
    for i, yi in enumerate([-1.0, 1.0]):
        for j, xi in enumerate([-1.0, 1.0]):
            z = torch.Tensor([xi, yi])
            x_decoded = model.decode(z)
            figure[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28] = x_decoded.detach().cpu().numpy()
            y = F.one_hot(torch.tensor([4]), 10).float()
            figure[i * 28 : (i + 1) * 28, j * 28 : (j + 1) * 28] = cvae.decode(z, y).detach().numpy()
    assert figure.min() > 0 and figure.max() < 1


def test_forward_is_encode_sample_decode() -> None:
    model = gv.presets.seed_vae()
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(3)
    out = model(x)
    torch.manual_seed(3)
    mean, logvar = model.encode(x)
    z = model.sample_latent(mean, logvar)
    torch.testing.assert_close(out.z, z)
    torch.testing.assert_close(out.recon, model.decode(z))


# -- conditioning ---------------------------------------------------------------------------------


def test_integer_labels_equal_their_one_hot_vectors() -> None:
    cvae = gv.presets.seed_cvae()
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([3, 1, 4, 1])
    torch.testing.assert_close(cvae.encode(x, y), cvae.encode(x, F.one_hot(y, 10).float()))
    z = torch.randn(4, 2)
    torch.testing.assert_close(cvae.decode(z, y), cvae.decode(z, F.one_hot(y, 10).float()))


def test_the_label_changes_the_output() -> None:
    cvae = gv.presets.seed_cvae()
    z = torch.randn(1, 2)
    assert not torch.allclose(cvae.decode(z, 0), cvae.decode(z, 1))


def test_continuous_conditions() -> None:
    enc = gv.encoders.MLPEncoder((1, 8, 8), hidden=(16,), condition_dim=3)
    dec = gv.decoders.MLPDecoder(2, (1, 8, 8), hidden=(16,), condition_dim=3)
    model = gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=None, condition_dim=3)
    c = torch.randn(5, 3)
    assert model(torch.rand(5, 1, 8, 8), c).params.shape == (5, 1, 8, 8)
    with pytest.raises(ValueError, match="y: expected float condition vectors for a model built with condition_dim"):
        model(torch.rand(5, 1, 8, 8), torch.zeros(5, dtype=torch.long))


def test_one_label_is_broadcast_over_the_batch() -> None:
    cvae = gv.presets.seed_cvae()
    z = torch.randn(6, 2)
    torch.testing.assert_close(cvae.decode(z, 7), cvae.decode(z, torch.full((6,), 7)))
    assert cvae.sample(6, y=2).shape == (6, 1, 28, 28)


@pytest.mark.parametrize("where", ["encoder", "decoder"])
def test_split_and_concat_are_the_same_function_with_tied_weights(where: str) -> None:
    """``concat`` computes layer([h, c]) = W_h·h + W_c·planes(c) + b; tie ``split``'s projection to
    the map c ↦ W_c·planes(c) (measured on the basis vectors) and the two models agree."""
    concat = gv.presets.seed_cvae(conditioner="concat")
    split = gv.presets.seed_cvae(conditioner="split")
    split.load_state_dict({k: v for k, v in concat.state_dict().items() if ".first." not in k}, strict=False)
    for part in ("encoder", "decoder"):
        c_first, s_first = getattr(concat, part).first, getattr(split, part).first
        layer = c_first.layer
        extra = layer.weight.shape[1] - s_first.layer.weight.shape[1]
        with torch.no_grad():
            # weights of the x (or z) inputs, and the bias, carry over
            s_first.layer.weight.copy_(layer.weight[:, :-extra])
            s_first.layer.bias.copy_(layer.bias)
            # the condition's contribution with the bias removed, one basis vector at a time
            in_shape = (1, 28, 28) if part == "encoder" else (2,)
            zero_input = torch.zeros(10, *in_shape)
            basis = torch.eye(10)
            response = c_first(zero_input, basis) - layer.bias.view(1, -1, *([1] * (len(in_shape) - 1)))
            s_first.project.weight.copy_(response.reshape(10, -1).T)
            s_first.project.bias.zero_()
    x, y = torch.rand(5, 1, 28, 28), torch.tensor([0, 2, 4, 6, 9])
    z = torch.randn(5, 2)
    if where == "encoder":
        torch.testing.assert_close(split.encode(x, y), concat.encode(x, y), rtol=1e-5, atol=1e-5)
    else:
        torch.testing.assert_close(split.decode(z, y), concat.decode(z, y), rtol=1e-5, atol=1e-5)


@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 6), st.integers(1, 4))
def test_split_equals_concat_for_a_linear_first_layer(batch: int, latent: int, classes: int, width: int) -> None:
    """For a linear layer the tie is direct: W = [W_z, W_y], b = b_z + b_y."""
    concat = gv.decoders.MLPDecoder(latent, (width,), hidden=(width,), condition_dim=classes, conditioner="concat")
    split = gv.decoders.MLPDecoder(latent, (width,), hidden=(width,), condition_dim=classes, conditioner="split")
    split.rest.load_state_dict(concat.rest.state_dict())
    w, b = concat.first.layer.weight, concat.first.layer.bias
    with torch.no_grad():
        split.first.layer.weight.copy_(w[:, :latent])
        split.first.project.weight.copy_(w[:, latent:])
        split.first.layer.bias.copy_(b)
        split.first.project.bias.zero_()
    z, c = torch.randn(batch, latent), torch.rand(batch, classes)
    torch.testing.assert_close(split(z, c), concat(z, c))


def test_film_starts_near_and_can_express_the_identity() -> None:
    enc = gv.encoders.ConvEncoder(1, 8, channels=(4,), hidden=(), condition_dim=3, conditioner="film")
    with torch.no_grad():
        for lin in (enc.first.scale, enc.first.shift):
            lin.weight.zero_()
            lin.bias.zero_()
    x, c = torch.rand(2, 1, 8, 8), torch.rand(2, 3)
    torch.testing.assert_close(enc(x, c), enc.rest(enc.first.layer(x)))


# -- custom parts ------------------------------------------------------------------------------------


class SmallEncoder(nn.Module):
    """A user's own feature extractor, not derived from any genvae class."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 24), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_user_encoder_needs_its_feature_size() -> None:
    dec = gv.decoders.MLPDecoder(2, (1, 8, 8), hidden=(8,))
    with pytest.raises(ValueError, match="encoder: expected a module with an `out_features` attribute"):
        gv.VAE(SmallEncoder(), dec, latent_dim=2)
    model = gv.VAE(SmallEncoder(), dec, latent_dim=2, feature_dim=24)
    assert model(torch.rand(3, 1, 8, 8)).params.shape == (3, 1, 8, 8)


def test_a_custom_vae_trains_through_the_public_api() -> None:
    """A user-written encoder, a built-in decoder, the ELBO and Adam: the loss goes down."""
    torch.manual_seed(0)
    x = (torch.rand(64, 1, 8, 8) > 0.5).float()
    x[:32, :, :4] = 1.0  # two kinds of image: structure the model can learn
    model = gv.VAE(SmallEncoder(), gv.decoders.MLPDecoder(2, (1, 8, 8), hidden=(32,)), latent_dim=2, feature_dim=24)
    objective = gv.ELBO()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with torch.no_grad():
        before = objective(model(x), x).total.item()
    for _ in range(60):
        optimizer.zero_grad()
        terms = objective(model(x), x)
        terms.loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = objective(model(x), x).total.item()
    assert after < before - 1.0


def test_names_build_default_parts() -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=4)
    assert isinstance(model.encoder, gv.encoders.MLPEncoder)
    assert model.decoder.latent_dim == 4
    cvae = gv.ConditionalVAE("conv", "conv", latent_dim=3, num_classes=10)
    assert cvae.encoder.condition_dim == cvae.decoder.condition_dim == 10


@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous_bernoulli", "gaussian"])
def test_each_likelihood_gives_a_mean_and_a_distribution(likelihood: str) -> None:
    model = gv.VAE("mlp", "mlp", latent_dim=2, likelihood=likelihood)
    x = torch.rand(3, 1, 28, 28)
    out = model(x)
    dist = model.likelihood.distribution(out.params)
    assert dist.batch_shape == (3,) and dist.event_shape == (1, 28, 28)
    torch.testing.assert_close(dist.log_prob(x), out.log_prob(x).flatten(1).sum(1))
    torch.testing.assert_close(dist.mean, out.recon)


def test_learned_gaussian_scale_is_a_parameter() -> None:
    lik = gv.likelihoods.Gaussian(scale=0.5, learn_scale=True)
    assert [n for n, _ in lik.named_parameters()] == ["log_scale"]
    assert not list(gv.likelihoods.Gaussian(scale=0.5).parameters())


# -- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.rand(2, 3, 28, 28), r"x: expected a tensor of shape \(batch, 1, 28, 28\), got \(2, 3, 28, 28\)"),
        (torch.rand(2, 1, 32, 32), r"x: expected a tensor of shape \(batch, 1, 28, 28\), got \(2, 1, 32, 32\)"),
        (torch.rand(2, 28, 28), r"x: expected a tensor of shape \(batch, 1, 28, 28\), got \(2, 28, 28\)"),
        (torch.full((2, 1, 28, 28), float("nan")), r"x: expected finite values, got NaN"),
        (torch.zeros(0, 1, 28, 28), r"x: expected a non-empty batch, got shape \(0, 1, 28, 28\)"),
    ],
)
def test_bad_images_are_named_errors(x: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gv.presets.seed_vae()(x)


def test_integer_images_are_refused() -> None:
    with pytest.raises(TypeError, match=r"x: expected a floating-point tensor, got dtype torch.uint8"):
        gv.presets.seed_vae().encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize(
    ("y", "error", "message"),
    [
        (None, ValueError, r"y: expected labels for this conditional model"),
        (torch.tensor([0, 10]), ValueError, r"y: expected class indices in \[0, 9\], got 10"),
        (torch.tensor([-1, 2]), ValueError, r"y: expected class indices in \[0, 9\], got -1"),
        (torch.tensor([1, 2, 3]), ValueError, r"y: expected 2 labels \(one per input\) or one, got 3"),
        (torch.zeros(2, 9), ValueError, r"y: expected float condition vectors of shape \(batch, 10\), got \(2, 9\)"),
        (torch.tensor([1.0, 2.0]), ValueError, r"got \(2,\); for class indices pass y\.long\(\)$"),
        (torch.tensor([True, False]), TypeError, r"y: expected integer class indices or float vectors"),
        ("three", TypeError, r"y: expected a tensor, an int or a list of labels, got str"),
    ],
)
def test_bad_labels_are_named_errors(y: object, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        gv.presets.seed_cvae()(torch.rand(2, 1, 28, 28), y)


def test_bad_latents_are_named_errors() -> None:
    with pytest.raises(ValueError, match=r"z: expected a tensor of shape \(batch, 2\) or \(2,\), got \(4, 3\)"):
        gv.presets.seed_vae().decode(torch.zeros(4, 3))


@pytest.mark.parametrize(
    ("build_", "message"),
    [
        (
            lambda: gv.encoders.ConvEncoder(1, 4, kernel_size=5, padding=0),
            r"image_size: expected an image large enough",
        ),
        (
            lambda: gv.decoders.ConvDecoder(2, 1, 28, kernel_size=4),
            r"kernel_size: expected stride \+ 2·padding − kernel_size",
        ),
        (lambda: gv.encoders.MLPEncoder((1, 28, 28), hidden=()), r"hidden: expected at least one entry"),
        (
            lambda: gv.encoders.MLPEncoder((1, 28, 28), activation="relux"),
            r"activation: expected one of .*relu.*got 'relux'",
        ),
        (lambda: gv.decoders.MLPDecoder(0), r"latent_dim: expected a positive integer, got 0"),
        (
            lambda: gv.encoders.ConvEncoder(1, 28, strides=(2, 2, 2)),
            r"strides: expected an int or 2 ints \(one per layer\)",
        ),
        (
            lambda: gv.VAE("mlp", gv.decoders.MLPDecoder(3), latent_dim=2),
            r"decoder: expected a decoder with latent_dim=2, got latent_dim=3",
        ),
        (
            lambda: gv.ConditionalVAE("conv", gv.decoders.ConvDecoder(2), num_classes=10),
            r"decoder: expected a part built with condition_dim=10",
        ),
        (lambda: gv.VAE("transformer"), r"encoder: encoders: unknown name 'transformer'; known names: conv, mlp"),
        (lambda: gv.VAE(likelihood="poisson"), r"likelihood: likelihoods: unknown name 'poisson'"),
        (lambda: gv.presets.seed_cvae(conditioner="add"), r"conditioner: conditioners: unknown name 'add'"),
        (lambda: gv.likelihoods.Gaussian(scale=0.0), r"scale: expected a positive finite number, got 0.0"),
    ],
)
def test_bad_constructor_arguments_are_named_errors(build_, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises((ValueError, KeyError), match=message):
        build_()


def test_a_conditioned_part_called_without_a_condition() -> None:
    enc = gv.encoders.MLPEncoder((1, 4, 4), hidden=(4,), condition_dim=2)
    with pytest.raises(
        ValueError, match=r"c: expected a condition of shape \(batch, 2\) for this conditioned MLPEncoder"
    ):
        enc(torch.rand(1, 1, 4, 4))


def test_input_checks_can_be_switched_off() -> None:
    model = gv.presets.seed_vae()
    model.check_inputs = False
    out = model(torch.full((1, 1, 28, 28), float("nan")))  # no check: NaN flows through
    assert torch.isnan(out.mean).all()


def test_an_unconditional_model_refuses_labels() -> None:
    with pytest.raises(ValueError, match="y: expected None for an unconditional VAE, got labels"):
        gv.presets.seed_vae()(torch.rand(2, 1, 28, 28), torch.tensor([1, 2]))


# -- sizes are checked before samples are allocated (issue 26, item 6) ---------------------------------


SAMPLES = r"341,520 samples of 1×28×28 float32 .*, got 100000000000, which would take 285\.9 TiB"
LATENTS = r"134,217,728 latent vectors of 2 float32 .*, got 1000000000000, which would take 7\.3 TiB"


# sizes that an allocator refuses at once, should the check be missing (a mutant): nothing is drawn
@pytest.mark.parametrize(
    ("draw", "message"),
    [
        (lambda: gv.presets.seed_vae().sample(10**11), SAMPLES),
        (lambda: gv.presets.seed_cvae().sample(10**11, y=3), SAMPLES),
        (lambda: gv.semisupervised.SemiSupervisedVAE("mlp", "mlp", "mlp").sample(10**11, y=3), SAMPLES),
        (lambda: gv.presets.seed_vae().sample_prior(10**12), LATENTS),
        (lambda: gv.VAE("mlp", "mlp", prior="mog").sample_prior(10**12), LATENTS),
        (lambda: gv.VAE("mlp", "mlp", prior="vamp").sample_prior(10**12), LATENTS),
    ],
)
def test_samples_too_large_for_the_memory_are_refused_before_they_are_allocated(
    monkeypatch: pytest.MonkeyPatch, draw: object, message: str
) -> None:
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 2**30)
    with pytest.raises(ValueError, match=rf"^n: expected at most {message}$"):
        draw()  # type: ignore[operator]


def test_samples_that_fit_the_memory_are_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 5 * (784 * 4 + 2 * 4))
    model = gv.presets.seed_vae()
    assert model.sample(5).shape == (5, 1, 28, 28)
    with pytest.raises(ValueError, match=r"^n: expected at most 5 samples"):
        model.sample(6)


CONDITIONAL_PRESETS = {
    "cvae": lambda: gv.presets.seed_cvae(latent_dim=2),
    "m2": lambda: gv.presets.seed_m2(latent_dim=2),
    "hierarchical": lambda: gv.presets.seed_hierarchical((4, 2), num_classes=10),
}


@pytest.mark.parametrize("name", sorted(CONDITIONAL_PRESETS))
@pytest.mark.parametrize("as_sequence", [list, tuple])
def test_a_list_of_labels_is_taken_wherever_a_tensor_of_labels_is(name: str, as_sequence: type) -> None:
    model = CONDITIONAL_PRESETS[name]().eval()
    labels = [1, 2, 3, 4]
    given_, tensor = as_sequence(labels), torch.tensor(labels)
    draws = [model.sample(4, y=y, generator=torch.Generator().manual_seed(0)) for y in (given_, tensor)]
    assert torch.equal(draws[0], draws[1])
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.reconstruct(x, given_), model.reconstruct(x, tensor))


def test_a_list_of_condition_vectors_is_taken_and_a_ragged_one_is_one_line_naming_y() -> None:
    model = gv.presets.seed_cvae(latent_dim=2).eval()
    vectors = [[1.0] + [0.0] * 9, [0.0, 1.0] + [0.0] * 8]
    assert torch.equal(model.condition(vectors, 2), model.condition(torch.tensor(vectors), 2))
    with pytest.raises(TypeError, match=r"^y: expected a tensor, an int, or a list of labels or condition vectors, "):
        model.sample(2, y=[1, [2, 3]])
    with pytest.raises(TypeError, match=r"^y: expected integer class indices or float vectors, got dtype torch.bool"):
        model.sample(2, y=[True, False])


def test_a_vq_vae_takes_a_list_of_labels() -> None:
    model = gv.presets.seed_cvqvae(16, 4, 10, "film").eval()
    images = gv.data.SyntheticDigits(2, seed=1).images
    assert torch.equal(model.codes(images, [1, 2]), model.codes(images, torch.tensor([1, 2])))


@pytest.mark.parametrize("build_model", [gv.presets.seed_vae, gv.presets.seed_vqvae], ids=["vae", "vqvae"])
def test_inputs_of_another_dtype_are_one_line_errors_where_nothing_converts_them(build_model: object) -> None:
    model = build_model().double()  # type: ignore[operator]
    x = torch.rand(2, 1, 28, 28)
    message = (
        r"^x: expected float64 inputs \(the model's dtype\), got float32; convert them with x\.to\(model\.dtype\)$"
    )
    with pytest.raises(TypeError, match=message):
        model(x)
    assert model(x.double()) is not None
    assert model.reconstruct(x).dtype == torch.float64  # reconstruct converts, as the Trainer does
    with torch.autocast("cpu", dtype=torch.bfloat16):  # autocast chooses the layers' dtypes itself
        gv.presets.seed_vae()(x.bfloat16())


@pytest.mark.parametrize("build_model", [gv.presets.seed_vae, gv.presets.seed_hierarchical], ids=["vae", "ladder"])
def test_draws_per_input_beyond_the_memory_are_refused_before_allocating(build_model: object) -> None:
    model = build_model()  # type: ignore[operator]
    x = torch.rand(4, 1, 28, 28)
    message = (
        r"^samples: expected at most [\d,]+ samples of 1×28×28 float32 in all .* got 1000000000 for each of 4 inputs"
    )
    with pytest.raises(ValueError, match=message):
        model(x, samples=10**9)
    assert model(x, samples=3).z.shape[:2] == (3, 4)
