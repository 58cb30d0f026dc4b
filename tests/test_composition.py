"""Every part composes with every other: each callback × each objective option (β, free bits,
warm-up) × unconditional and each conditioner × float32 and float64, a few steps each, with the
result checked (β applied, warm-up ending at the configured β, the callback's effect seen)."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import genvae as gv
from genvae import training

CONDITIONING = ["none", "split", "concat", "film"]
DTYPES = [torch.float32, torch.float64]
OBJECTIVES = {
    "beta": {"beta": 3.0},
    "free_bits": {"beta": 1.0, "free_bits": 0.5},
    "warmup": {"beta": 2.0},
}
EPOCHS, N, BATCH = 3, 8, 4


def model_for(conditioning: str, dtype: torch.dtype) -> gv.VAE:
    torch.manual_seed(0)
    cond = {} if conditioning == "none" else {"condition_dim": 3, "conditioner": conditioning}
    enc = gv.encoders.MLPEncoder((1, 4, 4), hidden=(8,), **cond)
    dec = gv.decoders.MLPDecoder(2, (1, 4, 4), hidden=(8,), **cond)
    model = (
        gv.VAE(enc, dec, latent_dim=2)
        if conditioning == "none"
        else gv.ConditionalVAE(enc, dec, latent_dim=2, num_classes=3)
    )
    return model.to(dtype)


def data_for(conditioning: str) -> Any:
    g = torch.Generator().manual_seed(1)
    x = torch.rand(N, 1, 4, 4, generator=g)
    return x if conditioning == "none" else (x, torch.arange(N) % 3)


# Each callback with the check that it did its job; `folder` is the test's tmp_path.
def callback_cases(folder: Path) -> dict[str, tuple[training.Callback, Callable[[gv.Trainer], None]]]:
    stream = io.StringIO()
    checkpoint = training.ModelCheckpoint(folder / "ckpt")
    csv = training.CSVLogger(folder / "history.csv")
    stopper = training.EarlyStopping("train_total", patience=1, min_delta=1e9)
    scheduler = training.LRScheduler(lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))

    def saw_checkpoint(trainer: gv.Trainer) -> None:
        payload = training.read_checkpoint(checkpoint.last_path)
        assert payload["state"]["epoch"] == trainer.state.epoch

    cases: dict[str, tuple[training.Callback, Callable[[gv.Trainer], None]]] = {
        "progress": (training.ProgressBar(file=stream), lambda t: _check("epoch 3/3" in stream.getvalue())),
        "early_stopping": (stopper, lambda t: _check(len(t.history) == 2 and "EarlyStopping" in t.state.stop_reason)),
        "checkpoint": (checkpoint, saw_checkpoint),
        "csv": (csv, lambda t: _check(len(gv.History.from_csv(csv.path)) == len(t.history))),
        "terminate_on_nan": (training.TerminateOnNaN(check_every=1), lambda t: _check(t.state.stop_reason == "")),
        "lr_scheduler": (
            scheduler,
            lambda t: _check(t.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** len(t.history))),
        ),
        "tensorboard": (
            training.TensorBoard(folder / "tb", images_every=3, manifold_n=2, samples_n=2),
            lambda t: _check(any((folder / "tb").iterdir())),
        ),
        "mlflow": (  # a file store (the fixture below allows it): the run's model is logged
            training.MLflowLogger((folder / "mlruns").as_uri()),
            lambda t: _check(len(list((folder / "mlruns").rglob("artifacts/model/model.json"))) == 1),
        ),
    }
    return cases


def _check(condition: bool) -> None:
    assert condition


CALLBACKS = [
    "progress", "early_stopping", "checkpoint", "csv", "terminate_on_nan", "lr_scheduler", "tensorboard", "mlflow",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _mlflow_file_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks for a database store otherwise


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("conditioning", CONDITIONING)
@pytest.mark.parametrize("objective_name", list(OBJECTIVES))
@pytest.mark.parametrize("callback_name", CALLBACKS)
def test_every_callback_objective_conditioner_and_dtype_compose(
    tmp_path: Path, callback_name: str, objective_name: str, conditioning: str, dtype: torch.dtype
) -> None:
    callback, check = callback_cases(tmp_path)[callback_name]
    objective = gv.ELBO(**OBJECTIVES[objective_name])
    callbacks = [callback]
    if objective_name == "warmup":
        callbacks.append(training.KLWarmup(epochs=1))
    model = model_for(conditioning, dtype)
    trainer = gv.Trainer(
        model, objective, max_epochs=EPOCHS, batch_size=BATCH, device="cpu", seed=0, quiet=True, callbacks=callbacks
    )
    data = data_for(conditioning)
    history = trainer.fit(data, data)
    check(trainer)
    last = history.last
    assert all(p.dtype == dtype for p in model.parameters())
    # the configured β is the weight in use at the end (warm-up finished after one epoch) ...
    assert objective.kl_weight == objective.beta == OBJECTIVES[objective_name]["beta"]
    # ... and the loss the optimiser saw applies it (free bits only ever raise the KL part)
    expected = last["train_recon"] + objective.beta * last["train_kl"]
    if objective_name == "free_bits":
        assert last["train_loss"] >= expected - 1e-6
    else:
        assert last["train_loss"] == pytest.approx(expected, rel=1e-5)
    assert last["train_total"] == pytest.approx(last["train_recon"] + last["train_kl"], rel=1e-6)
    # the model samples and decodes in its own dtype after training
    label = None if conditioning == "none" else 1
    assert model.sample(2, label).dtype == dtype
