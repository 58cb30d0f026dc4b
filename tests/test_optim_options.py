"""The opt-in optimisation options (genvae.training.options): gradient normalisation and clipping,
per-group learning rates, the log-variance clamp and the VampPrior's pseudo-inputs from data."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import genvae as gv
from genvae.priors import VampPrior
from genvae.training.options import param_groups

pytestmark = pytest.mark.usefixtures("one_thread")


def small(prior: Any = "normal", **kwargs: Any) -> gv.VAE:
    torch.manual_seed(0)
    return gv.VAE(
        gv.encoders.MLPEncoder((1, 6, 6), hidden=(8,)),
        gv.decoders.MLPDecoder(2, (1, 6, 6), hidden=(8,)),
        latent_dim=2,
        prior=prior,
        **kwargs,
    )


def data(n: int = 32) -> torch.Tensor:
    return torch.rand(n, 1, 6, 6, generator=torch.Generator().manual_seed(0))


def gradient_norms(trainer: gv.Trainer) -> list[list[float]]:
    """The gradients' norms (per tensor) seen by each optimiser step."""
    seen: list[list[float]] = []

    def record(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        seen.append([float(p.grad.norm()) for g in optimizer.param_groups for p in g["params"] if p.grad is not None])

    trainer.optimizer.register_step_pre_hook(record)
    return seen


def test_normalize_gradients_gives_every_tensor_a_unit_gradient() -> None:
    trainer = gv.Trainer(small(), max_epochs=1, batch_size=16, seed=0, quiet=True, normalize_gradients=True)
    seen = gradient_norms(trainer)
    trainer.fit(data())
    assert len(seen) == 2 and all(norm == pytest.approx(1.0, rel=1e-4) for step in seen for norm in step)
    plain = gv.Trainer(small(), max_epochs=1, batch_size=16, seed=0, quiet=True)
    seen = gradient_norms(plain)
    plain.fit(data())
    assert any(abs(norm - 1.0) > 0.1 for step in seen for norm in step)  # not so without the option
    assert trainer.settings()["normalize_gradients"] is True and "normalize_gradients" not in plain.settings()


def test_clip_grad_norm_bounds_the_global_norm() -> None:
    trainer = gv.Trainer(small(), max_epochs=1, batch_size=16, seed=0, quiet=True, clip_grad_norm=0.5)
    seen = gradient_norms(trainer)
    trainer.fit(data())
    assert all(sum(n**2 for n in step) ** 0.5 == pytest.approx(0.5, rel=1e-4) for step in seen)  # they were larger
    plain = gv.Trainer(small(), max_epochs=1, batch_size=16, seed=0, quiet=True)
    seen = gradient_norms(plain)
    plain.fit(data())
    assert all(sum(n**2 for n in step) ** 0.5 > 0.5 for step in seen)
    with pytest.raises(ValueError, match="clip_grad_norm: expected a norm > 0 or None, got 0"):
        gv.Trainer(small(), quiet=True, clip_grad_norm=0)


def test_per_group_learning_rates_move_each_group_at_its_rate() -> None:
    model = small(VampPrior(components=4))
    prior_before = model.prior.pseudo_inputs.detach().clone()
    encoder_before = model.encoder.first.weight.detach().clone()
    trainer = gv.Trainer(model, max_epochs=1, batch_size=16, quiet=True, lr={"prior": 0.0, "default": 1e-2})
    assert sorted(group["lr"] for group in trainer.optimizer.param_groups) == [0.0, 1e-2]
    trainer.fit(data())
    assert torch.equal(model.prior.pseudo_inputs, prior_before)  # lr 0: the prior did not move
    assert not torch.equal(model.encoder.first.weight, encoder_before)
    assert trainer.settings()["lr"] == [0.0, 1e-2]


def test_per_group_learning_rates_are_checked() -> None:
    model = small()
    with pytest.raises(ValueError, match="lr: expected a 'default' rate"):
        param_groups(model, {"encoder": 1e-3})
    with pytest.raises(ValueError, match=r"lr: expected submodule names of the model .* got 'encodr'"):
        param_groups(model, {"encodr": 1e-3, "default": 1e-3})
    groups = param_groups(model, {"encoder": 1e-3, "default": 5e-4})
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert [g["name"] for g in groups] == ["encoder", "default"]


def test_the_logvar_clamp_bounds_the_posterior_and_is_off_by_default() -> None:
    clamped, free = small(logvar_range=(-6.0, 2.0)), small()
    for model in (clamped, free):
        with torch.no_grad():
            model.logvar_head.bias.fill_(10.0)
    assert float(clamped.encode(data(4))[1].detach().max()) == 2.0
    assert float(free.encode(data(4))[1].detach().min()) > 5.0
    with pytest.raises(ValueError, match="logvar_range: expected finite"):
        small(logvar_range=(2.0, -6.0))
    cvae = gv.ConditionalVAE("mlp", "mlp", latent_dim=2, num_classes=3, logvar_range=(-1.0, 0.0))
    assert float(cvae.encode(torch.rand(2, 1, 28, 28), torch.tensor([0, 1]))[1].detach().max()) <= 0.0


def test_vamp_pseudo_inputs_start_from_training_images_when_asked() -> None:
    x = data(32)
    model = small(VampPrior(components=5, init="data"))
    trainer = gv.Trainer(model, max_epochs=1, batch_size=16, seed=0, quiet=True, lr={"prior": 0.0, "default": 1e-3})
    trainer.fit(x)
    flat = x.flatten(1)
    for row in model.prior.pseudo_inputs.detach().flatten(1):
        assert (flat == row).all(1).any()  # each pseudo-input is a training image
    noise = small(VampPrior(components=5))
    gv.Trainer(noise, max_epochs=1, quiet=True, lr={"prior": 0.0, "default": 1e-3}).fit(x)
    assert float(noise.prior.pseudo_inputs.detach().mean()) == pytest.approx(0.05, abs=0.01)  # the default stays
    with pytest.raises(ValueError, match="init: expected 'noise' or 'data', got 'images'"):
        VampPrior(init="images")
    with pytest.raises(ValueError, match="images: expected a non-empty tensor of shape"):
        model.prior.initialize_from(torch.rand(3, 1, 5, 5))
