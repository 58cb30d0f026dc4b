"""A report racing a training that replaces the run, with real processes stopped at exact steps
(the GENVAE_TEST_PAUSE_AT hook, no sleeps): the report holds the run's lock, so what it shows and
writes is of one publication, and the other writer is refused with one line. And ``genvae train``
whose report alone fails says the run was published, with its own exit status."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from genvae.cli import REPORT_FAILED, main
from genvae.data import files
from genvae.runs import RunDir
from tests.test_runs import TINY, copy_run, published_together
from tests.test_runs_signals import NEW_RUN, Worker, pause_at, wait_for
from tests.test_runs_signals import worker as worker  # the forking helper, a fixture

REPORTED = ("evaluation.json", "report.html")


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    return run


def generations(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "published").iterdir() if p.name != "current")


def in_use(err: str, run: Path, pid: int, command: str) -> bool:
    """``err`` is the one-line refusal naming the process that holds ``run``."""
    holder = f"in use by another genvae process (PID {pid} on {socket.gethostname()}, started "
    return err.startswith(f"{command}: error: {run}: {holder}") and err.count("\n") == 1


def test_an_overwrite_while_the_report_writes_is_refused_and_the_report_is_of_one_run(
    tmp_path: Path, worker: Worker, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    old = generations(run)
    env, pause = pause_at(tmp_path, "report:page-written")  # evaluated, evaluation.json written, page not yet
    pid = worker.start({"action": "report", "run": str(run), "env": env})
    wait_for(pause, pid)
    capsys.readouterr()
    assert main(["train", *TINY, "--seed", "3", "--overwrite", "--out", str(run)]) == 1
    err = capsys.readouterr().err
    assert in_use(err, run, pid, "genvae train") and err.endswith("; wait for it to finish or use another --out\n")
    (tmp_path / "paused.continue").touch()
    assert worker.exit_status() == 0
    assert generations(run) == old and RunDir(run).config()["seed"] == 0 and published_together(run)
    for name in REPORTED:  # beside the publication the report evaluated, seen through RUN/name
        assert (run / name).resolve() == (run / "config.json").resolve().with_name(name)
        assert (run / name).is_file()


def test_a_report_while_an_overwrite_publishes_is_refused_and_leaves_no_folder_behind(
    tmp_path: Path, worker: Worker, finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    old = generations(run)
    env, pause = pause_at(tmp_path, "publish:switched")  # the new run is current; the old one not yet removed
    pid = worker.start({"action": "train", "config": NEW_RUN, "out": str(run), "overwrite": True, "env": env})
    wait_for(pause, pid)
    capsys.readouterr()
    assert main(["report", str(run), "--k", "2", "--eval-size", "16"]) == 1
    err = capsys.readouterr().err
    assert in_use(err, run, pid, "genvae report")
    assert err.endswith("; wait for it to finish, then write the report again\n")
    (tmp_path / "paused.continue").touch()
    assert worker.exit_status() == 0
    new = generations(run)
    assert len(new) == 1 and new != old  # the old publication is gone, and nothing brought it back
    assert RunDir(run).config()["seed"] == 7 and published_together(run)
    for name in REPORTED:  # the new run has no report yet: nothing of the old model is attached to it
        assert not (run / "published" / new[0] / name).exists()
        assert not (run / name).is_file()


def test_the_report_of_a_run_named_twice_locks_it_once(tmp_path: Path, finished: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    assert main(["report", str(run), str(run), "--k", "2", "--eval-size", "16", "--out", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").is_file() and (run / "evaluation.json").is_file()


def test_the_report_written_to_the_runs_link_lands_beside_the_publication(tmp_path: Path, finished: Path) -> None:
    """``--out RUN/report.html`` writes the file the link shows, and the link stays a link (a
    regular file there would show a stale page after the next publication)."""
    run = copy_run(finished, tmp_path / "run")
    assert main(["report", str(run), "--k", "2", "--eval-size", "16", "--out", str(run / "report.html")]) == 0
    assert (run / "report.html").is_symlink() and (run / "report.html").resolve().parent.parent.name == "published"


# -- genvae train: the run is published, only its report fails ----------------------------------------


def test_train_whose_report_alone_fails_says_the_run_was_published(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    monkeypatch.setenv("GENVAE_TEST_FAIL_AT", "report:page-written")  # ENOSPC as the page is renamed into place
    args = [a for a in TINY if a != "--no-report"]
    assert main(["train", *args, "--quick-report", "--out", str(run)]) == REPORT_FAILED == 3
    out, err = capsys.readouterr()
    assert "genvae train: wrote" not in out
    assert err.startswith(f"genvae train: the run was published in {run}, but only its report failed (")
    assert "No space left on device" in err and err.count("\n") == 1
    assert err.endswith(f"); write it again with genvae report {run}\n")
    assert RunDir(run).status() == "complete" and published_together(run)
    assert not (run / "report.html").is_file() and not list(run.glob("published/*/.report.html.*"))
    monkeypatch.delenv("GENVAE_TEST_FAIL_AT")
    assert main(["report", str(run), "--k", "2", "--eval-size", "16"]) == 0  # as the message says
    assert (run / "report.html").is_file()


def test_the_cli_guide_documents_the_report_failed_status() -> None:
    guide = (Path(__file__).resolve().parents[1] / "docs" / "guides" / "cli.md").read_text()
    assert f"status {REPORT_FAILED}" in guide


def test_nothing_is_left_locked_after_a_report(tmp_path: Path, finished: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    assert main(["report", str(run), "--k", "2", "--eval-size", "16"]) == 0
    assert main(["train", *TINY, "--seed", "3", "--overwrite", "--out", str(run)]) == 0
    assert RunDir(run).config()["seed"] == 3
