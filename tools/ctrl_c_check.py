"""Ctrl-C at random instants while the ``genvae`` command starts: never a traceback.

Starts the command N times in a fresh interpreter (``python -m genvae ...`` or the ``genvae``
console script) and sends SIGINT at a random instant (seeded) from ``--after`` (default 0) to
``--within`` seconds after the start: in the interpreter's start-up, genvae's imports (torch takes
seconds), argument parsing or the run itself. No output may hold ``Traceback`` (or ``Exception
ignored``): an interrupted command prints one line and exits with status 130 (or dies of the
signal, silently, when it lands in the interpreter's finalisation); one that finished first
exits with 0.

    python tools/ctrl_c_check.py                          # 20 tries of `genvae --help`, seed 0
    python tools/ctrl_c_check.py --tries 50 --seed 3 --command train
    python tools/ctrl_c_check.py --entry script --within 0.1   # the interpreter's own start-up

``--within auto`` (the default) times one uninterrupted start first and draws the instants over
it (plus 20%), so a slow or loaded machine is covered as a fast one is; a third of the instants
fall in the first 0.3 s of the span. It prints each try that failed (with the end of its output),
a summary, and exits with status 1 on any failure.

Known, and not genvae's to fix: a SIGINT in the interpreter's first few hundredths of a second
(``site``, ``runpy``, the console script's ``import re``), before genvae's first line runs, gets
Python's own traceback.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

COMMANDS = {
    "help": ["--help"],
    "version": ["--version"],
    "train": ["train", "--dataset", "synthetic-digits", "--train-size", "64", "--test-size", "32", "--epochs", "1",
              "--latent-dim", "2", "--device", "cpu", "--threads", "1", "--no-report", "--overwrite"],
}  # fmt: skip
# the output of an interrupted start: one of these lines, nothing else
INTERRUPTED = ("genvae: interrupted", "genvae train: interrupted")
SAFETY_TIMEOUT = 600.0  # seconds a command may take once interrupted: only a real hang reaches it


@dataclass
class Outcome:
    instant: float
    status: int
    output: str
    signalled: bool  # False: the command ended before its instant

    def problem(self, finished: int) -> str | None:
        """What is wrong with this outcome, or None."""
        if "Traceback" in self.output or "Exception ignored" in self.output:
            return "a traceback"
        if not self.signalled:
            return None if self.status == finished else f"exit status {self.status} without a signal"
        lines = self.output.splitlines()
        if self.status == finished:  # the signal came as it exited: its output is the command's own
            return None
        if self.status == -signal.SIGINT:  # ended by the signal itself (in Python's finalisation): silent
            return None
        if self.status != 130:
            return f"exit status {self.status}, expected 130"
        if len(lines) > 1 and not self.output.startswith("genvae train: preparing"):
            return f"{len(lines)} lines of output"
        last = lines[-1] if lines else ""
        if not (last in INTERRUPTED or last.startswith("genvae train: interrupted at epoch")):
            return f"unexpected output {last!r}"
        return None


def command_line(entry: str, command: str, out: Path) -> list[str]:
    args = [*COMMANDS[command], *(["--out", str(out)] if command == "train" else [])]
    if entry == "script":
        return [str(Path(sys.executable).with_name("genvae")), *args]
    return [sys.executable, "-m", "genvae", *args]


def run_once(argv: list[str], instant: float | None, env: dict[str, str]) -> Outcome:
    """Start ``argv``; at ``instant`` seconds (None: never) send SIGINT unless it has ended."""
    started = time.monotonic()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)
    signalled = False
    if instant is not None:
        try:
            process.wait(timeout=max(0.0, instant - (time.monotonic() - started)))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGINT)
            signalled = True
    try:
        output, _ = process.communicate(timeout=SAFETY_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        output += f"\n[ctrl_c_check: still running {SAFETY_TIMEOUT:.0f} s after SIGINT: a hang]"
    return Outcome(instant or 0.0, process.returncode, output, signalled)


def draw_instants(tries: int, after: float, within: float, seed: int) -> list[float]:
    """``tries`` instants from ``after`` to ``within`` seconds: a third in the first 0.3 s of that
    span (from 0: the interpreter's own start-up), the rest over all of it."""
    rng = random.Random(seed)
    early = tries // 3
    return [rng.uniform(after, min(after + 0.3, within)) for _ in range(early)] + [
        rng.uniform(after, within) for _ in range(tries - early)
    ]


def check(tries: int, seed: int, within: str, command: str, entry: str, *, after: float = 0.0, log: bool = True) -> int:
    """Run the check; returns the number of failures."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    say = print if log else (lambda *args, **kwargs: None)
    with tempfile.TemporaryDirectory(prefix="genvae-ctrl-c-") as tmp:
        argv = command_line(entry, command, Path(tmp) / "run")
        if within == "auto":  # one start, timed, uninterrupted
            started = time.monotonic()
            reference = run_once(argv, None, env)
            window = 1.2 * (time.monotonic() - started)
            if reference.status != 0:
                say(f"the command failed without a signal (status {reference.status}):\n{reference.output}")
                return 1
        else:
            window = float(within)
        instants = draw_instants(tries, after, window, seed)
        shown = " ".join(argv[1:] if entry == "module" else argv)
        say(f"{shown}: {tries} tries, SIGINT from {after:.2f} to {window:.2f} s after the start")
        failures = signalled = 0
        for number, instant in enumerate(instants, start=1):
            outcome = run_once(argv, instant, env)
            signalled += outcome.signalled
            problem = outcome.problem(0)
            if problem is not None:
                failures += 1
                say(f"  try {number}: SIGINT at {instant:.3f} s: {problem} (exit {outcome.status})")
                say("    " + "\n    ".join(outcome.output.strip().splitlines()[-40:]))
        say(f"{tries} tries, {signalled} interrupted, {tries - signalled} finished first; {failures} failures")
    return failures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tries", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--within", default="auto", help="seconds, or auto (one timed start, plus 20%%)")
    parser.add_argument("--after", type=float, default=0.0, help="the earliest instant, in seconds (default 0)")
    parser.add_argument("--command", choices=sorted(COMMANDS), default="help")
    parser.add_argument("--entry", choices=("module", "script"), default="module")
    args = parser.parse_args()
    sys.exit(1 if check(args.tries, args.seed, args.within, args.command, args.entry, after=args.after) else 0)


if __name__ == "__main__":
    main()
