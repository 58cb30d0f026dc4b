"""Model families by composition: every prior × objective × {VAE, CVAE with each conditioner}
builds, trains a few steps, saves, loads and samples; the figures and the IW-NLL work with every
prior; IWAE and VampPrior train under DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae import flows, priors
from tests.helpers import SAFETY_TIMEOUT

SHAPE = (1, 4, 4)
N, BATCH, EPOCHS = 8, 4, 2
PRIORS: dict[str, Callable[[], Any]] = {
    "normal": lambda: "normal",
    "mog": lambda: priors.MixturePrior(components=3),
    "vamp": lambda: priors.VampPrior(components=4),
    "conditional": lambda: "conditional",
    "flow": lambda: flows.FlowPrior(hidden=(6,)),
}
OBJECTIVES: dict[str, Callable[[], gv.Objective]] = {
    "elbo": lambda: gv.ELBO(beta=2.0),
    "iwae": lambda: gv.IWAE(k=3),
    "beta_tcvae": lambda: gv.BetaTCVAE(beta=4.0, dataset_size=N),
}
CONDITIONING = ["none", "split", "concat", "film"]


def model_for(prior: str, conditioning: str) -> gv.VAE:
    torch.manual_seed(0)
    cond = {} if conditioning == "none" else {"condition_dim": 3, "conditioner": conditioning}
    enc = gv.encoders.MLPEncoder(SHAPE, hidden=(8,), **cond)
    dec = gv.decoders.MLPDecoder(2, SHAPE, hidden=(8,), **cond)
    if conditioning == "none":
        return gv.VAE(enc, dec, latent_dim=2, prior=PRIORS[prior]())
    return gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=3, prior=PRIORS[prior]())


def data_for(conditioning: str) -> Any:
    x = torch.bernoulli(torch.full((N, *SHAPE), 0.5), generator=torch.Generator().manual_seed(1))
    return x if conditioning == "none" else (x, torch.arange(N) % 3)


@pytest.mark.parametrize("conditioning", CONDITIONING)
@pytest.mark.parametrize("objective_name", list(OBJECTIVES))
@pytest.mark.parametrize("prior", list(PRIORS))
def test_every_prior_objective_and_conditioner_compose(
    tmp_path: Path, prior: str, objective_name: str, conditioning: str
) -> None:
    if prior == "conditional" and conditioning == "none":
        with pytest.raises(ValueError, match="needs a conditional model"):
            model_for(prior, conditioning)
        return
    model = model_for(prior, conditioning)
    initial_prior = {k: v.clone() for k, v in model.prior.state_dict().items()}
    objective = OBJECTIVES[objective_name]()
    data = data_for(conditioning)
    trainer = gv.Trainer(model, objective, max_epochs=EPOCHS, batch_size=BATCH, device="cpu", seed=0, quiet=True)
    history = trainer.fit(data, data)
    assert len(history) == EPOCHS
    last = history.last
    assert all(torch.isfinite(torch.tensor(v)) for v in last.values())
    if objective_name == "beta_tcvae":
        assert last["train_mi"] + last["train_tc"] + last["train_dim_kl"] == pytest.approx(last["train_kl"], abs=1e-5)
    if objective_name == "iwae":
        assert last["val_total"] <= last["val_recon"] + last["val_kl"] + 1e-5
    # a learnable prior learned
    for key, before in initial_prior.items():
        assert not torch.equal(model.prior.state_dict()[key], before), key
    check_save_load_sample(model, conditioning, tmp_path)


def check_save_load_sample(model: gv.VAE, conditioning: str, folder: Path) -> None:
    again = gv.load(gv.save(model, folder / "model"))
    assert type(again.prior) is type(model.prior)
    for key, value in model.state_dict().items():
        assert torch.equal(again.state_dict()[key], value), key
    label = None if conditioning == "none" else 1
    first = model.sample(3, label, generator=torch.Generator().manual_seed(5))
    second = again.sample(3, label, generator=torch.Generator().manual_seed(5))
    assert first.shape == (3, *SHAPE) and torch.equal(first, second)
    x, y = data_for(conditioning) if conditioning != "none" else (data_for(conditioning), None)
    held = x if y is None else (x, y)
    torch.manual_seed(6)
    nll = gv.evaluation.nll(model, held, k=5).per_sample
    torch.manual_seed(6)
    assert torch.equal(gv.evaluation.nll(again, held, k=5).per_sample, nll)
    assert bool(torch.isfinite(nll).all())


# -- the figures and the metrics with every prior ---------------------------------------------------

matplotlib = pytest.importorskip("matplotlib")


FIGURE_CASES = [(p, c) for p in PRIORS for c in ("none", "concat") if (p, c) != ("conditional", "none")]


@pytest.mark.parametrize(("prior", "conditioning"), FIGURE_CASES)
def test_the_figures_work_with_every_prior(prior: str, conditioning: str) -> None:
    from matplotlib import pyplot as plt

    model = model_for(prior, conditioning)
    data = data_for(conditioning)
    label = None if conditioning == "none" else 2
    figures = [
        gv.viz.latent_manifold(model, y=label, n=3),
        gv.viz.latent_scatter(model, data if conditioning != "none" else (data, torch.arange(N) % 3)),
        gv.viz.reconstructions(model, data, n=4),
    ]
    plt.close("all")
    assert all(fig.axes for fig in figures)
    units = gv.latent_metrics.active_units(model, data)
    assert units.variances.shape == (2,) and 0 <= units.count <= 2


@pytest.mark.parametrize("prior", ["normal", "mog", "vamp", "conditional", "flow"])
def test_class_conditional_samples_with_every_prior(prior: str) -> None:
    from matplotlib import pyplot as plt

    model = model_for(prior, "concat")
    fig = gv.viz.samples(model, n=3)
    plt.close("all")
    assert fig.axes


# -- DDP -------------------------------------------------------------------------------------------

WORKER = Path(__file__).with_name("ddp_families_worker.py")


@pytest.mark.slow
@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not available")
def test_iwae_with_a_vamp_prior_under_ddp_ends_where_one_process_ends(tmp_path: Path) -> None:
    env = dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env.pop("WORLD_SIZE", None)
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    for command, out in (
        ([*run, str(WORKER), str(tmp_path / "ddp")], "ddp"),
        ([sys.executable, str(WORKER), str(tmp_path / "one")], "one"),
    ):
        (tmp_path / out).mkdir()
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT, check=False)
        assert done.returncode == 0, done.stdout + done.stderr
    ddp = torch.load(tmp_path / "ddp" / "result.pt", weights_only=True)
    one = torch.load(tmp_path / "one" / "result.pt", weights_only=True)
    assert ddp["world_size"] == 2 and one["world_size"] == 1
    assert any(k.startswith("prior.pseudo_inputs") for k in one["state"])
    for key, value in one["state"].items():
        torch.testing.assert_close(ddp["state"][key], value, rtol=1e-5, atol=1e-6)
    for a, b in zip(ddp["history"], one["history"], strict=True):
        assert a["train_total"] == pytest.approx(b["train_total"], rel=1e-5)
