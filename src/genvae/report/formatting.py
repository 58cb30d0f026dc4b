"""How the report writes values: escaped HTML, numbers, percentages, tables, and the words that
say which way a figure moved ("fell"/"rose") or compares ("lower"/"higher").

    >>> change(170.2, 167.1), than(1.0, 3.31), pct(0.4567)
    ('fell by 3.10 nats (170.20 → 167.10)', '2.31 nats lower than', '45.7%')
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["change", "esc", "fmt", "pct", "table", "than"]


def esc(value: Any) -> str:
    """``value`` as text, escaped for HTML."""
    return html.escape(str(value))


def fmt(value: Any) -> str:
    """``value`` as the report's tables show it: floats to 4 significant digits, in lists, tuples and dicts too."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def table(rows: dict[str, Any]) -> str:
    """A two-column HTML table of ``rows`` (label, value), scrolling sideways when it must."""
    cells = "".join(f"<tr><th>{esc(k)}</th><td>{esc(fmt(v))}</td></tr>" for k, v in rows.items())
    return f'<div class="scroll"><table>{cells}</table></div>'


def pct(value: float) -> str:
    """A fraction as a percentage with one decimal."""
    return f"{100 * value:.1f}%"


def change(before: float, after: float) -> str:
    """How a figure in nats moved: 'fell by 3.10 nats (170.20 → 167.10)'."""
    if abs(after - before) < 0.005:
        return f"stayed at {after:.2f} nats"
    verb = "fell" if after < before else "rose"
    return f"{verb} by {abs(after - before):.2f} nats ({before:.2f} → {after:.2f})"


def than(value: float, other: float) -> str:
    """'2.31 nats lower than' or 'higher than'."""
    return f"{abs(value - other):.2f} nats {'lower' if value < other else 'higher'} than"
