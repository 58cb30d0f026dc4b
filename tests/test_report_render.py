"""The report as a person sees it: rendered by headless Chromium (tools/report_screenshots.py), it
fits the window at 1,280 and 800 px without scrolling sideways, and every image loads."""

from __future__ import annotations

import importlib.util
import struct
import sys
from pathlib import Path
from types import ModuleType

import pytest

from genvae.cli import main
from genvae.report import ReportSettings, write_report

TOOL = Path(__file__).resolve().parents[1] / "tools" / "report_screenshots.py"
SMALL = ["--dataset", "synthetic-digits", "--train-size", "300", "--test-size", "120", "--epochs", "1", "--quiet"]


def load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("report_screenshots", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


tool = load_tool()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(tool.find_chromium() is None, reason="needs Chromium (apt-get install chromium)"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A report of a small VAE run and a small CVAE run."""
    folder = tmp_path_factory.mktemp("render")
    runs = [folder / "vae", folder / "cvae"]
    for run, model in zip(runs, ("vae", "cvae"), strict=True):
        assert main(["train", *SMALL, "--model", model, "--no-report", "--out", str(run)]) == 0
    settings = ReportSettings(eval_size=100, probe_size=300, k=5, classify_k=3, classify_size=40)
    return write_report(runs, folder / "report.html", settings)


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


@pytest.mark.parametrize("width", [1280, 800])
def test_the_report_fits_the_window_and_every_image_loads(report: Path, width: int) -> None:
    seen = tool.check(report, width)
    assert not seen.overflows, f"{seen.scroll_width} px wide in a {seen.client_width} px window: {seen.sticking_out}"
    assert seen.sticking_out == []
    assert seen.images == report.read_text().count("<img ") > 20 and seen.broken == []


def test_the_check_sees_overflow_and_broken_images(report: Path, tmp_path: Path) -> None:
    """The probe is not blind: a page that is too wide, with an image that cannot load, fails."""
    page = report.read_text().replace(
        "<h2>Summary</h2>",
        '<div id="too-wide" style="width: 3000px">wide</div><img alt="broken" src="data:image/png;base64,AAAA">'
        "<h2>Summary</h2>",
        1,
    )
    bad = tmp_path / "bad.html"
    bad.write_text(page)
    seen = tool.check(bad, 1280)
    assert seen.overflows and not seen.ok and seen.scroll_width >= 3000
    assert seen.broken == ["broken"] and "div#too-wide" in seen.sticking_out


def test_the_screenshots_show_the_whole_page_at_each_width(report: Path, tmp_path: Path) -> None:
    assert tool.main([str(report), "--out", str(tmp_path), "--widths", "1280", "800"]) == 0
    for width in (1280, 800):
        whole, top = png_size(tmp_path / f"report-{width}.png"), png_size(tmp_path / f"report-{width}-top.png")
        assert whole[0] == top[0] == width and top[1] == 1000 and whole[1] > 3000
