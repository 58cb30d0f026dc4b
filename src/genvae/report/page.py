"""The report's page: the summary table, the data section, one section per run, and the CSS.

:func:`page_html` puts the page together from the runs' :class:`~genvae.report.views.RunView`;
the notebook's questions come from :mod:`genvae.report.questions`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from genvae.report.codes import CodeEvaluation
from genvae.report.evaluation import RunEvaluation
from genvae.report.figures import ReportFigure
from genvae.report.formatting import esc, fmt, pct, table
from genvae.report.quality_html import code_rows, quality_html, quality_summary_rows
from genvae.report.questions import questions_html
from genvae.report.settings import ReportSettings
from genvae.report.views import RunView
from genvae.runs import STATUS_COMPLETE

__all__ = ["STYLE", "page_html"]


def _seconds_per_epoch(view: RunView) -> str:
    seconds = [s for s in view.metrics.get("seconds_per_epoch", []) if isinstance(s, int | float)]
    return f"{sum(seconds) / len(seconds):.1f}" if seconds else "—"


def _test_term(view: RunView, which: int) -> str:
    terms = view.test_terms
    if terms is None:
        return "—"
    return f"{terms[0] + terms[1]:.2f}" if which < 0 else f"{terms[which]:.2f}"


def _objective_bound(view: RunView) -> str:
    """The objective's negative bound on the test set, named (the ELBO's row holds the ELBO's)."""
    bound = view.bound
    return "—" if bound.test is None else f"{bound.test:.2f} ({esc(bound.label)})"


def _optional(key: str) -> Callable[[RunView], str]:
    return lambda view: esc(fmt(view.config[key])) if view.config.get(key) is not None else "—"


def _accuracy(of: Callable[[RunEvaluation], float | None]) -> Callable[[RunView], str]:
    """A cell showing an accuracy of the run's evaluation as a percentage, or "—" if it has none
    (or no Gaussian latent)."""

    def cell(view: RunView) -> str:
        accuracy = of(view.latent) if view.latent is not None else None
        return pct(accuracy) if accuracy is not None else "—"

    return cell


def _latent(of: Callable[[RunView, RunEvaluation], str]) -> Callable[[RunView], str]:
    """A cell of a Gaussian latent's figure; "—" for a VQ-VAE."""
    return lambda view: of(view, view.latent) if view.latent is not None else "—"


def _mig(view: RunView) -> str:
    mig = view.latent.mig if view.latent else None
    return f"{mig.score:.3f}" if mig else "—"


def _latent_size(view: RunView) -> str:
    codes = view.codes
    return str(view.latent_dim) if codes is None else f"a map of codes (K = {codes.codebook_size})"


def _summary_rows(views: Sequence[RunView], settings: ReportSettings) -> list[tuple[str, Callable[[RunView], str]]]:
    """The rows of the summary table: a label and what each run's cell shows."""
    rows: list[tuple[str, Callable[[RunView], str]]] = [
        ("model", lambda v: esc(v.kind.title)),
        ("data", lambda v: esc(v.config.get("dataset", "—"))),
        ("latent size", _latent_size),
    ]
    for key, label in (("prior", "prior"), ("objective", "objective"), ("k", "objective k (samples)")):
        if any(v.config.get(key) is not None for v in views):
            rows.append((label, _optional(key)))
    rows += [
        ("epochs", lambda v: esc(v.metrics.get("epochs", "—"))),
        ("test −ELBO (nats/image, whole test set)", lambda v: _test_term(v, -1)),
    ]
    if any(not v.bound.is_elbo for v in views):
        rows.append(("test: the objective's own bound (nats/image, whole test set)", _objective_bound))
    rows += [
        ("test reconstruction (nats/image)", lambda v: _test_term(v, 0)),
        ("test KL (nats/image)", lambda v: _test_term(v, 1)),
        (f"IW-NLL (nats/image, k = {settings.k})", _latent(lambda v, e: f"{e.nll_nats:.2f}")),
        ("active units", _latent(_active_units)),
        ("latent-probe accuracy", _accuracy(lambda e: e.latent_probe_accuracy)),
        ("Bayes-rule accuracy (conditional)", _accuracy(lambda e: e.bayes.accuracy if e.bayes else None)),
    ]
    if any(v.kind.semi_supervised for v in views):
        rows.append(
            ("classifier q(y | x) accuracy", _accuracy(lambda e: e.classifier.accuracy if e.classifier else None))
        )
    if any(v.latent and v.latent.mig for v in views):
        rows.append(("MIG (style factors)", _mig))
    rows += code_rows(views) + quality_summary_rows(views)
    rows.append(("seconds per epoch", _seconds_per_epoch))
    if any(v.metrics.get("status", STATUS_COMPLETE) != STATUS_COMPLETE for v in views):
        rows.append(("status", lambda v: esc(v.metrics.get("status", STATUS_COMPLETE))))
    return rows


def _summary_html(views: Sequence[RunView], settings: ReportSettings) -> str:
    head = "".join(f'<th scope="col"><a href="#{v.slug}">{esc(v.name)}</a></th>' for v in views)
    body = "".join(
        f'<tr><th scope="row">{esc(label)}</th>' + "".join(f"<td>{cell(v)}</td>" for v in views) + "</tr>"
        for label, cell in _summary_rows(views, settings)
    )
    n = sorted({v.latent.nll_images for v in views if v.latent})
    note = '<p class="note">−ELBO, reconstruction and KL: the whole test set at the end of training'
    if n:
        note += (
            f"; IW-NLL, active units and the latent probe: {', '.join(map(str, n))} test images; the probe is a "
            "linear classifier from posterior means to labels"
        )
    if any(v.codes for v in views):
        note += "; a VQ-VAE has no Gaussian posterior, so its IW-NLL, active units and probe are left blank"
    note += ".</p>"
    return f'<div class="scroll"><table class="summary"><tr><th></th>{head}</tr>{body}</table></div>{note}'


def _data_html(views: Sequence[RunView]) -> str:
    """Which data each run used, and why (``notes["dataset_choice"]`` when the run chose it)."""
    seen: dict[tuple[str, str], list[str]] = {}
    for v in views:
        notes = v.config.get("notes") or {}
        why = notes.get("dataset_choice") if isinstance(notes, dict) else None
        reason = str(why) if why else "named in the run's configuration (--dataset)"
        seen.setdefault((str(v.config.get("dataset", "—")), reason), []).append(v.name)
    items = "".join(
        f"<li><strong>{esc(dataset)}</strong> ({esc(', '.join(names))}): {esc(reason)}</li>"
        for (dataset, reason), names in seen.items()
    )
    return f'<ul class="data">{items}</ul>'


def _figure_html(slug: str, shown: ReportFigure) -> str:
    title = esc(shown.title)
    wide = ' class="wide"' if shown.wide else ""
    image = f'<img alt="{title}" src="data:image/png;base64,{shown.png}">'
    caption = f"<figcaption><strong>{title}.</strong> {esc(shown.look_for)}</figcaption>"
    return f'<figure id="{slug}-{shown.key}"{wide}>{image}{caption}</figure>'


def _status_html(metrics: dict[str, Any]) -> str:
    """A line saying what happened when the run did not simply finish (e.g. it diverged)."""
    status = metrics.get("status", STATUS_COMPLETE)
    if status == STATUS_COMPLETE:
        return ""
    reason = metrics.get("stop_reason") or status
    return f"<p><strong>Training {esc(status)}:</strong> {esc(reason)}</p>"


def _code_metrics_rows(view: RunView, e: CodeEvaluation) -> dict[str, Any]:
    terms, test = view.test_terms, view.metrics.get("test", {})
    return {
        "test negative ELBO (uniform code prior), whole test set (nats/image)": sum(terms) if terms else None,
        "test reconstruction": test.get("recon"),
        "test KL (n · log K, a constant)": test.get("kl"),
        f"reconstruction −log p(x | z_q), {e.images} test images (nats/image)": e.recon_nats,
        "reconstruction mean squared error (per pixel)": e.recon_mse,
        "negative ELBO (uniform code prior), the same images (nats/image)": e.elbo_nats,
        f"codebook perplexity (of K = {e.codebook_size})": e.perplexity,
        "codebook usage (share of codes in the held-out maps)": e.usage,
    }


def _active_units(view: RunView, e: RunEvaluation) -> str:
    """``count of size``; per level for a hierarchy (``50 + 14 of 50 + 20``, level 1 first), whose
    levels collapse separately and are compared level by level (Sønderby et al., 2016)."""
    if not view.latent_dims:  # one latent (a hierarchy has two levels or more)
        return f"{e.active_units.count} of {view.latent_dim}"
    return f"{' + '.join(map(str, _level_counts(view, e)))} of {' + '.join(map(str, view.latent_dims))} by level"


def _level_counts(view: RunView, e: RunEvaluation) -> list[int]:
    """The active units of each level: the stored variances (the joined z, level 1 first) cut by level."""
    units, counts, start = e.active_units, [], 0
    for size in view.latent_dims or ():
        counts.append(sum(v > units.threshold for v in units.variances[start : start + size]))
        start += size
    return counts


def _metrics_rows(view: RunView) -> dict[str, Any]:
    if view.latent is None:
        return _code_metrics_rows(view, view.codes)  # type: ignore[arg-type]  # a VQ-VAE's
    e, test = view.latent, view.metrics.get("test", {})
    units, match = e.active_units, e.prior_match
    terms, bound = view.test_terms, view.bound
    rows = {
        "test negative ELBO, whole test set (nats/image)": sum(terms) if terms else None,
        "test reconstruction": test.get("recon"),
        "test KL": test.get("kl"),
        **({f"test {bound.label}, whole test set (nats/image)": bound.test} if not bound.is_elbo else {}),
        f"negative ELBO, the same {e.nll_images} images (nats)": e.elbo_nats,
        f"IW-NLL, k={e.nll_k}, {e.nll_images} images (nats)": e.nll_nats,
        "IW-NLL (bits/dim)": e.nll_bits_per_dim,
        "latent linear probe accuracy": e.latent_probe_accuracy,
        f"active units (posterior-mean variance > {units.threshold:g})": units.count,
        **({"active units per level (level 1 first)": _level_counts(view, e)} if view.latent_dims else {}),
        "active units: variance per dimension": units.variances,
        "prior match: KL of moment-matched Gaussian (nats)": match.kl_moment_matched,
        "prior match: aggregate mean": match.mean,
        "prior match: KS statistic per dimension": match.ks_statistic,
    }
    if e.bayes:
        rows[f"Bayes-rule accuracy, k={e.bayes.k}, {e.bayes.images} images"] = e.bayes.accuracy
        rows["label swaps read as the new label"] = e.bayes.label_swap_accuracy
        rows["label swaps: mean z shift (against the mean distance between images)"] = (
            f"{e.bayes.label_swap_z_shift:.4g} (against {e.bayes.z_distance_between_images:.4g})"
        )
    if e.classifier:
        rows[f"classifier q(y | x) accuracy, {e.classifier.images} images"] = e.classifier.accuracy
    if e.mig:
        rows[f"MIG against the style factors, {e.mig.images} images"] = e.mig.score
        rows["MIG per factor"] = e.mig.per_factor
    return rows


def _grid_html(view: RunView) -> str:
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


def _section_html(view: RunView) -> str:
    figures = _grid_html(view)
    training = {k: v for k, v in view.metrics.items() if k not in ("train", "test")}
    return (
        f'<section><h2 id="{view.slug}">{esc(view.kind.title)}: {esc(view.run.path)}</h2>{_status_html(view.metrics)}'
        f"{figures}{quality_html(view)}"
        f"<h3>Metrics</h3>{table(_metrics_rows(view))}"
        f"<details><summary>Configuration and training record</summary>"
        f"<h3>Configuration</h3>{table(view.config)}<h3>Training</h3>{table(training)}</details></section>"
    )


#: The page's CSS: a grid of figures that fits the window (never a sideways scroll), and tables that
#: scroll sideways on their own when they must.
STYLE = """
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


def page_html(views: Sequence[RunView], settings: ReportSettings, version: str) -> str:
    """The whole page of a report of ``views``, made with genvae ``version``: one self-contained
    HTML document, images embedded, no scripts."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>genvae report</title><style>{STYLE}</style></head><body>"
        f"<h1>genvae report</h1><p>genvae {version}. Losses are per-sample averages in nats; the "
        "negative ELBO is reconstruction + KL with one sampled z per image (another objective's bound, "
        "such as IWAE's −L_k, is named as such, never the ELBO); the IW-NLL is the "
        "importance-weighted estimate of −log p(x) (log p(x | y) for a conditional model).</p>"
        f"<h2>Summary</h2>{_summary_html(views, settings)}"
        f"<h2>The notebook's questions</h2>{questions_html(views)}"
        f"<h2>Data</h2>{_data_html(views)}"
        f"{''.join(_section_html(view) for view in views)}</body></html>"
    )
