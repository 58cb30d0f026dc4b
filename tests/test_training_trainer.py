"""The Trainer, its history bookkeeping, checkpoints and resume, and the callbacks."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import genvae as gv
from genvae.training import (
    Callback,
    CheckpointError,
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


def params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


# -- bookkeeping ------------------------------------------------------------------------------------


def manual_average(model: gv.VAE, x: torch.Tensor, batch_size: int) -> dict[str, float]:
    """The per-sample average of the ELBO terms, each batch mean weighted by the batch size."""
    objective, sums = gv.ELBO(), {"total": 0.0, "recon": 0.0, "kl": 0.0}
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = x[i : i + batch_size]
            terms = objective(model(xb), xb)
            for k in sums:
                sums[k] += float(getattr(terms, k)) * len(xb)
    return {k: v / len(x) for k, v in sums.items()}


def test_evaluate_weights_each_batch_by_its_size() -> None:
    model, (x, _) = tiny_vae(), tiny_data(10)
    trainer = gv.Trainer(model, batch_size=4, device="cpu")  # batches of 4, 4 and 2
    torch.manual_seed(7)
    figures = trainer.evaluate(x)
    model.eval()
    torch.manual_seed(7)
    expected = manual_average(model, x, 4)
    for key in expected:
        assert figures[key] == pytest.approx(expected[key], rel=1e-6)
    assert figures["total"] == pytest.approx(figures["recon"] + figures["kl"], rel=1e-6)
    # the unweighted mean of the three batch means is another number: the test can tell them apart
    torch.manual_seed(7)
    with torch.no_grad():
        means = [float(gv.ELBO()(model(x[i : i + 4]), x[i : i + 4]).total) for i in (0, 4, 8)]
    assert abs(sum(means) / 3 - figures["total"]) > 1e-3


def test_train_figures_are_per_sample_averages() -> None:
    model, (x, _) = tiny_vae(), tiny_data(10)
    trainer = gv.Trainer(model, lr=0.0, max_epochs=1, batch_size=4, device="cpu", shuffle=False, seed=3)
    history = trainer.fit(x)
    torch.manual_seed(3)
    expected = manual_average(model, x, 4)  # lr 0: the model did not change during the epoch
    assert history.last["train_total"] == pytest.approx(expected["total"], rel=1e-6)
    assert history.last["train_kl"] == pytest.approx(expected["kl"], rel=1e-6)


@pytest.mark.parametrize("kind", ["pair", "imagedataset", "dataset", "loader"])
def test_every_kind_of_input_gives_the_same_figures(kind: str) -> None:
    model, (x, y) = tiny_vae(conditional=True), tiny_data(12)
    data = {
        "pair": (x, y),
        "imagedataset": gv.data.ImageDataset(x, y, num_classes=3),
        "dataset": TensorDataset(x, y),
        # its own generator: a DataLoader otherwise draws its base seed from the global RNG
        "loader": DataLoader(TensorDataset(x, y), batch_size=5, generator=torch.Generator()),
    }[kind]
    reference = gv.Trainer(model, batch_size=5, device="cpu")
    torch.manual_seed(0)
    expected = reference.evaluate((x, y))
    torch.manual_seed(0)
    got = gv.Trainer(model, batch_size=5, device="cpu").evaluate(data)
    assert got == pytest.approx(expected, rel=1e-6)


def test_in_memory_data_is_batched_without_getitem() -> None:
    class Counting(gv.data.ImageDataset):
        calls = 0

        def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
            Counting.calls += 1
            return super().__getitem__(index)

    x, y = tiny_data(20)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu").fit(Counting(x, y))
    assert Counting.calls == 0


def test_training_reduces_the_loss() -> None:
    ds = gv.data.SyntheticDigits(512, seed=0).binarized(0.5)
    model = gv.VAE("mlp", gv.decoders.MLPDecoder(2, hidden=(64,)), latent_dim=2)
    history = gv.Trainer(model, max_epochs=4, batch_size=32, device="cpu", seed=0).fit(ds)
    assert history["train_total"][-1] < history["train_total"][0] - 20


def test_same_seed_same_run() -> None:
    x, _ = tiny_data(40)
    runs = []
    for _ in range(2):
        model = tiny_vae()
        history = gv.Trainer(model, max_epochs=3, batch_size=8, device="cpu", seed=11).fit(x, x[:10])
        runs.append((params(model), [{k: v for k, v in r.items() if k != "time"} for r in history]))
    assert runs[0][1] == runs[1][1]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][0], runs[1][0], strict=True))


def test_a_conditional_model_needs_labels() -> None:
    x, _ = tiny_data(6)
    trainer = gv.Trainer(tiny_vae(conditional=True), device="cpu")
    with pytest.raises(ValueError, match=r"train: expected labels for a conditional model"):
        trainer.fit(x)
    with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 2\], got 7"):
        trainer.fit((x, torch.tensor([0, 1, 2, 7, 0, 1])))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (torch.rand(4, 1, 5, 5), r"train: expected a tensor of shape \(batch, 1, 6, 6\), got \(4, 1, 5, 5\)"),
        (
            torch.zeros(4, 1, 6, 6, dtype=torch.uint8),
            r"train: expected floating-point inputs in \[0, 1\], got dtype torch.uint8; .*/ 255",
        ),
        (torch.full((4, 1, 6, 6), math.inf), r"train: expected finite values, got inf"),
        (
            [1, 2, 3],
            r"train: expected a tensor or numpy array of inputs, an \(inputs, labels\) pair, an ImageDataset, "
            r"a Dataset or a DataLoader, got a list of",
        ),
    ],
)
def test_bad_training_data_is_named(data: object, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        gv.Trainer(tiny_vae(), device="cpu").fit(data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_epochs": 0}, "max_epochs: expected a positive integer, got 0"),
        ({"batch_size": -2}, "batch_size: expected a positive integer, got -2"),
        ({"device": "gpu7"}, "device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'gpu7'"),
        ({"callbacks": [print]}, "callbacks: expected Callback instances, got builtin_function_or_method"),
    ],
)
def test_bad_trainer_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        gv.Trainer(tiny_vae(), **kwargs)


# -- checkpoints and resume --------------------------------------------------------------------------


def test_resume_ends_exactly_where_an_uninterrupted_run_ends(tmp_path: Path) -> None:
    ds = gv.data.ImageDataset(*tiny_data(30), num_classes=3).binarized("sample")

    def trainer(model: gv.VAE, epochs: int, directory: Path) -> gv.Trainer:
        callbacks = [ModelCheckpoint(directory), EarlyStopping(patience=10), KLWarmup(epochs=3)]
        return gv.Trainer(model, max_epochs=epochs, batch_size=4, device="cpu", seed=5, callbacks=callbacks)

    full = tiny_vae()
    full_history = trainer(full, 5, tmp_path / "full").fit(ds, ds)

    interrupted = tiny_vae()
    trainer(interrupted, 2, tmp_path / "part").fit(ds, ds)  # "killed" after epoch 2
    resumed_model = tiny_vae()
    resumed = trainer(resumed_model, 5, tmp_path / "part")
    history = resumed.fit(ds, ds, resume_from=tmp_path / "part" / "last.ckpt")

    assert all(torch.equal(a, b) for a, b in zip(params(full), params(resumed_model), strict=True))
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(history) == strip(full_history)
    assert resumed.state.epoch == 5 and len(history) == 5


def test_checkpoint_files_are_best_and_last(tmp_path: Path) -> None:
    x, _ = tiny_data(16)
    cb = ModelCheckpoint(tmp_path)
    gv.Trainer(tiny_vae(), max_epochs=2, batch_size=4, device="cpu", callbacks=[cb]).fit(x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.ckpt", "last.ckpt"]
    payload = gv.training.read_checkpoint(cb.last_path)
    assert payload["state"]["epoch"] == 2 and len(payload["history"]) == 2
    assert payload["model_config"]["genvae"] == "models/vae"


def test_a_corrupted_checkpoint_is_refused(tmp_path: Path) -> None:
    x, _ = tiny_data(8)
    cb = ModelCheckpoint(tmp_path)
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu", callbacks=[cb]).fit(x)
    data = bytearray(cb.last_path.read_bytes())
    data[-100] ^= 0x01
    cb.last_path.write_bytes(bytes(data))
    model = tiny_vae()
    before = params(model)
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        gv.Trainer(model, device="cpu").fit(x, resume_from=cb.last_path)
    assert all(torch.equal(a, b) for a, b in zip(before, params(model), strict=True))  # nothing loaded half-way
    cb.last_path.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a genvae checkpoint"):
        gv.training.read_checkpoint(cb.last_path)


# -- callbacks ------------------------------------------------------------------------------------------


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


def test_callbacks_see_every_hook_in_order() -> None:
    events: list[str] = []

    class Recorder(Callback):
        def on_fit_start(self, trainer: gv.Trainer) -> None:
            events.append("fit_start")

        def on_epoch_start(self, trainer: gv.Trainer, epoch: int, logs: object) -> None:
            events.append(f"epoch_start {epoch}")

        def on_batch_start(self, trainer: gv.Trainer, step: int) -> None:
            events.append(f"batch_start {step}")

        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            events.append(f"batch_end {step}")

        def on_epoch_end(self, trainer: gv.Trainer, epoch: int, logs: object) -> None:
            events.append(f"epoch_end {epoch}")

        def on_fit_end(self, trainer: gv.Trainer) -> None:
            events.append("fit_end")

    x, _ = tiny_data(8)
    gv.Trainer(tiny_vae(), max_epochs=1, batch_size=4, device="cpu", callbacks=[Recorder()]).fit(x)
    assert events == [
        "fit_start",
        "epoch_start 1",
        "batch_start 0",
        "batch_end 0",
        "batch_start 1",
        "batch_end 1",
        "epoch_end 1",
        "fit_end",
    ]


def test_ctrl_c_stops_at_a_step_boundary_and_resumes_mid_epoch(tmp_path: Path) -> None:
    """A real SIGINT in the middle of epoch 2: a checkpoint of that step, and a resume that ends
    exactly where an uninterrupted run ends."""
    import os
    import signal

    x, _ = tiny_data(16)  # 4 steps per epoch

    class CtrlC(Callback):
        def on_batch_end(self, trainer: gv.Trainer, step: int, terms: object) -> None:
            if trainer.state.global_step == 6:
                os.kill(os.getpid(), signal.SIGINT)

    def trainer(model: gv.VAE, extra: list[Callback]) -> gv.Trainer:
        callbacks = [ModelCheckpoint(tmp_path / "ckpt"), *extra]
        return gv.Trainer(model, max_epochs=3, batch_size=4, device="cpu", seed=2, callbacks=callbacks)

    full = tiny_vae()
    full_history = trainer(full, []).fit(x, x)

    stopped = trainer(tiny_vae(), [CtrlC()])
    stopped.fit(x, x)
    assert stopped.interrupted and stopped.state.stop_reason == "interrupted at epoch 2, step 2 of 4"
    assert stopped.state.global_step == 6 and len(stopped.history) == 1
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

    resumed_model = tiny_vae()
    history = trainer(resumed_model, []).fit(x, x, resume_from=tmp_path / "ckpt" / "last.ckpt")
    assert all(torch.equal(a, b) for a, b in zip(params(full), params(resumed_model), strict=True))
    strip = lambda h: [{k: v for k, v in r.items() if k != "time"} for r in h]  # noqa: E731
    assert strip(history) == strip(full_history)


@pytest.mark.parametrize("objective", [gv.IWAE, gv.ELBO, "elbo"])
def test_an_objective_that_is_not_an_instance_is_a_named_error(objective: object) -> None:
    if isinstance(objective, type):
        message = rf"objective: expected an Objective instance, got the class {objective.__name__}; construct it"
    else:
        message = r"objective: expected an Objective or a function \(out, x\) -> ELBOTerms, got 'elbo'"
    with pytest.raises(TypeError, match=message):
        gv.Trainer(gv.presets.seed_vae(), objective)
