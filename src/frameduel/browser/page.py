"""Headless Chromium (the system's, never a downloaded one) driven by Playwright: one artefact, one JS runtime.

    with browser_session(model_dir, threads) as session:
        page = session.open("tfjs", "wasm")       # loads the runtime's JS and the artefact; timed in the page
        outputs = page.infer(inputs)              # np.ndarray in, np.ndarray out
        seconds = page.time(inputs, warmup, calls, max_seconds)

Nothing leaves 127.0.0.1: the page loads only from the local static server (server.py); every other
request the page makes is aborted by a route guard and recorded (``session.page_requests``), and
Chromium's own traffic goes to a proxy that refuses everything and records it (``session.proxy``).
The browser and the server are closed on exit, whatever happened; so no Chromium process outlives it.
Framework-free: this module imports no training framework.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from frameduel.browser.proxy import RecordingProxy
from frameduel.browser.server import serve_static
from frameduel.browser.setup import require_npm_packages
from frameduel.errors import FrameduelError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Offline headless flags; no --disable-gpu, so WebGL can run (on SwiftShader, a CPU rasteriser, where
# there is no GPU: --enable-unsafe-swiftshader allows that, and the page reports the renderer).
CHROMIUM_FLAGS = ("--no-sandbox", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-default-apps",
                  "--disable-domain-reliability", "--no-pings", "--enable-unsafe-swiftshader",
                  "--use-angle=swiftshader")
LOCAL_HOSTS = ("127.0.0.1",)
PAGE_TIMEOUT_MS = 120_000


def find_chromium() -> str | None:
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def require_chromium() -> str:
    path = find_chromium()
    if path is None:
        raise FrameduelError("Chromium is not installed, and the browser formats run in it; install it "
                             "(Debian: apt-get install chromium)")
    return path


def require_playwright() -> None:
    try:
        import playwright.sync_api  # noqa: F401 - only whether it is there
    except ImportError:
        raise FrameduelError("the playwright package is missing; install frameduel's export extra "
                             "(pip install -e '.[cpu]')") from None


def to_base64(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f4").tobytes()).decode()


def from_base64(text: str, shape: list[int]) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(shape).astype(np.float32)


@dataclass
class RuntimePage:
    """One page with one runtime and backend loaded, and the artefact in it."""

    page: Any  # playwright.sync_api.Page
    runtime: str
    backend: str
    facts: dict[str, Any]  # import_s, load_s, renderer, isolated

    def infer(self, inputs: np.ndarray) -> np.ndarray:
        out = self.page.evaluate("([data, shape]) => frameduel.infer(data, shape)",
                                 [to_base64(inputs), list(inputs.shape)])
        return from_base64(out["data"], out["shape"])

    def time(self, inputs: np.ndarray, warmup: int, calls: int, max_seconds: float) -> list[float]:
        return self.page.evaluate("([d, s, w, c, m]) => frameduel.time(d, s, w, c, m)",
                                  [to_base64(inputs), list(inputs.shape), warmup, calls, max_seconds])

    def close(self) -> None:
        self.page.close()


@dataclass
class BrowserSession:
    context: Any  # playwright.sync_api.BrowserContext
    base_url: str
    model_path: str  # the artefact's URL path under /model/
    threads: int
    proxy: RecordingProxy
    page_requests: list[str] = field(default_factory=list)  # every URL a page asked for
    refused: list[str] = field(default_factory=list)  # those not on 127.0.0.1: aborted

    def guard(self, route: Any) -> None:
        url = route.request.url
        self.page_requests.append(url)
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort()

    def open(self, runtime: str, backend: str) -> RuntimePage:
        page = self.context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(f"{self.base_url}/harness.html")
        facts = page.evaluate("([r, b, u, t]) => frameduel.load(r, b, u, t)",
                              [runtime, backend, f"{self.base_url}/model/{self.model_path}", self.threads])
        return RuntimePage(page, runtime, backend, facts)


@contextmanager
def browser_session(model_dir: Path, model_path: str, threads: int = 1) -> Iterator[BrowserSession]:
    """Serve model_dir on 127.0.0.1 and start headless Chromium with an empty profile; both stop on exit."""
    chromium = require_chromium()
    require_playwright()
    modules = require_npm_packages()
    from playwright.sync_api import sync_playwright

    with (RecordingProxy() as proxy, serve_static(modules, model_dir) as base_url,
          tempfile.TemporaryDirectory(prefix="frameduel-chromium-") as profile, sync_playwright() as playwright):
        # A persistent context on an empty directory: the profile is ours, and removed afterwards.
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=chromium, headless=True, service_workers="block",
            # Not Playwright's proxy option: that sends loopback through the proxy too (<-loopback>).
            args=[*CHROMIUM_FLAGS, f"--proxy-server={proxy.url}"])
        session = BrowserSession(context, base_url, model_path, threads, proxy)
        context.route("**/*", session.guard)
        try:
            yield session
        finally:
            context.close()
