"""The course notebook's questions (10.4c, 10.5b, 10.5g–h, 10.6g, 10.6h, 10.6i), each answered in
one sentence from the runs of a report, with the number that answers it and a link to the figure
that shows it. An answer that needs a run the report does not have says so.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from genvae.report.evaluation import RunEvaluation
from genvae.report.formatting import change, esc, pct, than
from genvae.report.views import RunView

__all__ = ["QUESTIONS", "Answer", "answers", "questions_html"]


@dataclass
class Answer:
    """One sentence answering a question, and the figure it links to."""

    text: str  # HTML
    anchor: str | None
    figure: str


def _e(view: RunView) -> RunEvaluation:
    """The evaluation of a run with a Gaussian latent (the only runs the questions read)."""
    assert view.latent is not None, "the questions read runs with a Gaussian latent only"
    return view.latent


def _pick(views: Sequence[RunView], conditional: bool) -> RunView | None:
    """The run that stands for "the VAE" (or "the CVAE"): the notebook's latent size 2 first,
    a plain CVAE before a semi-supervised one, else the first given."""
    family = [v for v in views if v.kind.conditional == conditional]
    return min(family, key=lambda v: (v.kind.semi_supervised, v.latent_dim != 2), default=None)


def _answer_latent_size(views: Sequence[RunView], vae: RunView | None) -> Answer:
    """10.4c: compare the reconstruction and KL terms across latent sizes, when the runs allow it."""
    for conditional in (False, True):
        family = [
            v
            for v in views
            if v.kind.conditional == conditional and not v.kind.semi_supervised and v.test_terms is not None
        ]
        if len({v.latent_dim for v in family}) >= 2:
            small = min(family, key=lambda v: v.latent_dim)
            large = max(family, key=lambda v: v.latent_dim)
            (r0, k0), (r1, k1) = small.test_terms or (0.0, 0.0), large.test_terms or (0.0, 0.0)
            text = (
                f"From {small.latent_dim} to {large.latent_dim} latent dimensions ({esc(small.name)} → "
                f"{esc(large.name)}), the test reconstruction term {change(r0, r1)} and the KL "
                f"{change(k0, k1)}, with {_e(large).active_units.count} of the "
                f"{large.latent_dim} dimensions active."
            )
            return Answer(text, large.anchor("loss"), f"loss curves of {large.name}")
    view = vae or views[0]
    sizes = ", ".join(str(d) for d in sorted({v.latent_dim for v in views}))
    terms = view.test_terms
    split = (
        f"; {esc(view.name)}'s test loss splits into reconstruction {terms[0]:.2f} and KL {terms[1]:.2f} nats"
        if terms
        else ""
    )
    text = (
        f"Not measured here: every run has latent size {sizes}{split}; add a run trained with "
        "<code>--latent-dim 8</code> to this report to see how both terms move."
    )
    return Answer(text, view.anchor("loss"), f"loss curves of {view.name}")


def _answer_probe(vae: RunView | None) -> Answer:
    """10.5b: the latent probe's accuracy against chance."""
    if vae is None:
        return Answer("No unconditional VAE in this report.", None, "")
    accuracy, chance = _e(vae).latent_probe_accuracy, 1 / vae.num_classes
    verdict = "Largely yes" if accuracy >= 0.7 else "Partly" if accuracy >= 2 * chance else "Hardly"
    text = (
        f"{verdict}: a linear classifier on the VAE's {vae.latent_dim}-D posterior means labels "
        f"{pct(accuracy)} of {_e(vae).nll_images} test images correctly (chance: {pct(chance)})."
    )
    return Answer(text, vae.anchor("scatter"), f"latent scatter of {vae.name}")


def _standard_prior(view: RunView) -> bool:
    """Whether the run's p(z) is N(0, I): the prior ``"normal"`` on one level of latents."""
    return view.config.get("prior") in (None, "normal") and not view.config.get("latent_dims")


def _answer_prior_match(vae: RunView | None, other: RunView | None = None) -> Answer:
    """10.5g–h: the aggregate posterior against N(0, I) (of a run whose prior is N(0, I))."""
    if vae is None and other is not None:
        prior = other.config.get("prior") or "normal"
        what = f"latent levels (its top level's prior is {prior!r})" if other.config.get("latent_dims") else (
            f"the learned prior {prior!r}")  # fmt: skip
        return Answer(
            f"No VAE with the prior N(0, I) in this report: {other.name} has {what}, and its KL pulls each "
            f"q(z | x) toward that prior, so its codes are not expected to look like N(0, I); its scatter and "
            f"manifold show them against the prior's own range.",
            other.anchor("scatter"), f"latent scatter of {other.name}",
        )  # fmt: skip
    if vae is None:
        return Answer("No unconditional VAE in this report.", None, "")
    match, n = _e(vae).prior_match, _e(vae).nll_images
    ks, critical = max(match.ks_statistic), 1.36 / math.sqrt(n)
    spread = ", ".join(f"{math.sqrt(max(match.covariance[i][i], 0.0)):.2f}" for i in range(len(match.mean)))
    verdict = "so it is not N(0, I)" if ks > critical else "so each dimension is consistent with N(0, 1)"
    text = (
        f"The KL term pulls every q(z | x) toward N(0, I), so the points should look like N(0, I); the "
        f"VAE's aggregate posterior has mean ({', '.join(f'{m:.2f}' for m in match.mean)}) and standard "
        f"deviations ({spread}), its moment-matched Gaussian is {match.kl_moment_matched:.2f} nats from N(0, I), "
        f"and its largest per-dimension KS distance is {ks:.3f} against a 5% critical value of {critical:.3f}, "
        f"{verdict}."
    )
    return Answer(text, vae.anchor("scatter"), f"latent scatter of {vae.name}")


def _answer_cvae_latent(vae: RunView | None, cvae: RunView | None) -> Answer:
    """10.6g: the CVAE's z against the VAE's: class information and KL."""
    if vae is None or cvae is None:
        return Answer("This needs a VAE and a CVAE in the report.", None, "")
    p_cvae, p_vae = _e(cvae).latent_probe_accuracy, _e(vae).latent_probe_accuracy
    less = p_cvae < p_vae
    verdict = "holds less class information than" if less else "holds no less class information than"
    why = (
        "the label carries the class, so z is left with the style" if less else "it has not left the class to the label"
    )
    kl = ""
    if cvae.test_terms and vae.test_terms:
        kl = f", and its KL is {than(cvae.test_terms[1], vae.test_terms[1])} the VAE's"
    text = (
        f"Given the label, the CVAE's z {verdict} the VAE's (latent probe {pct(p_cvae)} against "
        f"{pct(p_vae)}){kl}: {why}."
    )
    return Answer(text, cvae.anchor("scatter"), f"latent scatter of {cvae.name}")


def _answer_bayes(cvae: RunView | None) -> Answer:
    """10.6h: classifying by Bayes' rule with the CVAE (and, for M2, its classifier)."""
    bayes = _e(cvae).bayes if cvae else None
    if cvae is None or bayes is None:
        return Answer("No conditional VAE with classes in this report.", None, "")
    own = _e(cvae).classifier
    classifier = f", and its classifier q(y | x) {pct(own.accuracy)}" if own else ""
    text = (
        f"Yes, by Bayes' rule rather than from z: argmax<sub>y</sub> p(x | y), each term an importance-weighted "
        f"estimate with k = {bayes.k}, labels {pct(bayes.accuracy)} of {bayes.images} test "
        f"images correctly (chance: {pct(1 / cvae.num_classes)}){classifier}."
    )
    key = "confusion" if cvae.anchor("confusion") else "manifold-label-0"
    figure = "confusion matrix" if cvae.kind.semi_supervised else "per-label manifolds"
    return Answer(text, cvae.anchor(key), f"{figure} of {cvae.name}")


def _answer_label_swap(cvae: RunView | None) -> Answer:
    """10.6i: how well a label swap changes the class and keeps the style."""
    f = _e(cvae).bayes if cvae else None
    if cvae is None or f is None:
        return Answer("No conditional VAE with classes in this report.", None, "")
    content = "mostly takes" if f.label_swap_accuracy >= 0.5 else "often fails to take"
    style = "stays close" if f.label_swap_z_shift < f.z_distance_between_images else "does not stay close"
    text = (
        f"Encode the image with its own label and decode its z under another: the result {content} the new "
        f"class (the CVAE's Bayes rule reads the new label in {pct(f.label_swap_accuracy)} of "
        f"{f.label_swap_images} swaps) and its style {style} (re-encoded, z moves {f.label_swap_z_shift:.2f} "
        f"on average, against {f.z_distance_between_images:.2f} between two different test images)."
    )
    return Answer(text, cvae.anchor("label-swap"), f"label swaps of {cvae.name}")


QUESTIONS = (
    ("10.4c", "If you increase the number of latent dimensions, how does that affect the reconstruction and KL terms?"),
    ("10.5b", "Would it be possible to classify digits based on this latent representation?"),
    ("10.5g–h", "What distribution should the points in the latent space follow, and does the plot match it?"),
    ("10.6g", "How is the CVAE's latent distribution different from the VAE's, and why?"),
    ("10.6h", "Would it be possible to classify digits based on the conditional VAE?"),
    ("10.6i", "How could a conditional VAE change the label of an image while keeping its style?"),
)


def answers(views: Sequence[RunView]) -> tuple[Answer, ...]:
    """The answers to :data:`QUESTIONS`, in order, from ``views`` (a VQ-VAE's left out: the
    questions are about a Gaussian latent)."""
    views = [v for v in views if v.latent is not None]
    if not views:
        missing = Answer("Not measured here: the questions are about a Gaussian latent, and no run has one.", None, "")
        return (missing,) * len(QUESTIONS)
    vae, cvae = _pick(views, False), _pick(views, True)
    return (
        _answer_latent_size(views, vae),
        _answer_probe(vae),
        _answer_prior_match(_pick([v for v in views if _standard_prior(v)], False), vae),
        _answer_cvae_latent(vae, cvae),
        _answer_bayes(cvae),
        _answer_label_swap(cvae),
    )


def questions_html(views: Sequence[RunView]) -> str:
    """The questions and their answers, as the page's list."""
    items = []
    for (number, question), answer in zip(QUESTIONS, answers(views), strict=True):
        link = f' <a href="#{answer.anchor}">→ {esc(answer.figure)}</a>' if answer.anchor else ""
        items.append(f'<li><p class="q"><strong>{number}</strong> {esc(question)}</p><p>{answer.text}{link}</p></li>')
    return f'<ul class="questions">{"".join(items)}</ul>'
