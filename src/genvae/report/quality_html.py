"""The page's parts for codes and samples: a VQ-VAE's rows of the summary, the samplers' sample
quality in the summary, and each run's sample-quality table with its caveat."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from genvae.report.codes import CodeEvaluation
from genvae.report.formatting import esc, pct
from genvae.report.sampling import CAVEAT, SampleQualityFigures
from genvae.report.views import RunView

__all__ = ["code_rows", "quality_html", "quality_summary_rows"]

Row = tuple[str, Callable[[RunView], str]]


def _quality(view: RunView) -> SampleQualityFigures | None:
    return view.evaluation.sample_quality


def code_rows(views: Sequence[RunView]) -> list[Row]:
    """A VQ-VAE's rows of the summary table (none when no run is one)."""
    if not any(v.codes for v in views):
        return []

    def cell(of: Callable[[CodeEvaluation], str]) -> Callable[[RunView], str]:
        return lambda view: of(view.codes) if view.codes is not None else "—"

    return [
        ("held-out reconstruction −log p(x | z_q) (nats/image)", cell(lambda e: f"{e.recon_nats:.2f}")),
        ("held-out reconstruction MSE (per pixel)", cell(lambda e: f"{e.recon_mse:.4f}")),
        ("codebook perplexity (of K)", cell(lambda e: f"{e.perplexity:.1f} of {e.codebook_size}")),
        ("codebook usage", cell(lambda e: pct(e.usage))),
    ]


def _figures_cell(name: str) -> Callable[[RunView], str]:
    def cell(view: RunView) -> str:
        quality = _quality(view)
        found = [s for s in quality.samplers if s.name == name] if quality else []
        if not found:
            return "—"
        s = found[0]
        return f"{s.frechet_distance:.2f} / {pct(s.precision)} / {pct(s.recall)}"

    return cell


def quality_summary_rows(views: Sequence[RunView]) -> list[Row]:
    """One summary row per sampler whose samples some run measured."""
    names: dict[str, None] = {}
    for view in views:
        quality = _quality(view)
        names.update(dict.fromkeys(s.name for s in quality.samplers) if quality else {})
    label = "samples from {}: Fréchet distance / precision / recall"
    return [(label.format(name), _figures_cell(name)) for name in names]


def quality_html(view: RunView) -> str:
    """The run's sample-quality table with its caveat, or what was not measured; "" when the
    report measured no samples and skipped no sampler."""
    quality = _quality(view)
    skipped = "".join(
        f"<li><strong>{esc(name)}</strong>: not used ({esc(why)})</li>" for name, why in (view.skipped or {}).items()
    )
    skipped = f'<ul class="note">{skipped}</ul>' if skipped else ""
    if quality is None:
        return skipped
    head = "<tr><th>sampler</th><th>Fréchet distance (lower is better)</th><th>precision</th><th>recall</th></tr>"
    body = "".join(
        f"<tr><th>{esc(s.name)}</th><td>{s.frechet_distance:.3f}</td><td>{pct(s.precision)}</td>"
        f"<td>{pct(s.recall)}</td></tr>"
        for s in quality.samplers
    )
    note = (
        f'<p class="note">{quality.real} samples per sampler (decoded means; a conditional model\'s drawn with '
        f"the test images' labels) against as many held-out images, in the features of a small classifier "
        f"trained for {quality.feature_epochs} epoch(s) on {quality.feature_images} training images; "
        f"precision and recall with k = {quality.k}. <strong>These figures are {esc(CAVEAT)}</strong>: they "
        "compare the samplers and runs of this report, never figures published elsewhere.</p>"
    )
    title = f'<h3 id="{view.slug}-sample-quality">Sample quality</h3>'
    return f'{title}<div class="scroll"><table>{head}{body}</table></div>{note}{skipped}'
