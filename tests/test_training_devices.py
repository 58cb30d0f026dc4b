"""genvae.training.devices: a device this machine does not have is a one-line error that leaves the
model where it was; "auto" and "cpu" give the CPU here."""

from __future__ import annotations

from functools import partial

import pytest
import torch

import genvae as gv
from tests.helpers import tiny_vae

tiny_model = partial(tiny_vae, shape=(1, 4, 4), hidden=8)  # a 4x4 all-MLP VAE, seeded

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")


@pytest.mark.parametrize(
    "device",
    [
        pytest.param("cuda", marks=no_cuda),
        pytest.param("cuda:0", marks=no_cuda),
        pytest.param(
            "cuda:5", marks=pytest.mark.skipif(torch.cuda.device_count() > 5, reason="this machine has 6 GPUs")
        ),
        pytest.param("mps", marks=pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")),
        "tpu",
        "gpu",
    ],
)
def test_an_unavailable_device_is_a_one_line_value_error(device: str) -> None:
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError) as info:
        gv.Trainer(model, device=device)
    message = str(info.value)
    assert message.startswith("device: ") and f"'{device}'" in message, message
    assert "\n" not in message
    assert "'cpu'" in message  # says what to use instead
    assert all(p.device.type == "cpu" for p in model.parameters())  # the model was not moved
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_a_torch_device_object_is_checked_too() -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match=r"^device: 'cuda' is not available \("):
        gv.Trainer(tiny_model(), device=torch.device("cuda"))


def test_auto_and_cpu_give_the_cpu_here() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert gv.Trainer(tiny_model(), device="auto").device.type == expected
    trainer = gv.Trainer(tiny_model(), device=torch.device("cpu"))
    assert trainer.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in trainer.model.parameters())
