"""The Trainer: its history bookkeeping, its arguments, the callback hooks it calls, Ctrl-C and resume."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import genvae as gv
from genvae.training import (
    Callback,
    ModelCheckpoint,
)
from tests.helpers import params, tiny_data, tiny_vae

# -- bookkeeping -----------------------------------------------------------------------------------


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


# -- the hooks -------------------------------------------------------------------------------------


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
