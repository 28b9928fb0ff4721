"""The HTML report in a real browser: headless Chromium renders it offline, plots decoded, sections there.

Chromium is a system package (Debian: `chromium`); the README's test command installs it when missing.
Without it the test is skipped locally but fails under CI, so CI can never pass without the check.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from matplotlib import image as mpimg

from frameduel.browser.page import find_chromium
from frameduel.browser.proxy import RecordingProxy
from tests.conftest import run_cli
from tests.test_report import stored_run
from tests.tools import skip_or_fail

SECTIONS = ("overview", "verdict", "cells", "caveats", "speedups", "claims", "break-even", "deployment", "figures",
            "environment")

# Loads the report in a same-origin iframe and writes what the browser made of it into #result, which
# --dump-dom prints: how many images the page has and how many actually decoded to a bitmap.
HARNESS = """<!doctype html><html><body><pre id="result">pending</pre>
<iframe id="report" src="report.html" width="1280" height="900"></iframe>
<script>
document.getElementById("report").addEventListener("load", (event) => {
  const page = event.target.contentDocument;
  const images = Array.from(page.images);
  document.getElementById("result").textContent = JSON.stringify({
    title: page.title,
    ids: Array.from(page.querySelectorAll("[id]")).map((element) => element.id),
    images: images.length,
    decoded: images.filter((img) => img.complete && img.naturalWidth > 0).length,
  });
});
</script></body></html>"""


def chromium(*args: str, profile: Path, proxy: RecordingProxy) -> subprocess.CompletedProcess:
    # Flags as for any offline headless run; every request (loopback included) is sent to the proxy.
    command = [find_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-quic",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-default-apps", "--disable-domain-reliability", "--no-pings",
               f"--user-data-dir={profile}", f"--proxy-server=http://127.0.0.1:{proxy.port}",
               "--proxy-bypass-list=<-loopback>", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def browser() -> str:
    path = find_chromium()
    if path is None:
        skip_or_fail("chromium is not installed; run scripts/install-system-deps (Debian: apt-get install chromium)")
    return path


def hosts_requested(page: Path, profile: Path) -> set[str]:
    """Hosts the browser asked for while loading page (its own background traffic included)."""
    proxy = RecordingProxy()
    try:
        chromium("--virtual-time-budget=5000", "--dump-dom", page.as_uri(), profile=profile, proxy=proxy)
    finally:
        proxy.close()
    return proxy.hosts


def test_report_renders_offline_in_headless_chromium(browser, db_path, tmp_path):
    out = tmp_path / "out"
    result = run_cli("report", stored_run(db_path), "--db", str(db_path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    (out / "harness.html").write_text(HARNESS)
    (out / "blank.html").write_text("<!doctype html><title>blank</title>")
    (out / "control.html").write_text('<!doctype html><img src="http://frameduel-control.invalid/x.png">')
    proxy = RecordingProxy()
    try:
        dom = chromium("--allow-file-access-from-files", "--virtual-time-budget=10000", "--dump-dom",
                       (out / "harness.html").as_uri(), profile=tmp_path / "profile-dom", proxy=proxy)
        shot = out / "report.png"
        screenshot = chromium(f"--screenshot={shot}", "--window-size=1280,2400", "--hide-scrollbars",
                              (out / "report.html").as_uri(), profile=tmp_path / "profile-shot", proxy=proxy)
    finally:
        proxy.close()
    # Chromium phones Google services on its own, whatever the page; only hosts beyond a blank page's count.
    # The control page proves the proxy sees a page's own request.
    control_hosts = hosts_requested(out / "control.html", tmp_path / "profile-control")
    assert "frameduel-control.invalid" in control_hosts
    browser_noise = hosts_requested(out / "blank.html", tmp_path / "profile-blank") | control_hosts - {
        "frameduel-control.invalid"}

    match = re.search(r'<pre id="result">(.*?)</pre>', dom.stdout, re.S)
    assert match, f"chromium printed no page: {dom.stderr[-500:]}"
    seen = json.loads(match.group(1))
    assert seen["title"].startswith("frameduel"), seen
    assert set(SECTIONS) <= set(seen["ids"]), f"missing sections: {set(SECTIONS) - set(seen['ids'])}"
    assert seen["images"] >= 3 and seen["decoded"] == seen["images"], seen
    assert proxy.hosts <= browser_noise, f"the report made network requests: {proxy.hosts - browser_noise}"

    assert screenshot.returncode == 0 and shot.is_file(), screenshot.stderr[-500:]
    pixels = mpimg.imread(shot)[..., :3]  # (H, W, RGB) floats in [0, 1]
    assert pixels.shape[0] >= 2000 and pixels.shape[1] >= 1200
    ink = np.any(pixels < 0.9, axis=-1).mean()  # text, tables and plots: not a blank page
    colour = (pixels.max(axis=-1) - pixels.min(axis=-1) > 0.3).mean()  # saturated pixels: the plots' bars
    assert ink > 0.02, f"the screenshot is nearly blank ({ink:.1%} ink)"
    assert colour > 0.002, f"no coloured plot pixels in the screenshot ({colour:.2%})"
