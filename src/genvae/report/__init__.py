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

The package has one module per job, each reading the one below it:

- :mod:`genvae.report.kinds`: what kind of model a run holds, so which parts apply (the one place
  that looks at a model's class);
- :mod:`genvae.report.settings`: :class:`ReportSettings`, how much a report measures;
- :mod:`genvae.report.sampling`: the samplers each run is drawn with, fitted, and their sample
  quality (:class:`SampleQualityFigures`);
- :mod:`genvae.report.codes`: a VQ-VAE's evaluation (:class:`CodeEvaluation`);
- :mod:`genvae.report.evaluation`: :func:`evaluate_run` and its typed result,
  :class:`RunEvaluation`, written to ``evaluation.json`` by :func:`write_evaluation` and read back
  by :func:`read_evaluation`;
- :mod:`genvae.report.figures` and :mod:`genvae.report.sample_figures`: which figures a run
  gets, and their captions;
- :mod:`genvae.report.views`: one run evaluated and drawn (:class:`~genvae.report.views.RunView`);
- :mod:`genvae.report.questions`: the course notebook's questions, answered from the runs;
- :mod:`genvae.report.formatting`, :mod:`genvae.report.quality_html` and
  :mod:`genvae.report.page`: the HTML and its CSS;
- :mod:`genvae.report.document`: :func:`write_report`, which puts them together.

    >>> from genvae.report import write_report          # doctest: +SKIP
    >>> write_report(["runs/demo/vae", "runs/demo/cvae"], "report.html")  # doctest: +SKIP
"""

from genvae.report.codes import CodeEvaluation
from genvae.report.document import write_report
from genvae.report.evaluation import (
    Evaluation,
    RunEvaluation,
    evaluate_run,
    read_evaluation,
    write_evaluation,
)
from genvae.report.kinds import RunKind, run_kind
from genvae.report.sampling import SampleQualityFigures
from genvae.report.settings import ReportSettings

__all__ = [
    "CodeEvaluation",
    "Evaluation",
    "ReportSettings",
    "RunEvaluation",
    "RunKind",
    "SampleQualityFigures",
    "evaluate_run",
    "read_evaluation",
    "run_kind",
    "write_evaluation",
    "write_report",
]
