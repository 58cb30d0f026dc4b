"""What a training step of each family computes, counted: the work that the arithmetic requires
once is done once (benchmarks/family_throughput.py measures the time it takes)."""

from __future__ import annotations

from typing import Any

import torch

import genvae as gv
from genvae.semisupervised import SemiSupervisedELBO, seed_m2


class Calls:
    """Counts the calls of a module's forward and the rows each call saw."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.rows: list[int] = []
        module.register_forward_hook(lambda m, args, out: self.rows.append(int(args[0].shape[0])))


def one_step(model: Any, objective: Any, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
    data = (x, y) if y is not None else x
    gv.Trainer(model, objective, max_epochs=1, batch_size=x.shape[0], device="cpu", seed=0, quiet=True).fit(data)


def images(n: int) -> torch.Tensor:
    return (torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()


def test_iwae_decodes_the_k_draws_of_the_batch_in_one_pass() -> None:
    torch.manual_seed(0)
    model = gv.presets.seed_vae()
    decoder, encoder = Calls(model.decoder), Calls(model.encoder)
    one_step(model, gv.IWAE(k=7), images(4))
    assert decoder.rows == [7 * 4]
    assert encoder.rows == [4]  # each input encoded once, not once per draw


def test_the_vampprior_encodes_its_pseudo_inputs_once_per_step() -> None:
    torch.manual_seed(0)
    model = gv.presets.seed_vae(prior=gv.priors.VampPrior(components=5))
    encoder = Calls(model.encoder)
    one_step(model, gv.ELBO(), images(4))
    assert sorted(encoder.rows) == [4, 5]  # the batch, and the 5 pseudo-inputs together


def test_m2_runs_every_class_of_the_unlabelled_inputs_in_one_pass() -> None:
    torch.manual_seed(0)
    model = seed_m2()
    encoder, decoder, classifier = Calls(model.encoder), Calls(model.decoder), Calls(model.classifier)
    y = torch.tensor([3, -1, -1, 7, -1, -1])
    one_step(model, SemiSupervisedELBO(), images(6), y)
    assert encoder.rows == decoder.rows == [2 + 10 * 4]  # the labelled inputs, then 4 × every class
    assert classifier.rows == [6]
