"""report.html in a real headless browser: it renders offline, every image loads, no script
or console errors, and a screenshot shows the page. CI installs Debian's chromium and sets
TRILEMMA_REQUIRE_BROWSER=1 so that a missing browser fails instead of skipping."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trilemma.compare.report import CHECKS

pytestmark = pytest.mark.slow  # a real browser, on the shared small comparison

BROWSER = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
# Without the networking flags chromium floods a closed network with refused connections.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


@pytest.fixture(autouse=True)
def browser():
    if BROWSER is None:
        if os.environ.get("TRILEMMA_REQUIRE_BROWSER"):
            pytest.fail("no chromium on PATH; .ci/run installs it (apt-get install chromium)")
        pytest.skip("no chromium on PATH")


def run_browser(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run([BROWSER, *FLAGS, f"--user-data-dir={profile}", *args],
                          check=False, capture_output=True, text=True, timeout=120)


def page_state(page: Path, tmp_path: Path) -> tuple[int, int, int, list[str]]:
    """(images decoded, images, script errors, console messages) after the page loaded."""
    done = run_browser(tmp_path, "--virtual-time-budget=5000", "--enable-logging=stderr", "--v=0",
                       "--dump-dom", page.as_uri())
    body = re.search(r"<body[^>]*>", done.stdout)
    assert body, f"no page rendered: {done.stderr[-500:]}"
    loaded = re.search(r'data-images-loaded="(\d+)/(\d+)"', body.group(0))
    errors = re.search(r'data-script-errors="(\d+)"', body.group(0))
    assert loaded and errors, "the page's load handler did not run"
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line]
    return int(loaded.group(1)), int(loaded.group(2)), int(errors.group(1)), console


def test_report_renders_with_every_image_and_no_errors(small_comparison, tmp_path):
    out, _ = small_comparison
    page = out / "report.html"
    loaded, total, errors, console = page_state(page, tmp_path)
    assert total >= 8  # triangle, 3 sample grids, curves, fidelity/diversity, speed, NFE
    assert loaded == total
    assert errors == 0 and console == []


def test_report_is_self_contained(small_comparison):
    out, _ = small_comparison
    text = (out / "report.html").read_text()
    assert not re.search(r"https?://|(src|href)\s*=\s*[\"']?//", text)
    assert text.count('src="data:image/png;base64,') >= 8
    for heading in ("Recommendation", "The trilemma at a glance", "Samples", "Quality against training time",
                    "Fidelity against diversity", "Quality against sampling speed",
                    "quality against network evaluations", "The folklore, checked", "Provenance"):
        assert heading in text


def test_the_check_catches_a_broken_page(tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(f"<html><head><script>{CHECKS}</script></head><body>"
                    '<img src="data:image/png;base64,AAAA"><img src="missing.png">'
                    "<script>undefinedFunction();</script></body></html>")
    loaded, total, errors, console = page_state(page, tmp_path)
    assert (loaded, total) == (0, 2)
    # The capturing listener counts the two failed image loads and the script error.
    assert errors == 3 and console


def test_screenshot_shows_the_report(small_comparison, tmp_path):
    out, _ = small_comparison
    shot = tmp_path / "report.png"
    run_browser(tmp_path, "--window-size=1200,2400", f"--screenshot={shot}", (out / "report.html").as_uri())
    picture = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert picture.shape == (2400, 1200, 3)
    assert picture.std() > 20  # not a blank page
    # The diffusion family's green (#2ca02c) is drawn in the plots near the top of the page.
    green = (abs(picture - np.array([0x2C, 0xA0, 0x2C])).sum(axis=2) < 30).sum()
    assert green > 200
