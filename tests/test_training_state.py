"""Who owns what in a run (genvae.training.state, genvae.training.resume): divergence, checked
resumes, objective state, callback keys, and the default progress bar."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pytest
import torch

import genvae as gv
from genvae.training import Callback, EarlyStopping, KLWarmup, ModelCheckpoint, ProgressBar
from tests.helpers import tiny_data, tiny_vae


def poisoned_after(steps: int) -> gv.ELBO:
    """An ELBO whose KL term becomes NaN after ``steps`` training calls."""
    calls = {"n": 0}

    def kl(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        values = gv.losses.get("kl")(out, x)
        return values * math.nan if calls["n"] > steps else values

    return gv.ELBO(kl=kl)


# -- divergence ----------------------------------------------------------------------------------


def test_a_diverging_run_stops_at_the_first_non_finite_epoch_and_keeps_the_last_finite_state(tmp_path: Path) -> None:
    x, _ = tiny_data(8)
    model = tiny_vae()
    kept: dict[str, torch.Tensor] = {}

    class Keep(Callback):
        def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: object) -> None:
            kept.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    checkpoints = ModelCheckpoint(tmp_path)
    # 2 steps per epoch: epochs 1 and 2 are finite, epoch 3's second step is NaN
    trainer = gv.Trainer(
        model, poisoned_after(5), max_epochs=6, batch_size=4, device="cpu", callbacks=[Keep(), checkpoints]
    )
    with pytest.raises(gv.DivergenceError, match=r"train_total was nan in epoch 3") as caught:
        trainer.fit(x)
    assert (caught.value.epoch, caught.value.term) == (3, "train_total")
    assert len(trainer.history) == 2 and trainer.state.epoch == 2
    assert "diverged" in trainer.state.stop_reason
    for name, value in model.state_dict().items():
        assert torch.isfinite(value).all()
        torch.testing.assert_close(value, kept[name])  # the end of epoch 2, not the NaN weights
    assert gv.training.read_checkpoint(checkpoints.last_path)["state"]["epoch"] == 2


def test_a_diverging_validation_figure_also_stops_the_run() -> None:
    x, _ = tiny_data(8)
    calls = {"n": 0}

    def recon(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        values = gv.losses.get("nll")(out, x)
        return values * math.inf if not torch.is_grad_enabled() and calls["n"] > 3 else values

    trainer = gv.Trainer(tiny_vae(), gv.ELBO(reconstruction=recon), max_epochs=4, batch_size=8, device="cpu")
    with pytest.raises(gv.DivergenceError) as caught:
        trainer.fit(x, x)
    assert caught.value.term.startswith("val_") and math.isinf(caught.value.value)


# -- checked resume ------------------------------------------------------------------------------


def checkpoint_of_a_run(tmp_path: Path, **settings: object) -> Path:
    x, _ = tiny_data(12)
    options: dict[str, object] = {"max_epochs": 1, "batch_size": 4, "device": "cpu", "seed": 0, **settings}
    trainer = gv.Trainer(tiny_vae(), callbacks=[ModelCheckpoint(tmp_path)], **options)  # type: ignore[arg-type]
    trainer.fit(x)
    return tmp_path / "last.ckpt"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"batch_size": 6}, "batch_size 4 → 6"),
        ({"lr": 0.01}, "lr [0.001] → [0.01]"),
        ({"shuffle": False}, "shuffle True → False"),
        ({"objective": gv.ELBO(beta=2.0)}, "'beta': 1.0"),
    ],
)
def test_a_resume_with_other_settings_is_refused_naming_each_difference(
    tmp_path: Path, change: dict[str, object], named: str
) -> None:
    path = checkpoint_of_a_run(tmp_path)
    x, _ = tiny_data(12)
    options: dict[str, object] = {"max_epochs": 2, "batch_size": 4, "device": "cpu", **change}
    trainer = gv.Trainer(tiny_vae(), **options)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="was written with other settings") as caught:
        trainer.fit(x, resume_from=path)
    assert named in str(caught.value)


def test_a_resume_on_other_data_is_refused(tmp_path: Path) -> None:
    path = checkpoint_of_a_run(tmp_path)
    x, _ = tiny_data(16)
    with pytest.raises(ValueError, match="train_samples 12 → 16"):
        gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu").fit(x, resume_from=path)


def test_a_resume_may_train_longer_and_clears_the_stop_reason(tmp_path: Path) -> None:
    path = checkpoint_of_a_run(tmp_path)
    x, _ = tiny_data(12)
    trainer = gv.Trainer(tiny_vae(), max_epochs=3, batch_size=4, device="cpu")
    trainer.fit(x, resume_from=path)
    assert trainer.state.epoch == 3 and trainer.state.stop_reason == ""


def test_a_resume_into_another_model_is_a_value_error(tmp_path: Path) -> None:
    path = checkpoint_of_a_run(tmp_path)
    x, _ = tiny_data(12)
    other = gv.VAE(gv.encoders.MLPEncoder((1, 6, 6), hidden=(8,)), gv.decoders.MLPDecoder(2, (1, 6, 6)), latent_dim=2)
    with pytest.raises(ValueError, match="the checkpoint's weights do not fit this model"):
        gv.Trainer(other, max_epochs=2, batch_size=4, device="cpu").fit(x, resume_from=path)


# -- objective state -----------------------------------------------------------------------------


def test_the_objective_state_round_trips_and_a_warm_up_resumes_exactly(tmp_path: Path) -> None:
    x, _ = tiny_data(12)
    objective = gv.ELBO(beta=2.0, free_bits=0.1)
    objective.set_factor("warm", 0.5)
    again = gv.ELBO(beta=2.0, free_bits=0.1)
    again.load_state_dict(objective.state_dict())
    assert again.kl_weight == objective.kl_weight == 1.0
    with pytest.raises(ValueError, match=r"objective: configured differently from the checkpoint: beta 2\.0 → 3\.0"):
        gv.ELBO(beta=3.0, free_bits=0.1).load_state_dict(objective.state_dict())

    def run(epochs: int, folder: str, resume_from: Path | None = None) -> gv.Trainer:
        trainer = gv.Trainer(
            tiny_vae(), gv.ELBO(beta=2.0), max_epochs=epochs, batch_size=4, device="cpu", seed=0,
            callbacks=[KLWarmup(epochs=3), ModelCheckpoint(tmp_path / folder)],
        )  # fmt: skip
        trainer.fit(x, resume_from=resume_from)
        return trainer

    whole = run(4, "whole")
    run(2, "part")
    resumed = run(4, "resumed", resume_from=tmp_path / "part" / "last.ckpt")
    assert resumed.objective.kl_weight == whole.objective.kl_weight == 2.0
    assert resumed.history["train_loss"] == whole.history["train_loss"]


# -- callbacks: keys and the default progress bar ------------------------------------------------


def test_callback_state_is_keyed_by_state_key(tmp_path: Path) -> None:
    x, _ = tiny_data(8)
    callbacks = [EarlyStopping("train_total"), EarlyStopping("train_kl"), ModelCheckpoint(tmp_path)]
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu", callbacks=callbacks, quiet=True).fit(x)
    saved = gv.training.read_checkpoint(tmp_path / "last.ckpt")["callbacks"]
    assert set(saved) == {cb.state_key for cb in callbacks}
    assert "EarlyStopping{monitor='train_kl'}" in saved


def test_two_callbacks_with_one_state_key_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="callbacks: expected callbacks with distinct state keys"):
        gv.Trainer(tiny_vae(), device="cpu", callbacks=[ModelCheckpoint(tmp_path), ModelCheckpoint(tmp_path)])


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_progress_bar_is_added_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", FakeTerminal())
    assert any(isinstance(cb, ProgressBar) for cb in gv.Trainer(tiny_vae(), device="cpu").callbacks)
    assert not any(isinstance(cb, ProgressBar) for cb in gv.Trainer(tiny_vae(), device="cpu", quiet=True).callbacks)
    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not any(isinstance(cb, ProgressBar) for cb in gv.Trainer(tiny_vae(), device="cpu").callbacks)


def test_the_default_progress_bar_draws_on_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = FakeTerminal()
    monkeypatch.setattr("sys.stderr", terminal)
    x, _ = tiny_data(8)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu").fit(x)
    assert "epoch 2/2" in terminal.getvalue() and "train" in terminal.getvalue()
