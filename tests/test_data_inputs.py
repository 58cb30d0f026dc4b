"""One way in: every entry point accepts every kind of data and gives the same result for each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

import genvae as gv
from genvae import evaluation, viz
from tests.helpers import tiny_vae

N, SHAPE = 12, (1, 6, 6)  # loaders batch by 4, as the Trainer does here: a loader keeps its own batches


def images_and_labels() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.rand(N, *SHAPE, generator=g), torch.arange(N) % 3


class Items(Dataset[Any]):
    """A map-style dataset of plain items, as a user writes one."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        return self.x[i] if self.y is None else (self.x[i], int(self.y[i]))


def labelled_kinds() -> dict[str, Any]:
    x, y = images_and_labels()
    return {
        "tensor pair": (x, y),
        "numpy pair": (x.numpy(), y.numpy()),
        "numpy and list": (x.numpy(), y.tolist()),
        "ImageDataset": gv.data.ImageDataset(x, y, num_classes=3),
        "TensorDataset": TensorDataset(x, y),
        "Dataset": Items(x, y),
        "DataLoader": DataLoader(TensorDataset(x, y), batch_size=4, shuffle=False),
    }


def unlabelled_kinds() -> dict[str, Any]:
    x, _ = images_and_labels()
    return {
        "tensor": x,
        "numpy": x.numpy(),
        "TensorDataset": TensorDataset(x),
        "Dataset": Items(x, None),
        "DataLoader": DataLoader(TensorDataset(x), batch_size=4, shuffle=False),
    }


def model(conditional: bool) -> gv.VAE:
    return tiny_vae(conditional=conditional, shape=SHAPE, hidden=8).eval()


def seeded(fn: Callable[[], Any]) -> Any:
    torch.manual_seed(123)
    return fn()


def as_arrays(value: Any) -> list[np.ndarray]:
    """Anything an entry point returns, flattened into arrays to compare."""
    if isinstance(value, torch.Tensor):
        return [value.detach().double().numpy()]
    if isinstance(value, int | float):
        return [np.array(value, dtype=np.float64)]
    if isinstance(value, dict):
        return [a for k in sorted(value) for a in as_arrays(value[k])]
    if isinstance(value, list | tuple):
        return [a for v in value for a in as_arrays(v)]
    if hasattr(value, "__dataclass_fields__"):
        return [a for k in value.__dataclass_fields__ for a in as_arrays(getattr(value, k))]
    if hasattr(value, "axes"):  # a matplotlib Figure: its images and point sets
        ax = value.axes[0]
        return [np.asarray(im.get_array(), dtype=np.float64) for im in ax.images] + [
            np.asarray(c.get_offsets(), dtype=np.float64) for c in ax.collections
        ]
    raise TypeError(type(value))


def fit_history(conditional: bool) -> Callable[[Any], Any]:
    def run(data: Any) -> Any:
        trainer = gv.Trainer(model(conditional), max_epochs=2, batch_size=4, device="cpu", seed=0, shuffle=False)
        return [{k: v for k, v in r.items() if k != "time"} for r in trainer.fit(data, data)]

    return run


LABELLED_ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "Trainer.fit (VAE)": fit_history(False),
    "Trainer.fit (CVAE)": fit_history(True),
    "Trainer.evaluate": lambda d: gv.Trainer(model(True), batch_size=4, device="cpu").evaluate(d),
    "nll": lambda d: evaluation.nll(model(True), d, k=4).per_sample,
    "classify": lambda d: evaluation.classify(model(True), d, k=3).scores,
    "latent_probe": lambda d: evaluation.latent_probe(model(False), d, d, steps=5),
    "posterior_means": lambda d: evaluation.posterior_means(model(True), d),
    "prior_match": lambda d: evaluation.prior_match(model(True), d),
    "latent_scatter": lambda d: viz.latent_scatter(model(True), d),
    "reconstructions": lambda d: viz.reconstructions(model(True), d, n=4),
    "label_swap": lambda d: viz.label_swap(model(True), d, classes=[0, 2]),
}


@pytest.mark.parametrize("entry", list(LABELLED_ENTRY_POINTS))
def test_every_entry_point_gives_the_same_result_for_every_kind_of_labelled_data(entry: str) -> None:
    run = LABELLED_ENTRY_POINTS[entry]
    results = {kind: seeded(lambda data=data: run(data)) for kind, data in labelled_kinds().items()}
    reference = as_arrays(results.pop("tensor pair"))
    for kind, result in results.items():
        got = as_arrays(result)
        assert len(got) == len(reference), kind
        for a, b in zip(got, reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=f"{entry} with {kind}")


UNLABELLED_ENTRY_POINTS: dict[str, Callable[[Any], Any]] = {
    "Trainer.fit": fit_history(False),
    "nll": lambda d: evaluation.nll(model(False), d, k=4).per_sample,
    "posterior_means": lambda d: evaluation.posterior_means(model(False), d)[0],
    "latent_scatter": lambda d: viz.latent_scatter(model(False), d),
    "reconstructions": lambda d: viz.reconstructions(model(False), d, n=4),
}


@pytest.mark.parametrize("entry", list(UNLABELLED_ENTRY_POINTS))
def test_every_entry_point_gives_the_same_result_for_every_kind_of_unlabelled_data(entry: str) -> None:
    run = UNLABELLED_ENTRY_POINTS[entry]
    results = {kind: seeded(lambda data=data: run(data)) for kind, data in unlabelled_kinds().items()}
    reference = as_arrays(results.pop("tensor"))
    for kind, result in results.items():
        for a, b in zip(as_arrays(result), reference, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-9, err_msg=f"{entry} with {kind}")


def test_inputs_are_cast_to_the_model_dtype() -> None:
    x, y = images_and_labels()
    cvae = model(True).double()
    assert evaluation.posterior_means(cvae, (x, y))[0].dtype == torch.float64
    assert evaluation.nll(cvae, (x.numpy(), y.numpy()), k=2).per_sample.isfinite().all()
    history = gv.Trainer(cvae, max_epochs=1, batch_size=4, device="cpu").fit((x.numpy(), y.numpy()))
    assert len(history) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ((torch.rand(4, *SHAPE) * 255).round().to(torch.uint8), r"got dtype torch\.uint8; .* / 255"),
        (torch.rand(4, *SHAPE) * 255, r"expected values in \[0, 1\], got values from .* to .*; .*x / 255"),
        (torch.rand(4, *SHAPE) * 2 - 1, r"expected values in \[0, 1\], got values from -"),
        ((torch.rand(4, *SHAPE), torch.arange(3)), r"expected one label per input \(4\)"),
        ([torch.rand(4, *SHAPE), "labels"], r"expected labels as numbers|expected a tensor or a numpy array"),
        ({"x": 1}, r"expected a tensor or numpy array of inputs, .*, got dict"),
    ],
)
def test_bad_data_gets_one_message_at_every_entry_point(data: Any, message: str) -> None:
    entry_points: list[Callable[[], Any]] = [
        lambda: gv.Trainer(model(False), device="cpu").fit(data),
        lambda: evaluation.nll(model(False), data, k=2),
        lambda: evaluation.posterior_means(model(False), data),
        lambda: viz.reconstructions(model(False), data),
    ]
    for call in entry_points:
        with pytest.raises((TypeError, ValueError), match=message):
            call()


def test_continuous_bernoulli_refuses_data_outside_zero_one_too() -> None:
    cb = gv.VAE(gv.encoders.MLPEncoder(SHAPE, hidden=(8,)), gv.decoders.MLPDecoder(2, SHAPE), 2, "continuous_bernoulli")
    with pytest.raises(ValueError, match=r"train: expected values in \[0, 1\]"):
        gv.Trainer(cb, device="cpu").fit(torch.rand(4, *SHAPE) * 255)
    gaussian = gv.VAE(gv.encoders.MLPEncoder(SHAPE, hidden=(8,)), gv.decoders.MLPDecoder(2, SHAPE), 2, "gaussian")
    assert len(gv.Trainer(gaussian, max_epochs=1, device="cpu").fit(torch.randn(4, *SHAPE) * 255)) == 1
