"""Ctrl-C while the ``genvae`` command starts ends with one line, not a traceback.

Starting the command imports torch, which takes seconds; Python's own SIGINT handler would raise
``KeyboardInterrupt`` inside those imports and print a traceback of every module on the way.
:mod:`genvae` imports this module first: in the ``genvae`` command's process alone (the console
script, or ``python -m genvae``), it installs a handler that prints ``genvae: interrupted`` and
exits with status 130; :func:`genvae.cli.main` puts Python's handler back when it starts.
"""

from __future__ import annotations

# Only modules the interpreter has loaded before any user code (os, signal, sys): an import that
# runs Python code (pathlib, say) is a window in which Ctrl-C would still print a traceback.
import os
import signal
import sys


def _is_the_command() -> bool:
    if os.path.basename(sys.argv[0]) == "genvae":  # the console script
        return True
    argv = getattr(sys, "orig_argv", [])  # while `python -m genvae` imports the package, argv[0] is "-m"
    return any(argv[i] == "-m" and argv[i + 1] == "genvae" for i in range(len(argv) - 1))


def _interrupted(signum: int, frame: object) -> None:  # frame: a FrameType or None
    print("genvae: interrupted", file=sys.stderr, flush=True)
    raise SystemExit(130)


def restore_ctrl_c() -> None:
    """Give SIGINT back to Python (``KeyboardInterrupt``), if this module's handler holds it."""
    if signal.getsignal(signal.SIGINT) is _interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)


if _is_the_command() and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _interrupted)
