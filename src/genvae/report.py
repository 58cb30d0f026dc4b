"""The HTML report of one or more run directories: one self-contained file, images embedded, no scripts.

It reads at a glance: a summary on top puts every run side by side (test −ELBO, IW-NLL, KL,
active units, latent-probe and Bayes-rule accuracy, seconds per epoch) and answers the course
notebook's questions (10.4c, 10.5b, 10.5g–h, 10.6g–i) each in one sentence, with the number that
answers it computed from the runs and a link to the figure that shows it; then why the data was
chosen. Each run follows in its own section: its figures in a responsive grid, each captioned with
what to look for (loss curves, manifolds, latent scatter, reconstructions, samples, label swaps,
traversals, and the classifier's confusion matrix for a semi-supervised model), then its metrics,
configuration (prior, objective and ``k`` of the newer model families included) and training record.
The evaluation figures are also written to ``evaluation.json`` in each run. Runs are read through
:class:`genvae.runs.RunDir`; a run that diverged says so.

    >>> from genvae.report import write_report          # doctest: +SKIP
    >>> write_report(["runs/demo/vae", "runs/demo/cvae"], "report.html")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genvae import evaluation, viz
from genvae._io import atomic_write
from genvae.data import ImageDataset, load_dataset
from genvae.latent_metrics import active_units, mig
from genvae.models import VAE, ConditionalVAE
from genvae.runs import STATUS_COMPLETE, RunDir
from genvae.semisupervised import SemiSupervisedVAE, classifier_summary
from genvae.training.state import History

__all__ = ["ReportSettings", "evaluate_run", "write_report"]


@dataclass
class ReportSettings:
    """How much evaluation a report does (more is slower and more precise).

    Attributes:
        eval_size: test images used by the estimates and the scatter plot.
        probe_size: training images the latent probe fits on.
        k: importance samples per image for the NLL.
        classify_k: importance samples per image and class for the CVAE's Bayes-rule accuracy
            (and for reading the labels of its label swaps).
        classify_size: test images classified (and label-swapped).
    """

    eval_size: int = 1000
    probe_size: int = 5000
    k: int = 100
    classify_k: int = 20
    classify_size: int = 500


# -- evaluation -----------------------------------------------------------------------------------


def _data_for(config: dict[str, Any], split: str, limit: int) -> ImageDataset:
    size_key = "test_size" if split == "test" else "train_size"
    limit = min(limit, config.get(size_key) or limit)
    return load_dataset(config["dataset"], split, config.get("data_root"), False, limit)


def evaluate_run(
    model: VAE, train: ImageDataset, test: ImageDataset, settings: ReportSettings, seed: int = 0
) -> dict[str, Any]:
    """The evaluation figures the report shows (also what ``evaluation.json`` holds): the negative
    ELBO and the IW-NLL on the same test images, the latent probe, the active units and the prior
    match for every model; for a conditional model with classes, its Bayes-rule accuracy and how
    its label swaps read; for a :class:`~genvae.semisupervised.SemiSupervisedVAE`, its classifier's
    accuracy and confusion matrix."""
    torch.manual_seed(seed)
    test_eval = test.subset(slice(0, settings.eval_size))
    result = evaluation.nll(model, test_eval, k=settings.k)
    one_sample = evaluation.nll(model, test_eval, k=1)  # the negative ELBO, on the same images
    figures: dict[str, Any] = {
        "elbo_nats": one_sample.nats,
        "nll_nats": result.nats,
        "nll_bits_per_dim": result.bits_per_dim,
        "nll_k": settings.k,
        "nll_images": len(test_eval),
        "latent_probe_accuracy": evaluation.latent_probe(model, train.subset(slice(0, settings.probe_size)), test_eval),
    }
    units = active_units(model, test_eval)
    figures["active_units"] = {
        "count": units.count,
        "variances": units.variances.tolist(),
        "threshold": units.threshold,
    }
    match = evaluation.prior_match(model, test_eval)
    figures["prior_match"] = {
        "mean": match.mean.tolist(),
        "covariance": match.covariance.tolist(),
        "kl_moment_matched": match.kl_moment_matched,
        "ks_statistic": match.ks_statistic.tolist(),
    }
    if isinstance(model, ConditionalVAE) and (model.num_classes or 0) >= 2:
        figures.update(_bayes_figures(model, test, settings))
    if isinstance(model, SemiSupervisedVAE):
        figures.update(classifier_summary(model, test_eval))
    figures.update(_mig_figures(model, test, len(test_eval)))
    return figures


def _mig_figures(model: VAE, test: ImageDataset, n: int) -> dict[str, Any]:
    """The MIG against the data's known style factors (SyntheticDigits has them; real data does
    not), on the first ``n`` test images; nothing for data without factors."""
    factors = getattr(test, "factors", None)
    if not factors or model.latent_dim < 2 or n < 2:
        return {}
    data = (test.images[:n], test.labels[:n])  # a conditional model encodes with the labels
    result = mig(model, data, {name: values[:n] for name, values in factors.items()})
    return {"mig": {"score": result.score, "per_factor": result.per_factor, "images": n}}


def _bayes_figures(model: ConditionalVAE, test: ImageDataset, settings: ReportSettings) -> dict[str, Any]:
    """Bayes-rule accuracy, and the label swaps of the same images (notebook 10.6h and 10.6i)."""
    n = min(settings.classify_size, len(test))
    x, y = test.images[:n], test.labels[:n]
    predicted = evaluation.classify(model, x, k=settings.classify_k)
    figures: dict[str, Any] = {"bayes_accuracy": predicted.accuracy(y), "bayes_k": settings.classify_k}
    figures["bayes_images"] = n
    # each image decoded under another label, drawn uniformly (under the seed evaluate_run set)
    classes = int(model.num_classes or 0)  # at least 2: evaluate_run checked
    new_y = (y + torch.randint(1, classes, y.shape)) % classes
    swapped = evaluation.label_swap(model, x, y, new_y)
    figures["label_swap_accuracy"] = evaluation.classify(model, swapped, k=settings.classify_k).accuracy(new_y)
    figures["label_swap_images"] = n
    # the style is z: re-encoded under its new label, a swapped image should land near its old z
    z, _ = evaluation.posterior_means(model, (x, y))
    z_new, _ = evaluation.posterior_means(model, (swapped, new_y))
    figures["label_swap_z_shift"] = float((z_new - z).norm(dim=1).mean())
    figures["z_distance_between_images"] = float((z - z.roll(1, 0)).norm(dim=1).mean())
    return figures


# -- one run: its evaluation and figures ---------------------------------------------------------


@dataclass
class _Shown:
    """One figure of a run: its anchor key, title, what to look for, the PNG (base64)."""

    key: str
    title: str
    look_for: str
    png: str
    wide: bool = False


@dataclass
class _RunView:
    """What the report shows of one run, evaluated and drawn."""

    slug: str  # the prefix of the run's anchors
    run: RunDir
    kind: str
    conditional: bool
    semi: bool
    latent_dim: int
    num_classes: int
    config: dict[str, Any]
    metrics: dict[str, Any]
    figures: dict[str, Any]
    shown: list[_Shown]

    @property
    def name(self) -> str:
        return self.run.path.name or str(self.run.path)

    def anchor(self, key: str) -> str | None:
        """The id of the figure ``key`` of this run, or None when the run has no such figure."""
        return f"{self.slug}-{key}" if any(s.key == key for s in self.shown) else None

    @property
    def test_terms(self) -> tuple[float, float] | None:
        """(reconstruction, KL) on the whole test set at the end of training, if recorded."""
        test = self.metrics.get("test", {})
        if isinstance(test.get("recon"), float | int) and isinstance(test.get("kl"), float | int):
            return float(test["recon"]), float(test["kl"])
        return None


def _kind(model: VAE) -> str:
    if isinstance(model, SemiSupervisedVAE):
        return "Semi-supervised VAE (M2)"
    return "Conditional VAE" if isinstance(model, ConditionalVAE) else "VAE"


def _view(
    index: int,
    run: RunDir,
    settings: ReportSettings,
    data: tuple[ImageDataset, ImageDataset] | None,
    log: Callable[[str], None],
) -> _RunView:
    config, metrics, history = run.config(), run.metrics(), run.history()
    model = run.load_model()
    model.eval()
    if data is not None:
        train, test = data
    else:
        train = _data_for(config, "train", settings.probe_size)
        test = _data_for(config, "test", max(settings.eval_size, settings.classify_size))
    images = min(settings.eval_size, len(test))
    work = f"IW-NLL with k={settings.k:,} on {images:,} test images ({images * settings.k:,} decodes)"
    log(f"evaluating {run.path}: {work}")
    figures = evaluate_run(model, train, test, settings, seed=int(config.get("seed", 0)))
    run.write_evaluation(figures)
    return _RunView(
        slug=f"run{index + 1}",
        run=run,
        kind=_kind(model),
        conditional=isinstance(model, ConditionalVAE),
        semi=isinstance(model, SemiSupervisedVAE),
        latent_dim=model.latent_dim,
        num_classes=int(getattr(model, "num_classes", None) or test.num_classes or 10),
        config=config,
        metrics=metrics,
        figures=figures,
        shown=_figures(model, history, test, settings),
    )


def _png(fig: Any, dpi: int = 100) -> str:
    """The figure as a base64 PNG. A figure shown in a grid cell is drawn about 5 inches wide, so
    that its text reads like the page's; a detailed image takes a higher ``dpi``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


_LOOK = {
    "loss": "Look for train and test curves that fall and level off together (a test curve that turns "
    "up is overfitting); the KL panel shows how many nats the code carries.",
    "manifold": "Look for smooth changes between neighbouring cells and every class somewhere on the grid: "
    "each class's area is the share of latent space the decoder gives it.",
    "manifold-quantile": "Each cell holds equal prior mass, so this is what sampling the prior gives: "
    "blurry cells are prior mass the decoder maps to no clear class.",
    "manifold-label": "Look for the same style (slant, width, thickness) at the same place in every "
    "label's grid: z holds the style, the label the class (10.6e).",
    "scatter": "Look for separate clusters (z holds the class: 10.5b) or overlapping colours (z left the "
    "class to the label: 10.6g), and for a round cloud centred on 0, about ±2 wide, like N(0, I) (10.5g–h).",
    "reconstructions": "Look for each reconstruction (bottom) keeping the class of its input (top); "
    "blur is what a small code costs.",
    "samples": "Look for recognisable images of several classes; shapeless blobs are prior mass the "
    "decoder maps to no class.",
    "samples-cvae": "Look for each row showing its label and each column keeping one style down the rows.",
    "label-swap": "Look for each row keeping its input's style while the class follows the column (10.6i).",
    "traversal": "Look for one property changing at a time along each row (one latent dimension swept).",
    "confusion": "Look for a dark diagonal; off-diagonal cells are the classes the classifier q(y | x) mixes up.",
}


def _figures(model: VAE, history: History, test: ImageDataset, settings: ReportSettings) -> list[_Shown]:
    shown: list[_Shown] = []
    if len(history):
        curves = _png(viz.loss_curves(history), 80)
        shown.append(_Shown("loss", "Loss curves (per-sample nats)", _LOOK["loss"], curves, wide=True))
    if model.latent_dim >= 2:
        shown += _manifolds(model, test)
    scatter = viz.latent_scatter(model, test.subset(slice(0, settings.eval_size)), figsize=(5.5, 4.6))
    title = "Posterior means of test images, coloured by label"
    shown.append(_Shown("scatter", title, _LOOK["scatter"], _png(scatter, 120)))
    recon = _png(viz.reconstructions(model, test, n=12), 80)
    shown.append(_Shown("reconstructions", "Reconstructions", _LOOK["reconstructions"], recon, wide=True))
    shown += _sample_figures(model, test)
    if isinstance(model, SemiSupervisedVAE):
        n = min(settings.eval_size, len(test))
        names = _class_names(test, model.num_classes or 0)
        matrix = _png(viz.confusion(model, test.subset(slice(0, n)), classes=names, figsize=(5.5, 5)), 110)
        title = f"Confusion matrix of the classifier q(y | x), {n} test images"
        shown.append(_Shown("confusion", title, _LOOK["confusion"], matrix))
    return shown


def _class_names(test: ImageDataset, k: int) -> list[str]:
    return [test.classes[i] if i < len(test.classes) else str(i) for i in range(k)]


def _manifolds(model: VAE, test: ImageDataset) -> list[_Shown]:
    size = (5.0, 5.0)  # a grid cell's width; the decoded images are drawn at 160 dpi to stay sharp
    if not isinstance(model, ConditionalVAE):
        linear = _png(viz.latent_manifold(model, figsize=size), 160)
        quantile = _png(viz.latent_manifold(model, grid="quantile", figsize=size), 160)
        return [
            _Shown("manifold", "Latent manifold (linear grid)", _LOOK["manifold"], linear),
            _Shown("manifold-quantile", "Latent manifold (quantile grid)", _LOOK["manifold-quantile"], quantile),
        ]
    shown = []
    for label, name in enumerate(_class_names(test, model.num_classes or 0)):
        fig = viz.latent_manifold(model, y=label, n=15, figsize=(3.2, 3.2))  # a cell of the finer grid
        look = _LOOK["manifold-label"] if label == 0 else "Compare with the other labels' grids."
        title = f"Latent manifold for label {label} ({name})"
        shown.append(_Shown(f"manifold-label-{label}", title, look, _png(fig, 150)))
    return shown


def _sample_figures(model: VAE, test: ImageDataset) -> list[_Shown]:
    rows = min(model.latent_dim, 10)  # the traversal's rows: one per latent dimension
    if isinstance(model, ConditionalVAE):
        samples = _png(viz.samples(model, n=12, figsize=(6.0, 5.5)), 130)
        swaps = _png(viz.label_swap(model, test.images[:8], test.labels[:8], figsize=(6.0, 4.6)), 130)
        sweep = _png(viz.traversal(model, y=0, figsize=(6.0, 0.7 * rows + 0.5)), 130)
        return [
            _Shown("samples", "Samples: one row per label, one z per column", _LOOK["samples-cvae"], samples),
            _Shown("label-swap", "Label swaps: each input's z decoded under every label", _LOOK["label-swap"], swaps),
            _Shown("traversal", "Latent traversals (label 0)", _LOOK["traversal"], sweep),
        ]
    samples = _png(viz.samples(model, n=12, rows=4), 80)
    sweep = _png(viz.traversal(model, figsize=(6.0, 0.7 * rows + 0.5)), 130)
    return [
        _Shown("samples", "Samples from the prior", _LOOK["samples"], samples, wide=True),
        _Shown("traversal", "Latent traversals", _LOOK["traversal"], sweep),
    ]


# -- formatting -----------------------------------------------------------------------------------


def _esc(value: Any) -> str:
    return html.escape(str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    return str(value)


def _table(rows: dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{_esc(k)}</th><td>{_esc(_fmt(v))}</td></tr>" for k, v in rows.items())
    return f'<div class="scroll"><table>{cells}</table></div>'


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _change(before: float, after: float) -> str:
    """How a figure in nats moved: 'fell by 3.10 nats (170.20 → 167.10)'."""
    if abs(after - before) < 0.005:
        return f"stayed at {after:.2f} nats"
    verb = "fell" if after < before else "rose"
    return f"{verb} by {abs(after - before):.2f} nats ({before:.2f} → {after:.2f})"


def _than(value: float, other: float) -> str:
    """'2.31 nats lower than' or 'higher than'."""
    return f"{abs(value - other):.2f} nats {'lower' if value < other else 'higher'} than"


# -- the summary ----------------------------------------------------------------------------------


def _seconds_per_epoch(view: _RunView) -> str:
    seconds = [s for s in view.metrics.get("seconds_per_epoch", []) if isinstance(s, int | float)]
    return f"{sum(seconds) / len(seconds):.1f}" if seconds else "—"


def _test_term(view: _RunView, which: int) -> str:
    terms = view.test_terms
    if terms is None:
        return "—"
    return f"{terms[0] + terms[1]:.2f}" if which < 0 else f"{terms[which]:.2f}"


def _optional(key: str) -> Callable[[_RunView], str]:
    return lambda view: _esc(_fmt(view.config[key])) if view.config.get(key) is not None else "—"


def _accuracy(key: str) -> Callable[[_RunView], str]:
    return lambda view: _pct(view.figures[key]) if key in view.figures else "—"


def _summary_rows(views: Sequence[_RunView], settings: ReportSettings) -> list[tuple[str, Callable[[_RunView], str]]]:
    """The rows of the summary table: a label and what each run's cell shows."""
    rows: list[tuple[str, Callable[[_RunView], str]]] = [
        ("model", lambda v: _esc(v.kind)),
        ("data", lambda v: _esc(v.config.get("dataset", "—"))),
        ("latent size", lambda v: str(v.latent_dim)),
    ]
    for key, label in (("prior", "prior"), ("objective", "objective"), ("k", "objective k (samples)")):
        if any(v.config.get(key) is not None for v in views):
            rows.append((label, _optional(key)))
    rows += [
        ("epochs", lambda v: _esc(v.metrics.get("epochs", "—"))),
        ("test −ELBO (nats/image, whole test set)", lambda v: _test_term(v, -1)),
        ("test reconstruction (nats/image)", lambda v: _test_term(v, 0)),
        ("test KL (nats/image)", lambda v: _test_term(v, 1)),
        (f"IW-NLL (nats/image, k = {settings.k})", lambda v: f"{v.figures['nll_nats']:.2f}"),
        ("active units", lambda v: f"{v.figures['active_units']['count']} of {v.latent_dim}"),
        ("latent-probe accuracy", _accuracy("latent_probe_accuracy")),
        ("Bayes-rule accuracy (conditional)", _accuracy("bayes_accuracy")),
    ]
    if any(v.semi for v in views):
        rows.append(("classifier q(y | x) accuracy", _accuracy("classifier_accuracy")))
    if any("mig" in v.figures for v in views):
        rows.append(
            ("MIG (style factors)", lambda v: f"{v.figures['mig']['score']:.3f}" if "mig" in v.figures else "—")
        )
    rows.append(("seconds per epoch", _seconds_per_epoch))
    if any(v.metrics.get("status", STATUS_COMPLETE) != STATUS_COMPLETE for v in views):
        rows.append(("status", lambda v: _esc(v.metrics.get("status", STATUS_COMPLETE))))
    return rows


def _summary_html(views: Sequence[_RunView], settings: ReportSettings) -> str:
    head = "".join(f'<th scope="col"><a href="#{v.slug}">{_esc(v.name)}</a></th>' for v in views)
    body = "".join(
        f'<tr><th scope="row">{_esc(label)}</th>' + "".join(f"<td>{cell(v)}</td>" for v in views) + "</tr>"
        for label, cell in _summary_rows(views, settings)
    )
    n = sorted({v.figures["nll_images"] for v in views})
    note = (
        f'<p class="note">−ELBO, reconstruction and KL: the whole test set at the end of training; IW-NLL, '
        f"active units and the latent probe: {', '.join(map(str, n))} test images; the probe is a linear "
        "classifier from posterior means to labels.</p>"
    )
    return f'<div class="scroll"><table class="summary"><tr><th></th>{head}</tr>{body}</table></div>{note}'


# -- the notebook's questions ---------------------------------------------------------------------


@dataclass
class _Answer:
    """One sentence answering a question, and the figure it links to."""

    text: str  # HTML
    anchor: str | None
    figure: str


def _pick(views: Sequence[_RunView], conditional: bool) -> _RunView | None:
    """The run that stands for "the VAE" (or "the CVAE"): the notebook's latent size 2 first,
    a plain CVAE before a semi-supervised one, else the first given."""
    family = [v for v in views if v.conditional == conditional]
    return min(family, key=lambda v: (v.semi, v.latent_dim != 2), default=None)


def _answer_latent_size(views: Sequence[_RunView], vae: _RunView | None) -> _Answer:
    """10.4c: compare the reconstruction and KL terms across latent sizes, when the runs allow it."""
    for conditional in (False, True):
        family = [v for v in views if v.conditional == conditional and not v.semi and v.test_terms is not None]
        if len({v.latent_dim for v in family}) >= 2:
            small = min(family, key=lambda v: v.latent_dim)
            large = max(family, key=lambda v: v.latent_dim)
            (r0, k0), (r1, k1) = small.test_terms or (0.0, 0.0), large.test_terms or (0.0, 0.0)
            text = (
                f"From {small.latent_dim} to {large.latent_dim} latent dimensions ({_esc(small.name)} → "
                f"{_esc(large.name)}), the test reconstruction term {_change(r0, r1)} and the KL "
                f"{_change(k0, k1)}, with {large.figures['active_units']['count']} of the "
                f"{large.latent_dim} dimensions active."
            )
            return _Answer(text, large.anchor("loss"), f"loss curves of {large.name}")
    view = vae or views[0]
    sizes = ", ".join(str(d) for d in sorted({v.latent_dim for v in views}))
    terms = view.test_terms
    split = (
        f"; {_esc(view.name)}'s test loss splits into reconstruction {terms[0]:.2f} and KL {terms[1]:.2f} nats"
        if terms
        else ""
    )
    text = (
        f"Not measured here: every run has latent size {sizes}{split}; add a run trained with "
        "<code>--latent-dim 8</code> to this report to see how both terms move."
    )
    return _Answer(text, view.anchor("loss"), f"loss curves of {view.name}")


def _answer_probe(vae: _RunView | None) -> _Answer:
    """10.5b: the latent probe's accuracy against chance."""
    if vae is None:
        return _Answer("No unconditional VAE in this report.", None, "")
    accuracy, chance = vae.figures["latent_probe_accuracy"], 1 / vae.num_classes
    verdict = "Largely yes" if accuracy >= 0.7 else "Partly" if accuracy >= 2 * chance else "Hardly"
    text = (
        f"{verdict}: a linear classifier on the VAE's {vae.latent_dim}-D posterior means labels "
        f"{_pct(accuracy)} of {vae.figures['nll_images']} test images correctly (chance: {_pct(chance)})."
    )
    return _Answer(text, vae.anchor("scatter"), f"latent scatter of {vae.name}")


def _answer_prior_match(vae: _RunView | None) -> _Answer:
    """10.5g–h: the aggregate posterior against N(0, I)."""
    if vae is None:
        return _Answer("No unconditional VAE in this report.", None, "")
    match, n = vae.figures["prior_match"], vae.figures["nll_images"]
    ks, critical = max(match["ks_statistic"]), 1.36 / math.sqrt(n)
    spread = ", ".join(f"{math.sqrt(max(match['covariance'][i][i], 0.0)):.2f}" for i in range(len(match["mean"])))
    verdict = "so it is not N(0, I)" if ks > critical else "so each dimension is consistent with N(0, 1)"
    text = (
        f"The KL term pulls every q(z | x) toward N(0, I), so the points should look like N(0, I); the "
        f"VAE's aggregate posterior has mean ({', '.join(f'{m:.2f}' for m in match['mean'])}) and standard "
        f"deviations ({spread}), its moment-matched Gaussian is {match['kl_moment_matched']:.2f} nats from N(0, I), "
        f"and its largest per-dimension KS distance is {ks:.3f} against a 5% critical value of {critical:.3f}, "
        f"{verdict}."
    )
    return _Answer(text, vae.anchor("scatter"), f"latent scatter of {vae.name}")


def _answer_cvae_latent(vae: _RunView | None, cvae: _RunView | None) -> _Answer:
    """10.6g: the CVAE's z against the VAE's: class information and KL."""
    if vae is None or cvae is None:
        return _Answer("This needs a VAE and a CVAE in the report.", None, "")
    p_cvae, p_vae = cvae.figures["latent_probe_accuracy"], vae.figures["latent_probe_accuracy"]
    less = p_cvae < p_vae
    verdict = "holds less class information than" if less else "holds no less class information than"
    why = (
        "the label carries the class, so z is left with the style" if less else "it has not left the class to the label"
    )
    kl = ""
    if cvae.test_terms and vae.test_terms:
        kl = f", and its KL is {_than(cvae.test_terms[1], vae.test_terms[1])} the VAE's"
    text = (
        f"Given the label, the CVAE's z {verdict} the VAE's (latent probe {_pct(p_cvae)} against "
        f"{_pct(p_vae)}){kl}: {why}."
    )
    return _Answer(text, cvae.anchor("scatter"), f"latent scatter of {cvae.name}")


def _answer_bayes(cvae: _RunView | None) -> _Answer:
    """10.6h: classifying by Bayes' rule with the CVAE (and, for M2, its classifier)."""
    if cvae is None or "bayes_accuracy" not in cvae.figures:
        return _Answer("No conditional VAE with classes in this report.", None, "")
    f = cvae.figures
    classifier = f", and its classifier q(y | x) {_pct(f['classifier_accuracy'])}" if "classifier_accuracy" in f else ""
    text = (
        f"Yes, by Bayes' rule rather than from z: argmax<sub>y</sub> p(x | y), each term an importance-weighted "
        f"estimate with k = {f['bayes_k']}, labels {_pct(f['bayes_accuracy'])} of {f['bayes_images']} test "
        f"images correctly (chance: {_pct(1 / cvae.num_classes)}){classifier}."
    )
    key = "confusion" if cvae.anchor("confusion") else "manifold-label-0"
    return _Answer(
        text, cvae.anchor(key), f"{'confusion matrix' if cvae.semi else 'per-label manifolds'} of {cvae.name}"
    )


def _answer_label_swap(cvae: _RunView | None) -> _Answer:
    """10.6i: how well a label swap changes the class and keeps the style."""
    if cvae is None or "label_swap_accuracy" not in cvae.figures:
        return _Answer("No conditional VAE with classes in this report.", None, "")
    f = cvae.figures
    content = "mostly takes" if f["label_swap_accuracy"] >= 0.5 else "often fails to take"
    style = "stays close" if f["label_swap_z_shift"] < f["z_distance_between_images"] else "does not stay close"
    text = (
        f"Encode the image with its own label and decode its z under another: the result {content} the new "
        f"class (the CVAE's Bayes rule reads the new label in {_pct(f['label_swap_accuracy'])} of "
        f"{f['label_swap_images']} swaps) and its style {style} (re-encoded, z moves {f['label_swap_z_shift']:.2f} "
        f"on average, against {f['z_distance_between_images']:.2f} between two different test images)."
    )
    return _Answer(text, cvae.anchor("label-swap"), f"label swaps of {cvae.name}")


_QUESTIONS = (
    ("10.4c", "If you increase the number of latent dimensions, how does that affect the reconstruction and KL terms?"),
    ("10.5b", "Would it be possible to classify digits based on this latent representation?"),
    ("10.5g–h", "What distribution should the points in the latent space follow, and does the plot match it?"),
    ("10.6g", "How is the CVAE's latent distribution different from the VAE's, and why?"),
    ("10.6h", "Would it be possible to classify digits based on the conditional VAE?"),
    ("10.6i", "How could a conditional VAE change the label of an image while keeping its style?"),
)


def _questions_html(views: Sequence[_RunView]) -> str:
    vae, cvae = _pick(views, False), _pick(views, True)
    answers = (
        _answer_latent_size(views, vae),
        _answer_probe(vae),
        _answer_prior_match(vae),
        _answer_cvae_latent(vae, cvae),
        _answer_bayes(cvae),
        _answer_label_swap(cvae),
    )
    items = []
    for (number, question), answer in zip(_QUESTIONS, answers, strict=True):
        link = f' <a href="#{answer.anchor}">→ {_esc(answer.figure)}</a>' if answer.anchor else ""
        items.append(f'<li><p class="q"><strong>{number}</strong> {_esc(question)}</p><p>{answer.text}{link}</p></li>')
    return f'<ul class="questions">{"".join(items)}</ul>'


def _data_html(views: Sequence[_RunView]) -> str:
    """Which data each run used, and why (``notes["dataset_choice"]`` when the run chose it)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for v in views:
        notes = v.config.get("notes") or {}
        why = notes.get("dataset_choice") if isinstance(notes, dict) else None
        reason = str(why) if why else "named in the run's configuration (--dataset)"
        seen.setdefault((str(v.config.get("dataset", "—")), reason), []).append(v.name)
    items = "".join(
        f"<li><strong>{_esc(dataset)}</strong> ({_esc(', '.join(names))}): {_esc(reason)}</li>"
        for (dataset, reason), names in seen.items()
    )
    return f'<ul class="data">{items}</ul>'


# -- the page -------------------------------------------------------------------------------------


def _figure_html(slug: str, shown: _Shown) -> str:
    title = _esc(shown.title)
    wide = ' class="wide"' if shown.wide else ""
    image = f'<img alt="{title}" src="data:image/png;base64,{shown.png}">'
    caption = f"<figcaption><strong>{title}.</strong> {_esc(shown.look_for)}</figcaption>"
    return f'<figure id="{slug}-{shown.key}"{wide}>{image}{caption}</figure>'


def _status_html(metrics: dict[str, Any]) -> str:
    """A line saying what happened when the run did not simply finish (e.g. it diverged)."""
    status = metrics.get("status", STATUS_COMPLETE)
    if status == STATUS_COMPLETE:
        return ""
    reason = metrics.get("stop_reason") or status
    return f"<p><strong>Training {_esc(status)}:</strong> {_esc(reason)}</p>"


def _metrics_rows(view: _RunView) -> dict[str, Any]:
    figures, test = view.figures, view.metrics.get("test", {})
    rows = {
        "test negative ELBO, whole test set (nats/image)": test.get("total"),
        "test reconstruction": test.get("recon"),
        "test KL": test.get("kl"),
        f"negative ELBO, the same {figures['nll_images']} images (nats)": figures["elbo_nats"],
        f"IW-NLL, k={figures['nll_k']}, {figures['nll_images']} images (nats)": figures["nll_nats"],
        "IW-NLL (bits/dim)": figures["nll_bits_per_dim"],
        "latent linear probe accuracy": figures["latent_probe_accuracy"],
        f"active units (posterior-mean variance > {figures['active_units']['threshold']:g})": figures["active_units"][
            "count"
        ],
        "active units: variance per dimension": figures["active_units"]["variances"],
        "prior match: KL of moment-matched Gaussian (nats)": figures["prior_match"]["kl_moment_matched"],
        "prior match: aggregate mean": figures["prior_match"]["mean"],
        "prior match: KS statistic per dimension": figures["prior_match"]["ks_statistic"],
    }
    if "bayes_accuracy" in figures:
        rows[f"Bayes-rule accuracy, k={figures['bayes_k']}, {figures['bayes_images']} images"] = figures[
            "bayes_accuracy"
        ]
        rows["label swaps read as the new label"] = figures["label_swap_accuracy"]
        rows["label swaps: mean z shift (against the mean distance between images)"] = (
            f"{figures['label_swap_z_shift']:.4g} (against {figures['z_distance_between_images']:.4g})"
        )
    if "classifier_accuracy" in figures:
        rows[f"classifier q(y | x) accuracy, {figures['classified_images']} images"] = figures["classifier_accuracy"]
    if "mig" in figures:
        rows[f"MIG against the style factors, {figures['mig']['images']} images"] = figures["mig"]["score"]
        rows["MIG per factor"] = figures["mig"]["per_factor"]
    return rows


def _grid_html(view: _RunView) -> str:
    """The run's figures in a grid; the per-label manifolds of a conditional model share one row
    of the grid, in a finer grid of their own."""
    cells: list[str] = []
    labels: list[str] = []
    for shown in view.shown:
        if shown.key.startswith("manifold-label-"):
            if not labels:
                cells.append("")  # their place in the grid
            labels.append(_figure_html(view.slug, shown))
        else:
            cells.append(_figure_html(view.slug, shown))
    if labels:
        cells[cells.index("")] = f'<div class="labels">{"".join(labels)}</div>'
    return f'<div class="grid">{"".join(cells)}</div>'


def _section_html(view: _RunView) -> str:
    figures = _grid_html(view)
    training = {k: v for k, v in view.metrics.items() if k not in ("train", "test")}
    return (
        f'<section><h2 id="{view.slug}">{_esc(view.kind)}: {_esc(view.run.path)}</h2>{_status_html(view.metrics)}'
        f"{figures}"
        f"<h3>Metrics</h3>{_table(_metrics_rows(view))}"
        f"<details><summary>Configuration and training record</summary>"
        f"<h3>Configuration</h3>{_table(view.config)}<h3>Training</h3>{_table(training)}</details></section>"
    )


_STYLE = """
*, *::before, *::after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; padding: 1em 1.5em; max-width: 1240px; color: #222;
       line-height: 1.45; }
h1 { margin-top: 0.3em; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; font-size: 0.9em; vertical-align: top;
         overflow-wrap: anywhere; }
th { background: #f4f4f4; font-weight: 600; }
table.summary td { text-align: right; white-space: nowrap; }
.note { font-size: 0.85em; color: #555; }
ul.questions { list-style: none; padding: 0; }
ul.questions li { border-left: 4px solid #4a7fb5; padding: 0.1em 0.8em; margin: 0.6em 0; background: #f7f9fc; }
ul.questions p { margin: 0.3em 0; }
ul.questions p.q { color: #444; }
ul.data li { overflow-wrap: anywhere; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 340px), 1fr)); gap: 1.2em;
        align-items: start; }
figure { margin: 0; min-width: 0; }
figure.wide { grid-column: 1 / -1; }
.labels { grid-column: 1 / -1; display: grid; gap: 0.8em;
          grid-template-columns: repeat(auto-fill, minmax(min(100%, 220px), 1fr)); }
figure img { display: block; width: 100%; height: auto; border: 1px solid #eee; }
figure.wide img { max-width: 980px; }
figure:target { outline: 3px solid #4a7fb5; outline-offset: 4px; }
figcaption { font-size: 0.88em; color: #444; margin-top: 0.3em; }
section { border-top: 2px solid #ddd; margin-top: 2em; }
code { background: #f0f0f0; padding: 0 0.2em; }
"""


def write_report(
    runs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    settings: ReportSettings | None = None,
    data: tuple[ImageDataset, ImageDataset] | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Write one self-contained HTML report of ``runs`` (run directories written by
    ``genvae train``) to ``out``. Returns the path.

    The evaluation uses each run's own dataset (from its ``config.json``), or ``data``, a
    ``(train, test)`` pair, when given. ``log``, if given, receives a line as each run's
    evaluation starts (what it computes and how many decoder passes that is)."""
    settings = settings or ReportSettings()
    dirs = [RunDir(r) for r in runs]
    for run in dirs:
        run.require_published()
    views = [_view(i, run, settings, data, log or (lambda line: None)) for i, run in enumerate(dirs)]
    from genvae import __version__

    document = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>genvae report</title><style>{_STYLE}</style></head><body>"
        f"<h1>genvae report</h1><p>genvae {__version__}. Losses are per-sample averages in nats; the "
        "negative ELBO is reconstruction + KL with one sampled z per image; the IW-NLL is the "
        "importance-weighted estimate of −log p(x) (log p(x | y) for a conditional model).</p>"
        f"<h2>Summary</h2>{_summary_html(views, settings)}"
        f"<h2>The notebook's questions</h2>{_questions_html(views)}"
        f"<h2>Data</h2>{_data_html(views)}"
        f"{''.join(_section_html(view) for view in views)}</body></html>"
    )
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, document.encode())
    return target
