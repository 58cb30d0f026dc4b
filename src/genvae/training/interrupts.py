"""Ctrl-C during :meth:`Trainer.fit <genvae.Trainer.fit>`: the first one asks the run to stop at
the next step boundary (so a checkpoint of that step can be written); a second one interrupts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any, Protocol

__all__ = ["Interruptible", "sigint_requests_stop"]


class Interruptible(Protocol):
    """What Ctrl-C sets: a request the training loop reads at each step boundary."""

    interrupt_requested: bool


@contextlib.contextmanager
def sigint_requests_stop(target: Interruptible) -> Iterator[None]:
    """While inside, the first SIGINT sets ``target.interrupt_requested``; a second one raises
    KeyboardInterrupt as usual. Only the main thread can handle signals: elsewhere, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if target.interrupt_requested:
            raise KeyboardInterrupt
        target.interrupt_requested = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        target.interrupt_requested = False
