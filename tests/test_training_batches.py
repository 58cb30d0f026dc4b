"""What the Trainer does with the data (genvae.training.batches), observed from inside the run: the
order of the training samples in every epoch and the batches ``drop_last`` keeps.

The order is read by a forward pre-hook: sample ``i`` of the data is the constant image
``i / (n − 1)``, so each batch the model sees names its own indices.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import torch
from torch.utils.data import Dataset

import genvae as gv
from tests.helpers import tiny_vae

tiny_model = partial(tiny_vae, shape=(1, 4, 4), hidden=8)  # a 4x4 all-MLP VAE, seeded


def indexed_images(n: int) -> torch.Tensor:
    """Sample ``i`` is the constant image ``i / (n − 1)`` (values in [0, 1], as a Bernoulli needs)."""
    return (torch.arange(n, dtype=torch.float32) / (n - 1)).reshape(n, 1, 1, 1).expand(n, 1, 4, 4).contiguous()


class BatchSpy(gv.training.Callback):
    """Records, per epoch, the sample indices of every batch the model was called with."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epochs: list[list[list[int]]] = []

    def on_fit_start(self, trainer: gv.Trainer) -> None:
        def record(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
            if module.training:  # not the validation passes
                x = args[0]
                self.epochs[-1].append((x[:, 0, 0, 0] * (self.n - 1)).round().long().tolist())

        trainer.model.register_forward_pre_hook(record)

    def on_epoch_start(self, trainer: gv.Trainer, epoch: int, logs: Any) -> None:
        self.epochs.append([])

    def orders(self) -> list[list[int]]:
        """Each epoch's samples, in the order they were seen."""
        return [[i for batch in epoch for i in batch] for epoch in self.epochs]


def run(n: int, epochs: int = 3, batch_size: int = 4, data: Any = None, **settings: Any) -> BatchSpy:
    spy = BatchSpy(n)
    trainer = gv.Trainer(
        tiny_model(), max_epochs=epochs, batch_size=batch_size, device="cpu", callbacks=[spy], **settings
    )
    trainer.fit(indexed_images(n) if data is None else data)
    return spy


# -- shuffling -------------------------------------------------------------------------------------


def test_each_epoch_sees_every_sample_once_in_a_new_order() -> None:
    orders = run(10, epochs=4, seed=0).orders()
    assert all(sorted(order) == list(range(10)) for order in orders)
    assert len({tuple(order) for order in orders}) == 4  # four epochs, four different orders
    assert all(order != list(range(10)) for order in orders)


def test_the_order_follows_the_seed() -> None:
    first, again, other = (run(10, seed=s).orders() for s in (3, 3, 4))
    assert first == again
    assert first != other
    assert all(sorted(a) == sorted(b) for a, b in zip(first, other, strict=True))


def test_the_seed_also_orders_a_streamed_dataset() -> None:
    class Streamed(Dataset[torch.Tensor]):  # a map-style Dataset: read through a DataLoader
        def __init__(self, x: torch.Tensor) -> None:
            self.x = x

        def __len__(self) -> int:
            return len(self.x)

        def __getitem__(self, index: int) -> torch.Tensor:
            return self.x[index]

    data = Streamed(indexed_images(10))
    first, again, other = (run(10, data=data, seed=s).orders() for s in (5, 5, 6))
    assert first == again and first != other
    assert len({tuple(order) for order in first}) == 3


def test_no_shuffling_keeps_the_data_order() -> None:
    orders = run(10, seed=0, shuffle=False).orders()
    assert orders == [list(range(10))] * 3


# -- drop_last --------------------------------------------------------------------------------------


def test_drop_last_drops_exactly_the_remainder_of_each_epoch() -> None:
    spy = run(10, epochs=3, batch_size=4, seed=0, drop_last=True)
    assert [[len(batch) for batch in epoch] for epoch in spy.epochs] == [[4, 4]] * 3
    orders = spy.orders()
    assert all(len(set(order)) == 8 for order in orders)  # 8 distinct samples, none twice
    # shuffled first, then cut: the two samples left out change from epoch to epoch
    left_out = [frozenset(range(10)) - set(order) for order in orders]
    assert len(set(left_out)) > 1


def test_without_drop_last_the_last_batch_is_the_remainder() -> None:
    spy = run(10, epochs=2, batch_size=4, seed=0)
    assert [[len(batch) for batch in epoch] for epoch in spy.epochs] == [[4, 4, 2]] * 2


def test_drop_last_figures_average_over_the_kept_samples_only() -> None:
    """With lr 0 and no shuffling the model is fixed: the epoch's figure is the average over the
    first 8 samples, not the 10."""
    x = indexed_images(10)
    model = tiny_model()
    history = gv.Trainer(model, lr=0.0, max_epochs=1, batch_size=4, device="cpu", shuffle=False, drop_last=True,
                         seed=1).fit(x)  # fmt: skip
    torch.manual_seed(1)
    with torch.no_grad():
        kept = [float(gv.ELBO()(model(x[i : i + 4]), x[i : i + 4]).total) for i in (0, 4)]
    assert history.last["train_total"] == pytest.approx(sum(kept) / 2, rel=1e-6)
