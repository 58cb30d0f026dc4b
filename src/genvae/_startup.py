"""Ctrl-C while the ``genvae`` command starts ends with one line, not a traceback.

Starting the command imports torch, which takes seconds; Python's own SIGINT handler would raise
``KeyboardInterrupt`` inside those imports and print a traceback of every module on the way.
:mod:`genvae` imports this module first: in the ``genvae`` command's process alone (the console
script, or ``python -m genvae``), it installs a handler that prints ``genvae: interrupted`` and
ends the process at once with status 130; :func:`genvae.cli.main` puts Python's handler back when
it starts. ``tools/ctrl_c_check.py`` sends SIGINT at random instants of the start to check this.
"""

# Only modules the interpreter has loaded before any user code (os, sys, and _signal, the C module:
# `signal` itself is Python code, an enum conversion of every signal, not loaded at start-up): an
# import that runs Python code is a window in which Ctrl-C would still print a traceback.
import _signal  # type: ignore[import-not-found]  # (no stub: the C half of `signal`)
import os
import sys


def _is_the_command() -> bool:
    if os.path.basename(sys.argv[0]) == "genvae":  # the console script
        return True
    argv = getattr(sys, "orig_argv", [])  # while `python -m genvae` imports the package, argv[0] is "-m"
    return any(argv[i] == "-m" and argv[i + 1] == "genvae" for i in range(len(argv) - 1))


def _interrupted(signum: int, frame: object) -> None:  # frame: a FrameType or None
    # End the process here rather than raise: an exception raised inside a module's import (numpy's
    # C core, within torch's) can be swallowed by it and leave it half imported, and the command
    # then goes on and fails later with a traceback. Nothing is written yet, so nothing to clean up.
    os.write(2, b"genvae: interrupted\n")
    os._exit(130)


def restore_ctrl_c() -> None:
    """Give SIGINT back to Python (``KeyboardInterrupt``), if this module's handler holds it."""
    if _signal.getsignal(_signal.SIGINT) is _interrupted:
        _signal.signal(_signal.SIGINT, _signal.default_int_handler)


if _is_the_command() and _signal.getsignal(_signal.SIGINT) is _signal.default_int_handler:
    _signal.signal(_signal.SIGINT, _interrupted)
