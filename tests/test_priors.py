"""Priors: each density against torch.distributions, samples, KLs, the models' routing, errors,
and the default prior leaving today's models exactly as they were."""

from __future__ import annotations

import copy
from functools import partial
from typing import Any

import pytest
import torch
import torch.distributions as D

import genvae as gv
from genvae import priors
from genvae.gaussian import kl_per_dim, log_normal, log_normal_mixture
from tests.helpers import tiny_vae

SHAPE = (1, 4, 4)


tiny = partial(tiny_vae, latent=3, shape=SHAPE, hidden=8, dtype=torch.float64, seed=None)  # unseeded


def randomise(module: torch.nn.Module) -> None:
    """Move every parameter away from its initial value (zero heads, equal weights...)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.5 * torch.randn_like(p))


def mixture(means: torch.Tensor, logvars: torch.Tensor, logits: torch.Tensor) -> D.Distribution:
    components = D.Independent(D.Normal(means, torch.exp(0.5 * logvars)), 1)
    return D.MixtureSameFamily(D.Categorical(logits=logits), components)


# -- densities against torch.distributions -------------------------------------------------------


def test_the_normal_prior_is_the_standard_normal() -> None:
    model = tiny()
    z = torch.randn(7, 3, dtype=torch.float64)
    expected = D.Independent(D.Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
    torch.testing.assert_close(model.prior_log_prob(z), expected.double())


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_the_mixture_prior_is_a_mixture_same_family(conditional: bool) -> None:
    model = tiny("mog", conditional)
    prior = model.prior
    assert isinstance(prior, priors.MixturePrior)
    randomise(prior)
    z = 2 * torch.randn(5, 7, 3, dtype=torch.float64)  # leading sample dimensions are kept
    expected = mixture(prior.means, prior.logvars, prior.logits).log_prob(z)
    torch.testing.assert_close(model.prior_log_prob(z), expected)


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_the_vamp_prior_is_the_mixture_of_the_pseudo_inputs_posteriors(conditional: bool) -> None:
    model = tiny(priors.VampPrior(components=6), conditional)
    randomise(model)
    prior = model.prior
    assert isinstance(prior, priors.VampPrior)
    u = prior.inputs().detach()
    assert u.shape == (6, *SHAPE) and float(u.min()) >= 0 and float(u.max()) <= 1  # hard tanh into [0, 1]
    means, logvars = model.posterior(u, prior.pseudo_conditions if conditional else None)
    z = torch.randn(11, 3, dtype=torch.float64)
    expected = mixture(means, logvars, torch.zeros(6, dtype=torch.float64)).log_prob(z)
    torch.testing.assert_close(model.prior_log_prob(z), expected)
    c = model.condition(torch.zeros(11, dtype=torch.long), 11) if conditional else None
    torch.testing.assert_close(model.prior_log_prob(z, c), expected)  # p(z): the input's condition plays no part


def test_the_conditional_prior_is_a_gaussian_of_the_condition() -> None:
    model = tiny("conditional", conditional=True)
    prior = model.prior
    assert isinstance(prior, priors.ConditionalPrior)
    c = model.condition(torch.tensor([0, 1, 2, 1]), 4)
    z0 = torch.randn(4, 3, dtype=torch.float64)
    # it starts as N(0, I) ...
    torch.testing.assert_close(model.prior_log_prob(z0, c), log_normal(z0))
    randomise(prior)
    mean, logvar = prior.mean_head(c), prior.logvar_head(c)
    z = torch.randn(5, 4, 3, dtype=torch.float64)  # (samples, batch, latent) against (batch, condition)
    expected = D.Independent(D.Normal(mean, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(model.prior_log_prob(z, c), expected)
    # ... and the label changes it
    other = model.condition(torch.tensor([2, 2, 2, 2]), 4)
    assert not torch.allclose(model.prior_log_prob(z0, other), model.prior_log_prob(z0, c))


def test_the_conditional_prior_with_hidden_layers_is_learned() -> None:
    model = tiny(priors.ConditionalPrior(hidden=(5,), activation="tanh"), conditional=True)
    names = {k for k in model.state_dict() if k.startswith("prior.")}
    assert {"prior.net.0.weight", "prior.mean_head.weight", "prior.logvar_head.bias"} <= names


def test_the_mixture_density_is_accurate_in_float32() -> None:
    """The matrix-product expansion of the squared distances, against the direct float64 sum."""
    g = torch.Generator().manual_seed(0)
    means = 3 + torch.randn(50, 20, generator=g, dtype=torch.float64)
    logvars = -4 + torch.rand(50, 20, generator=g, dtype=torch.float64)  # small variances
    log_w = torch.log_softmax(torch.randn(50, generator=g, dtype=torch.float64), 0)
    z = means[torch.arange(200) % 50] + 0.1 * torch.randn(200, 20, generator=g, dtype=torch.float64)
    exact = mixture(means, logvars, log_w).log_prob(z)
    fast32 = log_normal_mixture(z.float(), means.float(), logvars.float(), log_w.float())
    torch.testing.assert_close(fast32.double(), exact, rtol=1e-4, atol=5e-3)


# -- sampling ------------------------------------------------------------------------------------


def test_mixture_samples_have_the_mixtures_moments() -> None:
    model = tiny("mog")
    prior = model.prior
    assert isinstance(prior, priors.MixturePrior)
    randomise(prior)
    z = model.sample_prior(40_000, generator=torch.Generator().manual_seed(0))
    dist = mixture(prior.means.detach(), prior.logvars.detach(), prior.logits.detach())
    torch.testing.assert_close(z.mean(0), dist.mean, atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(0), dist.variance, atol=0.1, rtol=0.03)


def test_conditional_samples_follow_the_condition() -> None:
    model = tiny("conditional", conditional=True)
    randomise(model.prior)
    c = model.condition(2, 20_000)
    z = model.sample_prior(20_000, c, generator=torch.Generator().manual_seed(0))
    prior = model.prior
    assert isinstance(prior, priors.ConditionalPrior)
    mean, logvar = prior.mean_head(c[:1]), prior.logvar_head(c[:1])
    torch.testing.assert_close(z.mean(0), mean[0].detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].detach().exp(), atol=0.05, rtol=0.05)


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_samples_are_reproducible_in_the_models_dtype(prior: str) -> None:
    model = tiny(prior, dtype=torch.float64)
    a = model.sample_prior(5, generator=torch.Generator().manual_seed(3))
    b = model.sample_prior(5, generator=torch.Generator().manual_seed(3))
    assert a.dtype == torch.float64 and a.shape == (5, 3) and torch.equal(a, b)
    assert model.sample(2).dtype == torch.float64


def test_vamp_samples_come_from_the_pseudo_inputs_posteriors() -> None:
    model = tiny(priors.VampPrior(components=1, bounds=None))
    prior = model.prior
    assert isinstance(prior, priors.VampPrior)
    mean, logvar = model.posterior(prior.inputs())
    z = model.sample_prior(20_000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(z.mean(0), mean[0].detach(), atol=0.05, rtol=0)
    torch.testing.assert_close(z.var(0), logvar[0].detach().exp(), atol=0.05, rtol=0.05)


# -- the KL --------------------------------------------------------------------------------------


def posterior_batch(n: int = 6, latent: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    return torch.randn(n, latent, generator=g, dtype=torch.float64), torch.randn(
        n, latent, generator=g, dtype=torch.float64
    )


def test_the_normal_and_conditional_priors_kl_is_analytic_per_dimension() -> None:
    mean, logvar = posterior_batch()
    q = D.Normal(mean, torch.exp(0.5 * logvar))
    normal = tiny().prior
    assert normal.per_dimension
    torch.testing.assert_close(normal.kl(mean, logvar, mean), D.kl_divergence(q, D.Normal(0.0, 1.0)))
    model = tiny("conditional", conditional=True)
    randomise(model.prior)
    c = model.condition(torch.tensor([0, 1, 2, 0, 1, 2]), 6)
    prior = model.prior
    assert isinstance(prior, priors.ConditionalPrior)
    p = D.Normal(prior.mean_head(c), torch.exp(0.5 * prior.logvar_head(c)))
    kl = prior.kl(mean, logvar, mean, c)
    assert kl.shape == (6, 3)
    torch.testing.assert_close(kl, D.kl_divergence(q, p))


@pytest.mark.parametrize("prior", ["normal", "conditional"])
def test_the_monte_carlo_kl_averages_to_the_analytic_kl(prior: str) -> None:
    model = tiny(prior, conditional=prior == "conditional")
    randomise(model.prior)
    mean, logvar = posterior_batch()
    c = model.condition(torch.tensor([0, 1, 2, 0, 1, 2]), 6) if model.conditional else None
    draws = 40_000
    z = mean + torch.randn(draws, *mean.shape, dtype=torch.float64) * torch.exp(0.5 * logvar)
    mc = priors.Prior.kl(model.prior, mean, logvar, z, c)  # the base class's estimate
    estimate, sem = mc.mean(0), mc.std(0) / draws**0.5
    analytic = model.prior.kl(mean, logvar, mean, c).sum(-1)
    assert bool(((estimate - analytic).abs() < 5 * sem + 1e-9).all())


@pytest.mark.parametrize("prior", ["mog", "vamp"])
def test_a_mixture_priors_kl_is_the_per_sample_monte_carlo_estimate(prior: str) -> None:
    model = tiny(prior)
    mean, logvar = posterior_batch()
    z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
    assert not model.prior.per_dimension
    kl = model.prior.kl(mean, logvar, z)
    torch.testing.assert_close(kl, log_normal(z, mean, logvar) - model.prior_log_prob(z))
    out = gv.VAEOutput(torch.zeros(6, *SHAPE), mean, logvar, z, model.likelihood, None, model.prior)
    torch.testing.assert_close(gv.losses.get("kl")(out, torch.zeros(6, *SHAPE)), kl)


def test_free_bits_need_a_per_dimension_kl() -> None:
    model = tiny("vamp")
    x = torch.rand(4, *SHAPE, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"free_bits: expected a KL term with values per latent dimension.*VampPrior"):
        gv.ELBO(free_bits=0.5)(model(x), x)
    cvae = tiny("conditional", conditional=True)
    terms = gv.ELBO(free_bits=0.5)(cvae(x, torch.tensor([0, 1, 2, 0])), x)  # analytic, per dimension: fine
    assert terms.loss >= terms.recon + 3 * 0.5 - 1e-9


# -- the default keeps today's models --------------------------------------------------------------


def test_the_default_prior_adds_no_parameters_and_no_state() -> None:
    vae, cvae = gv.presets.seed_vae(latent_dim=2), gv.presets.seed_cvae(latent_dim=2, num_classes=10)
    assert sum(p.numel() for p in vae.parameters()) == 97_237
    assert sum(p.numel() for p in cvae.parameters()) == 200_725
    assert isinstance(vae.prior, priors.NormalPrior) and isinstance(cvae.prior, priors.NormalPrior)
    assert not [k for k in [*vae.state_dict(), *cvae.state_dict()] if k.startswith("prior")]


def test_the_default_prior_gives_the_same_numbers_as_the_formulas() -> None:
    model = gv.presets.seed_vae(latent_dim=2)
    x = torch.rand(4, 1, 28, 28)
    torch.manual_seed(5)
    out = model(x)
    torch.manual_seed(5)
    eps = torch.randn(4, 2)
    assert torch.equal(out.z, out.mean + eps * torch.exp(0.5 * out.logvar))
    assert torch.equal(gv.losses.get("kl")(out, x), kl_per_dim(out.mean, out.logvar))
    z = torch.randn(6, 2)
    assert torch.equal(model.prior_log_prob(z), log_normal(z))
    drawn = model.sample_prior(3, generator=torch.Generator().manual_seed(7))
    assert torch.equal(drawn, torch.randn(3, 2, generator=torch.Generator().manual_seed(7)))


# -- building, routing, save and load ------------------------------------------------------------


def test_the_registry_holds_the_five_priors() -> None:
    assert gv.priors.names() == ["conditional", "flow", "mog", "normal", "vamp"]
    with pytest.raises(
        gv.registry.UnknownNameError, match="prior: priors: unknown name 'flat'; known names: conditional"
    ):
        tiny("flat")


def test_a_user_registered_prior_is_built_by_name_and_saved(tmp_path: Any) -> None:
    @gv.priors.register("laplace_test")
    class Laplace(priors.Prior):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

        def log_prob(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
            return D.Laplace(0.0, self.scale).log_prob(z).sum(-1)

        def sample(
            self, n: int, c: Any = None, *, generator: Any = None, dtype: Any = None, device: Any = None
        ) -> torch.Tensor:
            u = torch.rand(n, self.latent_dim, generator=generator, dtype=dtype) - 0.5
            return -self.scale * u.sign() * torch.log1p(-2 * u.abs())

    try:
        model = tiny(Laplace(scale=2.0))
        x = torch.rand(3, *SHAPE, dtype=torch.float64)
        assert torch.isfinite(gv.ELBO()(model(x), x).total)  # the Monte-Carlo KL of the base class
        again = gv.load(gv.save(model, tmp_path / "m"))
        assert isinstance(again.prior, Laplace) and again.prior.scale == 2.0
    finally:
        gv.priors.registry.unregister("laplace_test")


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp", "conditional"])
def test_save_and_load_keep_the_prior(tmp_path: Any, prior: str) -> None:
    model = tiny(prior, conditional=True)
    randomise(model)
    again = gv.load(gv.save(model, tmp_path / prior))
    assert type(again.prior) is type(model.prior) and again.dtype == model.dtype == torch.float64
    z = torch.randn(4, 3, dtype=torch.float64)
    c = model.condition(torch.tensor([0, 1, 2, 0]), 4)
    torch.testing.assert_close(again.prior_log_prob(z, c), model.prior_log_prob(z, c), rtol=0, atol=0)


def test_the_vamp_prior_shares_the_models_encoder() -> None:
    model = tiny("vamp")
    assert {k for k in model.state_dict() if k.startswith("prior.")} == {"prior.pseudo_inputs"}
    before = model.prior_log_prob(torch.zeros(1, 3))
    with torch.no_grad():
        model.mean_head.bias.add_(1.0)  # the encoder moves: the prior moves with it
    assert not torch.allclose(model.prior_log_prob(torch.zeros(1, 3)), before)


def test_a_copied_model_has_a_prior_of_its_own() -> None:
    model = tiny("vamp")
    twin = copy.deepcopy(model)
    before = model.prior_log_prob(torch.zeros(1, 3))
    with torch.no_grad():
        twin.mean_head.bias.add_(1.0)
    torch.testing.assert_close(model.prior_log_prob(torch.zeros(1, 3)), before)
    assert not torch.allclose(twin.prior_log_prob(torch.zeros(1, 3)), before)


# -- errors --------------------------------------------------------------------------------------


def test_the_conditional_prior_needs_a_conditional_model() -> None:
    with pytest.raises(ValueError, match=r"prior: the 'conditional' prior p\(z \| y\) needs a conditional model"):
        tiny("conditional")
    cvae = tiny("conditional", conditional=True)
    with pytest.raises(ValueError, match=r"c: expected condition vectors \(batch, 3\) .* got None"):
        cvae.prior_log_prob(torch.zeros(2, 3))


def test_a_prior_object_belongs_to_one_model() -> None:
    prior = priors.MixturePrior(components=3)
    tiny(prior)
    with pytest.raises(ValueError, match="prior: expected a MixturePrior of its own for this model"):
        tiny(prior)


def test_the_vamp_prior_needs_the_datas_shape() -> None:
    class Features(torch.nn.Module):
        out_features = 4

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x[:, :4]

    class Head(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return z

    with pytest.raises(ValueError, match="prior: the 'vamp' prior needs the data's shape"):
        gv.VAE(Features(), Head(), latent_dim=3, prior="vamp")


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: tiny(42), TypeError, "prior: expected a registered name .* or a Prior, got int"),
        (lambda: priors.MixturePrior(components=0), ValueError, "components: expected a positive integer"),
        (lambda: priors.VampPrior(bounds=(1.0, 0.0)), ValueError, r"bounds: expected \(low, high\) with low < high"),
        (lambda: priors.ConditionalPrior(hidden=(0,)), ValueError, "hidden: expected a positive integer"),
        (lambda: priors.ConditionalPrior(activation="sigmoidish"), ValueError, "activation: expected one of"),
        (lambda: tiny().sample_prior(0), ValueError, "n: expected a positive integer"),
    ],
)
def test_bad_prior_arguments_are_named_errors(build: Any, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        build()


def test_a_model_saved_before_priors_existed_loads_with_the_normal_prior(tmp_path: Any) -> None:
    import json

    model = gv.presets.seed_vae()
    folder = gv.save(model, tmp_path / "old")
    document = json.loads((folder / "model.json").read_text())
    assert document["model"]["args"].pop("prior") == "normal"  # what genvae 0.1 wrote had no prior
    (folder / "model.json").write_text(json.dumps(document))
    again = gv.load(folder)
    assert isinstance(again.prior, priors.NormalPrior)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
