"""Shared test set-up: hypothesis profiles and small fixtures."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch
from hypothesis import HealthCheck, settings

from genvae.data import files

if TYPE_CHECKING:
    from tests.helpers import FullDisk

# Model construction and the first call into torch are slow and vary; a deadline would only
# make the property tests flaky. CI draws fewer examples to keep the suite fast on 2 cores.
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def one_thread() -> Iterator[None]:
    """One intra-op thread for the test: with tiny models a second thread only waits for the first,
    and on a busy machine the waiting made training tests 20 times slower. Use it in a module with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def isolated_data_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the machine's own dataset folders, cache or ``GENVAE_DATA``. A module that loads
    or downloads data uses it for every test: ``pytestmark = pytest.mark.usefixtures("isolated_data_dirs")``."""
    monkeypatch.setattr(files, "SYSTEM_DATA_DIR", tmp_path_factory.mktemp("system"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("GENVAE_DATA", raising=False)


@pytest.fixture
def full_disk(monkeypatch: pytest.MonkeyPatch) -> Callable[..., FullDisk]:
    """``full_disk("last.ckpt", skip=1)``: from now on, writes of that file hit a real ``ENOSPC``
    (see :class:`tests.helpers.FullDisk`; /dev/full, no root needed)."""
    from tests.helpers import FullDisk  # here: test_ci.py runs this conftest without the tests package

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")

    def install(*names: str, skip: int = 0) -> FullDisk:
        disk = FullDisk(names, skip)
        monkeypatch.setattr(os, "open", disk)
        return disk

    return install


# Tests that need data from outside the repository (../shared/data/mnist beside the checkout,
# Debian's dataset-fashion-mnist) skip without it on a developer's machine. CI installs that data
# and sets GENVAE_REQUIRE_DATA=1: there such a skip is a failure, so a broken install cannot pass
# unnoticed. A skip counts as "data missing" when its reason names one of these.
DATA_SKIP_REASONS = ("dataset-fashion-mnist", "shared/data/mnist")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    if not report.skipped or os.environ.get("GENVAE_REQUIRE_DATA") != "1":
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if any(name in reason for name in DATA_SKIP_REASONS):
        report.outcome = "failed"
        report.longrepr = f"GENVAE_REQUIRE_DATA=1, but the data this test needs is missing: {reason}"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished two-epoch VAE run made by ``genvae train`` (copy it before changing it)."""
    from genvae.cli import main
    from tests.helpers import TINY

    run = tmp_path_factory.mktemp("finished") / "run"
    assert main(["train", *TINY, "--out", str(run)]) == 0
    return run
