"""Learning from a few labels: the semi-supervised VAE (Kingma et al., 2014, "M2").

M2 is a conditional VAE p(x | y, z) p(z) p(y) with a classifier q(y | x) beside its encoder
q(z | x, y). A labelled image (x, y) contributes the CVAE bound on −log p(x, y); an unlabelled
image contributes the bound on −log p(x), in which the unknown label is summed out exactly:

    U(x) = Σ_y q(y | x) · L(x, y) − H(q(y | x)),

with L(x, y) = E_q[−log p(x | y, z)] + KL(q(z | x, y) ‖ p(z)) − log p(y) and a uniform p(y).
The classifier learns from the unlabelled images through the weights q(y | x), and from the
labelled ones through the added cross-entropy α·(−log q(y | x)).

Labels of −1 (:data:`genvae.data.partial.UNLABELLED`) mark unlabelled images, in tensors, ``(inputs, labels)`` pairs
and datasets alike; :func:`genvae.data.partial.partially_labeled` keeps ``n`` labels of a dataset.

Example:
    >>> import torch, genvae as gv
    >>> from genvae.semisupervised import SemiSupervisedELBO, seed_m2
    >>> model = seed_m2(latent_dim=2)
    >>> x, y = torch.rand(6, 1, 28, 28), torch.tensor([3, -1, -1, 7, -1, 0])
    >>> terms = SemiSupervisedELBO().compute(model, x, y)
    >>> sorted(terms.extra)
    ['accuracy', 'classification', 'label', 'labelled']
    >>> model.predict(x).shape
    torch.Size([6])
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from genvae import classifiers, decoders, encoders, models
from genvae._memory import arguments_named
from genvae._seed_networks import seed_decoder, seed_encoder
from genvae._validation import as_labels, check_labels, check_non_negative, check_positive_int, fmt_shape
from genvae.classification import (
    accuracy,
    class_probabilities,
    classifier_summary,
    confusion_matrix,
    fit_classifier,
    train_labels_only,
)
from genvae.conditioners import Conditioner
from genvae.data.partial import UNLABELLED
from genvae.likelihoods import Likelihood
from genvae.losses import ELBOTerms, LossTerm, Objective, objectives, resolve_term, term_name
from genvae.models import ConditionalVAE, Labels, VAEOutput

if TYPE_CHECKING:
    pass

__all__ = [
    "SemiSupervisedELBO",
    "SemiSupervisedOutput",
    "SemiSupervisedVAE",
    "accuracy",
    "class_probabilities",
    "classifier_summary",
    "confusion_matrix",
    "fit_classifier",
    "seed_m2",
    "train_labels_only",
]


@dataclass
class SemiSupervisedOutput:
    """What :meth:`SemiSupervisedVAE.forward` returns with ``semi_supervised=True``.

    Attributes:
        vae: the conditional VAE's pass over :attr:`x`.
        x: the inputs of that pass: the labelled inputs (with their labels), then every unlabelled
            input once per class, classes 0 to ``num_classes − 1`` in turn.
        logits: the classifier's logits for the batch, ``(batch, num_classes)``.
        labelled: positions in the batch of the labelled inputs.
        unlabelled: positions in the batch of the unlabelled inputs.
        labels: the labels of the labelled inputs.
    """

    vae: VAEOutput
    x: torch.Tensor
    logits: torch.Tensor
    labelled: torch.Tensor
    unlabelled: torch.Tensor
    labels: torch.Tensor


def _integer_labels(y: Any) -> torch.Tensor | None:
    """Integer class labels as a 1-D tensor (an int, a list, ``(batch,)`` or ``(batch, 1)``); None
    for anything else, which the parent's checks then judge."""
    y = as_labels("y", y)
    if not isinstance(y, torch.Tensor) or y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        return None
    if y.dim() == 2 and y.shape[1] == 1:
        return y[:, 0]
    return y if y.dim() == 1 else None


@models.register("m2")
class SemiSupervisedVAE(ConditionalVAE):
    """The semi-supervised VAE (M2): a conditional VAE with a classifier q(y | x) that infers the
    label of unlabelled inputs.

    Train it with :class:`SemiSupervisedELBO` on data whose unknown labels are −1
    (:func:`genvae.data.partial.partially_labeled`). As a conditional VAE it encodes, decodes,
    samples per class and swaps labels like any other; :meth:`predict` classifies.

    Args:
        encoder: an encoder of ``(x, c)``, or a registered name built with ``num_classes`` and
            ``conditioner``.
        decoder: a decoder of ``(z, c)``, or a registered name built likewise.
        classifier: any ``nn.Module`` mapping inputs to logits ``(batch, num_classes)``, or a name
            in :data:`genvae.classifiers.registry` (``"conv"``, ``"mlp"``), built with
            ``num_classes`` and the encoder's input shape.
        latent_dim: size of z.
        num_classes: number of classes.
        conditioner: how the label enters encoder and decoder built from names.
        likelihood: as for :class:`~genvae.VAE`.
        feature_dim: as for :class:`~genvae.VAE`.
        prior: the prior of z, passed on to :class:`~genvae.ConditionalVAE`.
        logvar_range: as for :class:`~genvae.VAE`.
        posterior: q(z | x, y), as for :class:`~genvae.VAE` (``"gaussian"``, ``"iaf"``).

    Example:
        >>> import torch, genvae as gv
        >>> from genvae.semisupervised import SemiSupervisedVAE
        >>> model = SemiSupervisedVAE("mlp", "mlp", "mlp", latent_dim=4, num_classes=10)
        >>> model.predict_proba(torch.rand(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """

    trains_with = ("m2",)  # the objectives a run (genvae.experiment) trains it with: its own bound
    #: The Trainer's objective for this model when given none: :class:`SemiSupervisedELBO`.
    default_objective: str = "m2"

    def __init__(
        self,
        encoder: str | nn.Module = "conv",
        decoder: str | nn.Module = "conv",
        classifier: str | nn.Module = "conv",
        latent_dim: int = 2,
        num_classes: int = 10,
        conditioner: str | Conditioner = "split",
        likelihood: str | Likelihood = "bernoulli",
        feature_dim: int | None = None,
        prior: Any = "normal",
        logvar_range: tuple[float, float] | None = None,
        posterior: Any = "gaussian",
    ) -> None:
        check_positive_int("latent_dim", latent_dim)
        check_positive_int("num_classes", num_classes)
        condition = {"condition_dim": num_classes, "conditioner": conditioner}
        with arguments_named(condition_dim=("num_classes", num_classes)):  # a size error names this model's argument
            super().__init__(
                encoders.registry.resolve(encoder, argument="encoder", **condition),
                decoders.registry.resolve(decoder, argument="decoder", latent_dim=latent_dim, **condition),
                latent_dim=latent_dim,
                num_classes=num_classes,
                likelihood=likelihood,
                feature_dim=feature_dim,
                prior=prior,
                logvar_range=logvar_range,
                posterior=posterior,
            )
        self.num_classes: int = num_classes
        shape = {"input_shape": self.input_shape} if self.input_shape is not None else {}
        part = classifiers.registry.resolve(classifier, argument="classifier", num_classes=num_classes, **shape)
        if not isinstance(part, nn.Module):
            raise TypeError(
                f"classifier: expected an nn.Module returning logits or a registered name "
                f"({', '.join(classifiers.names())}), got {type(part).__name__}"
            )
        self.classifier = part

    def condition(self, y: Labels | None, batch: int) -> torch.Tensor:
        """As :meth:`ConditionalVAE.condition <genvae.ConditionalVAE.condition>`, and a label of
        −1 (unlabelled) is accepted and gives the zero vector (no class): so the Trainer's check
        of partly labelled data passes. Training never decodes with it — the semi-supervised
        objective enumerates the classes instead — and :meth:`forward` refuses it."""
        labels = _integer_labels(y)
        if labels is None:
            return super().condition(y, batch)
        c = super().condition(labels.clamp(min=0), batch)  # checks the classes: [0, num_classes − 1]
        if self.check_inputs:  # and here the rest: the marker, and nothing below it
            check_labels("y", labels, self.num_classes, unlabelled=UNLABELLED)
        return c * (labels != UNLABELLED).to(c.device, c.dtype).unsqueeze(1)

    def class_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The classifier's logits ``(batch, num_classes)`` (unnormalised log q(y | x)). No input
        checks; differentiable."""
        logits = self.classifier(x)
        if not isinstance(logits, torch.Tensor) or logits.shape != (x.shape[0], self.num_classes):
            got = fmt_shape(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ValueError(
                f"classifier: expected logits of shape ({x.shape[0]}, {self.num_classes}) (batch, num_classes), "
                f"got {got}"
            )
        return logits

    def forward(  # type: ignore[override]
        self, x: torch.Tensor, y: Labels | None = None, *, semi_supervised: bool = False
    ) -> VAEOutput | SemiSupervisedOutput:
        """The conditional VAE's pass for labelled inputs; with ``semi_supervised``, the M2 pass
        (:meth:`forward_semi_supervised`), which :class:`SemiSupervisedELBO` asks for."""
        if semi_supervised:
            return self.forward_semi_supervised(x, y)
        labels = _integer_labels(y)
        # one host sync: a plain ELBO on partly labelled data would otherwise train on zero conditions
        if labels is not None and labels.numel() and bool((labels == UNLABELLED).any()):
            raise ValueError(
                f"y: expected a label for every input, got {UNLABELLED} (unlabelled); train on partly "
                "labelled data with SemiSupervisedELBO: gv.Trainer(model, SemiSupervisedELBO())"
            )
        return super().forward(x, y)

    def forward_semi_supervised(self, x: torch.Tensor, y: Labels | None) -> SemiSupervisedOutput:
        """Classify the batch, and run the conditional VAE once over the labelled inputs with their
        labels and every unlabelled input under every class: one pass of
        ``labelled + num_classes · unlabelled`` rows. ``y`` holds class indices and −1 for
        unlabelled inputs (None: all unlabelled)."""
        if self.check_inputs:
            self.check_input(x)
        labels = self._semi_supervised_labels(y, x.shape[0])
        logits = self.class_logits(x)
        known = labels != UNLABELLED
        # the split's sizes cross to the host once per batch
        labelled, unlabelled = known.nonzero().squeeze(1), (~known).nonzero().squeeze(1)
        k = self.num_classes
        rows_x = torch.cat([x[labelled], x[unlabelled].repeat_interleave(k, dim=0)])
        every_class = torch.arange(k, device=labels.device).repeat(unlabelled.numel())
        rows_y = torch.cat([labels[labelled], every_class])
        out = self.forward_condition(rows_x, self.condition(rows_y, rows_x.shape[0]))
        return SemiSupervisedOutput(out, rows_x, logits, labelled, unlabelled, labels[labelled])

    def _semi_supervised_labels(self, y: Labels | None, batch: int) -> torch.Tensor:
        if y is None:
            return torch.full((batch,), UNLABELLED, dtype=torch.long, device=self.device)
        labels = _integer_labels(y)
        if labels is None or labels.shape[0] != batch:
            got = fmt_shape(y.shape) + f" {y.dtype}" if isinstance(y, torch.Tensor) else type(y).__name__
            raise ValueError(
                f"y: expected integer class indices of shape ({batch},), -1 for unlabelled inputs, got {got}"
            )
        labels = labels.to(self.device, torch.long)
        if self.check_inputs:
            check_labels("y", labels, self.num_classes, unlabelled=UNLABELLED)
        return labels

    def predict_proba(self, x: Any, batch_size: int = 1000) -> torch.Tensor:
        """q(y | x) for every input ``(N, num_classes)``, on the CPU (see :func:`class_probabilities`)."""
        return class_probabilities(self, x, batch_size)

    def predict(self, x: Any, batch_size: int = 1000) -> torch.Tensor:
        """The most probable class of every input ``(N,)``, on the CPU."""
        return self.predict_proba(x, batch_size).argmax(1)

    def extra_repr(self) -> str:
        """The latent size and the number of classes, shown in the module's ``repr``."""
        return f"latent_dim={self.latent_dim}, num_classes={self.num_classes}"


def _per_row(values: torch.Tensor, term: str) -> torch.Tensor:
    if values.dim() == 0:
        raise ValueError(f"{term}: expected per-sample values (batch first), got a scalar")
    return values.reshape(values.shape[0], -1).sum(1)


@objectives.register("m2")
class SemiSupervisedELBO(Objective):
    """The M2 objective (Kingma et al., 2014, eq. 9): the negative bound of every input, labelled
    or not, plus α times the classifier's cross-entropy on the labelled inputs.

    The bounds, per input:

    - a labelled input: L(x, y) = recon + KL(q(z | x, y) ‖ p(z)) + log K (−log p(y), K classes);
    - an unlabelled input: U(x) = Σ_y q(y | x) · L(x, y) − H(q(y | x)), every class enumerated.

    Kingma et al. minimise, over the N training images of which n_l are labelled,
    ``J = Σ_unlabelled U(x) + Σ_labelled [L(x, y) + α·N/n_l · (−log q(y | x))]``: each image's
    bound counts once and the cross-entropy weighs α·N/n_l (their α is 0.1·N: ``alpha=0.1``).
    With ``weighting="paper"``, ``loss`` is weighted so that its mean over an epoch is exactly
    J / N *whatever the oversampling* of the labelled images: on data from
    :func:`~genvae.data.partial.partially_labeled` (with its ``labelled_share``), whose
    :attr:`~genvae.data.partial.PartiallyLabeledDataset.labelled_fraction` f = n_l / N and
    :attr:`~genvae.data.partial.PartiallyLabeledDataset.repeats` r (copies of each labelled
    image an epoch) the :class:`~genvae.Trainer` passes on (:meth:`bind_data`), a batch of B rows
    has ``loss = (s · Σ_unlabelled U + s/r · Σ_labelled L + α·s/(f·r) · Σ_labelled CE) / B`` with
    s = 1 − f + r·f (the rows an epoch per distinct image). On data that does not say (tensors,
    or before :meth:`bind_data`) f is the batch's labelled fraction and r = 1, the same in
    expectation for data without copies.

    ``weighting="batch"`` (the default) counts every row's bound once, copies included, and
    ``alpha`` multiplies the batch's mean cross-entropy. With ``alpha=5`` (the default) and the
    labelled images oversampled to half of each batch (``labelled_share=0.5``) it is the recipe
    measured best on the MNIST 8k/2k split with 100 labels (``benchmarks/results/semi_supervised.json``:
    87.7 ± 2.3% over 3 draws after 15 epochs, against 83.1% for the classifier trained on the
    labels alone); the paper weighting, measured after 10 epochs (``benchmarks/results/m2_recipe.json``),
    reached 16% with α = 0.1 and 51% with α = 1 (labels only: 79%): in short runs its
    cross-entropy is too weak against the unlabelled bound; with α = 10 it reached 83.7% after 3
    epochs, against 81.9% for the default (one draw each). The KL of z is weighted by ``beta``
    and the schedule factors either way.

    Args:
        alpha: weight of the classification loss, in units of the training set's size N (Kingma
            et al.'s α is ``alpha · N``).
        beta: weight of the KL of z in ``loss`` (schedules such as ``KLWarmup`` scale it).
        reconstruction: the reconstruction term, a registered name or a function (as for
            :class:`~genvae.ELBO`).
        kl: the KL term of z, a registered name or a function.
        weighting: ``"batch"`` or ``"paper"`` (above).

    The terms (:class:`~genvae.losses.ELBOTerms`) are unweighted: ``total`` is the batch's mean
    negative bound (on −log p(x, y) for labelled inputs, on −log p(x) for unlabelled ones),
    ``recon + kl + label``; ``recon`` and ``kl`` are expectations under q(y | x) for unlabelled
    inputs. The extras, per input of the batch: ``label`` (log K for a labelled input,
    KL(q(y | x) ‖ p(y)) for an unlabelled one), ``labelled`` (the fraction of labelled inputs),
    ``classification`` and ``accuracy`` (the summed cross-entropy and the number classified
    correctly, of the labelled inputs, divided by the batch size: on fully labelled data, such as
    a validation set, they are the classifier's cross-entropy and accuracy; on partly labelled
    data divide them by ``labelled``).
    """

    bound_name: ClassVar[str] = "m2"  # total, the negative M2 bound, is named so in the History

    def __init__(
        self,
        alpha: float = 5.0,
        beta: float = 1.0,
        reconstruction: str | LossTerm = "nll",
        kl: str | LossTerm = "kl",
        weighting: str = "batch",
    ) -> None:
        super().__init__()
        self.alpha = check_non_negative("alpha", alpha)
        self.beta = check_non_negative("beta", beta)
        if weighting not in ("batch", "paper"):
            raise ValueError(f"weighting: expected 'batch' or 'paper', got {weighting!r}")
        self.weighting = weighting
        self.reconstruction = resolve_term("reconstruction", reconstruction)
        self.kl = resolve_term("kl", kl)
        self._names = {"reconstruction": term_name(reconstruction), "kl": term_name(kl)}
        #: f = n_l / N and r of the training data (:meth:`bind_data`); None: from each batch.
        self.labelled_fraction: float | None = None
        self.repeats = 1

    @property
    def kl_weight(self) -> float:
        """The weight of the KL of z in use: ``beta`` times the schedule factors."""
        return self.beta * self.factor

    def bind_data(self, data: Any) -> None:
        """Read the training data's labelled fraction and oversampling (the Trainer calls it at the
        start of ``fit``): a :class:`~genvae.data.partial.PartiallyLabeledDataset` gives both;
        other data with a ``labels`` tensor, or an ``(inputs, labels)`` pair, gives its fraction of
        labels other than −1 (r = 1); anything else leaves the per-batch estimate."""
        fraction, repeats = getattr(data, "labelled_fraction", None), getattr(data, "repeats", 1)
        labels = getattr(data, "labels", None)
        if isinstance(data, tuple | list) and len(data) == 2:
            labels = data[1]
        if fraction is None and isinstance(labels, torch.Tensor) and labels.numel() and not labels.is_floating_point():
            fraction, repeats = float((labels != UNLABELLED).float().mean()), 1
        self.labelled_fraction = float(fraction) if fraction else None
        self.repeats = check_positive_int("repeats", int(repeats))

    def row_weights(self, n_labelled: int, batch: int) -> tuple[float, float, float]:
        """The weights of an unlabelled row's bound, a labelled row's bound and a labelled row's
        cross-entropy in a batch of ``batch`` rows (``loss`` is their weighted sum over the batch,
        divided by ``batch``)."""
        if self.weighting == "batch":
            return 1.0, 1.0, self.alpha * batch / max(n_labelled, 1)
        f, r = self.labelled_fraction, self.repeats
        if f is None:
            f, r = max(n_labelled, 1) / batch, 1
        s = 1 - f + r * f
        return s, s / r, self.alpha * s / (f * r)

    def compute(self, forward: Callable[..., Any], x: torch.Tensor, y: torch.Tensor | None) -> ELBOTerms:
        """The terms of a batch, from the model's semi-supervised pass ``forward(x, y, semi_supervised=True)``."""
        return self(forward(x, y, semi_supervised=True), x)

    def __call__(self, out: Any, x: torch.Tensor) -> ELBOTerms:
        if not isinstance(out, SemiSupervisedOutput):
            raise TypeError(
                "out: expected the output of SemiSupervisedVAE.forward(x, y, semi_supervised=True), got "
                f"{type(out).__name__}; train a SemiSupervisedVAE, through SemiSupervisedELBO.compute"
            )
        batch, k = out.logits.shape
        log_q = F.log_softmax(out.logits.float(), dim=1)  # float32 even when the pass ran in bf16
        n_labelled = out.labelled.numel()
        # per-input sums: (labelled inputs' values, unlabelled inputs' expectations under q(y | x))
        recon = self._split(out, log_q, self.reconstruction, "reconstruction")
        kl = self._split(out, log_q, self.kl, "kl")
        q = log_q[out.unlabelled].exp()
        label = (log_q.new_tensor(n_labelled * math.log(k)), (q * (log_q[out.unlabelled] + math.log(k))).sum())
        cross_entropy = -log_q[out.labelled, out.labels]
        correct = (log_q[out.labelled].argmax(1) == out.labels).sum()
        w_unlabelled, w_labelled, w_ce = self.row_weights(n_labelled, batch)
        bound = [r + self.kl_weight * d + c for r, d, c in zip(recon, kl, label, strict=True)]
        loss = (w_labelled * bound[0] + w_unlabelled * bound[1] + w_ce * cross_entropy.sum()) / batch
        recon_mean, kl_mean, label_mean = ((part[0] + part[1]) / batch for part in (recon, kl, label))
        extra = {
            "label": label_mean,
            "labelled": torch.tensor(n_labelled / batch, device=log_q.device),
            "classification": cross_entropy.sum() / batch,
            "accuracy": correct.double() / batch,
        }
        return ELBOTerms(
            loss=loss,
            total=recon_mean + kl_mean + label_mean,
            recon=recon_mean,
            kl=kl_mean,
            extra=extra,
            bound=self.bound_name,
        )

    @staticmethod
    def _split(
        out: SemiSupervisedOutput, log_q: torch.Tensor, term: LossTerm, name: str
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A term summed over the labelled rows, and over the unlabelled ones weighted by q(y | x)."""
        rows = _per_row(term(out.vae, out.x), name).float()
        n_labelled, k = out.labelled.numel(), log_q.shape[1]
        q = log_q[out.unlabelled].exp()
        return rows[:n_labelled].sum(), (q * rows[n_labelled:].reshape(-1, k)).sum()

    def config(self) -> dict[str, Any]:
        """α, β, the terms by name and the weighting (when ``"paper"``)."""
        # the weighting only when it is not the former one: older checkpoints resume as they were
        weighting = {"weighting": self.weighting} if self.weighting != "batch" else {}
        return {"alpha": self.alpha, "beta": self.beta, **self._names, **weighting}

    def __repr__(self) -> str:
        terms = ", ".join(f"{k}={v!r}" for k, v in self._names.items())
        return f"SemiSupervisedELBO(alpha={self.alpha}, beta={self.beta}, {terms}, weighting={self.weighting!r})"


def seed_m2(
    latent_dim: int = 2,
    num_classes: int = 10,
    conditioner: str | Conditioner = "split",
    likelihood: str = "bernoulli",
    classifier_hidden: Sequence[int] = (128,),
    classifier_dropout: float = 0.0,
    prior: Any = "normal",
    posterior: Any = "gaussian",
) -> SemiSupervisedVAE:
    """The semi-supervised VAE with the notebook's networks: the encoder and decoder of
    :func:`genvae.presets.seed_cvae` and a small convolutional classifier
    (:class:`~genvae.classifiers.ConvClassifier`: the encoder's two convolutions, then
    ``classifier_hidden`` units, then the logits). ``prior`` and ``posterior`` as for
    :func:`genvae.presets.seed_cvae`."""
    # built whole, as presets.seed_cvae builds it, though only its encoder and decoder are kept:
    # its heads draw from the random stream, so a seeded seed_m2 gets the weights it always had
    cvae = ConditionalVAE(
        encoder=seed_encoder(num_classes, conditioner),
        decoder=seed_decoder(latent_dim, num_classes, conditioner),
        latent_dim=latent_dim,
        num_classes=num_classes,
        likelihood=likelihood,
    )
    classifier = classifiers.ConvClassifier(
        num_classes, cvae.input_shape or (1, 28, 28), hidden=tuple(classifier_hidden), dropout=classifier_dropout
    )
    return SemiSupervisedVAE(
        cvae.encoder,
        cvae.decoder,
        classifier,
        latent_dim=latent_dim,
        num_classes=num_classes,
        likelihood=likelihood,
        prior=prior,
        posterior=posterior,
    )
