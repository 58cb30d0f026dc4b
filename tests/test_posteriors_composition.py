"""The posterior composes with everything else: posterior {gaussian, iaf} × prior {normal, mog,
vamp, conditional, flow} × objective {ELBO, IWAE} × conditioning {none, split, concat, film}, each
building, training a few steps, evaluating the IW-NLL, saving, loading and sampling. A
representative subset (every value of every axis at least once) runs by default; the rest is
marked slow."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae import flows, posteriors, priors

pytestmark = pytest.mark.usefixtures("one_thread")

SHAPE = (1, 4, 4)
N, BATCH = 8, 4
POSTERIORS: dict[str, Callable[[], Any]] = {
    "gaussian": lambda: "gaussian",
    "iaf": lambda: posteriors.IAFPosterior(steps=2, hidden=(6,), context_dim=3),
}
PRIORS: dict[str, Callable[[], Any]] = {
    "normal": lambda: "normal",
    "mog": lambda: priors.MixturePrior(components=3),
    "vamp": lambda: priors.VampPrior(components=4),
    "conditional": lambda: "conditional",
    "flow": lambda: flows.FlowPrior(steps=2, hidden=(6,)),
}
OBJECTIVES: dict[str, Callable[[], gv.Objective]] = {"elbo": lambda: gv.ELBO(), "iwae": lambda: gv.IWAE(k=3)}
CONDITIONING = ["none", "split", "concat", "film"]
#: Run by default: every posterior, prior, objective and conditioning at least once, the new parts
#: (iaf, flow) with each objective and with a conditioned model.
FAST = {
    ("iaf", "flow", "elbo", "none"),
    ("iaf", "flow", "iwae", "film"),
    ("iaf", "normal", "elbo", "split"),
    ("iaf", "vamp", "iwae", "concat"),
    ("iaf", "mog", "elbo", "none"),
    ("iaf", "conditional", "iwae", "split"),
    ("gaussian", "flow", "iwae", "concat"),
}


def cases() -> list[Any]:
    every = itertools.product(POSTERIORS, PRIORS, OBJECTIVES, CONDITIONING)
    return [pytest.param(*case, marks=() if case in FAST else pytest.mark.slow) for case in every]


def model_for(posterior: str, prior: str, conditioning: str) -> gv.VAE:
    torch.manual_seed(0)
    cond = {} if conditioning == "none" else {"condition_dim": 3, "conditioner": conditioning}
    enc = gv.encoders.MLPEncoder(SHAPE, hidden=(8,), **cond)
    dec = gv.decoders.MLPDecoder(2, SHAPE, hidden=(8,), **cond)
    parts = {"prior": PRIORS[prior](), "posterior": POSTERIORS[posterior]()}
    if conditioning == "none":
        return gv.VAE(enc, dec, latent_dim=2, **parts)
    return gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=3, **parts)


@pytest.mark.parametrize(("posterior", "prior", "objective", "conditioning"), cases())
def test_every_posterior_prior_objective_and_conditioner_compose(
    tmp_path: Path, posterior: str, prior: str, objective: str, conditioning: str
) -> None:
    if prior == "conditional" and conditioning == "none":  # p(z | y) needs a y: refused, by name
        with pytest.raises(ValueError, match=r"^prior: the 'conditional' prior p\(z \| y\) needs a conditional model"):
            model_for(posterior, prior, conditioning)
        return
    model = model_for(posterior, prior, conditioning)
    x = torch.bernoulli(torch.full((N, *SHAPE), 0.5), generator=torch.Generator().manual_seed(1))
    y = torch.arange(N) % 3
    data = x if conditioning == "none" else (x, y)
    before = [p.detach().clone() for p in model.q.parameters()]
    history = gv.Trainer(
        model, OBJECTIVES[objective](), max_epochs=1, batch_size=BATCH, device="cpu", seed=0, quiet=True
    ).fit(data)
    assert all(torch.isfinite(torch.tensor(v)) for v in history.last.values())
    assert all(not torch.equal(p, b) for p, b in zip(model.q.parameters(), before, strict=True))  # the flow learned
    nll = gv.evaluation.nll(model, data, k=5)
    assert torch.isfinite(nll.per_sample).all()
    gv.save(model, tmp_path / "model")
    again = gv.load(tmp_path / "model")
    assert type(again.q) is type(model.q) and type(again.prior) is type(model.prior)
    torch.manual_seed(3)
    expected = gv.evaluation.nll(model, data, k=5).per_sample
    torch.manual_seed(3)
    torch.testing.assert_close(gv.evaluation.nll(again, data, k=5).per_sample, expected)
    label = None if conditioning == "none" else 1
    generator = torch.Generator().manual_seed(0)
    samples = again.sample(3, label, generator=generator)
    assert samples.shape == (3, *SHAPE) and torch.isfinite(samples).all()


@pytest.mark.parametrize("conditioning", ["none", "film"])
def test_the_flow_prior_trains_under_bf16_autocast(conditioning: str) -> None:
    # the forward pass draws a bfloat16 z under autocast and the objective scores it outside,
    # where the MAF's float32 layers took it for a dtype mismatch (a RuntimeError)
    model = model_for("iaf", "flow", conditioning)
    x = torch.bernoulli(torch.full((N, *SHAPE), 0.5), generator=torch.Generator().manual_seed(1))
    data = x if conditioning == "none" else (x, torch.arange(N) % 3)
    history = gv.Trainer(model, gv.ELBO(), max_epochs=1, batch_size=BATCH, amp="bf16", quiet=True).fit(data)
    assert torch.isfinite(torch.tensor(history.last["train_total"]))
    z = torch.randn(3, 2).to(torch.bfloat16)
    c = model.condition(torch.tensor([0, 1, 2]), 3) if conditioning != "none" else None
    assert model.prior.log_prob(z, c).dtype == torch.float32
