"""The semi-supervised VAE (M2): its objective, partly labelled data, classification and figures."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import genvae as gv
from genvae.classifiers import ConvClassifier, MLPClassifier
from genvae.data.partial import PartiallyLabeledDataset, partially_labeled
from genvae.gaussian import kl_per_dim, reparameterize
from genvae.semisupervised import (
    SemiSupervisedELBO,
    SemiSupervisedOutput,
    SemiSupervisedVAE,
    accuracy,
    class_probabilities,
    classifier_summary,
    confusion_matrix,
    seed_m2,
)

SHAPE = (1, 6, 6)


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny(num_classes: int = 3, latent_dim: int = 2, dropout: float = 0.0) -> SemiSupervisedVAE:
    """A small M2 on 6×6 images, every part an MLP."""
    cond = {"condition_dim": num_classes}
    return SemiSupervisedVAE(
        gv.encoders.MLPEncoder(SHAPE, hidden=(16,), **cond),
        gv.decoders.MLPDecoder(latent_dim, SHAPE, hidden=(16,), **cond),
        MLPClassifier(num_classes, SHAPE, hidden=(8,), dropout=dropout),
        latent_dim=latent_dim,
        num_classes=num_classes,
    )


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *SHAPE, generator=torch.Generator().manual_seed(seed))


# -- the objective --------------------------------------------------------------------------


def explicit_bound(model: SemiSupervisedVAE, x: torch.Tensor, y: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """The M2 bound of every input, computed input by input and class by class with the model's
    public pieces, using the noise ``eps`` row by row in the order the batched pass uses
    (labelled inputs first, then each unlabelled one once per class)."""
    k = model.num_classes
    log_q = F.log_softmax(model.class_logits(x), dim=1)
    labelled = [i for i in range(len(y)) if y[i] >= 0]
    unlabelled = [i for i in range(len(y)) if y[i] < 0]

    def bound(i: int, label: int, row: int) -> torch.Tensor:
        xi = x[i : i + 1]
        c = F.one_hot(torch.tensor([label]), k).float()
        mean, logvar = model.posterior(xi, c)
        z = reparameterize(mean, logvar, eps[row : row + 1])
        recon = -model.likelihood.log_prob(xi, model.decoder_params(z, c)).sum()
        return recon + kl_per_dim(mean, logvar).sum() + math.log(k)  # −log p(y) = log k

    values = torch.zeros(len(y))
    for row, i in enumerate(labelled):
        values[i] = bound(i, int(y[i]), row)
    for n, i in enumerate(unlabelled):
        q = log_q[i].exp()
        per_class = [bound(i, c, len(labelled) + n * k + c) for c in range(k)]
        values[i] = sum(q[c] * per_class[c] for c in range(k)) - (-(q * log_q[i]).sum())  # Σ q·L − H(q)
    return values


def test_the_unlabelled_bound_is_the_sum_over_every_class_computed_one_by_one() -> None:
    torch.manual_seed(1)
    model = tiny(num_classes=3)
    x = images(5)
    y = torch.tensor([2, -1, 0, -1, -1])
    torch.manual_seed(7)
    terms = SemiSupervisedELBO().compute(model, x, y)
    torch.manual_seed(7)
    eps = torch.randn(2 + 3 * 3, model.latent_dim)  # the same draw as the batched pass: one row each
    expected = explicit_bound(model, x, y, eps)
    assert terms.total.item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert (terms.recon + terms.kl + terms.extra["label"]).item() == pytest.approx(terms.total.item(), rel=1e-6)
    assert terms.extra["labelled"].item() == pytest.approx(2 / 5)


def test_the_pass_runs_labelled_inputs_once_and_unlabelled_ones_once_per_class() -> None:
    model = tiny(num_classes=4)
    x = images(3)
    out = model(x, torch.tensor([-1, 1, -1]), semi_supervised=True)
    assert isinstance(out, SemiSupervisedOutput)
    assert out.x.shape == (1 + 2 * 4, *SHAPE)
    assert torch.equal(out.x[0], x[1]) and all(torch.equal(out.x[1 + c], x[0]) for c in range(4))
    assert all(torch.equal(out.x[5 + c], x[2]) for c in range(4))
    assert out.vae.c is not None and torch.equal(out.vae.c.argmax(1), torch.tensor([1, 0, 1, 2, 3, 0, 1, 2, 3]))
    assert out.logits.shape == (3, 4)


def test_labelled_data_gives_the_cvae_elbo_plus_alpha_cross_entropy() -> None:
    model = tiny(num_classes=3)
    x, y = images(6), torch.tensor([0, 1, 2, 2, 1, 0])
    alpha = 0.7
    torch.manual_seed(3)
    terms = SemiSupervisedELBO(alpha=alpha).compute(model, x, y)
    torch.manual_seed(3)
    elbo = gv.ELBO()(model(x, y), x)
    cross_entropy = F.cross_entropy(model.class_logits(x), y)
    assert terms.recon.item() == pytest.approx(elbo.recon.item(), rel=1e-6)
    assert terms.kl.item() == pytest.approx(elbo.kl.item(), rel=1e-6)
    assert terms.total.item() == pytest.approx(elbo.total.item() + math.log(3), rel=1e-6)
    expected_loss = elbo.loss + math.log(3) + alpha * cross_entropy
    assert terms.loss.item() == pytest.approx(expected_loss.item(), rel=1e-6)
    assert terms.extra["classification"].item() == pytest.approx(cross_entropy.item(), rel=1e-6)
    correct = (model.class_logits(x).argmax(1) == y).double().mean()
    assert terms.extra["accuracy"].item() == pytest.approx(correct.item())


def test_the_classifier_learns_from_unlabelled_inputs_and_the_cvae_from_all() -> None:
    model = tiny(num_classes=3)
    x = images(4)
    terms = SemiSupervisedELBO().compute(model, x, torch.full((4,), -1))
    terms.loss.backward()
    for part in (model.classifier, model.encoder, model.decoder):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    assert terms.extra["labelled"].item() == 0 and terms.extra["classification"].item() == 0


def test_beta_and_schedule_factors_weight_the_kl_of_z_only() -> None:
    model = tiny()
    x, y = images(4), torch.tensor([0, -1, 1, -1])
    objective = SemiSupervisedELBO(beta=2.0)
    objective.set_factor("warmup", 0.25)
    torch.manual_seed(0)
    terms = objective.compute(model, x, y)
    assert objective.kl_weight == 0.5
    without_ce = terms.loss - objective.alpha * (terms.extra["classification"] * 4 / 2)
    assert without_ce.item() == pytest.approx((terms.recon + 0.5 * terms.kl + terms.extra["label"]).item(), rel=1e-5)
    assert objective.config() == {"alpha": 5.0, "beta": 2.0, "reconstruction": "nll", "kl": "kl"}


def test_the_objective_refuses_other_outputs_and_bad_weights() -> None:
    model = tiny()
    x = images(2)
    with pytest.raises(TypeError, match="out: expected the output of SemiSupervisedVAE"):
        SemiSupervisedELBO()(model(x, torch.tensor([0, 1])), x)
    for bad in (-1.0, float("nan"), True):
        with pytest.raises(ValueError, match="alpha: expected a finite number >= 0"):
            SemiSupervisedELBO(alpha=bad)


# -- learning from unlabelled data -------------------------------------------------------------


def two_strips(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Points (as 1×1×2 "images") on two long vertical strips, x₀ ≈ −2 (class 0) and x₀ ≈ 2
    (class 1), spread along x₁ ∈ [−4, 4]."""
    y = torch.arange(n) % 2
    x0 = (2 * y - 1) * 2.0 + 0.3 * torch.randn(n, generator=generator)
    x1 = 8 * torch.rand(n, generator=generator) - 4
    return torch.stack([x0, x1], 1).reshape(n, 1, 1, 2), y


def test_a_short_run_on_partly_labelled_data_beats_the_labels_alone() -> None:
    """Two labels per class, at the far ends of the strips (class 0 at the top, class 1 at the
    bottom): the labels alone tilt a classifier's boundary, while the unlabelled points show that
    the classes are the two strips. M2, whose decoder draws a strip per label, finds them."""
    generator = torch.Generator().manual_seed(0)
    x, y = two_strips(200, generator)
    test = two_strips(1000, generator)
    height = x[:, 0, 0, 1]
    chosen = torch.cat(
        [torch.where(y == 0, height, -9).topk(2).indices, torch.where(y == 1, -height, -9).topk(2).indices]
    )
    labels = torch.full_like(y, -1)
    labels[chosen] = y[chosen]
    data = partially_labeled(PartiallyLabeledDataset(x, labels, 2), 4, labelled_share=0.5)
    torch.manual_seed(0)
    cond = {"condition_dim": 2}
    model = SemiSupervisedVAE(
        gv.encoders.MLPEncoder((1, 1, 2), hidden=(32, 32), **cond),
        gv.decoders.MLPDecoder(1, (1, 1, 2), hidden=(32, 32), **cond),
        MLPClassifier(2, (1, 1, 2), hidden=(32,)),
        latent_dim=1,
        num_classes=2,
        likelihood=gv.likelihoods.Gaussian(0.3),
    )
    start = {k: v.clone() for k, v in model.classifier.state_dict().items()}
    trainer = gv.Trainer(model, SemiSupervisedELBO(alpha=1.0), max_epochs=10, batch_size=40, lr=1e-2, seed=0)
    trainer.fit(data)

    alone = MLPClassifier(2, (1, 1, 2), hidden=(32,))
    alone.load_state_dict(start)  # the same classifier, from the same start, as many steps
    optimizer = torch.optim.Adam(alone.parameters(), lr=1e-2)
    for _ in range(trainer.state.global_step):
        loss = F.cross_entropy(alone(x[chosen]), y[chosen])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert accuracy(alone, test) < 0.8
    assert accuracy(model, test) > 0.95


# -- labels --------------------------------------------------------------------------------


def test_condition_accepts_unlabelled_as_the_zero_vector_and_checks_the_rest() -> None:
    model = tiny(num_classes=3)
    c = model.condition(torch.tensor([2, -1, 0]), 3)
    assert torch.equal(c, torch.tensor([[0.0, 0, 1], [0, 0, 0], [1, 0, 0]]))
    with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 2\] or -1 \(unlabelled\), got -2"):
        model.condition(torch.tensor([0, -2]), 2)
    with pytest.raises(ValueError, match=r"y: expected class indices in \[0, 2\], got 3"):
        model.condition(torch.tensor([0, 3]), 2)
    with pytest.raises(ValueError, match="y: expected class indices"):
        model(images(2), torch.tensor([5, -1]), semi_supervised=True)


def test_a_plain_forward_refuses_unlabelled_inputs() -> None:
    model = tiny()
    with pytest.raises(ValueError, match="y: expected a label for every input, got -1"):
        model(images(2), torch.tensor([0, -1]))
    with pytest.raises(ValueError, match="y: expected integer class indices of shape"):
        model(images(2), torch.rand(2, 3), semi_supervised=True)


def test_a_classifier_with_the_wrong_output_is_named() -> None:
    model = SemiSupervisedVAE("mlp", "mlp", torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 4)))
    with pytest.raises(ValueError, match=r"classifier: expected logits of shape \(2, 10\)"):
        model.predict(torch.rand(2, 1, 28, 28))
    with pytest.raises(TypeError, match=r"classifier: expected an nn\.Module"):
        SemiSupervisedVAE("mlp", "mlp", classifier=3)  # type: ignore[arg-type]


# -- partly labelled data --------------------------------------------------------------------


def digits(n: int = 300) -> gv.data.ImageDataset:
    return gv.data.ImageDataset(images(n).expand(n, 1, 6, 6).clone(), torch.arange(n) % 10, name="toy")


def test_partially_labeled_keeps_balanced_labels_reproducibly() -> None:
    data = digits()
    part = partially_labeled(data, 25, seed=3)
    assert isinstance(part, PartiallyLabeledDataset) and len(part) == len(data)
    counts = part.labels[part.labelled].bincount(minlength=10)
    assert int(counts.sum()) == 25 and set(counts.tolist()) == {2, 3}
    assert torch.equal(part.labels[part.labelled], data.labels[part.labelled])  # kept labels are the true ones
    assert torch.equal(partially_labeled(data, 25, seed=3).labels, part.labels)
    assert not torch.equal(partially_labeled(data, 25, seed=4).labels, part.labels)
    assert part.num_classes == 10 and part.classes == data.classes and part.name == "toy"
    anywhere = partially_labeled(data, 7, per_class=False, seed=0)
    assert int(anywhere.labelled.sum()) == 7
    pair = partially_labeled((data.images, data.labels), 10)
    assert int(pair.labelled.sum()) == 10 and pair.num_classes == 10


def test_labelled_share_repeats_the_labelled_images() -> None:
    data = digits(300)
    plain = partially_labeled(data, 10, seed=1)
    part = partially_labeled(data, 10, seed=1, labelled_share=0.5)
    assert int(part.labelled.sum()) == 10 * 29 and len(part) == 290 + 290  # 29 = 290 unlabelled / 10 labels
    assert torch.equal(part.images[:290], plain.images[~plain.labelled])
    assert (part.labels[:290] == -1).all()
    copies = part.labelled.nonzero().squeeze(1)
    originals = plain.labelled.nonzero().squeeze(1).repeat(29)
    assert torch.equal(part.images[copies], plain.images[originals])
    assert torch.equal(part.labels[copies], plain.labels[originals])
    quarter = partially_labeled(data, 10, seed=1, labelled_share=0.25)
    assert int(quarter.labelled.sum()) == 10 * 10  # round(1/3 · 29) = 10 copies each
    with pytest.raises(ValueError, match="labelled_share: expected a number between 0 and 1"):
        partially_labeled(data, 10, labelled_share=1.0)


def test_partially_labeled_names_impossible_requests() -> None:
    data = digits(50)  # five images of each class
    with pytest.raises(ValueError, match="n_labels: expected at most 5 labels of class"):
        partially_labeled(data, 60)
    with pytest.raises(ValueError, match="n_labels: expected at most the 50 labelled images, got 51"):
        partially_labeled(data, 51, per_class=False)
    with pytest.raises(ValueError, match="n_labels: expected a non-negative integer"):
        partially_labeled(data, -1)
    with pytest.raises(ValueError, match="dataset: expected images with integer class labels"):
        partially_labeled(data.images, 5)


@pytest.mark.parametrize(("n", "n_labels", "batch_size"), [(300, 30, 10), (300, 40, 32), (1000, 100, 7), (97, 97, 5)])
def test_epoch_order_is_a_permutation_with_labels_in_every_batch(n: int, n_labels: int, batch_size: int) -> None:
    part = partially_labeled(digits(n), n_labels, per_class=False)
    generator = torch.Generator().manual_seed(0)
    order = part.epoch_order(n, batch_size, generator)
    assert torch.equal(order.sort().values, torch.arange(n))
    labelled = part.labelled[order]
    share = batch_size * n_labels / n
    for start in range(0, n - batch_size + 1, batch_size):  # every full batch
        count = int(labelled[start : start + batch_size].sum())
        assert math.floor(share) <= count <= math.ceil(share)
    again = part.epoch_order(n, batch_size, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)
    assert not torch.equal(order, part.epoch_order(n, batch_size, generator))  # the next epoch differs


def test_the_trainer_follows_the_order_and_records_the_extras() -> None:
    data = partially_labeled(digits(120), 12, seed=0)
    torch.manual_seed(0)
    model = tiny(num_classes=10)
    seen: list[int] = []

    class Count(gv.training.Callback):
        def on_batch_end(self, trainer: gv.Trainer, step: int, logs: object) -> None:
            assert isinstance(logs, gv.losses.ELBOTerms)
            seen.append(round(float(logs.extra["labelled"]) * 10))

    test = (images(20, seed=5), torch.arange(20) % 10)
    trainer = gv.Trainer(model, SemiSupervisedELBO(), max_epochs=2, batch_size=10, seed=0, callbacks=[Count()])
    history = trainer.fit(data, test)
    assert seen == [1] * 24  # one labelled image in each of the 12 batches of both epochs
    last = history.last
    for key in ("train_classification", "train_accuracy", "train_labelled", "train_label", "val_accuracy"):
        assert key in last and math.isfinite(last[key])
    assert last["train_labelled"] == pytest.approx(0.1)
    assert last["val_labelled"] == 1
    assert last["val_accuracy"] == pytest.approx(accuracy(model, test))


# -- classification ----------------------------------------------------------------------------


def test_predict_is_eval_safe_batched_and_takes_any_data() -> None:
    model = tiny(num_classes=3, dropout=0.5)
    model.train()
    x = images(7)
    probabilities = model.predict_proba(x, batch_size=3)
    assert model.training  # the mode is restored
    assert probabilities.shape == (7, 3) and torch.allclose(probabilities.sum(1), torch.ones(7))
    assert torch.equal(probabilities, model.predict_proba(gv.data.ImageDataset(x, torch.zeros(7, dtype=torch.long))))
    model.eval()
    with torch.no_grad():
        direct = F.softmax(model.classifier(x), dim=1)
    assert torch.allclose(probabilities, direct, atol=1e-6)
    assert torch.equal(model.predict(x.numpy()), direct.argmax(1))
    with pytest.raises(ValueError, match=r"x: expected a tensor of shape \(batch, 1, 6, 6\)"):
        model.predict(torch.rand(2, 1, 5, 5))


def test_confusion_matrix_and_accuracy_count_the_predictions() -> None:
    model = tiny(num_classes=3)
    x = images(30)
    predicted = model.predict(x)
    truth = torch.arange(30) % 3
    matrix = confusion_matrix(model, (x, truth))
    assert matrix.shape == (3, 3) and int(matrix.sum()) == 30
    for t in range(3):
        for p in range(3):
            assert matrix[t, p] == int(((truth == t) & (predicted == p)).sum())
    assert accuracy(model, (x, truth)) == pytest.approx(float((predicted == truth).double().mean()))
    summary = classifier_summary(model, (x, truth))
    assert summary["confusion_matrix"] == matrix.tolist() and summary["classified_images"] == 30
    assert summary["classifier_accuracy"] == pytest.approx(accuracy(model, (x, truth)))
    plain = MLPClassifier(3, SHAPE, hidden=(4,))  # any classifier module works too
    assert class_probabilities(plain, x).shape == (30, 3)
    assert accuracy(plain, (x, truth)) == pytest.approx(float((plain(x).argmax(1) == truth).double().mean()))
    with pytest.raises(ValueError, match=r"data: expected labels in \[0, 2\] for every input"):
        confusion_matrix(model, (x, truth - 1))
    with pytest.raises(ValueError, match="data: expected inputs with integer class labels, got no labels"):
        accuracy(model, x)


def test_a_vae_is_not_taken_for_a_classifier() -> None:
    x = torch.rand(4, 1, 28, 28)
    expected = "classifier: expected a SemiSupervisedVAE or an nn.Module returning logits, got "
    for model in (gv.presets.seed_vae(), gv.presets.seed_cvae()):
        with pytest.raises(TypeError, match=expected + type(model).__name__ + "$"):
            gv.viz.confusion(model, (x, torch.zeros(4, dtype=torch.long)))


def test_viz_confusion_shows_the_normalised_matrix() -> None:
    pytest.importorskip("matplotlib")
    model = tiny(num_classes=3)
    x, truth = images(30), torch.arange(30) % 3
    fig = gv.viz.confusion(model, (x, truth), classes=["a", "b", "c"])
    ax = fig.axes[0]
    shown = ax.images[0].get_array()
    matrix = confusion_matrix(model, (x, truth)).double()
    assert shown is not None
    assert torch.allclose(torch.as_tensor(shown.data).double(), matrix / matrix.sum(1, keepdim=True).clamp_min(1))
    assert [t.get_text() for t in ax.get_yticklabels()] == ["a", "b", "c"]
    assert ax.get_xlabel() == "predicted class"
    with pytest.raises(ValueError, match="classes: expected 3 class names, got 2"):
        gv.viz.confusion(model, (x, truth), classes=["a", "b"])


def test_the_existing_figures_work_for_m2() -> None:
    pytest.importorskip("matplotlib")
    model = seed_m2(latent_dim=2, num_classes=4)
    x, y = torch.rand(3, 1, 28, 28), torch.tensor([0, 1, 3])
    samples = gv.viz.samples(model, n=5)
    assert samples.axes[0].images[0].get_array().shape == (4 * 28, 5 * 28)  # one row per class
    swap = gv.viz.label_swap(model, x, y)
    assert swap.axes[0].images[0].get_array().shape == (3 * 28, 5 * 28)  # input + every class
    manifold = gv.viz.latent_manifold(model, y=2, n=4)
    assert manifold.axes[0].get_title() == gv.viz.condition_name(2)
    scatter = gv.viz.latent_scatter(model, (x, y))
    assert len(scatter.axes) >= 1


# -- building, saving, presets ---------------------------------------------------------------


def test_seed_m2_has_the_notebook_networks_and_a_conv_classifier() -> None:
    model = seed_m2(latent_dim=2, num_classes=10)
    cvae = gv.presets.seed_cvae(latent_dim=2, num_classes=10)
    count = sum(p.numel() for p in model.parameters()) - sum(p.numel() for p in model.classifier.parameters())
    assert count == sum(p.numel() for p in cvae.parameters()) == 200_725
    assert isinstance(model.classifier, ConvClassifier)
    assert sum(p.numel() for p in model.classifier.parameters()) == 421_642
    assert isinstance(gv.losses.objectives.get(model.default_objective)(), SemiSupervisedELBO)


def test_seed_m2_draws_the_networks_seed_cvae_draws_under_the_same_seed() -> None:
    """seed_m2 builds its networks without importing presets, and a seeded call still gives the
    weights it gave when it called presets.seed_cvae."""
    torch.manual_seed(0)
    model = seed_m2(latent_dim=2, num_classes=4, conditioner="concat")
    torch.manual_seed(0)
    cvae = gv.presets.seed_cvae(latent_dim=2, num_classes=4, conditioner="concat")
    for part in ("encoder", "decoder"):
        mine, theirs = getattr(model, part).state_dict(), getattr(cvae, part).state_dict()
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), part


def test_names_build_the_parts() -> None:
    model = SemiSupervisedVAE("conv", "conv", "mlp", latent_dim=3, num_classes=5, conditioner="concat")
    assert isinstance(model.classifier, MLPClassifier) and model.classifier.num_classes == 5
    assert model.encoder.condition_dim == 5 and model.decoder.latent_dim == 3
    with_mog = SemiSupervisedVAE("conv", "conv", "mlp", latent_dim=3, num_classes=5, prior="mog")
    assert isinstance(with_mog.prior, gv.priors.MixturePrior)


def test_save_and_load_rebuild_the_model(tmp_path: Path) -> None:
    model = seed_m2(latent_dim=3, num_classes=10, classifier_hidden=(32,), classifier_dropout=0.2)
    gv.save(model, tmp_path)
    again = gv.load(tmp_path)
    assert type(again) is SemiSupervisedVAE
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(model.predict_proba(x), again.predict_proba(x))
    assert again.classifier.dropout.p == 0.2
