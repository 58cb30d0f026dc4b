"""Shared test set-up: hypothesis profiles and small fixtures."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

# Model construction and the first call into torch are slow and vary; a deadline would only
# make the property tests flaky. CI draws fewer examples to keep the suite fast on 2 cores.
settings.register_profile("dev", deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, max_examples=25, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
