"""The helper process of tests/test_runs_signals.py.

It imports torch and genvae once, then runs each request (one JSON line on stdin) in a forked
child, answering ``{"pid": ...}`` when the child starts and ``{"exit": ...}`` when it ends (the
exit status, or minus the signal that killed it). A test can so signal a real process at an exact
step of a save, a publication, training or a report (the ``GENVAE_TEST_PAUSE_AT`` hook; training steps
through tests/pause_hook.py) for the cost of a fork, not of a Python start.

    python -m tests.runs_worker
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import torch

import genvae as gv
from genvae.experiment import TrainConfig, train_run
from genvae.report import ReportSettings, write_report
from genvae.runs import RunDir
from tests.pause_hook import PauseAt


def perturbed(seed: int) -> gv.VAE:
    """The notebook's VAE with weights that depend on ``seed`` (not only its initialisation)."""
    torch.manual_seed(seed)
    model = gv.presets.seed_vae()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model


def save(request: dict[str, Any]) -> None:
    gv.save(perturbed(request["seed"]), request["dir"])


def train(request: dict[str, Any]) -> None:
    config, overwrite = TrainConfig(**request["config"]), request.get("overwrite", False)
    train_run(config, request["out"], quiet=True, overwrite=overwrite, callbacks=[PauseAt()])


def report(request: dict[str, Any]) -> None:
    """The run's own report (``RUN/report.html``), with small evaluation sizes."""
    settings = ReportSettings(eval_size=32, probe_size=64, k=2, classify_k=2, classify_size=16)
    write_report([request["run"]], RunDir(request["run"]).report_path, settings)


ACTIONS = {"save": save, "train": train, "report": report}


def run_child(request: dict[str, Any]) -> None:
    """In the forked child: run the request and exit without returning to the loop."""
    code = 0
    try:
        os.environ.update(request.get("env", {}))
        ACTIONS[request["action"]](request)
    except BaseException as err:  # a signal's KeyboardInterrupt too: the exit status says it failed
        print(f"runs_worker child: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
        code = 1
    finally:
        os._exit(code)


def main() -> None:
    torch.set_num_threads(1)  # no thread pool in the parent: forking stays safe
    gv.data.SyntheticDigits(8)  # warm the font cache once, for every child
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        print(json.dumps({"exit": os.waitstatus_to_exitcode(status)}), flush=True)


if __name__ == "__main__":
    main()
