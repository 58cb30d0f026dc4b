"""Run files read back by genvae (genvae.runfiles through genvae.runs.RunDir): a size cap checked
before reading (real sparse files), no hanging on a FIFO, no following a link out of the run, a
depth limit before parsing, a schema per file; the run's lock through a symlink or a hard link;
write failures that name the path and the state of the run."""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

import genvae as gv
from genvae.cli import main
from genvae.data import files
from genvae.runfiles import MAX_BYTES, RunFileError, read_run_bytes, read_run_json
from genvae.runs import RunDir, RunLockedError, RunWriteError
from genvae.training.state import History
from tests.test_runs import copy_run, snapshot, train


@pytest.fixture(autouse=True)
def _isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENVAE_DATA", raising=False)


def real(run: Path, name: str) -> Path:
    """The file behind ``RUN/name`` (in the current publication)."""
    return (run / name).resolve()


def report(run: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    status = main(["report", str(run), "--eval-size", "16", "--k", "2"])
    return status, capsys.readouterr().err


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


# -- the lock ------------------------------------------------------------------------------------


def test_a_symlinked_lock_is_refused_and_its_target_survives(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / ".lock").unlink(missing_ok=True)
    (run / ".lock").symlink_to(victim)
    status, err = train(run, "--epochs", "3", "--resume", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err == (
        f"genvae train: error: {run / '.lock'}: expected the run's lock file, got a symlink; remove it and try again\n"
    )
    assert victim.read_text() == "precious\n"
    with pytest.raises(RunLockedError, match="got a symlink"), RunDir(run).lock():
        pass
    assert victim.read_text() == "precious\n"


def test_a_hard_linked_lock_is_refused_and_the_other_file_survives(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (run / ".lock").unlink(missing_ok=True)
    os.link(victim, run / ".lock")
    with pytest.raises(RunLockedError, match=r"got a file with other names \(a hard link\)"), RunDir(run).lock():
        pass
    assert victim.read_text() == "precious\n"


def test_a_fifo_as_the_lock_is_refused_without_hanging(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    (run / ".lock").unlink(missing_ok=True)
    os.mkfifo(run / ".lock")
    with pytest.raises(RunLockedError, match="got not a regular file"), RunDir(run).lock():
        pass


def test_the_lock_is_never_truncated_and_a_release_leaves_no_holder(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    with RunDir(run).lock():
        held = (run / ".lock").read_text()
        assert json.loads(held)["pid"] == os.getpid()
    assert (run / ".lock").read_text().strip() == "" and len((run / ".lock").read_text()) == len(held)


# -- size caps: real sparse files ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["metrics.json", "config.json", "history.csv"])
def test_a_sparse_file_of_gigabytes_is_refused_from_its_size(
    finished: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    target = real(run, name)
    target.unlink()
    subprocess.run(["truncate", "-s", "4G", str(target)], check=True)  # sparse: no disk, no memory
    before = peak_rss_bytes()
    status, err = report(run, capsys)
    assert status == 1 and err.count("\n") == 1
    assert f"{run / name}: expected a" in err and "got 4,294,967,296 bytes; not reading it" in err
    assert peak_rss_bytes() - before < 64 << 20  # not read: the peak did not grow by the file


def test_a_file_one_byte_over_the_cap_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    path.write_bytes(b" " * (MAX_BYTES["metrics"] + 1))
    with pytest.raises(RunFileError, match=r"got 8,388,609 bytes; not reading it"):
        read_run_bytes(path, "metrics")


def test_a_fifo_as_a_run_file_is_refused_without_hanging(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    target = real(run, "metrics.json")
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(RunFileError, match=r"metrics.json: expected the metrics file genvae wrote, got a FIFO"):
        RunDir(run).metrics()


def test_a_link_out_of_the_run_is_not_followed(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"model": "vae", "dataset": "synthetic-digits"}))
    (run / "config.json").unlink()
    (run / "config.json").symlink_to(outside)
    with pytest.raises(RunFileError, match=r"config.json: expected a link into the run directory, got one to "):
        RunDir(run).config()


def test_a_model_link_out_of_the_run_is_not_followed(finished: Path, tmp_path: Path) -> None:
    # gv.save'd elsewhere: the run's model.json led to it and the report evaluated that model
    other = tmp_path / "other"
    gv.save(gv.presets.seed_hierarchical(latent_dims=(4, 2)), other)
    run = copy_run(finished, tmp_path / "run")
    (run / "model.json").unlink()
    (run / "model.json").symlink_to(other / "model.json")
    with pytest.raises(RunFileError, match=r"model.json: expected a link into the run directory, got one to .*other"):
        RunDir(run).load_model()
    assert main(["report", str(run), "--quick"]) == 1


def test_a_symlink_is_not_followed_where_genvae_writes_a_real_file(tmp_path: Path) -> None:
    outside = tmp_path / "outside.json"
    outside.write_text("{}")
    link = tmp_path / "config.json"
    link.symlink_to(outside)
    with pytest.raises(RunFileError, match="got a symlink; not following it"):
        read_run_json(link, "training config", follow_symlinks=False)


# -- depth and schema ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config.json", "metrics.json", "checkpoints/config.json"])
def test_json_nested_100000_deep_is_one_line(finished: Path, tmp_path: Path, name: str) -> None:
    run = copy_run(finished, tmp_path / "run")
    target = real(run, name)
    target.write_text("[" * 100_000 + "]" * 100_000)
    read = {"config.json": RunDir(run).config, "metrics.json": RunDir(run).metrics}.get(
        name, RunDir(run).training_config
    )
    with pytest.raises(RunFileError) as caught:
        read()
    assert str(caught.value) == f"{target if 'checkpoints' in name else run / name}: expected JSON nested at most 32 " \
        "levels deep, got deeper nesting"  # fmt: skip


@pytest.mark.parametrize(
    ("name", "change", "message"),
    [
        ("config.json", {"test_size": "abc"}, 'test_size: expected an integer >= 1 or null, got "abc"'),
        ("config.json", {"seed": [1]}, f"seed: expected an integer from {-(2**63)} to {2**64 - 1}, got [1]"),
        ("config.json", {"epochs": True}, "epochs: expected an integer >= 0, got true"),
        ("config.json", {"lr": -1.0}, "lr: expected a finite number > 0, got -1.0"),
        ("config.json", {"dataset": None}, "dataset: expected a string, got null"),
        ("metrics.json", {"test": []}, "test: expected an object of numbers, got []"),
        ("metrics.json", {"test": {"total": "1"}}, 'test: expected an object of numbers, got {"total": "1"}'),
        ("metrics.json", {"status": "done"}, 'status: expected one of complete, diverged, got "done"'),
        ("metrics.json", {"epochs": 2.5}, "epochs: expected an integer >= 0, got 2.5"),
    ],
)  # fmt: skip
def test_a_field_of_the_wrong_type_is_one_line_naming_file_and_field(
    finished: Path, tmp_path: Path, name: str, change: dict[str, object], message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    run = copy_run(finished, tmp_path / "run")
    target = real(run, name)
    target.write_text(json.dumps({**json.loads(target.read_text()), **change}))
    status, err = report(run, capsys)
    assert status == 1 and err == f"genvae report: error: {run / name}: {message}\n"


def test_a_missing_required_field_names_the_file_and_the_field(finished: Path, tmp_path: Path) -> None:
    run = copy_run(finished, tmp_path / "run")
    target = real(run, "config.json")
    config = json.loads(target.read_text())
    del config["dataset"]
    target.write_text(json.dumps(config))
    with pytest.raises(RunFileError, match=r"config.json: expected the key 'dataset' \(a string\), but it is missing$"):
        RunDir(run).config()


def test_a_training_config_is_checked_too(finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = copy_run(finished, tmp_path / "run")
    target = run / "checkpoints" / "config.json"
    target.write_text(json.dumps({**json.loads(target.read_text()), "seed": [1]}))
    status, err = train(run, "--epochs", "3", "--resume", capsys=capsys)
    assert status == 1 and err.startswith(f"genvae train: error: {target}: seed: expected an integer from ")


HISTORY_HEADER = "epoch,train_total,val_total,time\n"


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("1,2.0,3.0,0.1,9\n", "line 2: expected 4 columns (as the header), got 5"),
        ("inf,2.0,3.0,0.1\n", "line 2: epoch: expected a whole number >= 1, got 'inf'"),
        ("1.5,2.0,3.0,0.1\n", "line 2: epoch: expected a whole number >= 1, got '1.5'"),
        ("-4,2.0,3.0,0.1\n", "line 2: epoch: expected a whole number >= 1, got '-4'"),
        ("1,abc,3.0,0.1\n", 'line 2: train_total: expected a number, got "abc"'),
        ("1,2.0,3.0,0.1\n1,2.0,3.0,0.1\n", "line 3: epoch: expected epochs rising row by row, got 1 after 1"),
    ],
)
def test_a_bad_history_is_one_line_naming_file_line_and_column(tmp_path: Path, rows: str, message: str) -> None:
    path = tmp_path / "history.csv"
    path.write_text(HISTORY_HEADER + rows)
    with pytest.raises(RunFileError) as caught:
        History.from_csv(path)
    assert str(caught.value) == f"{path}: {message}"


def test_a_history_header_with_a_repeated_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "history.csv"
    path.write_text("epoch,epoch\n1,1\n")
    with pytest.raises(RunFileError, match=r"line 1: expected distinct column names .*got 'epoch'"):
        History.from_csv(path)


def test_a_history_reads_back_what_was_written(finished: Path) -> None:
    history = RunDir(finished).history()
    assert [r["epoch"] for r in history] == [1, 2] and all(isinstance(r["epoch"], int) for r in history)
    assert history.records == History.from_csv(finished / "checkpoints" / "history.csv").records


@pytest.mark.parametrize("kind", ["a folder", "not a regular file", "a symlink"])
def test_a_last_checkpoint_that_is_not_a_file_is_refused_not_ignored(
    finished: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    last = run / "checkpoints" / "last.ckpt"
    last.unlink()
    {"a folder": last.mkdir, "not a regular file": lambda: os.mkfifo(last),
     "a symlink": lambda: last.symlink_to("/dev/zero")}[kind]()  # fmt: skip
    status, err = train(run, "--epochs", "3", "--resume", capsys=capsys)
    got = {"a folder": "a directory", "not a regular file": "a FIFO", "a symlink": "a symlink"}[kind]
    expected = "the checkpoint file genvae wrote" if kind == "a symlink" else "a checkpoint file"
    assert status == 1 and err.startswith(f"genvae train: error: {last}: expected {expected}, got {got}")
    assert err.count("\n") == 1


# -- write failures name the path and the state of the run -----------------------------------------


def test_a_full_disk_before_the_switch_says_nothing_was_published(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    monkeypatch.setenv("GENVAE_TEST_FAIL_AT", "publish:files-written")
    status, err = train(run, "--seed", "5", "--overwrite", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err == (
        f"genvae train: error: {run / 'published'}: No space left on device (injected at publish:files-written) "
        f"while publishing the run; nothing was published: {run} shows the run as it was before\n"
    )
    assert snapshot(run) == before


def test_a_full_disk_after_the_switch_says_the_run_was_published(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = copy_run(finished, tmp_path / "run")
    monkeypatch.setenv("GENVAE_TEST_FAIL_AT", "publish:switched")
    status, err = train(run, "--seed", "5", "--overwrite", capsys=capsys)
    assert status == 1 and err.count("\n") == 1
    assert err.endswith(f"while tidying up after publishing the run; the run was published in {run}, but an older "
                        f"publication may be left in {run / 'published'}\n")  # fmt: skip
    assert RunDir(run).config()["seed"] == 5


def test_a_failure_to_start_names_the_path_and_leaves_the_run(
    finished: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = copy_run(finished, tmp_path / "run")
    before = snapshot(run)
    checkpoints = run / "checkpoints"
    for path in checkpoints.iterdir():
        path.unlink()
    checkpoints.rmdir()
    checkpoints.write_text("not a folder")  # mkdir fails here, as it would on a read-only or full disk
    status, err = train(run, "--seed", "5", "--overwrite", capsys=capsys)
    assert status == 1 and err == (
        f"genvae train: error: {checkpoints}: File exists while starting the run; the run published in {run} "
        "(if any) is as it was\n"
    )
    assert snapshot(run) == before


def test_a_write_error_is_an_oserror_with_its_errno() -> None:
    error = RunWriteError("somewhere: No space left on device", 28)
    assert isinstance(error, OSError) and error.errno == 28 and str(error) == "somewhere: No space left on device"
