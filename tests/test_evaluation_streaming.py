"""The streaming importance-weighted NLL and Bayes-rule classifier: the same numbers as the two-pass
estimator they replace, the exact log-likelihood of linear-Gaussian models, and the model left
exactly as it was (training flag, weight layout), also after Ctrl-C."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import genvae as gv
from genvae import evaluation
from genvae.gaussian import LOG_2PI
from tests.helpers import tiny_vae

# -- linear-Gaussian models whose log-likelihood and posterior are known in closed form ----------


class Features(nn.Module):
    """The encoder of a linear posterior: its features are the input itself (and the condition)."""

    def __init__(self, features: int, condition_dim: int = 0) -> None:
        super().__init__()
        self.input_shape = (features,)
        self.condition_dim = condition_dim
        self.out_features = features + condition_dim

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return x if c is None else torch.cat([x, c], dim=1)


class Linear(nn.Module):
    """The decoder of x = W z + V c + b + noise."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor, v: torch.Tensor | None = None) -> None:
        super().__init__()
        self.latent_dim = w.shape[1]
        self.output_shape = (w.shape[0],)
        self.condition_dim = 0 if v is None else v.shape[1]
        self.w, self.b = nn.Parameter(w.clone()), nn.Parameter(b.clone())
        self.v = None if v is None else nn.Parameter(v.clone())

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        out = z @ self.w.T + self.b
        return out if self.v is None or c is None else out + c @ self.v.T


SIGMA = 0.5
# orthogonal columns: W^T W is diagonal, so the exact posterior covariance is diagonal
W = torch.tensor([[1.2, 0.3], [-0.6, 0.6], [0.0, 0.9], [0.6, 0.0]])
B = torch.tensor([0.1, -0.3, 0.2, 0.4])
V = torch.tensor([[0.5, -1.0, 0.0], [0.0, 0.8, -0.4], [1.1, 0.0, 0.3], [-0.7, 0.2, 0.9]])


def linear_gaussian(
    conditional: bool = False, off: tuple[float, float, float] | None = None, posterior: object = "gaussian"
) -> gv.VAE:
    """x = W z (+ V c) + b + N(0, σ²I), z ~ N(0, I); the encoder is the exact posterior, or with
    ``off = (scale, shift, extra log-variance)`` a proposal moved away from it (and from the prior);
    ``posterior`` may put a flow on top of it."""
    classes = V.shape[1] if conditional else 0
    enc, dec = Features(W.shape[0], classes), Linear(W, B, V if conditional else None)
    lik = gv.likelihoods.Gaussian(SIGMA)
    model = (
        gv.ConditionalVAE(enc, dec, 2, num_classes=classes, likelihood=lik, posterior=posterior)  # type: ignore[arg-type]
        if conditional
        else gv.VAE(enc, dec, 2, likelihood=lik, posterior=posterior)  # type: ignore[arg-type]
    )
    assert torch.allclose(W.T @ W, torch.diag(torch.diag(W.T @ W)))
    cov = torch.linalg.inv(torch.eye(2) + W.T @ W / SIGMA**2)  # diagonal
    gain = cov @ W.T / SIGMA**2  # posterior mean = gain (x − V c − b)
    scale, shift, widen = off if off is not None else (1.0, 0.0, 0.0)
    weight = torch.cat([gain, -gain @ V], dim=1) if conditional else gain
    with torch.no_grad():
        model.mean_head.weight.copy_(scale * weight)
        model.mean_head.bias.copy_(-scale * gain @ B + shift)
        model.logvar_head.weight.zero_()
        model.logvar_head.bias.copy_(torch.diag(cov).log() + widen)
    return model


def exact_log_likelihood(x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
    """log p(x) (log p(x | c)) of the linear-Gaussian model, in float64."""
    w, b = W.double(), B.double()
    mean = b if c is None else b + c.double() @ V.double().T
    cov = w @ w.T + SIGMA**2 * torch.eye(w.shape[0], dtype=torch.float64)
    return torch.distributions.MultivariateNormal(mean, cov).log_prob(x.double())


def points(n: int = 6, seed: int = 0) -> torch.Tensor:
    return 1.5 * torch.randn(n, W.shape[0], generator=torch.Generator().manual_seed(seed))


def test_at_the_exact_posterior_every_weight_is_the_likelihood() -> None:
    """q = p(z | x): each importance weight is p(x) itself, so any k gives the exact value (a
    proposal density missing its log-variance, or a wrong prior or likelihood, would not)."""
    model, x = linear_gaussian(), points()
    exact = -exact_log_likelihood(x)
    for k in (1, 7, 300):
        torch.testing.assert_close(evaluation.nll(model, x, k=k).per_sample, exact, atol=2e-4, rtol=0)
    weights = evaluation.log_importance_weights(model, x, None, k=50)
    torch.testing.assert_close(weights.double(), -exact[:, None].expand(6, 50), atol=2e-4, rtol=0)


def test_away_from_the_posterior_and_the_prior_the_estimate_converges() -> None:
    model, x = linear_gaussian(off=(0.9, 0.3, 1.0)), points(4, seed=1)
    _, logvar = model.encode(x)
    assert (logvar < -0.3).all()  # not the prior N(0, I) either: log q(z | x) − log p(z) is not 0
    one = evaluation.nll(model, x, k=1).per_sample
    assert (one - (-exact_log_likelihood(x))).abs().max() > 0.2  # off the posterior: k = 1 is not exact
    estimate = evaluation.nll(model, x, k=20_000).per_sample
    torch.testing.assert_close(estimate, -exact_log_likelihood(x), atol=0.03, rtol=0)


@pytest.mark.parametrize("conditional", [False, True], ids=["vae", "cvae"])
def test_with_a_perturbed_iaf_posterior_the_estimate_stays_exact_in_expectation(conditional: bool) -> None:
    """A flow on top of the exact posterior moves q away from p(z | x): the importance weights are
    no longer constant, yet their mean is p(x), because log q(z | x) is the flow's exact density
    (a log q without the flow's log-determinant, or of the Gaussian base, would converge elsewhere)."""
    torch.manual_seed(0)
    iaf = gv.posteriors.IAFPosterior(steps=2, hidden=(8,), context_dim=2)
    # a Gaussian base wider than the posterior: the IAF's gated steps only ever contract
    model = linear_gaussian(conditional, off=(1.0, 0.0, 0.5), posterior=iaf)
    g = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in model.q.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g))
    y = torch.tensor([0, 1, 2, 1])
    c = torch.eye(3)[y] if conditional else None
    # near the data's mean, where the flow's pull towards its shift stays within the posterior's width
    x = B + 0.3 * points(4, seed=3) + (c @ V.T if c is not None else 0)
    data = (x, y) if conditional else x
    exact = -exact_log_likelihood(x, c)
    weights = evaluation.log_importance_weights(model, x, c, k=64)
    assert float(weights.std(1).min()) > 0.3  # q is not the posterior: the weights vary
    assert float((evaluation.nll(model, data, k=1).per_sample - exact).abs().max()) > 0.5
    estimate = evaluation.nll(model, data, k=100_000).per_sample
    torch.testing.assert_close(estimate, exact, atol=0.03, rtol=0)


def test_bayes_rule_scores_are_the_exact_class_likelihoods() -> None:
    """Every image under every class in one pass: the score of (image i, class j) is exactly
    log p(x_i | j) + log p(j), so the classes are not mixed up in the batched layout."""
    model, x = linear_gaussian(conditional=True), points(5, seed=2)
    prior = torch.tensor([0.2, 0.5, 0.3])
    result = evaluation.classify(model, x, k=3, prior=prior, batch_size=2)
    eye = torch.eye(3)
    exact = torch.stack([exact_log_likelihood(x, eye[j].expand(5, 3)) for j in range(3)], dim=1)
    torch.testing.assert_close(result.scores, exact + prior.double().log(), atol=2e-4, rtol=0)
    assert torch.equal(result.predictions, result.scores.argmax(1))


# -- the same numbers as the two-pass estimator ---------------------------------------------------


def reference_nll(
    model: gv.VAE, x: torch.Tensor, y: torch.Tensor | None, k: int, batch: int, chunk: int
) -> torch.Tensor:
    """The estimator genvae had before streaming (kept here as the reference): all (batch, k)
    log-weights held at once, then one logsumexp."""
    out = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch):
            xb = x[i : i + batch]
            c = model.condition(y[i : i + batch], xb.shape[0]) if y is not None else None
            mean, logvar = model.posterior(xb, c)
            std, per_step, log_w = torch.exp(0.5 * logvar), max(1, chunk // xb.shape[0]), []
            for start in range(0, k, per_step):
                m = min(per_step, k - start)
                z = mean + torch.randn(m, *mean.shape) * std
                log_q = -0.5 * ((z - mean) ** 2 / std**2 + logvar + LOG_2PI).sum(-1)
                flat_z, flat_c = z.reshape(m * xb.shape[0], -1), c.repeat(m, 1) if c is not None else None
                log_pz = -0.5 * (flat_z**2 + LOG_2PI).sum(-1).reshape(m, -1)
                params = model.decoder_params(flat_z, flat_c)
                rep = xb.unsqueeze(0).expand(m, *xb.shape).reshape(m * xb.shape[0], *xb.shape[1:])
                log_px = model.likelihood.log_prob(rep, params).reshape(m, xb.shape[0], -1).sum(-1)
                log_w.append((log_px + log_pz - log_q).T)
            out.append(-(torch.logsumexp(torch.cat(log_w, 1), 1) - math.log(k)))
    return torch.cat(out).double()


def small_models() -> dict[str, gv.VAE]:
    mlp = tiny_vae(latent=3, seed=4)
    return {"seed_vae": gv.presets.seed_vae(), "seed_cvae": gv.presets.seed_cvae(), "mlp": mlp}


@pytest.mark.parametrize("name", ["seed_vae", "seed_cvae", "mlp"])
@pytest.mark.parametrize("memory_format", ["keep", "auto"])
def test_streaming_gives_the_two_pass_result_on_fixed_seeds(name: str, memory_format: str) -> None:
    model = small_models()[name].eval()
    shape = model.input_shape
    assert shape is not None
    x = torch.rand(7, *shape, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 9, 1, 1, 5, 2]) if model.conditional else None
    data = (x, y) if y is not None else x
    for k, batch, chunk in ((40, 3, 25), (33, 7, 1000), (5, 4, 2)):  # draws split across chunks, or one
        torch.manual_seed(11)
        expected = reference_nll(model, x, y, k, min(batch, chunk), chunk)  # a chunk holds a draw per image
        torch.manual_seed(11)
        got = evaluation.nll(model, data, k=k, batch_size=batch, chunk=chunk, memory_format=memory_format)
        torch.testing.assert_close(got.per_sample, expected, rtol=2e-6 if memory_format == "keep" else 1e-5, atol=0)


@pytest.mark.parametrize("split", [(5,), (1, 1, 1, 1, 1), (2, 3), (4, 1)])
def test_log_mean_exp_streams_to_the_one_pass_value(split: tuple[int, ...]) -> None:
    values = torch.tensor(
        [[0.0, -1e4, -math.inf, 3.0], [1.0, -1e4 - 2, -math.inf, 800.0], [-2.0, -1e4 + 1, -math.inf, 1.0],
         [0.5, -1e4, -math.inf, -800.0], [0.0, -1e4 + 3, -math.inf, 2.0]],
        dtype=torch.float64,
    )  # fmt: skip
    acc = evaluation.LogMeanExp(4)
    for part in values.split(list(split)):
        acc.add(part)
    expected = torch.logsumexp(values, 0) - math.log(5)
    torch.testing.assert_close(acc.value(), expected)  # −inf stays −inf; no overflow at ±800 or 1e4
    assert acc.value()[2] == -math.inf


# -- the fast path leaves the model as it was -------------------------------------------------------


def layout(model: nn.Module) -> list[tuple[int, tuple[int, ...], bool]]:
    return [(p.data_ptr(), p.stride(), p.requires_grad) for p in model.parameters()]


@pytest.mark.parametrize("channels_last", [False, True])
def test_evaluation_leaves_the_model_exactly_as_it_was(channels_last: bool) -> None:
    model = gv.presets.seed_cvae()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    before, state = layout(model), {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3])
    result = evaluation.nll(model, (x, y), k=4)
    scores = evaluation.classify(model, x, k=2).scores
    assert model.training and layout(model) == before
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert not result.per_sample.is_inference() and not scores.is_inference()  # usable with autograd


def test_ctrl_c_stops_the_evaluation_and_restores_the_model() -> None:
    model = gv.presets.seed_vae().train()
    before = layout(model)
    calls = []

    def interrupt(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
        calls.append(output.shape[0])
        assert module.weight.is_contiguous(memory_format=torch.channels_last)  # the fast layout is in use
        if len(calls) == 3:
            raise KeyboardInterrupt

    handle = model.decoder.rest[-1].register_forward_hook(interrupt)
    with pytest.raises(KeyboardInterrupt):
        evaluation.nll(model, torch.rand(4, 1, 28, 28), k=100, batch_size=2, chunk=20)
    handle.remove()
    assert len(calls) == 3 and model.training and layout(model) == before


def test_bf16_decodes_in_bfloat16_and_scores_in_full_precision() -> None:
    model, x = gv.presets.seed_vae(), torch.rand(3, 1, 28, 28)
    seen, last = [], []  # the hidden transposed convolution's outputs, and the logits'
    handles = [
        model.decoder.rest[2].register_forward_hook(lambda m, i, out: seen.append(out.dtype)),
        model.decoder.rest[-1].register_forward_hook(lambda m, i, out: last.append(out.dtype)),
    ]
    torch.manual_seed(2)
    full = evaluation.nll(model, x, k=64).per_sample
    torch.manual_seed(2)
    half = evaluation.nll(model, x, k=64, bf16=True).per_sample
    for handle in handles:
        handle.remove()
    assert torch.float32 in seen and torch.bfloat16 in seen
    assert set(last) == {torch.float32}  # the last layer adds up its bf16 products in float32
    assert full.dtype == half.dtype == torch.float64
    assert 0 < float((half - full).abs().max()) < 0.5  # rounded, not broken (the benchmark measures it)


def test_chunks_follow_the_memory_budget() -> None:
    model = gv.presets.seed_vae()
    per_latent = 4 * (64 * 7 * 7 + 32 * 14 * 14 + 784)  # at least the decoder's activations of one latent
    small, large = (evaluation.decode_chunk_size(model, budget) for budget in (2**20, 2**28))
    assert 0 < small <= 2**20 // per_latent and large >= 200 * small
    with pytest.raises(ValueError, match="memory_budget: expected a positive integer, got 0"):
        evaluation.decode_chunk_size(model, 0)
    with pytest.raises(ValueError, match="memory_format: expected one of auto, channels_last, keep, got 'nhwc'"):
        evaluation.nll(model, torch.rand(1, 1, 28, 28), k=2, memory_format="nhwc")


def test_progress_bar_only_when_asked_or_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    model, x = gv.presets.seed_vae(), torch.rand(3, 1, 28, 28)
    evaluation.nll(model, x, k=2)  # stderr is not a terminal here
    assert capsys.readouterr().err == ""
    evaluation.nll(model, x, k=2, progress=True)
    err = capsys.readouterr().err
    assert "nll k=2" in err and "img/s" in err and "/3 [" in err
