"""Mutation check: put each named mutant of ``tools/mutants.py`` into a copy of the repository and
run the tests it names there. A mutant is *caught* when a test fails (the first one is named),
*survived* when they all pass, and *does not apply* when its original text is no longer in the
source (the code changed; update the mutant).

    python tools/mutation_check.py                      # every mutant; table to tools/mutation_results.md
    python tools/mutation_check.py --only "amp ignored" --only "fused ignored"
    python tools/mutation_check.py --all                # name every failing test, not just the first
    python tools/mutation_check.py --list

The copy holds the files git tracks plus untracked files it does not ignore (the working tree as
it is, uncommitted edits included), with ``../shared`` linked beside it as in CI. Tests run with
``PYTHONPATH`` at the copy's ``src``; slow tests are left out unless ``--slow``. The unmutated
copy is tested first: a test that already fails would make every mutant look caught.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutants import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # "caught", "survived", "does not apply", "error"
    detail: str
    seconds: float


def copy_repository(target: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():  # a file deleted in the working tree is still listed as cached
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    shared = ROOT.parent / "shared"
    if shared.is_dir():
        (target.parent / "shared").symlink_to(shared)


def test_paths(copy: Path, patterns: tuple[str, ...]) -> list[str]:
    found: list[str] = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern, root_dir=copy)):
            if path not in found:
                found.append(path)
    return found


def run_tests(copy: Path, tests: list[str], slow: bool, timeout: float, stop_early: bool = True) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(copy / "src"), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    if stop_early:
        command.append("-x")
    if not slow:
        command += ["-m", "not slow"]
    try:
        done = subprocess.run(command, cwd=copy, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, f"timed out after {timeout:.0f} s"
    return done.returncode, done.stdout + done.stderr


def failures(output: str, most: int = 4) -> str:
    """The failed tests named in pytest's summary (the first ``most`` of them)."""
    found = list(dict.fromkeys(re.findall(r"^(?:FAILED|ERROR) (\S+)", output, re.MULTILINE)))
    if not found:
        return "(no test named)"
    more = f" and {len(found) - most} more" if len(found) > most else ""
    return ", ".join(found[:most]) + more


def check_mutant(copy: Path, mutant: Mutant, slow: bool, timeout: float, stop_early: bool) -> Outcome:
    path = copy / mutant.file
    start = time.perf_counter()
    source = path.read_text() if path.is_file() else ""
    count = source.count(mutant.original)
    if count != 1:
        why = "file not found" if not path.is_file() else f"original text found {count} times"
        return Outcome(mutant, "does not apply", why, 0.0)
    tests = test_paths(copy, mutant.tests)
    if not tests:
        return Outcome(mutant, "error", f"no test file matches {', '.join(mutant.tests)}", 0.0)
    path.write_text(source.replace(mutant.original, mutant.replacement))
    try:
        code, output = run_tests(copy, tests, slow, timeout, stop_early)
    finally:
        path.write_text(source)
    seconds = time.perf_counter() - start
    if code == 0:
        return Outcome(mutant, "survived", f"{len(tests)} file(s) passed: {', '.join(tests)}", seconds)
    if code == 1:
        return Outcome(mutant, "caught", failures(output), seconds)
    return Outcome(mutant, "error", f"pytest exit status {code}: {output.strip().splitlines()[-1:]}", seconds)


def table(outcomes: list[Outcome], header: str) -> str:
    lines = [header, "", "| mutant | file | result | caught by / detail | s |", "|---|---|---|---|---|"]
    for o in outcomes:
        detail = o.detail.replace("|", "\\|")
        file = o.mutant.file.removeprefix("src/genvae/")
        lines.append(f"| {o.mutant.name} | `{file}` | **{o.status}** | `{detail}` | {o.seconds:.0f} |")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("caught", "survived", "does not apply", "error")}
    lines += ["", ", ".join(f"{n} {s}" for s, n in counts.items()) + f" of {len(outcomes)} mutants.", ""]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="run only the mutant of this name (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    parser.add_argument("--out", default=None,
                        help="markdown table to write (default tools/mutation_results.md; with --only, none: a "
                             "partial run does not replace the full table)")  # fmt: skip
    parser.add_argument("--slow", action="store_true", help="include tests marked slow")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per test run")
    parser.add_argument("--all", action="store_true", help="run every test of a mutant (not -x): name all that fail")
    args = parser.parse_args()
    # Started in the background (nohup, &), this process may have SIGINT ignored, and the tests would
    # inherit that; with a handler here, they start with the default one (what the Ctrl-C tests expect).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list or not chosen:
        for m in MUTANTS:
            print(f"{m.name}: {m.file}: {m.why}")
        return 0 if chosen else 2
    with tempfile.TemporaryDirectory(prefix="genvae-mutants-") as scratch:
        copy = Path(scratch) / "repo"
        copy_repository(copy)
        env = {**os.environ, "PYTHONPATH": str(copy / "src")}
        imported = subprocess.run([sys.executable, "-c", "import genvae; print(genvae.__file__)"], env=env, cwd=copy,
                                  capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
        if not Path(imported).is_relative_to(copy):
            print(f"the tests would import genvae from {imported}, not from the copy; cannot check mutants")
            return 1
        every_test = sorted({t for m in chosen for t in test_paths(copy, m.tests)})
        print(f"baseline: {len(every_test)} test file(s) on the unmutated copy ...", flush=True)
        code, output = run_tests(copy, every_test, args.slow, args.timeout)
        if code != 0:
            print(f"the unmutated copy fails ({failures(output)}); fix that first\n{output[-3000:]}")
            return 1
        outcomes = []
        for mutant in chosen:
            outcome = check_mutant(copy, mutant, args.slow, args.timeout, stop_early=not args.all)
            print(f"{outcome.status:>14}  {mutant.name}  ({outcome.detail}, {outcome.seconds:.0f} s)", flush=True)
            outcomes.append(outcome)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    flags = "".join(f" --{f}" for f in ("slow", "all") if getattr(args, f))
    header = (
        f"# Mutation check\n\nCommit {commit.strip()}{' with uncommitted changes' if dirty.strip() else ''}, "
        f"{time.strftime('%Y-%m-%d')}: `python tools/mutation_check.py{flags}`; tests "
        f"{'including' if args.slow else 'without'} those marked slow; "
        f"{'every failing test is named (up to 4)' if args.all else 'stopping at the first failure, which is named'}."
    )
    out = args.out or (None if args.only else str(ROOT / "tools" / "mutation_results.md"))
    if out is None:
        print(table(outcomes, header))
    else:
        Path(out).write_text(table(outcomes, header))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
