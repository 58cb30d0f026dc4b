"""The progress bar of a long computation that the library runs for the user (fitting a sampler,
extracting features): tqdm on stderr, by default only when stderr is a terminal, so logs and CI
output stay clean.

Example:
    >>> from genvae._progress import progress_bar
    >>> with progress_bar(3, False, "demo") as bar:
    ...     bar.update(3)
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["progress_bar"]


class _NoBar:
    def update(self, n: int) -> None:
        return None


@contextmanager
def progress_bar(total: int, enabled: bool | None, desc: str, unit: str = "img") -> Iterator[Any]:
    """A tqdm bar of ``total`` ``unit`` (with a rate) on stderr when ``enabled`` (None: when stderr
    is a terminal); otherwise one whose ``update`` does nothing. The bar is closed afterwards."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield _NoBar()
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield bar
    finally:
        bar.close()
