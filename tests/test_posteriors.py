"""Posteriors and flows: the MADE is autoregressive, each flow's log-determinant is the exact
log |det J| (against autograd), the IAF posterior's log q(z | x) is its true density, the flow
prior integrates to 1 and samples from itself, every objective goes through the output's log q,
and models with both flows save and load."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae import flows, posteriors
from tests.helpers import tiny_vae

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)
tiny = partial(tiny_vae, shape=SHAPE, hidden=8, dtype=torch.float64)


def perturb(module: torch.nn.Module, scale: float = 0.3, seed: int = 0) -> None:
    """Move every parameter away from its (identity-like) initial value, reproducibly."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def jacobian_log_det(f: object, z: torch.Tensor) -> torch.Tensor:
    """log |det ∂f/∂z| of a map of one vector, by autograd."""
    jac = torch.autograd.functional.jacobian(f, z)  # type: ignore[arg-type]
    return torch.linalg.slogdet(jac).logabsdet


# -- the MADE and the two flows ------------------------------------------------------------------


@pytest.mark.parametrize("hidden", [(5,), (7, 6)])
def test_each_made_output_depends_on_exactly_the_earlier_inputs(hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    made = flows.MADE(4, hidden, context_features=2, activation="tanh").double()
    perturb(made)
    # the masks connect output d with every input before d (widths ≥ features − 1) and no other
    paths = made.out.mask
    for layer in reversed(made.hidden):
        paths = paths @ layer.mask
    earlier = torch.ones(4, 4, dtype=torch.float64).tril(-1).bool()
    assert torch.equal(paths > 0, earlier.repeat(2, 1))
    z, c = torch.randn(4, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    for part in (0, 1):  # shift, log-scale
        jac = torch.autograd.functional.jacobian(lambda v, p=part: made(v, c)[p], z)
        assert (jac.triu() == 0).all() and (jac[earlier] != 0).all()
        # the context reaches every output, the first one included
        assert (torch.autograd.functional.jacobian(lambda v, p=part: made(z, v)[p], c) != 0).any(1).all()


def test_the_iaf_log_det_is_the_jacobians_and_its_update_is_the_gated_one() -> None:
    torch.manual_seed(1)
    flow = flows.InverseAutoregressiveFlow(3, steps=3, hidden=(6,), context_features=2).double()
    perturb(flow, 0.5)
    z, h = torch.randn(3, dtype=torch.float64), torch.randn(2, dtype=torch.float64)
    _, log_det = flow(z, h)
    torch.testing.assert_close(log_det, jacobian_log_det(lambda v: flow(v, h)[0], z))
    made = flow.steps[0]
    m, s = made(z, h)
    one_step = flows.InverseAutoregressiveFlow(3, steps=1, hidden=(6,), context_features=2).double()
    one_step.steps[0].load_state_dict(made.state_dict())
    gate = torch.sigmoid(s)
    torch.testing.assert_close(one_step(z, h)[0], gate * z + (1 - gate) * m)


def test_the_maf_log_det_is_the_jacobians_and_inverse_undoes_it() -> None:
    torch.manual_seed(2)
    flow = flows.MaskedAutoregressiveFlow(3, steps=2, hidden=(6,), context_features=2).double()
    perturb(flow, 0.5)
    z, c = torch.randn(5, 3, dtype=torch.float64), torch.randn(5, 2, dtype=torch.float64)
    u, log_det = flow(z, c)
    for i in range(5):
        expected = jacobian_log_det(lambda v, i=i: flow(v, c[i])[0], z[i])
        torch.testing.assert_close(log_det[i], expected)
    torch.testing.assert_close(flow.inverse(u, c), z)


# -- the flow prior: a normalised density that samples from itself --------------------------------


def grid(half_width: float = 18.0, n: int = 1001) -> tuple[torch.Tensor, float]:
    """A fine square grid over a wide box (the perturbed flows have heavy tails) and its cell area."""
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    zz = torch.stack(torch.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return zz, float(axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_the_flow_prior_integrates_to_one(conditional: bool) -> None:
    model = tiny(flows.FlowPrior(steps=2, hidden=(8,)), conditional, latent=2, seed=3)
    perturb(model.prior, 0.3)
    zz, cell = grid()
    c = torch.eye(3, dtype=torch.float64)[1].expand(zz.shape[0], 3) if conditional else None
    with torch.no_grad():
        log_p = model.prior_log_prob(zz, c)
        assert (log_p - torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1)).abs().max() > 0.3  # not N(0, I)
        total = float(log_p.exp().sum() * cell)
    assert total == pytest.approx(1.0, abs=1e-3)


def test_flow_prior_samples_have_the_densitys_mean_and_entropy() -> None:
    model = tiny(flows.FlowPrior(steps=2, hidden=(8,)), latent=2, seed=4)
    perturb(model.prior, 0.3)
    zz, cell = grid()
    with torch.no_grad():
        p = model.prior_log_prob(zz).exp() * cell
        mean, entropy = (p[:, None] * zz).sum(0), float(-(p * model.prior_log_prob(zz)).sum())
        draws = model.sample_prior(20_000, generator=torch.Generator().manual_seed(0))
        log_p = model.prior_log_prob(draws)
    assert draws.dtype == torch.float64
    se = draws.std(0) / math.sqrt(draws.shape[0])
    assert ((draws.mean(0) - mean).abs() < 4 * se).all()
    assert float(-log_p.mean()) == pytest.approx(entropy, abs=4 * float(log_p.std()) / math.sqrt(20_000))


def test_the_conditional_flow_prior_needs_the_condition() -> None:
    model = tiny("flow", conditional=True, latent=2)
    assert model.prior.conditional
    with pytest.raises(ValueError, match=r"^c: expected condition vectors"):
        model.prior_log_prob(torch.zeros(2, 2, dtype=torch.float64))
    assert model.sample(3, y=1).shape == (3, *SHAPE)


# -- the IAF posterior --------------------------------------------------------------------------


def iaf_model(context_dim: int = 3, conditional: bool = False) -> gv.VAE:
    model = tiny(
        conditional=conditional,
        latent=3,
        posterior=posteriors.IAFPosterior(steps=2, hidden=(6,), context_dim=context_dim),
    )
    perturb(model.q, 0.5)
    return model


def test_iaf_log_q_is_the_density_of_its_draws() -> None:
    """log q(z | x) = log N(z₀; mean, var) − log |det ∂z/∂z₀|, the change of variables, by autograd."""
    model, x = iaf_model(), torch.rand(2, *SHAPE, dtype=torch.float64)
    params = model.posterior_params(x)
    torch.manual_seed(5)
    z, log_q = model.sample_posterior(params, samples=4)
    assert z.shape == (4, 2, 3) and log_q.shape == (4, 2)
    torch.manual_seed(5)
    z0 = params.mean + torch.randn(4, 2, 3, dtype=torch.float64) * (0.5 * params.logvar).exp()
    h = model.q.context(params.features)
    for j in range(4):
        for i in range(2):
            jac = jacobian_log_det(lambda v, i=i: model.q.flow(v, h[i])[0], z0[j, i])
            base = torch.distributions.Normal(params.mean[i], (0.5 * params.logvar[i]).exp()).log_prob(z0[j, i]).sum()
            torch.testing.assert_close(log_q[j, i], base - jac)


def test_a_forward_pass_carries_the_posteriors_log_q_and_kind() -> None:
    model, x = iaf_model(), torch.rand(5, *SHAPE, dtype=torch.float64)
    out = model(x)
    assert not out.gaussian_posterior and out.log_q.shape == (5,)
    torch.testing.assert_close(out.kl(), out.log_q - model.prior_log_prob(out.z))
    assert out.kl().shape == (5,)  # the Monte-Carlo KL, per input
    gaussian = tiny(latent=3)(x)
    assert gaussian.gaussian_posterior and gaussian.kl().shape == (5, 3)  # analytic, per dimension
    torch.testing.assert_close(
        gaussian.log_q,
        torch.distributions.Normal(gaussian.mean, (0.5 * gaussian.logvar).exp()).log_prob(gaussian.z).sum(-1),
    )


def test_the_reconstruction_decodes_the_flows_image_of_the_mean() -> None:
    model, x = iaf_model(), torch.rand(3, *SHAPE, dtype=torch.float64)
    params = model.posterior_params(x)
    code = model.q.flow(params.mean, model.q.context(params.features))[0]
    torch.testing.assert_close(model.posterior_location(x), code)
    torch.testing.assert_close(model.reconstruct(x), model.decode(code))
    assert not torch.allclose(code, params.mean)


def test_the_objectives_use_the_flows_log_q() -> None:
    model, x = iaf_model(), torch.bernoulli(torch.full((4, *SHAPE), 0.5, dtype=torch.float64))
    torch.manual_seed(0)
    out = model(x, samples=6)
    terms = gv.IWAE(k=6)(out, x)
    log_w = out.log_prob(x).reshape(6, 4, -1).sum(-1) + model.prior_log_prob(out.z) - out.log_q
    expected = -(torch.logsumexp(log_w, 0) - math.log(6)).mean()
    torch.testing.assert_close(terms.total, expected)
    one = model(x)
    elbo = gv.ELBO()(one, x)
    torch.testing.assert_close(elbo.kl, (one.log_q - model.prior_log_prob(one.z)).mean())
    with pytest.raises(ValueError, match=r"^posterior: BetaTCVAE"):
        gv.BetaTCVAE()(one, x)
    with pytest.raises(ValueError, match=r"^free_bits: .*flow posterior"):
        gv.ELBO(free_bits=0.1)(one, x)


def test_unknown_and_shared_posteriors_are_errors() -> None:
    def build(posterior: object) -> gv.VAE:
        return gv.VAE(
            gv.encoders.MLPEncoder(SHAPE), gv.decoders.MLPDecoder(2, SHAPE), latent_dim=2, posterior=posterior
        )

    with pytest.raises(KeyError, match="posterior"):
        build("nope")
    with pytest.raises(TypeError, match=r"^posterior: expected a registered name"):
        build(torch.nn.Linear(2, 2))
    part = posteriors.IAFPosterior()
    build(part)
    with pytest.raises(ValueError, match=r"^posterior: expected a IAFPosterior of its own"):
        build(part)
    with pytest.raises(ValueError, match=r"^steps"):
        posteriors.IAFPosterior(steps=0)


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_a_model_with_an_iaf_posterior_and_a_flow_prior_saves_and_loads(tmp_path: Path, conditional: bool) -> None:
    torch.manual_seed(0)
    model = tiny_vae("flow", conditional, latent=3, shape=SHAPE, hidden=8)
    model = type(model)(
        model.encoder, model.decoder, latent_dim=3, **({"num_classes": 3} if conditional else {}),
        prior=flows.FlowPrior(steps=3, hidden=(7,)),
        posterior=posteriors.IAFPosterior(steps=3, hidden=(5, 4), context_dim=2),
    )  # fmt: skip
    perturb(model.q)
    perturb(model.prior)
    gv.save(model, tmp_path / "m")
    again = gv.load(tmp_path / "m")
    assert isinstance(again.q, posteriors.IAFPosterior) and isinstance(again.prior, flows.FlowPrior)
    assert (again.q.steps, again.q.hidden, again.q.context_dim) == (3, (5, 4), 2)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    x, y = torch.rand(4, *SHAPE), (torch.arange(4) % 3 if conditional else None)
    c = model.condition(y, 4)
    torch.testing.assert_close(again.posterior_location(x, c), model.posterior_location(x, c))
    torch.testing.assert_close(again.prior_log_prob(torch.ones(2, 3), c[:2] if c is not None else None),
                               model.prior_log_prob(torch.ones(2, 3), c[:2] if c is not None else None))  # fmt: skip


def test_m2_trains_with_an_iaf_posterior_and_a_flow_prior(tmp_path: Path) -> None:
    """The semi-supervised bound's KL of z comes from the output, so it is the flow's Monte-Carlo KL."""
    torch.manual_seed(0)
    cond = {"condition_dim": 3, "conditioner": "split"}
    model = gv.SemiSupervisedVAE(
        gv.encoders.MLPEncoder(SHAPE, hidden=(8,), **cond), gv.decoders.MLPDecoder(2, SHAPE, hidden=(8,), **cond),
        gv.classifiers.MLPClassifier(3, SHAPE, hidden=(8,)), latent_dim=2, num_classes=3,
        prior=flows.FlowPrior(hidden=(6,)), posterior=posteriors.IAFPosterior(hidden=(6,)),
    )  # fmt: skip
    x = torch.bernoulli(torch.full((8, *SHAPE), 0.5), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, -1, -1, -1, 0, -1])
    out = model(x, y, semi_supervised=True)
    assert not out.vae.gaussian_posterior
    torch.testing.assert_close(out.vae.kl(), out.vae.log_q - model.prior_log_prob(out.vae.z, out.vae.c))
    history = gv.Trainer(model, max_epochs=1, batch_size=4, device="cpu", seed=0, quiet=True).fit((x, y))
    assert all(math.isfinite(v) for v in history.last.values())
    gv.save(model, tmp_path / "m2")
    assert isinstance(gv.load(tmp_path / "m2").q, posteriors.IAFPosterior)


def test_the_figures_and_latent_metrics_use_the_flows_codes() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib import pyplot as plt

    model = tiny(flows.FlowPrior(hidden=(6,)), latent=2, posterior=posteriors.IAFPosterior(hidden=(6,)))
    perturb(model.q)
    x = torch.rand(8, *SHAPE, dtype=torch.float64)
    codes, _ = gv.inference.posterior_means(model, x)
    torch.testing.assert_close(codes, model.posterior_location(x).detach())
    figures = [
        gv.viz.latent_manifold(model, n=3),
        gv.viz.latent_scatter(model, (x, torch.arange(8) % 3)),
        gv.viz.reconstructions(model, x, n=4),
    ]
    plt.close("all")
    assert all(fig.axes for fig in figures)
    assert gv.latent_metrics.active_units(model, x).variances.shape == (2,)
