"""genvae.inference: the helpers below evaluation, latent metrics and figures."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
from torch import nn

import genvae as gv
from genvae.inference import (
    MEMORY_BUDGET,
    decode_chunk_size,
    eval_mode,
    importance_log_weights,
    inference,
    labels_for,
    model_inputs,
    posterior_means,
    posteriors,
)
from tests.helpers import tiny_vae

mlp_vae = partial(tiny_vae, latent=3, shape=(1, 28, 28), hidden=8, seed=None)  # 28x28, unseeded


def test_evaluation_re_exports_the_helpers_from_their_home() -> None:
    assert gv.evaluation.inference is inference
    assert gv.evaluation.decode_chunk_size is decode_chunk_size
    assert gv.evaluation.posterior_means is posterior_means
    assert gv.evaluation.MEMORY_BUDGET == MEMORY_BUDGET == 32 * 2**20
    assert gv.inference.eval_mode is eval_mode


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_switches_to_eval_and_restores_the_flag(training: bool) -> None:
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).train(training)
    with eval_mode(module):
        assert not module.training and not module[1].training
    assert module.training is training and module[1].training is training


def test_eval_mode_restores_the_flag_after_an_exception() -> None:
    module = nn.Linear(2, 2).train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(module):
        raise RuntimeError("boom")
    assert module.training


def test_eval_mode_keeps_a_submodule_s_own_flag() -> None:
    """Restoring goes through ``train(flag)``, as every call site did before: the parent's flag wins."""
    module = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5)).eval()
    with eval_mode(module):
        pass
    assert not module.training and not module[1].training


def test_inference_runs_in_eval_and_inference_mode_and_restores_the_model() -> None:
    model = gv.presets.seed_vae().train()
    layout = [(p.data_ptr(), p.stride()) for p in model.parameters()]
    with inference(model, "channels_last"):
        assert not model.training
        assert torch.is_inference_mode_enabled()
        assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters())
    assert model.training
    assert [(p.data_ptr(), p.stride()) for p in model.parameters()] == layout


def test_inference_refuses_an_unknown_memory_format() -> None:
    message = "memory_format: expected one of auto, channels_last, keep, got 'fast'"
    with pytest.raises(ValueError, match=message), inference(mlp_vae(), "fast"):
        pass


def test_decode_chunk_size_grows_with_the_budget_and_is_at_least_one() -> None:
    model = mlp_vae()
    small, large = decode_chunk_size(model, 2**16), decode_chunk_size(model, 2**24)
    assert 1 <= small < large
    assert decode_chunk_size(model, 1) == 1
    with pytest.raises(ValueError, match="memory_budget: expected a positive integer, got 0"):
        decode_chunk_size(model, 0)


def test_posteriors_give_means_log_variances_and_labels_in_order() -> None:
    model = mlp_vae().train()
    x, y = torch.rand(7, 1, 28, 28), torch.arange(7)
    means, logvars, labels = posteriors(model, (x, y), batch_size=3)
    model.eval()
    with torch.no_grad():
        expected_mean, expected_logvar = model.posterior(x)
    torch.testing.assert_close(means, expected_mean)
    torch.testing.assert_close(logvars, expected_logvar)
    assert labels is not None and torch.equal(labels, y)
    first, _ = posterior_means(model, x, batch_size=2, limit=4)
    torch.testing.assert_close(first, expected_mean[:4])


def test_posteriors_leave_the_training_flag_as_it_was() -> None:
    model = mlp_vae().train()
    posteriors(model, torch.rand(2, 1, 28, 28))
    assert model.training


def test_a_conditional_model_needs_labels() -> None:
    cvae = gv.presets.seed_cvae(num_classes=3)
    x = torch.rand(2, 1, 28, 28)
    with pytest.raises(ValueError, match="data: expected labels for a conditional model, got images only"):
        posterior_means(cvae, x)
    assert labels_for(mlp_vae(), torch.tensor([0, 1])) is None
    y = torch.tensor([0, 2])
    assert labels_for(cvae, y) is y


def test_model_inputs_are_in_the_model_s_dtype_and_checked() -> None:
    model = mlp_vae().double()
    x, y = model_inputs(model, torch.rand(3, 1, 28, 28))
    assert x.dtype == torch.float64 and y is None
    with pytest.raises(ValueError, match="x: "):
        model_inputs(model, torch.full((3, 1, 28, 28), math.nan), "x")


def test_importance_log_weights_are_the_joint_over_the_proposal() -> None:
    log_px, log_pz, log_q = torch.tensor([-3.0, -1.0]), torch.tensor([-2.0, -0.5]), torch.tensor([-1.5, -2.0])
    torch.testing.assert_close(importance_log_weights(log_px, log_pz, log_q), torch.tensor([-3.5, 0.5]))
