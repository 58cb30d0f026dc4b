"""genvae.training.tensorboard: scalars every epoch, images every n epochs, for a VAE and a CVAE."""

from __future__ import annotations

from pathlib import Path

import pytest

import genvae as gv
from genvae.training import TensorBoard
from tests.helpers import tiny_data, tiny_vae


def read_events(log_dir: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, list[int]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    scalars = {t: [(e.step, e.value) for e in events.Scalars(t)] for t in tags["scalars"]}
    images = {t: [e.step for e in events.Images(t)] for t in tags["images"]}
    return scalars, images


@pytest.mark.parametrize("conditional", [False, True])
def test_tensorboard_writes_scalars_per_epoch_and_images_every_n_epochs(tmp_path: Path, conditional: bool) -> None:
    x, y = tiny_data(8)
    board = TensorBoard(tmp_path / "tb", images_every=2, manifold_n=3, samples_n=2)
    data = (x, y) if conditional else x
    history = gv.Trainer(
        tiny_vae(conditional=conditional), max_epochs=3, batch_size=4, device="cpu", callbacks=[board]
    ).fit(data, data)
    scalars, images = read_events(tmp_path / "tb")
    assert [step for step, _ in scalars["train/total"]] == [1, 2, 3]
    assert [value for _, value in scalars["val/kl"]] == pytest.approx(history["val_kl"], rel=1e-6)
    assert "epoch/seconds" in scalars
    assert images == {"manifold": [2], "samples": [2]}
