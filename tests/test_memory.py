"""The size check before allocations that an argument sizes (genvae._memory)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from genvae import _memory
from genvae._memory import check_fits, format_bytes, physical_memory


def test_the_check_refuses_one_byte_over_the_physical_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_memory, "physical_memory", lambda device="cpu": 1000)
    check_fits("n", 100, 100, 10, "things")  # exactly the budget
    expected = r"^n: expected at most 100 things in all \(1,000 bytes, this machine's memory\), got 101,"
    with pytest.raises(ValueError, match=expected + r" which would take 1,010 bytes$"):
        check_fits("n", 101, 101, 10, "things")


def test_the_host_budget_is_the_ram_within_the_cgroup_limit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = tmp_path / "memory.max"
    limit.write_text("max\n")  # cgroup v2: no limit
    monkeypatch.setattr(_memory, "_CGROUP_LIMITS", (limit,))
    assert physical_memory() == ram
    limit.write_text(f"{2**30}\n")
    assert physical_memory("cpu") == min(ram, 2**30)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_gpu_budget_is_its_total_memory() -> None:  # pragma: no cover - GPU machines only
    assert physical_memory("cuda:0") == torch.cuda.get_device_properties(0).total_memory


@pytest.mark.parametrize(("size", "text"), [(0, "0 bytes"), (1023, "1,023 bytes"), (1536, "1.5 KiB"),
                                            (3.136e12, "2.9 TiB"), (2**50, "1,024.0 TiB")])  # fmt: skip
def test_sizes_are_written_in_binary_units(size: float, text: str) -> None:
    assert format_bytes(size) == text
