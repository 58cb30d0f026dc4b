"""M2 weighted as in Kingma et al. whatever the oversampling, its Trainer default, and the
labels-only baseline (genvae.semisupervised, genvae.classification, genvae.data.partial)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

import genvae as gv
from genvae.classifiers import MLPClassifier
from genvae.data.partial import UNLABELLED, partially_labeled
from genvae.models import VAEOutput
from genvae.semisupervised import SemiSupervisedELBO, SemiSupervisedVAE, train_labels_only

SHAPE = (1, 6, 6)
K = 3


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny() -> SemiSupervisedVAE:
    torch.manual_seed(0)
    cond = {"condition_dim": K}
    return SemiSupervisedVAE(
        gv.encoders.MLPEncoder(SHAPE, hidden=(16,), **cond),
        gv.decoders.MLPDecoder(2, SHAPE, hidden=(16,), **cond),
        MLPClassifier(K, SHAPE, hidden=(8,)),
        latent_dim=2,
        num_classes=K,
    )


def dataset(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(1))
    return x, torch.arange(n) % K


# deterministic terms of (x, class): the exact test needs no sampled z
def recon_term(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    assert out.c is not None
    return x.flatten(1).sum(1) * (1 + out.c.argmax(1))


def kl_term(out: VAEOutput, x: torch.Tensor) -> torch.Tensor:
    assert out.c is not None
    return 0.5 * out.c.argmax(1).float() + 0 * x.flatten(1)[:, 0]


def paper_objective(model: SemiSupervisedVAE, x: torch.Tensor, y: torch.Tensor, alpha: float) -> float:
    """Kingma et al.'s J over the distinct images: Σ_unl U(x) + Σ_lab [L(x, y) + α·N/n_l·CE]."""
    with torch.no_grad():
        log_q = F.log_softmax(model.class_logits(x), 1)
        classes = torch.arange(K).float()

        def bound(i: int, c: torch.Tensor) -> torch.Tensor:  # L(x_i, c) + its −log p(y)
            return x[i].sum() * (1 + c) + 0.5 * c + math.log(K)

        known = (y != UNLABELLED).nonzero().squeeze(1).tolist()
        unknown = (y == UNLABELLED).nonzero().squeeze(1).tolist()
        total = sum(float(bound(i, y[i].float()) - alpha * len(y) / len(known) * log_q[i, y[i]]) for i in known)
        for i in unknown:
            q = log_q[i].exp()
            total += float((q * bound(i, classes)).sum() + (q * log_q[i]).sum())
    return total


@pytest.mark.parametrize("share", [None, 0.5, 0.8])
def test_an_epochs_mean_loss_is_the_papers_objective_over_n_whatever_the_oversampling(share: float | None) -> None:
    model = tiny()
    x, y = dataset(12)
    data = partially_labeled((x, y), n_labels=3, seed=0, labelled_share=share)
    assert data.labelled_fraction == pytest.approx(3 / 12)
    objective = SemiSupervisedELBO(alpha=0.3, reconstruction=recon_term, kl=kl_term, weighting="paper")
    objective.bind_data(data)
    assert objective.repeats == data.repeats and (share is None) == (data.repeats == 1)
    order = data.epoch_order(len(data), 5, torch.Generator().manual_seed(0))
    summed = 0.0
    with torch.no_grad():
        for index in order.split(5):  # batches of 5, the last smaller: every row once
            terms = objective.compute(model, data.images[index], data.labels[index])
            summed += float(terms.loss) * index.numel()
    distinct_labels = torch.full((12,), UNLABELLED)
    kept = data.labels != UNLABELLED
    # the distinct images: the unlabelled ones, then each labelled one once
    labelled_images = data.images[kept][:3]
    all_x = torch.cat([data.images[~kept], labelled_images])
    distinct_labels[9:] = data.labels[kept][:3]
    expected = paper_objective(model, all_x, distinct_labels, alpha=0.3) / 12
    assert summed / len(data) == pytest.approx(expected, rel=1e-5)


def test_the_batch_weighting_keeps_the_former_recipe() -> None:
    model = tiny()
    x, y = dataset(8)
    y[::2] = UNLABELLED
    objective = SemiSupervisedELBO(alpha=0.7)
    assert objective.weighting == "batch" and SemiSupervisedELBO().alpha == 5.0  # the measured defaults
    objective.bind_data(partially_labeled((x, torch.arange(8) % K), n_labels=2, labelled_share=0.5))
    torch.manual_seed(0)
    terms = objective.compute(model, x, y)
    ce = F.cross_entropy(model.class_logits(x[1::2]), y[1::2], reduction="sum")
    expected = terms.total + 0.7 * ce / 4  # every row's bound once, α × the batch's mean cross-entropy
    assert terms.loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert "weighting" not in objective.config()  # as before: older checkpoints resume
    assert SemiSupervisedELBO(weighting="paper").config()["weighting"] == "paper"
    with pytest.raises(ValueError, match="weighting: expected 'batch' or 'paper', got 'kingma'"):
        SemiSupervisedELBO(weighting="kingma")


def test_oversampling_weighs_a_labelled_copy_one_in_repeats() -> None:
    x, y = dataset(40)
    data = partially_labeled((x, y), n_labels=4, labelled_share=0.5, seed=0)
    assert data.repeats == 9 and len(data) == 36 + 36
    objective = SemiSupervisedELBO(alpha=0.1, weighting="paper")
    objective.bind_data(data)
    unlabelled, labelled, ce = objective.row_weights(n_labelled=5, batch=10)
    s = 1 - 0.1 + 9 * 0.1
    assert (unlabelled, labelled) == pytest.approx((s, s / 9))
    assert ce * 9 / s == pytest.approx(0.1 * 40 / 4)  # α·N/n_l per distinct labelled image, per epoch


def test_bind_data_reads_pairs_and_leaves_other_data_to_the_batch() -> None:
    x, y = dataset(10)
    y[:6] = UNLABELLED
    objective = SemiSupervisedELBO()
    objective.bind_data((x, y))
    assert objective.labelled_fraction == pytest.approx(0.4) and objective.repeats == 1
    objective.bind_data(x)
    assert objective.labelled_fraction is None


def test_the_trainer_trains_m2_with_its_own_objective_on_partly_labelled_data() -> None:
    model = tiny()
    x, y = dataset(30)
    data = partially_labeled((x, y), n_labels=6, labelled_share=0.5, seed=0)
    trainer = gv.Trainer(model, max_epochs=1, batch_size=10, seed=0, quiet=True)
    assert isinstance(trainer.objective, SemiSupervisedELBO)
    history = trainer.fit(data)
    assert trainer.objective.repeats == data.repeats
    assert trainer.objective.labelled_fraction == pytest.approx(6 / 30)
    assert math.isfinite(history.last["train_loss"])
    assert isinstance(gv.Trainer(gv.presets.seed_vae(), quiet=True).objective, gv.ELBO)
    assert gv.VAE.default_objective == "elbo" and SemiSupervisedVAE.default_objective == "m2"


def test_a_model_that_names_no_objective_trains_with_the_elbo() -> None:
    class Plain(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> VAEOutput:
            raise NotImplementedError

    assert isinstance(gv.Trainer(Plain(), quiet=True, device="cpu").objective, gv.ELBO)


def test_labels_only_trains_a_copy_on_the_distinct_labelled_images() -> None:
    model = tiny()
    x, y = dataset(60)
    data = partially_labeled((x, y), n_labels=12, labelled_share=0.5, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    test = (x, y)
    result = train_labels_only(model, data, test, epochs=30, lr=1e-2, seed=0)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is left alone
    assert 0.0 <= result <= 1.0
    assert result == train_labels_only(model, data, test, epochs=30, lr=1e-2, seed=0)  # seeded
    # copies change nothing: the same as on the data without oversampling
    plain = partially_labeled((x, y), n_labels=12, seed=0)
    assert result == train_labels_only(model, plain, test, epochs=30, lr=1e-2, seed=0)


def test_labels_only_needs_labels() -> None:
    x, _ = dataset(6)
    with pytest.raises(ValueError, match="data: expected at least one labelled image"):
        train_labels_only(MLPClassifier(K, SHAPE), (x, torch.full((6,), UNLABELLED)), (x, torch.zeros(6).long()))
