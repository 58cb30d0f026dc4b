"""The callbacks do what their names say, step by step: which checkpoint is written when, when a
scheduler steps and on which figure, and how often a NaN check looks.

The monitored figure is scripted: an extra objective term of weight 0 (so training is unchanged)
logs ``train_score``, whose value in each epoch the test chooses.
"""

from __future__ import annotations

import io
import math
import os
import re
import signal
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae.training import (
    Callback,
    CSVLogger,
    EarlyStopping,
    History,
    KLWarmup,
    LRScheduler,
    ModelCheckpoint,
    ProgressBar,
    TerminateOnNaN,
)
from tests.helpers import tiny_data, tiny_vae

tiny_model = partial(tiny_vae, shape=(1, 4, 4), hidden=8)  # a 4x4 all-MLP VAE, seeded


def tiny_images(n: int = 12) -> torch.Tensor:
    return tiny_data(n, (1, 4, 4))[0]


class Scripted(Callback):
    """Sets the value the ``score`` term reports in each epoch (1-based) from ``values``."""

    def __init__(self, values: list[float]) -> None:
        self.values, self.current = values, math.nan

    def on_epoch_start(self, trainer: gv.Trainer, epoch: int, logs: Any) -> None:
        self.current = self.values[epoch - 1]

    def score(self, out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), self.current)


def scripted_objective(script: Scripted) -> gv.ELBO:
    def score(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        return script.score(out, x)

    return gv.ELBO(extra={score: 0.0})  # logged as train_score; weight 0 leaves the loss alone


def epoch_in(path: Path) -> tuple[int, int] | None:
    """(epochs completed, steps into the next) of the checkpoint at ``path``, or None if absent."""
    if not path.exists():
        return None
    state = gv.training.read_checkpoint(path)["state"]
    return state["epoch"], state["step_in_epoch"]


class CheckpointSpy(Callback):
    """Runs after ModelCheckpoint (both run last, in the order given) and records, after every
    epoch, which epoch each file holds and whether the file was rewritten."""

    runs_last = True

    def __init__(self, checkpoint: ModelCheckpoint) -> None:
        self.checkpoint = checkpoint
        self.best: list[tuple[int, int] | None] = []
        self.last: list[tuple[int, int] | None] = []
        self.best_rewritten: list[bool] = []
        self._best_stamp: int | None = None

    def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: Any) -> None:
        self.best.append(epoch_in(self.checkpoint.best_path))
        self.last.append(epoch_in(self.checkpoint.last_path))
        stamp = self.checkpoint.best_path.stat().st_ino if self.checkpoint.best_path.exists() else None
        # atomic writes replace the file: a rewrite gives it a new inode, even with equal content
        self.best_rewritten.append(stamp is not None and stamp != self._best_stamp)
        self._best_stamp = stamp


# -- ModelCheckpoint -------------------------------------------------------------------------------


def checkpointed_run(tmp_path: Path, scores: list[float], **options: Any) -> tuple[CheckpointSpy, gv.Trainer]:
    script = Scripted(scores)
    checkpoint = ModelCheckpoint(tmp_path, monitor="train_score", **options)
    spy = CheckpointSpy(checkpoint)
    trainer = gv.Trainer(tiny_model(), scripted_objective(script), max_epochs=len(scores), batch_size=4,
                         device="cpu", seed=0, callbacks=[script, checkpoint, spy])  # fmt: skip
    trainer.fit(tiny_images())
    return spy, trainer


def test_best_is_written_only_when_the_monitored_figure_improves(tmp_path: Path) -> None:
    spy, _ = checkpointed_run(tmp_path, [5.0, 3.0, 4.0, 2.0, 2.0, 9.0])
    assert spy.best == [(1, 0), (2, 0), (2, 0), (4, 0), (4, 0), (4, 0)]  # a tie is not an improvement
    assert spy.best_rewritten == [True, True, False, True, False, False]


def test_last_is_written_after_every_epoch(tmp_path: Path) -> None:
    spy, trainer = checkpointed_run(tmp_path, [5.0, 3.0, 4.0, 2.0])
    assert spy.last == [(1, 0), (2, 0), (3, 0), (4, 0)]
    last = gv.training.read_checkpoint(tmp_path / "last.ckpt")
    for saved, live in zip(last["model_state"].values(), trainer.model.state_dict().values(), strict=True):
        assert torch.equal(saved, live)  # the final weights


def test_the_best_checkpoint_holds_the_weights_of_its_epoch(tmp_path: Path) -> None:
    class Weights(Callback):
        def __init__(self) -> None:
            self.after: list[dict[str, torch.Tensor]] = []

        def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: Any) -> None:
            self.after.append({k: v.clone() for k, v in trainer.model.state_dict().items()})

    script, weights = Scripted([4.0, 1.0, 3.0]), Weights()
    trainer = gv.Trainer(tiny_model(), scripted_objective(script), max_epochs=3, batch_size=4, device="cpu", seed=0,
                         callbacks=[script, weights, ModelCheckpoint(tmp_path, monitor="train_score")])  # fmt: skip
    trainer.fit(tiny_images())
    best = gv.training.read_checkpoint(tmp_path / "best.ckpt")
    for key, value in best["model_state"].items():
        assert torch.equal(value, weights.after[1][key])  # epoch 2's weights, not epoch 3's
    assert any(not torch.equal(weights.after[1][k], weights.after[2][k]) for k in weights.after[1])


def test_save_best_and_save_last_switch_each_file(tmp_path: Path) -> None:
    checkpointed_run(tmp_path / "no_best", [2.0, 1.0], save_best=False)
    checkpointed_run(tmp_path / "no_last", [2.0, 1.0], save_last=False)
    assert sorted(p.name for p in (tmp_path / "no_best").iterdir()) == ["last.ckpt"]
    assert sorted(p.name for p in (tmp_path / "no_last").iterdir()) == ["best.ckpt"]


def test_an_interrupt_writes_last_at_its_step_and_leaves_best(tmp_path: Path) -> None:
    class CtrlC(Callback):
        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            if trainer.state.epoch == 2 and step == 1:
                os.kill(os.getpid(), signal.SIGINT)

    script = Scripted([3.0, 2.0, 1.0])
    checkpoint = ModelCheckpoint(tmp_path, monitor="train_score")
    trainer = gv.Trainer(tiny_model(), scripted_objective(script), max_epochs=3, batch_size=4, device="cpu", seed=0,
                         callbacks=[script, CtrlC(), checkpoint])  # fmt: skip
    trainer.fit(tiny_images())
    assert trainer.interrupted
    assert epoch_in(checkpoint.last_path) == (2, 2)  # two epochs done, two steps into the third
    assert epoch_in(checkpoint.best_path) == (2, 0)  # the best complete epoch, untouched by the interrupt


def test_early_stopping_does_not_restore_the_best_weights_of_an_interrupted_run() -> None:
    """Epoch 1 is the best, epoch 2 worse, Ctrl-C in epoch 3: the model keeps the weights of the
    interrupted step (those last.ckpt holds), not epoch 1's."""
    at_interrupt: dict[str, torch.Tensor] = {}

    class CtrlC(Callback):
        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            if trainer.state.epoch == 2 and step == 1:
                os.kill(os.getpid(), signal.SIGINT)

        def on_interrupt(self, trainer: gv.Trainer) -> None:
            at_interrupt.update({k: v.clone() for k, v in trainer.model.state_dict().items()})

    script = Scripted([1.0, 2.0, 3.0])
    stopper = gv.training.EarlyStopping("train_score", patience=5, restore_best_weights=True)
    trainer = gv.Trainer(tiny_model(), scripted_objective(script), max_epochs=3, batch_size=4, device="cpu", seed=0,
                         callbacks=[script, CtrlC(), stopper], quiet=True)  # fmt: skip
    trainer.fit(tiny_images())
    assert trainer.interrupted and stopper.best_epoch == 1 and stopper.best_weights is not None
    weights = trainer.model.state_dict()
    assert all(torch.equal(weights[k], v) for k, v in at_interrupt.items())
    assert not all(torch.equal(weights[k], v) for k, v in stopper.best_weights.items())


# -- LRScheduler -----------------------------------------------------------------------------------


class LRSpy(Callback):
    """The learning rate each training step ran with."""

    def __init__(self) -> None:
        self.lrs: list[float] = []

    def on_batch_start(self, trainer: gv.Trainer, step: int) -> None:
        self.lrs.append(trainer.optimizer.param_groups[0]["lr"])


def halving(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.StepLR:
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)


@pytest.mark.parametrize(
    ("interval", "exponents"), [("step", [0, 1, 2, 3, 4, 5]), ("epoch", [0, 0, 0, 1, 1, 1])]
)  # fmt: skip
def test_the_scheduler_steps_at_its_interval(interval: str, exponents: list[int]) -> None:
    spy = LRSpy()
    trainer = gv.Trainer(tiny_model(), lr=1e-2, max_epochs=2, batch_size=4, device="cpu",
                         callbacks=[LRScheduler(halving, interval=interval), spy])  # fmt: skip
    trainer.fit(tiny_images(12))  # 3 steps per epoch
    assert spy.lrs == pytest.approx([1e-2 * 0.5**e for e in exponents], rel=1e-12)


def plateau_run(scores: list[float]) -> list[float]:
    """The learning rate after each epoch, with ReduceLROnPlateau(patience=1, factor=0.1) watching train_score."""
    script = Scripted(scores)
    after: list[float] = []

    class After(Callback):
        def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: Any) -> None:
            after.append(trainer.optimizer.param_groups[0]["lr"])

    def factory(optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1, factor=0.1)

    callbacks = [script, LRScheduler(factory, monitor="train_score"), After()]
    gv.Trainer(tiny_model(), scripted_objective(script), lr=1e-2, max_epochs=len(scores), batch_size=4, device="cpu",
               seed=0, callbacks=callbacks).fit(tiny_images())  # fmt: skip
    return after


def test_reduce_on_plateau_reduces_when_the_monitored_key_stalls() -> None:
    # epoch 1 sets the best; epochs 2 and 3 do not improve: more than `patience` bad epochs
    assert plateau_run([5.0, 5.0, 5.0, 5.0, 5.0]) == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4], rel=1e-9)


def test_reduce_on_plateau_keeps_the_rate_while_the_monitored_key_improves() -> None:
    # train_total stalls or not as training goes; only train_score is watched
    assert plateau_run([5.0, 4.0, 3.0, 2.0, 1.0]) == pytest.approx([1e-2] * 5, rel=1e-12)


def test_reduce_on_plateau_names_a_missing_monitor() -> None:
    callback = LRScheduler(lambda opt: torch.optim.lr_scheduler.ReduceLROnPlateau(opt), monitor="val_total")
    with pytest.raises(KeyError, match="LRScheduler: monitor 'val_total' is not logged"):
        gv.Trainer(tiny_model(), max_epochs=1, batch_size=4, device="cpu", callbacks=[callback]).fit(tiny_images())


# -- TerminateOnNaN --------------------------------------------------------------------------------


def poisoned_from(first_bad_call: int) -> gv.ELBO:
    """An objective whose KL is NaN from its ``first_bad_call``-th training call on (1-based)."""
    calls = {"n": 0}

    def kl(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        values = gv.losses.get("kl")(out, x)
        return values * math.nan if calls["n"] >= first_bad_call else values

    return gv.ELBO(kl=kl)


def stopped_at(check_every: int, first_bad_call: int, steps_per_epoch: int = 8) -> tuple[int, int, int]:
    """(epoch, step in the epoch, steps run) where TerminateOnNaN(check_every) stopped."""
    stream = io.StringIO()
    trainer = gv.Trainer(tiny_model(), poisoned_from(first_bad_call), max_epochs=3, batch_size=2, device="cpu",
                         callbacks=[TerminateOnNaN(check_every=check_every, file=stream)])  # fmt: skip
    trainer.fit(tiny_images(2 * steps_per_epoch))
    found = re.search(r"at epoch (\d+), step (\d+)", trainer.state.stop_reason)
    assert found, trainer.state.stop_reason
    assert stream.getvalue().strip() == trainer.state.stop_reason
    return int(found[1]), int(found[2]), trainer.state.global_step


def test_nan_is_caught_at_the_first_step_when_checking_every_step() -> None:
    assert stopped_at(check_every=1, first_bad_call=3) == (1, 2, 3)  # step index 2 is the third call


def test_checking_every_k_steps_skips_the_steps_between_and_still_stops() -> None:
    epoch, step, steps_run = stopped_at(check_every=4, first_bad_call=3)
    assert epoch == 1
    # the third step (the first NaN) was not checked; a later one within one check period was
    assert 3 < steps_run <= 3 + 3
    assert step == steps_run - 1


# -- early stopping, the CSV log, the KL warm-up, NaN and LR checks, the progress bar --------------


@pytest.mark.parametrize("patience", [1, 3])
def test_early_stopping_stops_after_patience_epochs_without_improvement(patience: int) -> None:
    """Keras' semantics: epoch 1 sets the best; the run stops after `patience` epochs that fail to improve."""
    x, _ = tiny_data(8)
    trainer = gv.Trainer(
        tiny_vae(),
        max_epochs=10,
        batch_size=4,
        device="cpu",
        quiet=True,
        callbacks=[EarlyStopping("auto", patience=patience, min_delta=1e9)],
    )
    history = trainer.fit(x)
    assert len(history) == 1 + patience
    expected = f"EarlyStopping: no improvement of train_total for {patience} epochs (best "
    assert trainer.state.stop_reason.startswith(expected)  # the key watched, not "auto"


def test_early_stopping_restores_the_best_weights() -> None:
    x, _ = tiny_data(16)
    model = tiny_vae()
    stopper = EarlyStopping("train_total", patience=2, restore_best_weights=True)
    records: list[tuple[float, dict[str, torch.Tensor]]] = []

    class Record(gv.training.Callback):
        def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: Mapping[str, float]) -> None:
            records.append((logs["train_total"], {k: v.clone() for k, v in trainer.model.state_dict().items()}))

    # a learning rate that makes the loss rise after a few epochs, so the best epoch is not the last
    trainer = gv.Trainer(model, lr=0.5, max_epochs=8, batch_size=4, device="cpu", seed=0, callbacks=[Record(), stopper])
    trainer.fit(x)
    best_value, best_state = min(records, key=lambda r: r[0])
    assert stopper.best == best_value
    assert best_value < records[-1][0]
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, best_state[name])


def test_early_stopping_refuses_a_patience_below_one() -> None:
    with pytest.raises(ValueError, match="patience: expected a positive integer, got 0"):
        EarlyStopping(patience=0)


def test_early_stopping_names_a_missing_monitor() -> None:
    x, _ = tiny_data(8)
    with pytest.raises(KeyError, match="EarlyStopping: monitor 'val_total' is not logged"):
        gv.Trainer(tiny_vae(), max_epochs=2, device="cpu", callbacks=[EarlyStopping("val_total")]).fit(x)


def test_csv_logger_writes_the_history(tmp_path: Path) -> None:
    x, _ = tiny_data(8)
    path = tmp_path / "h.csv"
    history = gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[CSVLogger(path)]).fit(x, x)
    back = History.from_csv(path)
    assert back["epoch"] == [1, 2]
    assert back["val_total"] == pytest.approx(history["val_total"], rel=1e-12)


@pytest.mark.parametrize("beta", [1.0, 4.0])
def test_kl_warmup_ramps_to_the_configured_beta(beta: float) -> None:
    seen: list[float] = []

    class Spy(Callback):
        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            seen.append(trainer.objective.kl_weight)

    x, _ = tiny_data(8)
    objective = gv.ELBO(beta=beta)
    trainer = gv.Trainer(
        tiny_vae(), objective, max_epochs=3, batch_size=4, device="cpu", callbacks=[KLWarmup(epochs=2), Spy()]
    )
    trainer.fit(x)
    assert seen == pytest.approx([beta * f for f in (0.0, 0.25, 0.5, 0.75, 1.0, 1.0)])
    assert objective.beta == beta  # the configuration is never overwritten


def test_kl_warmup_starts_at_its_start_value_and_composes_with_other_schedules() -> None:
    seen: list[float] = []

    class Halve(Callback):  # another schedule: a constant factor of 1/2
        state_key = "Halve"

        def on_batch_start(self, trainer: gv.Trainer, step: int) -> None:
            trainer.objective.set_factor("halve", 0.5)
            seen.append(-1.0)

        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            seen[-1] = trainer.objective.kl_weight

    x, _ = tiny_data(8)
    objective = gv.ELBO(beta=2.0)
    gv.Trainer(
        tiny_vae(), objective, max_epochs=2, batch_size=4, device="cpu", callbacks=[KLWarmup(1, start=1.0), Halve()]
    ).fit(x)
    assert seen == pytest.approx([0.5 * (1.0 + (2.0 - 1.0) * p) for p in (0.0, 0.5, 1.0, 1.0)])


def test_the_kl_weight_in_use_is_what_the_loss_applies() -> None:
    model, (x, _) = tiny_vae(), tiny_data(6)
    objective = gv.ELBO(beta=3.0)
    objective.set_factor("warmup", 0.25)
    out = model(x)
    terms = objective(out, x)
    torch.testing.assert_close(terms.loss, terms.recon + 0.75 * terms.kl)


def test_kl_warmup_needs_an_objective_with_a_kl_weight() -> None:
    x, _ = tiny_data(8)

    def plain(out: gv.VAEOutput, x: torch.Tensor) -> gv.losses.ELBOTerms:
        return gv.ELBO()(out, x)

    trainer = gv.Trainer(tiny_vae(), plain, max_epochs=1, device="cpu", callbacks=[KLWarmup(1)])
    with pytest.raises(TypeError, match="KLWarmup: expected an objective with a KL weight beta"):
        trainer.fit(x)


def test_terminate_on_nan_names_epoch_step_and_term(tmp_path: Path) -> None:
    calls = {"n": 0}

    def poisoned(out: gv.VAEOutput, x: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        values = gv.losses.get("kl")(out, x)
        return values * math.nan if calls["n"] > 5 else values  # training steps 6, 7, ...: NaN

    x, _ = tiny_data(8)
    stream = io.StringIO()
    ckpt = ModelCheckpoint(tmp_path)
    trainer = gv.Trainer(
        tiny_vae(), gv.ELBO(kl=poisoned), max_epochs=5, batch_size=4, device="cpu",
        callbacks=[ckpt, TerminateOnNaN(file=stream)],
    )  # fmt: skip
    history = trainer.fit(x)
    # epoch 1: steps 1-2; epoch 2: steps 3-4; epoch 3: step 5 fine, step 6 NaN
    assert len(history) == 2
    assert (
        trainer.state.stop_reason
        == "TerminateOnNaN: non-finite kl (nan) at epoch 3, step 1 (global step 6); training stopped"
    )
    assert stream.getvalue().strip() == trainer.state.stop_reason
    assert gv.training.read_checkpoint(ckpt.last_path)["state"]["epoch"] == 2  # the last good one


def test_lr_scheduler_steps_each_epoch() -> None:
    x, _ = tiny_data(8)
    trainer = gv.Trainer(
        tiny_vae(), lr=1e-3, max_epochs=2, batch_size=4, device="cpu",
        callbacks=[LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))],
    )  # fmt: skip
    trainer.fit(x)
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.25e-3)


def test_progress_bar_prints_one_line_per_epoch_when_not_a_terminal() -> None:
    x, _ = tiny_data(8)
    stream = io.StringIO()
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[ProgressBar(file=stream)]).fit(x, x)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[1].startswith("epoch 2/2  train ") and " val " in lines[1] and lines[1].endswith("s")
