"""Evaluation: the importance-weighted NLL, Bayes-rule classification, the latent probe, prior match."""

from __future__ import annotations

import math

import pytest
import torch

import genvae as gv
from genvae import evaluation
from tests.helpers import tiny_vae


def prior_encoder_model(latent: int = 1, features: int = 2, scale: float = 0.5) -> gv.VAE:
    """A linear-Gaussian model, x = W z + b + noise, whose encoder proposes the prior itself."""
    torch.manual_seed(0)
    enc = gv.encoders.MLPEncoder((features,), hidden=(4,))
    dec = gv.decoders.MLPDecoder(latent, (features,), hidden=())
    model = gv.VAE(enc, dec, latent_dim=latent, likelihood=gv.likelihoods.Gaussian(scale))
    with torch.no_grad():
        for head in (model.mean_head, model.logvar_head):
            head.weight.zero_()
            head.bias.zero_()
    return model


def test_iw_nll_converges_to_the_exact_log_likelihood() -> None:
    model = prior_encoder_model()
    layer = model.decoder.first
    w, b = layer.weight.detach().double(), layer.bias.detach().double()
    cov = w @ w.T + 0.25 * torch.eye(2, dtype=torch.float64)  # marginal of x = W z + b + N(0, 0.5²)
    x = torch.tensor([[0.3, -0.2], [1.0, 0.5], [-0.8, 0.1]])
    exact = -torch.distributions.MultivariateNormal(b, cov).log_prob(x.double())
    torch.manual_seed(1)
    estimate = evaluation.nll(model, x, k=20_000).per_sample
    torch.testing.assert_close(estimate, exact, atol=0.02, rtol=0)


def test_iw_nll_tightens_with_k() -> None:
    ds = gv.data.SyntheticDigits(64, seed=0)
    model = gv.presets.seed_vae()
    gv.Trainer(model, max_epochs=2, batch_size=16, device="cpu", seed=0).fit(ds)
    torch.manual_seed(0)
    one = evaluation.nll(model, ds, k=1)
    torch.manual_seed(0)
    many = evaluation.nll(model, ds, k=64)
    assert many.nats < one.nats  # log-mean-exp of weights ≥ mean of log weights
    assert many.bits_per_dim == pytest.approx(many.nats / (784 * math.log(2)))


def test_iw_nll_does_not_depend_on_the_chunk_size() -> None:
    model, x = gv.presets.seed_vae(), torch.rand(5, 1, 28, 28)
    torch.manual_seed(3)
    a = evaluation.nll(model, x, k=30, chunk=10_000).per_sample
    torch.manual_seed(3)
    b = evaluation.nll(model, x, k=30, chunk=5 * 30).per_sample  # the same draws, decoded in one go
    torch.manual_seed(3)
    c = evaluation.nll(model, x, k=30, chunk=7).per_sample  # a few at a time: other draws, same law
    torch.testing.assert_close(a, b)
    assert torch.allclose(a, c, rtol=0.05)


def pattern_data(n: int = 300, seed: int = 0) -> gv.data.ImageDataset:
    """Three classes of 6×6 images: a distinct binary pattern each, with 5% of pixels flipped."""
    g = torch.Generator().manual_seed(seed)
    patterns = (torch.rand(3, 1, 6, 6, generator=torch.Generator().manual_seed(99)) > 0.5).float()
    labels = torch.randint(0, 3, (n,), generator=g)
    flips = (torch.rand(n, 1, 6, 6, generator=g) < 0.05).float()
    return gv.data.ImageDataset((patterns[labels] - flips).abs(), labels, num_classes=3)


@pytest.fixture(scope="module")
def trained() -> dict[str, gv.VAE]:
    data = pattern_data()
    models = {"vae": tiny_vae(hidden=32), "cvae": tiny_vae(conditional=True, hidden=32)}
    for model in models.values():
        gv.Trainer(model, lr=3e-3, max_epochs=30, batch_size=32, device="cpu", seed=0).fit(data)
    return models


def test_bayes_rule_classification_with_a_cvae(trained: dict[str, gv.VAE]) -> None:
    test = pattern_data(90, seed=1)
    torch.manual_seed(0)
    result = evaluation.classify(trained["cvae"], test.images, k=20)
    assert result.scores.shape == (90, 3)
    assert result.accuracy(test.labels) > 0.9
    assert torch.equal(result.predictions, result.scores.argmax(1))


def test_classify_adds_the_log_prior(trained: dict[str, gv.VAE]) -> None:
    x = pattern_data(10, seed=2).images
    prior = torch.tensor([0.2, 0.3, 0.5])
    torch.manual_seed(0)
    flat = evaluation.classify(trained["cvae"], x, k=5).scores
    torch.manual_seed(0)
    weighted = evaluation.classify(trained["cvae"], x, k=5, prior=prior).scores
    torch.testing.assert_close(weighted - flat, (prior.log() - math.log(1 / 3)).double().expand(10, 3))
    with pytest.raises(ValueError, match="prior: expected 3 non-negative probabilities summing to 1"):
        evaluation.classify(trained["cvae"], x, prior=torch.tensor([0.5, 0.5, 0.5]))


def test_latent_probe_reads_the_class_from_a_vae_but_not_from_a_cvae(trained: dict[str, gv.VAE]) -> None:
    train, test = pattern_data(300, seed=3), pattern_data(150, seed=4)
    assert evaluation.latent_probe(trained["vae"], train, test) > 0.9
    shuffled = gv.data.ImageDataset(test.images, test.labels[torch.randperm(150)], num_classes=3)
    assert evaluation.latent_probe(trained["vae"], train, shuffled) < 0.6  # labels unrelated to images


def test_prior_match_is_exact_for_an_encoder_that_outputs_the_prior() -> None:
    model = prior_encoder_model(latent=3)
    torch.manual_seed(0)
    match = evaluation.prior_match(model, torch.randn(4000, 2))
    torch.testing.assert_close(match.mean, torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(match.covariance, torch.eye(3, dtype=torch.float64))
    assert match.kl_moment_matched == pytest.approx(0.0, abs=1e-12)
    assert (match.ks_statistic < 1.63 / math.sqrt(4000)).all()  # below the 1% critical value


def test_prior_match_measures_a_shifted_aggregate_posterior() -> None:
    model = prior_encoder_model(latent=2)
    with torch.no_grad():
        model.mean_head.bias.fill_(1.0)
    match = evaluation.prior_match(model, torch.randn(1000, 2))
    assert match.kl_moment_matched == pytest.approx(1.0)  # ½‖m‖² with m = (1, 1)
    assert (match.ks_statistic > 0.3).all()


def test_label_swap_decodes_the_same_z_under_the_new_label(trained: dict[str, gv.VAE]) -> None:
    cvae = trained["cvae"]
    data = pattern_data(4, seed=5)
    swapped = evaluation.label_swap(cvae, data.images, data.labels, 2)
    z, _ = cvae.encode(data.images, data.labels)
    torch.testing.assert_close(swapped, cvae.decode(z, 2))


def test_evaluation_needs_labels_for_a_conditional_model(trained: dict[str, gv.VAE]) -> None:
    with pytest.raises(ValueError, match="data: expected labels for a conditional model, got images only"):
        evaluation.nll(trained["cvae"], torch.rand(2, 1, 6, 6), k=2)
    with pytest.raises(TypeError, match="cvae: expected a conditional model with num_classes, got VAE"):
        evaluation.classify(trained["vae"], torch.rand(2, 1, 6, 6))
    with pytest.raises(
        TypeError, match="data: expected a tensor or numpy array of inputs, an \\(inputs, labels\\) pair"
    ):
        evaluation.nll(trained["vae"], [1, 2], k=2)


def test_one_sample_nll_is_the_trainers_negative_elbo_in_expectation(trained: dict[str, gv.VAE]) -> None:
    """nll(k=1) = −log p(x | z) − log p(z) + log q(z | x) for one draw: in expectation the negative
    ELBO the Trainer reports (analytic KL). Averaged over 12,000 draws on 40 images."""
    model = trained["vae"]
    many = pattern_data(40, seed=7).images.repeat(300, 1, 1, 1)
    one = evaluation.nll(model, many, k=1).per_sample
    elbo = gv.Trainer(model, device="cpu", batch_size=1000).evaluate(many)["total"]
    spread = float(one.reshape(300, 40).std(0).mean())  # of the draws for one image (the images are shared)
    tolerance = 5 * math.sqrt(2) * spread / math.sqrt(len(one))  # both estimates sample z
    logvar = model.encode(many[:40])[1].detach()
    assert tolerance < 0.2 * float(-0.5 * logvar.sum(1).mean())  # a proposal's log-variance is visible
    assert float(one.mean()) == pytest.approx(elbo, abs=tolerance)


def test_prior_match_is_the_moment_matched_gaussian_of_differing_means() -> None:
    model = prior_encoder_model(latent=2)
    with torch.no_grad():
        model.mean_head.weight.normal_(generator=torch.Generator().manual_seed(1))
        model.mean_head.bias.copy_(torch.tensor([0.3, -0.5]))
        model.logvar_head.weight.normal_(std=0.3, generator=torch.Generator().manual_seed(2))
        model.logvar_head.bias.fill_(-1.0)
    x = torch.randn(500, 2, generator=torch.Generator().manual_seed(3))
    match = evaluation.prior_match(model, x)
    means, logvars = (t.detach().double() for t in model.encode(x))
    assert float(means.std(0).min()) > 0.3  # the posterior means differ from input to input
    covariance = torch.cov(means.T, correction=0) + torch.diag(logvars.exp().mean(0))  # law of total variance
    aggregate = torch.distributions.MultivariateNormal(means.mean(0), covariance)
    prior = torch.distributions.MultivariateNormal(
        torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64)
    )
    torch.testing.assert_close(match.mean, means.mean(0))
    torch.testing.assert_close(match.covariance, covariance)
    assert match.kl_moment_matched == pytest.approx(float(torch.distributions.kl_divergence(aggregate, prior)))
