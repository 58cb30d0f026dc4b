"""genvae.testing: hypothesis drives check_model over every registered part, and check_model
catches broken models with a message naming the broken law."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import genvae as gv
from genvae.testing import build_model, check_model
from genvae.testing import strategies as gst


@settings(max_examples=15)
@given(st.data())
def test_every_drawn_model_keeps_the_laws(data: st.DataObject) -> None:
    model = data.draw(gst.models())
    x, y = data.draw(gst.batches(model))
    check_model(model, x, y)


@pytest.mark.parametrize("prior", ["normal", "conditional", "mog", "vamp"])
def test_every_prior_and_conditioner_keeps_the_laws(prior: str) -> None:
    for conditioner in ("split", "concat", "film"):
        model = build_model(kind="conv", classes=3, prior=prior, conditioner=conditioner)
        check_model(model, torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 1]))


@given(gst.images(shape=(2, 3, 3), batch=st.integers(2, 3), low=-1.0, high=0.5), gst.labels(4, batch=5))
def test_images_and_labels_keep_their_bounds(x: torch.Tensor, y: torch.Tensor) -> None:
    assert x.dtype == torch.float32 and x.shape[1:] == (2, 3, 3) and x.shape[0] in (2, 3)
    assert float(x.min()) >= -1.0 and float(x.max()) <= 0.5
    assert y.dtype == torch.long and y.shape == (5,) and int(y.min()) >= 0 and int(y.max()) <= 3


@given(gst.latents(3, bound=2.0))
def test_latents_keep_their_bound(z: torch.Tensor) -> None:
    assert z.shape[1] == 3 and 1 <= z.shape[0] <= 4 and float(z.abs().max()) <= 2.0


@given(gst.models(conditional=False, prior="vamp", conditioner="film", likelihood="gaussian", kind="conv"))
def test_models_take_the_parts_asked_for(model: gv.VAE) -> None:
    assert not model.conditional and isinstance(model.prior, gv.priors.VampPrior)
    assert isinstance(model.likelihood, gv.likelihoods.Gaussian) and isinstance(model.decoder, gv.decoders.ConvDecoder)


class _NegativeKL(gv.priors.NormalPrior):
    def kl(
        self, mean: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor, c: torch.Tensor | None = None
    ) -> torch.Tensor:
        return -super().kl(mean, logvar, z, c) - 1.0


class _Logits(gv.likelihoods.Bernoulli):
    def mean(self, params: torch.Tensor) -> torch.Tensor:
        return params * 10  # logits, not probabilities: outside [0, 1]


def test_a_negative_kl_is_caught() -> None:
    model = build_model()
    model.prior = _NegativeKL()
    model.prior.attach(model)
    with pytest.raises(AssertionError, match=r"KL\(q ‖ p\) must be >= 0, got -"):
        check_model(model, torch.rand(3, 1, 8, 8))


def test_decodings_outside_the_support_are_caught() -> None:
    enc = gv.encoders.MLPEncoder((1, 8, 8), hidden=(4,))
    model = gv.VAE(enc, gv.decoders.MLPDecoder(2, (1, 8, 8), hidden=(4,)), latent_dim=2, likelihood=_Logits())
    with pytest.raises(AssertionError, match=r"expected values in the likelihood's support \[0, 1\], got values from"):
        check_model(model, torch.rand(3, 1, 8, 8), roundtrip=False)


def test_a_model_that_reloads_differently_is_caught() -> None:
    model = build_model()
    decode = model.decoder.forward
    model.decoder.forward = lambda z, c=None: decode(z, c) + 0.5  # not in the saved weights or config
    with pytest.raises(AssertionError, match="save → load changed decode's outputs"):
        check_model(model, torch.rand(3, 1, 8, 8))


def test_a_model_that_cannot_be_saved_is_caught() -> None:
    model = build_model()
    model.decoder = torch.nn.Sequential(model.decoder)  # an unregistered part
    with pytest.raises(AssertionError, match="save → load failed"):
        check_model(model, torch.rand(3, 1, 8, 8))


def test_wrong_shapes_are_caught() -> None:
    model = build_model(size=8)
    model.sample = lambda n, y=None: torch.zeros(n, 3)  # type: ignore[method-assign]
    with pytest.raises(AssertionError, match=r"sample: expected data of shape \(2, 1, 8, 8\)"):
        check_model(model, torch.rand(2, 1, 8, 8), roundtrip=False)


def test_check_model_leaves_the_mode_as_it_was() -> None:
    model = build_model().train()
    check_model(model, torch.rand(2, 1, 8, 8))
    assert model.training


def test_without_hypothesis_the_strategies_say_which_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    monkeypatch.delitem(sys.modules, "genvae.testing.strategies")
    with pytest.raises(
        ImportError, match=r"^genvae.testing.strategies needs the testing extra: pip install 'genvae\[testing\]'"
    ):
        importlib.import_module("genvae.testing.strategies")
    assert callable(importlib.import_module("genvae.testing").check_model)  # the rest of the kit imports
