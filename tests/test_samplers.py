"""Samplers: the prior sampler against the model's own draws, the EM mixture against its closed
forms, the GMM sampler following a shifted aggregate posterior, one mixture per class, eval mode
and batches while encoding, the registry and the errors."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributions as D

import genvae as gv
from genvae.samplers import GaussianMixture, GaussianMixtureSampler, PriorSampler
from genvae.samplers.mixture import kmeans_plus_plus
from tests.helpers import tiny_data, tiny_vae

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 6, 6)


def shifted_vae(offset: float, conditional: bool = False) -> gv.VAE:
    """A tiny VAE whose posterior means are ``offset`` plus a small spread: the aggregate posterior
    sits far from the prior N(0, I)."""
    model = tiny_vae(latent=3, conditional=conditional)
    with torch.no_grad():
        model.mean_head.weight.mul_(0.1)
        model.mean_head.bias.fill_(offset)
    return model


# -- PriorSampler ---------------------------------------------------------------------------------


def test_the_prior_sampler_draws_what_the_model_draws() -> None:
    model = tiny_vae(latent=3)
    sampler = PriorSampler(model)
    assert sampler.fit(torch.rand(4, *SHAPE)) is sampler  # nothing to fit
    z = sampler.sample_latent(5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(z, model.sample_prior(5, generator=torch.Generator().manual_seed(3)))
    images = sampler.sample(5, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(images, model.sample(5, generator=torch.Generator().manual_seed(3)))


def test_the_prior_sampler_of_a_conditional_model_takes_labels() -> None:
    model = tiny_vae(latent=3, conditional=True, prior="conditional")
    z = PriorSampler(model).sample_latent(4, torch.tensor([0, 1, 2, 0]), generator=torch.Generator().manual_seed(1))
    c = model.condition(torch.tensor([0, 1, 2, 0]), 4)
    assert torch.equal(z, model.sample_prior(4, c, generator=torch.Generator().manual_seed(1)))
    with pytest.raises(ValueError, match=r"^y: expected labels"):
        PriorSampler(model).sample(2)


# -- the EM mixture -------------------------------------------------------------------------------


def test_one_full_component_is_the_sample_mean_and_covariance() -> None:
    points = torch.randn(300, 3, dtype=torch.float64) @ torch.tensor([[2.0, 0, 0], [1, 1, 0], [0, 0.5, 3]]).double()
    mixture = GaussianMixture.fit(points, 1, reg=0.0)
    assert torch.allclose(mixture.means[0], points.mean(0))
    assert torch.allclose(mixture.covariances[0], torch.cov(points.T, correction=0))
    assert torch.allclose(mixture.weights, torch.ones(1, dtype=torch.float64))


def test_one_diagonal_component_is_the_sample_variances() -> None:
    points = torch.randn(300, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0]).double()
    mixture = GaussianMixture.fit(points, 1, covariance="diag", reg=0.0)
    assert torch.allclose(mixture.covariances[0], torch.diag(points.var(0, correction=0)))


def test_the_log_density_is_the_multivariate_normal_mixtures() -> None:
    points = torch.cat([torch.randn(100, 2) - 3, torch.randn(100, 2) * 0.5 + 3]).double()
    mixture = GaussianMixture.fit(points, 2)
    expected = D.MixtureSameFamily(
        D.Categorical(probs=mixture.weights), D.MultivariateNormal(mixture.means, scale_tril=mixture.scale_tril)
    ).log_prob(points)
    assert torch.allclose(mixture.log_prob(points), expected)
    assert math.isclose(mixture.log_likelihood, float(expected.mean()), rel_tol=1e-3)


def test_em_finds_well_separated_clusters_and_their_weights() -> None:
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-10.0, 0.0], [0.0, 10.0], [10.0, 0.0]])
    sizes = [100, 200, 300]
    points = torch.cat([torch.randn(s, 2, generator=g) + c for s, c in zip(sizes, centres, strict=True)])
    mixture = GaussianMixture.fit(points, 3)
    order = mixture.means[:, 0].argsort()
    assert torch.allclose(mixture.means[order].float(), centres, atol=0.3)
    assert torch.allclose(mixture.weights[order].float(), torch.tensor(sizes) / 600.0, atol=1e-3)
    assert mixture.converged


def test_the_fit_is_seeded_and_the_draws_follow_the_generator() -> None:
    points = torch.randn(200, 2)
    a, b = GaussianMixture.fit(points, 4, seed=5), GaussianMixture.fit(points, 4, seed=5)
    assert torch.equal(a.means, b.means) and torch.equal(a.scale_tril, b.scale_tril)
    draws = [a.sample(10, generator=torch.Generator().manual_seed(2)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])


def test_kmeans_plus_plus_copes_with_fewer_distinct_points_than_centres() -> None:
    points = torch.zeros(5, 2, dtype=torch.float64)
    assert kmeans_plus_plus(points, 3, torch.Generator().manual_seed(0)).shape == (3, 2)
    assert GaussianMixture.fit(points, 3).log_likelihood > 0  # a spike of variance reg, no NaN


# -- GaussianMixtureSampler -----------------------------------------------------------------------


def test_the_gmm_sampler_follows_a_shifted_aggregate_posterior() -> None:
    model = shifted_vae(offset=4.0)
    x, _ = tiny_data(200, SHAPE)
    gmm = GaussianMixtureSampler(model, components=3).fit(x)
    z_gmm = gmm.sample_latent(4000, generator=torch.Generator().manual_seed(0))
    z_prior = PriorSampler(model).sample_latent(4000, generator=torch.Generator().manual_seed(0))
    means, _ = gv.inference.posterior_means(model, x)
    assert torch.allclose(z_gmm.mean(0), means.mean(0), atol=0.02)  # the spread of the means is about 0.1
    assert torch.allclose(z_gmm.mean(0), torch.full((3,), 4.0), atol=0.3)
    assert torch.allclose(z_prior.mean(0), torch.zeros(3), atol=0.1)  # the prior ignores the shift
    assert z_gmm.std(0).max() < 0.5 < z_prior.std(0).min()


def test_the_gmm_sampler_decodes_its_latents() -> None:
    model = shifted_vae(offset=1.0)
    gmm = GaussianMixtureSampler(model, components=2).fit(tiny_data(30, SHAPE)[0])
    images = gmm.sample(7, generator=torch.Generator().manual_seed(1))
    z = gmm.sample_latent(7, generator=torch.Generator().manual_seed(1))
    assert images.shape == (7, *SHAPE)
    assert torch.allclose(images, model.decode(z))


def test_gmm_draws_too_large_for_the_memory_are_refused_before_they_are_drawn(monkeypatch: pytest.MonkeyPatch) -> None:
    # sample() checked the decoded samples, sample_latent() nothing: 1e13 draws went to the allocator
    monkeypatch.setattr("genvae._memory.physical_memory", lambda device="cpu": 2**20)
    gmm = GaussianMixtureSampler(tiny_vae(latent=3), components=2).fit(tiny_data(30, SHAPE)[0])
    message = r"^n: expected at most 43,690 latent vectors of 3 float64 .*, got 10000000000000, "
    with pytest.raises(ValueError, match=message):
        gmm.sample_latent(10**13)  # refused at once by an allocator, should the check go
    assert gmm.sample_latent(5).shape == (5, 3)


def test_fitting_encodes_in_eval_mode_in_batches_and_restores_the_mode() -> None:
    model = tiny_vae(latent=3).train()
    seen: list[tuple[bool, int]] = []
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append((m.training, args[0].shape[0])))
    GaussianMixtureSampler(model, components=2).fit(tiny_data(25, SHAPE)[0], batch_size=10)
    assert seen == [(False, 10), (False, 10), (False, 5)]
    assert model.training


def test_fitting_shows_progress_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    GaussianMixtureSampler(tiny_vae(latent=2), components=2).fit(tiny_data(20, SHAPE)[0], progress=True)
    err = capsys.readouterr().err
    assert "encode" in err and "EM" in err
    GaussianMixtureSampler(tiny_vae(latent=2), components=2).fit(tiny_data(20, SHAPE)[0], progress=False)
    assert capsys.readouterr().err == ""


def test_a_conditional_model_gets_one_mixture_per_class() -> None:
    model = tiny_vae(latent=3, conditional=True)
    x, y = tiny_data(60, SHAPE)
    gmm = GaussianMixtureSampler(model, components=1).fit((x, y))
    means, labels = gv.inference.posterior_means(model, (x, y))
    assert labels is not None
    for k, mixture in enumerate(gmm.mixtures):
        assert mixture is not None and torch.allclose(mixture.means[0], means[labels == k].mean(0).double(), atol=1e-6)
    z = gmm.sample_latent(6, 2, generator=torch.Generator().manual_seed(4))
    expected = gmm.mixtures[2].sample(6, generator=torch.Generator().manual_seed(4))  # type: ignore[union-attr]
    assert torch.allclose(z, expected.float())


def test_each_label_draws_from_its_own_classes_mixture() -> None:
    model = tiny_vae(latent=2, conditional=True)
    gmm = GaussianMixtureSampler(model, components=1).fit(tiny_data(30, SHAPE))
    centres = torch.tensor([[-100.0, 0.0], [0.0, 100.0], [100.0, 0.0]], dtype=torch.float64)
    eye = torch.eye(2, dtype=torch.float64).unsqueeze(0)
    gmm.mixtures = [GaussianMixture(torch.ones(1, dtype=torch.float64), c.unsqueeze(0), eye) for c in centres]
    y = torch.tensor([2, 0, 1, 2, 1, 0, 0])
    z = gmm.sample_latent(7, y)
    assert ((z - centres[y].float()).norm(dim=1) < 10).all()
    assert gmm.sample(7, y).shape == (7, *SHAPE)


def test_a_class_without_inputs_cannot_be_sampled() -> None:
    model = tiny_vae(latent=2, conditional=True)
    x, y = tiny_data(9, SHAPE)
    keep = y != 1
    gmm = GaussianMixtureSampler(model, components=5).fit((x[keep], y[keep]))  # 3 inputs per class: 3 components
    assert gmm.mixtures[1] is None and gmm.mixtures[0] is not None and gmm.mixtures[0].means.shape[0] == 3
    with pytest.raises(ValueError, match=r"^y: class 1 had no inputs"):
        gmm.sample_latent(2, 1)


@pytest.mark.parametrize(
    "y",
    [torch.eye(3)[[0, 2]], torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]]), torch.tensor([0.0, 2.0])],
    ids=["one-hot", "soft", "float-indices"],
)
def test_float_labels_are_refused_by_the_gmm_sampler(y: torch.Tensor) -> None:
    # they were reduced to their argmax: a soft label drew from one class's mixture, silently
    model = tiny_vae(latent=2, conditional=True)
    gmm = GaussianMixtureSampler(model, components=1).fit(tiny_data(30, SHAPE))
    message = (
        rf"^y: expected integer class indices \(one mixture per class\), got float labels of shape \({y.shape[0]},"
    )
    with pytest.raises(ValueError, match=message):
        gmm.sample_latent(2, y)
    with pytest.raises(ValueError, match=message):
        gmm.sample(2, y)


def test_float_training_labels_are_refused_by_the_gmm_sampler_before_encoding() -> None:
    # one-hot labels were an IndexError from a boolean mask, after the whole data was encoded
    model = tiny_vae(latent=2, conditional=True)
    seen: list[int] = []
    model.encoder.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    x, y = tiny_data(30, SHAPE)
    with pytest.raises(ValueError, match=r"^data: expected integer class labels \(one mixture per class\), got float "):
        GaussianMixtureSampler(model, components=1).fit((x, torch.nn.functional.one_hot(y, 3).float()))
    assert seen == []


def test_the_repr_says_whether_the_sampler_is_fitted() -> None:
    model = tiny_vae(latent=2)
    gmm = GaussianMixtureSampler(model, components=2)
    assert repr(gmm) == "GaussianMixtureSampler(VAE, components=2, covariance='full', fitted=False)"
    gmm.fit(tiny_data(20, SHAPE)[0], progress=False)
    assert repr(gmm) == "GaussianMixtureSampler(VAE, components=2, covariance='full', fitted=True)"
    assert repr(PriorSampler(model)) == "PriorSampler(VAE)"  # nothing to fit


# -- registry, interface and errors ---------------------------------------------------------------


def test_the_registry_names_the_samplers_and_builds_them_from_the_model() -> None:
    model = tiny_vae(latent=2)
    assert gv.samplers.names() == ["code", "gmm", "prior"]
    sampler = gv.samplers.registry.resolve("gmm", argument="sampler", model=model)
    assert isinstance(sampler, GaussianMixtureSampler) and sampler.model is model
    assert isinstance(gv.samplers.get("prior")(model), gv.samplers.Sampler)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda m: GaussianMixtureSampler(m).sample_latent(2), RuntimeError, "call fit"),
        (lambda m: GaussianMixtureSampler(m, components=0), ValueError, "^components: expected a positive int"),
        (lambda m: GaussianMixtureSampler(m, covariance="tied"), ValueError, "^covariance: expected one of full"),
        (lambda m: GaussianMixtureSampler(m, components=50).fit(torch.rand(10, *SHAPE)), ValueError, "^data: expected"),
        (lambda m: GaussianMixtureSampler(m, components=2).fit(torch.rand(9, *SHAPE)).sample(2, 1), ValueError, "^y: "),
        (lambda m: PriorSampler(m).sample(0), ValueError, "^n: expected a positive int"),
        (lambda m: PriorSampler(m).fit(torch.rand(2, *SHAPE), batch_size=0), ValueError, "^batch_size"),
        (lambda m: PriorSampler("model"), TypeError, "^model: expected a genvae model"),  # type: ignore[arg-type]
    ],
)
def test_errors_name_the_argument(build, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message):
        build(tiny_vae(latent=2))


def test_a_model_with_float_conditions_is_refused_by_the_gmm_sampler() -> None:
    enc = gv.encoders.MLPEncoder(SHAPE, hidden=(8,), condition_dim=2)
    dec = gv.decoders.MLPDecoder(2, SHAPE, hidden=(8,), condition_dim=2)
    model = gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=None, condition_dim=2)
    with pytest.raises(ValueError, match=r"^model: expected a model with class labels"):
        GaussianMixtureSampler(model)


def test_the_prior_sampler_refuses_a_vq_vae_when_built() -> None:
    # it has no continuous p(z): this was an AttributeError ('sample_prior') at the first draw
    vq = gv.VQVAE("mlp", "mlp", codebook_size=4, code_dim=2, grid=3)
    with pytest.raises(TypeError, match=r"^model: expected a model with a continuous latent z .* got VQVAE; "):
        PriorSampler(vq)
    with pytest.raises(
        TypeError, match=r"^model: expected a model with a prior to draw from \(sample_prior\), got Modelish$"
    ):
        PriorSampler(Modelish())


class Modelish(torch.nn.Module):
    """A module with a posterior but no prior."""

    def posterior_params(self) -> None: ...
