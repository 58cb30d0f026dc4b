"""CI cannot pass with its data missing: under ``GENVAE_REQUIRE_DATA=1`` (set by ``.ci/run``) a
test that skips for want of the MNIST or Fashion-MNIST files fails instead (see conftest.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import SAFETY_TIMEOUT

TESTS = Path(__file__).resolve().parent

SAMPLE = """
import pytest

@pytest.mark.skipif(True, reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion(): pass

@pytest.mark.skipif(True, reason="../shared/data/mnist is not beside the checkout")
def test_mnist(): pass

def test_imperative_skip():
    pytest.skip("Debian's dataset-fashion-mnist is not installed")

@pytest.mark.skipif(True, reason="a GPU is present")
def test_other_reason(): pass
"""


def test_missing_data_fails_when_ci_requires_it(tmp_path: Path) -> None:
    folder = tmp_path / "tests"
    folder.mkdir()
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "test_sample.py").write_text(SAMPLE)
    env = {**os.environ, "GENVAE_REQUIRE_DATA": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(folder)],
        capture_output=True, text=True, check=False, cwd=tmp_path, env=env, timeout=SAFETY_TIMEOUT,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    failed = {line.split("::")[1].split()[0] for line in lines if line.startswith(("ERROR ", "FAILED "))}
    assert failed == {"test_fashion", "test_mnist", "test_imperative_skip"}, done.stdout
    assert "SKIPPED [1] tests/test_sample.py:13: a GPU is present" in done.stdout, done.stdout
    assert "GENVAE_REQUIRE_DATA=1, but the data this test needs is missing" in done.stdout
