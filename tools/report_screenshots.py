"""Render an HTML report in headless Chromium as a person would see it: save full-page screenshots
at given window widths and check that the page does not overflow horizontally and that every
image loads.

    python tools/report_screenshots.py runs/demo/report.html --out /tmp/report-shots
    python tools/report_screenshots.py report.html --out shots --widths 1280 800 --json

Writes ``OUT/report-<width>.png`` (the whole page) and ``OUT/report-<width>-top.png`` (the first
screen, 1,000 px high) for each width; prints one line per width, or the checks as JSON with
``--json``; exits 1 when a check fails (2 when Chromium is missing or fails).

The checks run on a copy of the report with a small script injected (the report itself has none):
after the page has loaded, it writes the page's ``scrollWidth`` and ``clientWidth``, its height,
the number of images and those that did not load (``naturalWidth == 0``), and the elements that
stick out to the right, into the DOM, which ``chromium --dump-dom`` prints. Needs Debian's
``chromium`` package (``apt-get install chromium``) or ``$CHROMIUM`` naming the browser.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

_PROBE_ID = "report-render-probe"
# Runs once everything (images included) has loaded; writes its findings as JSON into a <pre>.
_PROBE = f"""<script>
window.addEventListener("load", function () {{
  var root = document.documentElement, images = Array.from(document.images);
  var wide = Array.from(document.body.querySelectorAll("*")).filter(function (e) {{
    return e.getBoundingClientRect().right > root.clientWidth + 1 && !e.closest(".scroll");
  }}).slice(0, 8).map(function (e) {{ return e.tagName.toLowerCase() + (e.id ? "#" + e.id : ""); }});
  var probe = document.createElement("pre");
  probe.id = "{_PROBE_ID}";
  probe.textContent = JSON.stringify({{
    scroll_width: root.scrollWidth, client_width: root.clientWidth, page_height: root.scrollHeight,
    images: images.length,
    broken: images.filter(function (i) {{ return !i.complete || i.naturalWidth === 0; }}).map(function (i) {{
      return i.alt; }}),
    sticking_out: wide}});
  document.body.appendChild(probe);
}});
</script>"""
_TIMEOUT = 180


@dataclass
class RenderCheck:
    """What the page looked like at one window width.

    Attributes:
        width: the window width (CSS pixels).
        scroll_width, client_width: the page's ``scrollWidth`` and ``clientWidth``: the page
            overflows horizontally when the first exceeds the second.
        page_height: the page's ``scrollHeight``.
        images: the number of ``<img>`` elements.
        broken: the alt texts of the images that did not load.
        sticking_out: up to 8 elements (outside horizontally scrolling boxes) whose right edge
            passes the window's.
    """

    width: int
    scroll_width: int
    client_width: int
    page_height: int
    images: int
    broken: list[str] = field(default_factory=list)
    sticking_out: list[str] = field(default_factory=list)

    @property
    def overflows(self) -> bool:
        """Whether the page scrolls horizontally."""
        return self.scroll_width > self.client_width

    @property
    def ok(self) -> bool:
        """No horizontal overflow, and every image loaded."""
        return not self.overflows and not self.broken


def find_chromium() -> str | None:
    """The Chromium executable: ``$CHROMIUM``, else ``chromium`` or ``chromium-browser`` on the PATH."""
    named = os.environ.get("CHROMIUM")
    if named:
        return named
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _chromium(args: list[str], profile: Path) -> str:
    """Run headless Chromium with ``args``; returns its standard output."""
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("chromium: expected Debian's chromium package or $CHROMIUM, got neither")
    command = [
        browser,
        "--headless",
        "--disable-gpu",
        "--no-sandbox",  # root in a container has no user namespace for the sandbox
        "--hide-scrollbars",
        "--disable-dev-shm-usage",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=_TIMEOUT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"chromium: expected exit status 0, got {done.returncode}: {done.stderr[-500:]}")
    return done.stdout


def check(report: Path, width: int, height: int = 1000) -> RenderCheck:
    """Load a copy of ``report`` with the probe injected in a ``width``×``height`` window and return
    what the probe found."""
    page = report.read_text(encoding="utf-8")
    if "</body>" not in page:
        raise ValueError(f"report: expected an HTML page with </body>, got {str(report)!r} without one")
    with tempfile.TemporaryDirectory(prefix="report-render-") as folder:
        copy = Path(folder) / "probed.html"
        copy.write_text(page.replace("</body>", _PROBE + "</body>", 1), encoding="utf-8")
        dom = _chromium(
            [f"--window-size={width},{height}", "--virtual-time-budget=20000", "--dump-dom", copy.as_uri()],
            Path(folder) / "profile",
        )
    found = re.search(rf'<pre id="{_PROBE_ID}">(.*?)</pre>', dom, re.S)
    if found is None:
        raise RuntimeError(
            f"chromium: expected the probe's findings in the page, got {len(dom)} characters without them"
        )
    return RenderCheck(width=width, **json.loads(html.unescape(found.group(1))))


def screenshot(report: Path, png: Path, width: int, height: int) -> Path:
    """Save what a ``width``×``height`` window shows of ``report`` (from its top) to ``png``."""
    png.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="report-shot-") as folder:
        _chromium(
            [f"--window-size={width},{height}", "--virtual-time-budget=20000", f"--screenshot={png}", report.as_uri()],
            Path(folder) / "profile",
        )
    if not png.is_file():
        raise RuntimeError(f"chromium: expected a screenshot at {png}, got none")
    return png


def render(report: Path, out: Path, widths: list[int], max_height: int = 16000) -> list[RenderCheck]:
    """Check ``report`` at each width and save its screenshots under ``out``: the whole page (up to
    ``max_height`` px) as ``report-<width>.png`` and the first screen as ``report-<width>-top.png``."""
    report = report.resolve()
    checks = []
    for width in widths:
        result = check(report, width)
        screenshot(report, out / f"report-{width}.png", width, min(result.page_height, max_height))
        screenshot(report, out / f"report-{width}-top.png", width, 1000)
        checks.append(result)
    return checks


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="the HTML report")
    parser.add_argument("--out", type=Path, default=Path("report-shots"), help="folder for the screenshots")
    parser.add_argument("--widths", type=int, nargs="+", default=[1280, 800], help="window widths (CSS px)")
    parser.add_argument("--json", action="store_true", help="print the checks as JSON")
    args = parser.parse_args(argv)
    try:
        checks = render(args.report, args.out, args.widths)
    except (FileNotFoundError, RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"report_screenshots: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(c) | {"overflows": c.overflows, "ok": c.ok} for c in checks], indent=2))
    for c in checks if not args.json else []:
        verdict = "ok" if c.ok else "FAILED"
        print(
            f"{c.width} px: {verdict}: page {c.scroll_width}/{c.client_width} px wide, {c.page_height} px high; "
            f"{c.images - len(c.broken)} of {c.images} images loaded"
            + (f"; sticking out: {', '.join(c.sticking_out)}" if c.sticking_out else "")
        )
    print(f"screenshots in {args.out}", file=sys.stderr)
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
