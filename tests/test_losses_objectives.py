"""The IWAE and β-TCVAE objectives: their bounds and identities, their passes through the model,
their state, and how they train."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import pytest
import torch
import torch.distributions as D

import genvae as gv
from genvae.gaussian import log_normal
from tests.helpers import tiny_vae

SHAPE = (1, 4, 4)


tiny = partial(tiny_vae, latent=3, shape=SHAPE, hidden=8, dtype=torch.float64)  # seeded


def binary(n: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.bernoulli(
        torch.full((n, *SHAPE), 0.5, dtype=torch.float64), generator=torch.Generator().manual_seed(seed)
    )


def repeated_totals(objective: gv.Objective, model: gv.VAE, x: torch.Tensor, repeats: int) -> torch.Tensor:
    """The objective's ``total`` on the same batch, once per fresh draw, ``(repeats,)``."""
    with torch.no_grad():
        return torch.stack([objective.compute(model, x, None).total for _ in range(repeats)])


# -- IWAE -------------------------------------------------------------------------------------


def test_iwae_with_one_sample_is_the_elbo_with_the_monte_carlo_kl() -> None:
    model, x = tiny("mog"), binary()
    torch.manual_seed(3)
    iwae = gv.IWAE(k=1).compute(model, x, None)
    torch.manual_seed(3)
    elbo = gv.ELBO(kl="kl_mc")(model(x), x)
    torch.testing.assert_close(iwae.total, elbo.total)
    torch.testing.assert_close(iwae.loss, elbo.loss)


def test_iwae_with_one_sample_equals_the_analytic_elbo_in_expectation() -> None:
    model, x = tiny(), binary()
    iwae = repeated_totals(gv.IWAE(k=1), model, x, 400)
    elbo = repeated_totals(gv.ELBO(), model, x, 400)
    difference = iwae.mean() - elbo.mean()
    sem = (iwae.var() / 400 + elbo.var() / 400).sqrt()
    assert abs(float(difference)) < 4 * float(sem)


def test_the_iwae_bound_tightens_with_k() -> None:
    model, x = tiny(), binary()
    with torch.no_grad():  # a posterior much wider than the true one, so that more samples help
        model.logvar_head.bias.add_(2.0)
    means = {}
    for k in (1, 5, 50):
        totals = repeated_totals(gv.IWAE(k=k), model, x, 200)
        means[k] = (float(totals.mean()), float(totals.std() / 200**0.5))
    # −L_1 ≥ −L_5 ≥ −L_50 in expectation, each step beyond the noise
    for small, large in ((1, 5), (5, 50)):
        gap = means[small][0] - means[large][0]
        assert gap > 3 * math.hypot(means[small][1], means[large][1]), means
    # and −L_k is an upper bound on −log p(x) that the IW-NLL with many more samples approaches
    nll = gv.evaluation.nll(model, x, k=2000).nats
    assert nll <= means[50][0]


def test_iwae_is_the_log_mean_of_the_importance_weights() -> None:
    model, x = tiny("mog", conditional=True), binary(6)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    torch.manual_seed(4)
    out = model(x, y, samples=7)
    terms = gv.IWAE(k=7)(out, x)
    # recomputed sample by sample through torch.distributions
    log_w = torch.empty(7, 6, dtype=torch.float64)
    for j in range(7):
        px = D.Independent(D.Bernoulli(logits=out.params[j]), 3).log_prob(x)
        q = D.Independent(D.Normal(out.mean, torch.exp(0.5 * out.logvar)), 1).log_prob(out.z[j])
        log_w[j] = px + model.prior_log_prob(out.z[j], out.c) - q
    expected = -(torch.logsumexp(log_w, 0) - math.log(7)).mean()
    torch.testing.assert_close(terms.total, expected)
    assert terms.loss is terms.total
    assert bool(terms.total <= terms.recon + terms.kl)  # Jensen: the bound is tighter than the ELBO


def test_iwae_encodes_once_and_decodes_all_samples_in_one_pass() -> None:
    model, x = tiny(), binary(5)
    calls: dict[str, list[int]] = {"encoder": [], "decoder": []}
    for name in calls:
        getattr(model, name).register_forward_hook(lambda m, args, out, name=name: calls[name].append(args[0].shape[0]))
    terms = gv.IWAE(k=9).compute(model, x, None)
    assert calls == {"encoder": [5], "decoder": [45]}
    terms.loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_multi_sample_forward_has_a_leading_sample_dimension() -> None:
    model, x = tiny("conditional", conditional=True), binary(4)
    out = model(x, torch.tensor([0, 1, 2, 0]), samples=6)
    assert out.samples == 6 and out.z.shape == (6, 4, 3) and out.params.shape == (6, 4, *SHAPE)
    assert out.mean.shape == (4, 3) and out.log_prob(x).shape == (6, 4, *SHAPE)
    # each sample is decoded with its own input's condition
    torch.testing.assert_close(out.params[2], model.decoder_params(out.z[2], out.c))
    assert model(x, torch.tensor([0, 1, 2, 0])).samples is None
    with pytest.raises(ValueError, match="samples: expected a positive integer"):
        model(x, torch.tensor([0, 1, 2, 0]), samples=0)


def test_iwae_state_and_errors() -> None:
    objective = gv.IWAE(k=4)
    assert objective.config() == {"k": 4} and repr(objective) == "IWAE(k=4)"
    state = objective.state_dict()
    gv.IWAE(k=4).load_state_dict(state)
    with pytest.raises(ValueError, match="objective: configured differently from the checkpoint: k 4 → 5"):
        gv.IWAE(k=5).load_state_dict(state)
    with pytest.raises(ValueError, match="k: expected a positive integer"):
        gv.IWAE(k=0)
    model = tiny()
    with pytest.raises(
        ValueError, match=r"x: expected a tensor of the decoder's output shape \(2, 1, 4, 4\), got \(2, 16\)"
    ):
        gv.IWAE(k=2)(model(binary(2), samples=2), torch.zeros(2, 16))


def test_iwae_trains_with_the_trainer_and_reports_the_bound() -> None:
    model, x = tiny("vamp"), binary(16)
    trainer = gv.Trainer(model, gv.IWAE(k=5), max_epochs=3, batch_size=8, device="cpu", seed=0, quiet=True)
    history = trainer.fit(x, x)
    assert history["train_total"][-1] < history["train_total"][0]
    last = history.last
    assert last["train_loss"] == pytest.approx(last["train_total"])
    assert last["val_total"] <= last["val_recon"] + last["val_kl"]  # the bound is tighter than the ELBO
    with pytest.raises(TypeError, match="KLWarmup: expected an objective with a KL weight beta"):
        gv.Trainer(model, gv.IWAE(k=2), max_epochs=1, device="cpu", quiet=True,
                   callbacks=[gv.training.KLWarmup(epochs=1)]).fit(x)  # fmt: skip


# -- β-TCVAE ---------------------------------------------------------------------------------------


def tc_output(prior: str = "normal", n: int = 12) -> tuple[gv.VAE, gv.VAEOutput, torch.Tensor]:
    model, x = tiny(prior, latent=4), binary(n)
    torch.manual_seed(2)
    return model, model(x), x


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp"])
def test_the_three_terms_sum_to_the_kl_estimate(prior: str) -> None:
    model, out, x = tc_output(prior)
    terms = gv.BetaTCVAE(beta=6.0, dataset_size=1000)(out, x)
    extra = terms.extra
    torch.testing.assert_close(extra["mi"] + extra["tc"] + extra["dim_kl"], terms.kl)
    # the KL estimate is log q(z | x) − log p(z) at the drawn z
    q = D.Independent(D.Normal(out.mean, torch.exp(0.5 * out.logvar)), 1)
    torch.testing.assert_close(terms.kl, (q.log_prob(out.z) - model.prior_log_prob(out.z)).mean())
    torch.testing.assert_close(terms.total, terms.recon + terms.kl)


def test_the_terms_use_the_minibatch_weighted_estimate_of_q_z() -> None:
    _, out, _ = tc_output(n=5)
    n_data = 300
    mi, tc, dim_kl, _ = gv.BetaTCVAE(dataset_size=n_data).decomposition(out)
    # log q(z_i) ≈ log (1/(N·M)) Σ_j q(z_i | x_j), written out with loops
    m, latent = out.z.shape
    log_qz, log_qz_dims = torch.empty(m, dtype=torch.float64), torch.zeros(m, dtype=torch.float64)
    for i in range(m):
        dens = [D.Normal(out.mean[j], torch.exp(0.5 * out.logvar[j])).log_prob(out.z[i]) for j in range(m)]
        per_dim = torch.stack(dens)  # (j, d)
        log_qz[i] = torch.logsumexp(per_dim.sum(1), 0) - math.log(n_data * m)
        log_qz_dims[i] = (torch.logsumexp(per_dim, 0) - math.log(n_data * m)).sum()
    log_q = log_normal(out.z, out.mean, out.logvar)
    torch.testing.assert_close(mi, (log_q - log_qz).mean())
    torch.testing.assert_close(tc, (log_qz - log_qz_dims).mean())
    torch.testing.assert_close(dim_kl, (log_qz_dims - log_normal(out.z)).mean())
    assert latent == 4


def test_the_data_set_size_shifts_the_terms_but_not_the_gradients() -> None:
    model, out, x = tc_output()
    values, grads = [], []
    for size in (None, 5000):
        model.zero_grad()
        terms = gv.BetaTCVAE(alpha=0.5, beta=4.0, gamma=2.0, dataset_size=size)(out, x)
        terms.loss.backward(retain_graph=True)
        values.append(terms)
        grads.append([p.grad.clone() for p in model.parameters() if p.grad is not None])
    shift = math.log(5000)
    torch.testing.assert_close(values[1].extra["mi"], values[0].extra["mi"] + shift)
    torch.testing.assert_close(values[1].extra["tc"], values[0].extra["tc"] + 3 * shift)  # (latent_dim − 1) · log N
    torch.testing.assert_close(values[1].extra["dim_kl"], values[0].extra["dim_kl"] - 4 * shift)
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b)


def test_with_unit_weights_the_loss_is_the_elbos() -> None:
    model, out, x = tc_output("mog")
    torch.testing.assert_close(gv.BetaTCVAE(1, 1, 1)(out, x).loss, gv.ELBO(kl="kl_mc")(out, x).loss)
    # and, with the normal prior, the analytic ELBO's in expectation
    model, x = tiny(latent=4), binary(12)
    tc = repeated_totals(_LossAsTotal(gv.BetaTCVAE(1, 1, 1)), model, x, 400)
    elbo = repeated_totals(gv.ELBO(), model, x, 400)
    assert abs(float(tc.mean() - elbo.mean())) < 4 * float((tc.var() / 400 + elbo.var() / 400).sqrt())


class _LossAsTotal(gv.Objective):
    """Reports an objective's loss as its total, to average it with repeated_totals."""

    def __init__(self, inner: gv.Objective) -> None:
        super().__init__()
        self.inner = inner

    def __call__(self, out: gv.VAEOutput, x: torch.Tensor) -> Any:
        terms = self.inner(out, x)
        terms.total = terms.loss
        return terms


def test_the_weights_weigh_their_terms() -> None:
    _, out, x = tc_output()
    terms = gv.BetaTCVAE(alpha=2.0, beta=3.0, gamma=0.5)(out, x)
    e = terms.extra
    torch.testing.assert_close(terms.loss, terms.recon + 2 * e["mi"] + 3 * e["tc"] + 0.5 * e["dim_kl"])


def test_beta_tcvae_trains_and_reports_its_terms_in_the_history() -> None:
    model, x = tiny(latent=4), binary(16)
    trainer = gv.Trainer(model, gv.BetaTCVAE(beta=4.0, dataset_size=16), max_epochs=2, batch_size=8, device="cpu",
                         seed=0, quiet=True)  # fmt: skip
    last = trainer.fit(x, x).last
    for split in ("train", "val"):
        parts = last[f"{split}_mi"] + last[f"{split}_tc"] + last[f"{split}_dim_kl"]
        assert parts == pytest.approx(last[f"{split}_kl"], rel=1e-6, abs=1e-9)


def test_the_kl_warmup_scales_all_three_weights() -> None:
    model, x = tiny(latent=4), binary(16)
    objective = gv.BetaTCVAE(alpha=1.0, beta=6.0, gamma=2.0)
    warmup = gv.training.KLWarmup(epochs=2)
    trainer = gv.Trainer(model, objective, max_epochs=1, batch_size=8, device="cpu", seed=0, quiet=True,
                         callbacks=[warmup])  # fmt: skip
    trainer.fit(x)
    assert objective.weights == pytest.approx((0.5, 3.0, 1.0))  # halfway
    trainer.max_epochs = 2
    trainer.fit(x)
    assert objective.weights == pytest.approx((1.0, 6.0, 2.0))  # the configured weights at the end
    assert (objective.alpha, objective.beta, objective.gamma) == (1.0, 6.0, 2.0)


def test_beta_tcvae_state_and_errors() -> None:
    objective = gv.BetaTCVAE(alpha=1.0, beta=6.0, gamma=1.0, dataset_size=100)
    assert objective.config() == {"alpha": 1.0, "beta": 6.0, "gamma": 1.0, "dataset_size": 100, "reconstruction": "nll"}
    objective.set_factor("warmup", 0.25)
    again = gv.BetaTCVAE(alpha=1.0, beta=6.0, gamma=1.0, dataset_size=100)
    again.load_state_dict(objective.state_dict())
    assert again.weights == pytest.approx((0.25, 1.5, 0.25))
    with pytest.raises(ValueError, match=r"beta 6\.0 → 2\.0"):
        gv.BetaTCVAE(beta=2.0, dataset_size=100).load_state_dict(objective.state_dict())
    with pytest.raises(ValueError, match="beta: expected a finite number >= 0, got -1"):
        gv.BetaTCVAE(beta=-1)
    with pytest.raises(ValueError, match="dataset_size: expected a positive integer"):
        gv.BetaTCVAE(dataset_size=0)
    model = tiny()
    with pytest.raises(ValueError, match="out: expected one z per input for BetaTCVAE, got 3 samples per input"):
        objective(model(binary(2), samples=3), binary(2))
