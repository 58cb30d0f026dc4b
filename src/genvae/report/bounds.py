"""Which bound a run's figures are: the name the report gives ``metrics.json``'s ``total``.

``metrics.json`` names the objective's bound (``"bound": {"name": "iwae", "k": 5}``) and records
the negative ELBO as ``elbo``; a run folder written by an older genvae has neither, so its bound is
the configured objective's (``config.json``'s ``objective`` and ``k``) and its ELBO ``recon + kl``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from genvae.losses import bound_label, objectives

__all__ = ["RunBound", "run_bound"]


@dataclass(frozen=True)
class RunBound:
    """The objective's bound of a run, and its value on the whole test set.

    Attributes:
        name: the bound's name (:data:`genvae.losses.BOUND_LABELS`): ``"elbo"``, ``"iwae"``, ...
        k: its importance samples, for IWAE; None otherwise.
        test: the negative bound on the test set (nats per image), None when not recorded.
    """

    name: str
    k: int | None
    test: float | None

    @property
    def label(self) -> str:
        """The bound in words, e.g. ``"negative IWAE bound (k=5)"``."""
        return bound_label(self.name, self.k)

    @property
    def is_elbo(self) -> bool:
        """Whether the objective's bound is the ELBO itself."""
        return self.name == "elbo"


def _configured(config: Mapping[str, Any]) -> dict[str, Any]:
    """The bound of the configured objective, for a run folder that does not record it."""
    try:
        name = getattr(objectives.get(str(config.get("objective"))), "bound_name", "elbo")
    except KeyError:
        name = "elbo"
    k = config.get("k")
    return {"name": name, "k": k if name == "iwae" and isinstance(k, int) else None}


def run_bound(metrics: Mapping[str, Any], config: Mapping[str, Any]) -> RunBound:
    """The bound of a run from its ``metrics.json`` (``bound``; else from ``config.json``) and
    its test value (the bound's own key, else ``total``)."""
    recorded = metrics.get("bound")
    bound = dict(recorded) if isinstance(recorded, Mapping) else _configured(config)
    name = str(bound.get("name", "elbo"))
    k = bound.get("k")
    test = metrics.get("test") or {}
    value = test.get(name, test.get("total")) if isinstance(test, Mapping) else None
    return RunBound(name, k if isinstance(k, int) else None, float(value) if isinstance(value, int | float) else None)
