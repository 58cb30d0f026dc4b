"""Random-instant kill check: SIGKILL genvae's writers at random moments and check what is left.

Each operation that writes a run or a model is started and killed with SIGKILL at a random instant
(seeded): ``genvae train`` (a fresh run), ``genvae train --resume``, ``genvae train --overwrite``,
``gv.save`` and ``genvae report``. After each kill the folder must hold the old state or the new
one, complete: the published files all from one publication, the model loading (its checksum
holding), the status and the epoch count consistent with the history, ``last.ckpt``'s checksum
holding, the report's files whole. A killed training, resumed until it finishes, must end
bit-identical (the same weights, the same history) to an uninterrupted run of the same settings.

    python tools/kill_check.py                     # 25 kills, seed 0
    python tools/kill_check.py --kills 40 --seed 7

It prints a table (operation, kills, failures) and exits with status 1 on any failure. Only the
command line (``python -m genvae``) and the public API (``gv.save``, ``gv.load``,
``gv.training.read_checkpoint``) are used, so the check does not depend on genvae's modules.

The commands run in children forked from one helper process that imported torch and genvae once,
so a kill costs a fork, not a Python start; the helper itself computes nothing (forking after
torch has started threads is unsafe), and the checks run in forked children too.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import hashlib
import io
import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPERATIONS = ("train", "resume", "overwrite", "save", "report")
PUBLISHED = ("config.json", "model.json", "history.csv", "metrics.json")
# A tiny run: synthetic digits, a few hundred images, latent size 2, one CPU thread (the same
# arithmetic in every process, so a resumed run can be compared bit for bit).
TRAIN = ["train", "--dataset", "synthetic-digits", "--train-size", "192", "--test-size", "32", "--epochs", "3",
         "--latent-dim", "2", "--device", "cpu", "--threads", "1", "--quiet", "--no-report"]  # fmt: skip
REPORT = ["report", "--eval-size", "16", "--k", "2"]

# Tries per kill asked for: a kill that lands after a fast operation (a save takes ~50 ms) ended
# nothing and counts for nothing, so each operation tries until its kills are in. Bounded so a
# broken operation cannot loop for ever (4 tries per kill fell short once in CI: 4 saves of 5).
_ATTEMPTS_PER_KILL = 25


# -- the helper process (imports torch and genvae once; forks a child per request) -----------------


def serve() -> None:
    """The helper: for each JSON request on stdin, fork a child that does it (killed with SIGKILL
    after ``kill_after`` seconds, if it has not ended), and answer its exit status and result."""
    import importlib
    import pkgutil

    import torch

    import genvae

    torch.set_num_threads(1)
    for info in pkgutil.walk_packages(genvae.__path__, "genvae."):  # every module now, not in each child
        if not info.name.endswith("__main__"):
            with contextlib.suppress(ImportError):  # an optional dependency missing: the child will say
                importlib.import_module(info.name)
    for line in sys.stdin:
        request = json.loads(line)
        print(json.dumps(run_request(request)), flush=True)


def run_request(request: dict[str, Any]) -> dict[str, Any]:
    read, write = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        child(request, write)
    os.close(write)
    process = os.pidfd_open(pid)
    try:
        # the random instant: either the child ends first (the pidfd turns readable) or it is killed
        ended, _, _ = select.select([process], [], [], request.get("kill_after"))
        if not ended:
            signal.pidfd_send_signal(process, signal.SIGKILL)
    finally:
        os.close(process)
    with os.fdopen(read, "rb") as pipe:
        output = pipe.read()
    _, status = os.waitpid(pid, 0)
    seconds = time.monotonic() - started
    return {"exit": os.waitstatus_to_exitcode(status), "seconds": seconds, "result": json.loads(output or "null")}


def child(request: dict[str, Any], write: int) -> None:
    """In the forked child: do the request, write its result (JSON) to the pipe, exit."""
    code = 0
    try:
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        result = ACTIONS[request["action"]](request)
        os.write(write, json.dumps(result).encode())
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else 1
    except BaseException as err:  # reported as the exit status; the log has the details
        print(f"kill_check child: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def cli(request: dict[str, Any]) -> None:
    """``python -m genvae ARGS`` (in this process: the package's own entry point)."""
    import runpy

    sys.argv = ["genvae", *request["args"]]
    runpy.run_module("genvae", run_name="__main__", alter_sys=True)


def save(request: dict[str, Any]) -> None:
    """``gv.save`` of the notebook's VAE with weights drawn from ``seed``."""
    import torch

    import genvae as gv

    torch.manual_seed(request["seed"])
    model = gv.presets.seed_vae()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    gv.save(model, request["dir"])


def weights_digest(model: Any) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def inspect_model(request: dict[str, Any]) -> dict[str, Any]:
    """The saved model's weights digest, or the problem loading it."""
    import genvae as gv

    try:
        return {"weights": weights_digest(gv.load(request["dir"])), "problems": []}
    except Exception as err:
        return {"weights": None, "problems": [f"gv.load: {type(err).__name__}: {err}"]}


def inspect_run(request: dict[str, Any]) -> dict[str, Any]:
    """What a run directory holds: whether a run is published, its fingerprint (weights, history
    without timings, seed, status), and every inconsistency found."""
    import genvae as gv

    run = Path(request["dir"])
    found: dict[str, Any] = {"published": False, "problems": []}
    problems: list[str] = found["problems"]
    present = [name for name in PUBLISHED if (run / name).exists()]
    if present and len(present) < len(PUBLISHED):
        problems.append(f"a partial publication: only {', '.join(present)}")
    elif present:
        try:
            found.update(published=True, **published_state(run, gv))
        except Exception as err:
            problems.append(f"the published run does not read: {type(err).__name__}: {err}")
        if len({(run / name).resolve().parent for name in PUBLISHED}) != 1:
            problems.append("the published files come from different publications")
        if found.get("status") not in ("complete", "diverged"):
            problems.append(f"status {found.get('status')!r}")
        if found.get("epochs") != found.get("history_rows"):
            problems.append(f"metrics say {found.get('epochs')} epochs, the history has {found.get('history_rows')}")
    last = run / "checkpoints" / "last.ckpt"
    if last.exists():
        try:
            gv.training.read_checkpoint(last)
        except Exception as err:
            problems.append(f"last.ckpt: {type(err).__name__}: {err}")
    problems.extend(report_problems(run))
    return found


def published_state(run: Path, gv: Any) -> dict[str, Any]:
    metrics = json.loads((run / "metrics.json").read_text())
    config = json.loads((run / "config.json").read_text())
    rows = list(csv.DictReader(io.StringIO((run / "history.csv").read_text())))
    timeless = [{k: v for k, v in row.items() if k != "time"} for row in rows]  # seconds differ run to run
    return {
        "weights": weights_digest(gv.load(run)),
        "history": hashlib.sha256(json.dumps(timeless).encode()).hexdigest(),
        "history_rows": len(rows),
        "epochs": metrics.get("epochs"),
        "status": metrics.get("status"),
        "seed": config.get("seed"),
    }


def report_problems(run: Path) -> list[str]:
    problems = []
    if (run / "evaluation.json").exists():
        try:
            json.loads((run / "evaluation.json").read_text())
        except ValueError as err:
            problems.append(f"evaluation.json: not whole ({err})")
    if (run / "report.html").exists() and "</html>" not in (run / "report.html").read_text()[-200:]:
        problems.append("report.html: not whole (no closing </html>)")
    return problems


ACTIONS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "cli": cli,
    "save": save,
    "inspect_run": inspect_run,
    "inspect_model": inspect_model,
}


# -- the check (no torch here) ---------------------------------------------------------------------


class Helper:
    """The helper process, spoken to with one JSON line each way."""

    def __init__(self, work: Path) -> None:
        self.work, self.log = work, str(work / "children.log")
        env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(work / "cache"), "MPLBACKEND": "Agg"}
        env.pop("GENVAE_DATA", None)
        self.process = subprocess.Popen([sys.executable, __file__, "--serve"], env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # fmt: skip

    def __call__(self, action: str, kill_after: float | None = None, **request: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        message = {"action": action, "kill_after": kill_after, "log": self.log, **request}
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            sys.exit(f"kill_check: the helper process ended (status {self.process.wait()}); see {self.log}")
        return dict(json.loads(answer))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


@dataclass
class Tally:
    kills: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    failures: dict[str, list[str]] = field(default_factory=lambda: {op: [] for op in OPERATIONS})

    def fail(self, operation: str, message: str) -> None:
        self.failures[operation].append(message)
        print(f"  FAIL {operation}: {message}", flush=True)


@dataclass
class Check:
    helper: Helper
    work: Path
    rng: random.Random
    tally: Tally
    durations: dict[str, float] = field(default_factory=dict)
    references: dict[int, dict[str, Any]] = field(default_factory=dict)

    def observe(self, operation: str, done: dict[str, Any]) -> None:
        """Keep the shortest time the operation took uninterrupted: the first run of each is slowed
        by cold caches, and instants drawn past the end of a faster one would land no kill."""
        if done["exit"] == 0:
            self.durations[operation] = min(self.durations.get(operation, done["seconds"]), done["seconds"])

    def instant(self, operation: str) -> float:
        """A random instant within the operation: half of them anywhere, half in its last quarter,
        where a publication (or a rename) happens."""
        duration = self.durations[operation]
        if self.rng.random() < 0.5:
            return self.rng.uniform(0.0, duration)
        return self.rng.uniform(0.75 * duration, 1.05 * duration)

    def train(self, out: Path, seed: int, *extra: str, kill_after: float | None = None) -> dict[str, Any]:
        args = [*TRAIN, "--seed", str(seed), "--out", str(out), *extra]
        return self.helper("cli", kill_after, args=args)

    def inspect(self, out: Path) -> dict[str, Any]:
        done = self.helper("inspect_run", dir=str(out))
        if done["exit"] != 0:
            return {"published": False, "problems": [f"the inspection failed (status {done['exit']})"]}
        return dict(done["result"])

    def reference(self, seed: int) -> Path:
        """An uninterrupted run with ``seed``: what every killed and resumed one must end as."""
        out = self.work / f"reference-{seed}"
        done = self.train(out, seed)
        if done["exit"] != 0:
            sys.exit(f"kill_check: the uninterrupted run failed (status {done['exit']}); see {self.helper.log}")
        self.observe("train", done)
        self.references[seed] = fingerprint(self.inspect(out))
        return out


def fingerprint(state: dict[str, Any]) -> dict[str, Any]:
    return {k: state.get(k) for k in ("weights", "history", "status", "seed")}


def killed(done: dict[str, Any]) -> bool:
    return bool(done["exit"] == -signal.SIGKILL)


def check_run(check: Check, operation: str, out: Path, allowed: list[dict[str, Any] | None]) -> dict[str, Any]:
    """After a kill: the run holds one of the ``allowed`` states (None: nothing published), complete."""
    state = check.inspect(out)
    for problem in state["problems"]:
        check.tally.fail(operation, f"{out}: {problem}")
    now = fingerprint(state) if state["published"] else None
    if now not in allowed:
        check.tally.fail(operation, f"{out}: holds neither the old nor the new state: {now}")
    return state


def train_and_resume(check: Check, kills: dict[str, int]) -> None:
    """Chains of kills: a fresh training killed, resumed and killed again (up to three kills a
    chain), then resumed to its end, which must equal the uninterrupted run bit for bit."""
    reference = check.references[0]
    chain = 0
    while check.tally.kills["train"] < kills["train"] or check.tally.kills["resume"] < kills["resume"]:
        chain += 1
        out, operation = check.work / f"train-{chain}", "train"
        extra: tuple[str, ...] = ()
        for _ in range(3):
            done = check.train(out, 0, *extra, kill_after=check.instant("train"))
            if not killed(done):  # it ended first: it must have ended well
                if operation == "train":
                    check.observe("train", done)
                if done["exit"] != 0:
                    check.tally.fail(operation, f"{out}: exit status {done['exit']}; see {check.helper.log}")
                break
            check.tally.kills[operation] += 1
            if check_run(check, operation, out, [None, reference])["published"]:
                break
            operation, extra = "resume", ("--resume",)
        final = check.train(out, 0, "--resume")
        if final["exit"] != 0:
            check.tally.fail("resume", f"{out}: the resume to the end failed (status {final['exit']})")
        elif check_run(check, "resume", out, [reference])["published"] is False:
            check.tally.fail("resume", f"{out}: the resume to the end published nothing")
        shutil.rmtree(out, ignore_errors=True)


def overwrite(check: Check, kills: int, old_run: Path) -> None:
    """Replace a finished run (seed 0) by another (seed 1), killed: the old run or the new one."""
    old, new = check.references[0], check.references[1]
    out = check.work / "overwrite"
    for trial in range(_ATTEMPTS_PER_KILL * kills):
        if check.tally.kills["overwrite"] >= kills:
            break
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old_run, out, symlinks=True)
        done = check.train(out, 1, "--overwrite", kill_after=check.instant("train"))
        if killed(done):
            check.tally.kills["overwrite"] += 1
            check_run(check, "overwrite", out, [old, new])
        elif done["exit"] != 0:
            check.tally.fail("overwrite", f"trial {trial}: exit status {done['exit']}")
        check.observe("train", done)
    shutil.rmtree(out, ignore_errors=True)


def save_model(check: Check, kills: int) -> None:
    """``gv.save`` over a saved model, killed: the old weights or the new ones load, whole."""
    folder, digests = check.work / "model", {}
    for seed in (100, 101):
        done = check.helper("save", dir=str(check.work / f"model-{seed}"), seed=seed)
        check.observe("save", done)
        digests[seed] = check.helper("inspect_model", dir=str(check.work / f"model-{seed}"))["result"]["weights"]
    check.helper("save", dir=str(folder), seed=100)
    current = 100
    for _ in range(_ATTEMPTS_PER_KILL * kills):
        if check.tally.kills["save"] >= kills:
            break
        other = 201 - current
        done = check.helper("save", check.instant("save"), dir=str(folder), seed=other)
        state = check.helper("inspect_model", dir=str(folder))["result"]
        for problem in state["problems"]:
            check.tally.fail("save", problem)
        if state["weights"] == digests[other]:
            current = other
        elif state["weights"] != digests[current]:
            check.tally.fail("save", "the saved model is neither the old one nor the new one")
        check.observe("save", done)
        if killed(done):
            check.tally.kills["save"] += 1
        elif done["exit"] != 0:
            check.tally.fail("save", f"exit status {done['exit']}; see {check.helper.log}")


def report(check: Check, kills: int, run: Path) -> None:
    """``genvae report`` on a finished run, killed: the run as it was, the report's files whole."""
    out = check.work / "report"
    shutil.copytree(run, out, symlinks=True)
    done = check.helper("cli", args=[*REPORT, str(out)])
    if done["exit"] != 0:
        check.tally.fail("report", f"the uninterrupted report failed (status {done['exit']}); see {check.helper.log}")
    check.observe("report", done)
    for _ in range(_ATTEMPTS_PER_KILL * kills):
        if check.tally.kills["report"] >= kills:
            break
        done = check.helper("cli", check.instant("report"), args=[*REPORT, str(out)])
        if killed(done):
            check.tally.kills["report"] += 1
            check_run(check, "report", out, [check.references[0]])
        elif done["exit"] != 0:
            check.tally.fail("report", f"exit status {done['exit']}")
        check.observe("report", done)


def shares(total: int) -> dict[str, int]:
    """``total`` kills spread over the operations as evenly as they go."""
    return {op: total // len(OPERATIONS) + (i < total % len(OPERATIONS)) for i, op in enumerate(OPERATIONS)}


def table(tally: Tally) -> str:
    lines = [f"{'operation':<10} {'kills':>5} {'failures':>8}"]
    lines += [f"{op:<10} {tally.kills[op]:>5} {len(tally.failures[op]):>8}" for op in OPERATIONS]
    total_failures = sum(len(f) for f in tally.failures.values())
    lines.append(f"{'total':<10} {sum(tally.kills.values()):>5} {total_failures:>8}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=25, help="SIGKILLs in all, spread over the operations (25)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random instants (0)")
    parser.add_argument("--workdir", default=None, help="folder for the runs (default: a temporary one, removed)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0
    if args.kills < len(OPERATIONS):
        parser.error(f"--kills: expected at least {len(OPERATIONS)} (one per operation), got {args.kills}")
    started = time.monotonic()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="genvae-kill-check-"))
    work.mkdir(parents=True, exist_ok=True)
    helper = Helper(work)
    tally = Tally()
    check = Check(helper, work, random.Random(args.seed), tally)
    try:
        kills = shares(args.kills)
        print(f"kill_check: seed {args.seed}, {args.kills} kills ({kills}), in {work}", flush=True)
        finished = check.reference(0)
        check.reference(1)
        phases: list[tuple[str, Callable[[], None]]] = [
            ("train, resume", lambda: train_and_resume(check, kills)),
            ("overwrite", lambda: overwrite(check, kills["overwrite"], finished)),
            ("save", lambda: save_model(check, kills["save"])),
            ("report", lambda: report(check, kills["report"], finished)),
        ]
        for name, phase in phases:
            phase()
            print(f"  {name}: done at {time.monotonic() - started:.0f} s", flush=True)
    finally:
        helper.close()
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    print(table(tally))
    failures = sum(len(f) for f in tally.failures.values())
    short = [op for op in OPERATIONS if tally.kills[op] < shares(args.kills)[op]]
    print(f"kill_check: {sum(tally.kills.values())} kills, {failures} failures, {time.monotonic() - started:.0f} s")
    if short:
        print(f"kill_check: fewer kills than asked for: {', '.join(short)}")
    return 1 if failures or short else 0


if __name__ == "__main__":
    sys.exit(main())
