"""The static HTTP server the browser runner's page loads everything from, bound to 127.0.0.1 only.

    /                 the harness page (harness.html, harness.js beside this file)
    /npm/...          the installed JS runtimes (<cache>/npm/node_modules)
    /model/...        the artefact's directory

Every response is cross-origin isolated (COOP same-origin, COEP require-corp): that gives the page
5 microsecond performance.now() resolution instead of 100, and SharedArrayBuffer, which the wasm
backends need for more than one thread.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

HARNESS_FILES = ("harness.html", "harness.js")


class StaticHandler(SimpleHTTPRequestHandler):
    extensions_map = {**SimpleHTTPRequestHandler.extensions_map, ".wasm": "application/wasm",
                      ".mjs": "text/javascript", ".js": "text/javascript", ".json": "application/json"}

    def __init__(self, *args, roots: dict[str, Path], **kwargs) -> None:
        self.roots = roots
        super().__init__(*args, **kwargs)

    def translate_path(self, path: str) -> str:
        """/<root>/<rest> -> that root's file; anything else (or an escape with ..) -> a path that does not exist."""
        parts = [p for p in unquote(urlsplit(path).path).split("/") if p]
        if not parts or parts[0] not in self.roots or any(p in (".", "..") for p in parts):
            return str(self.roots["/"] / (parts[0] if len(parts) == 1 and parts[0] in HARNESS_FILES else "-missing-"))
        return str(self.roots[parts[0]].joinpath(*parts[1:]))

    def end_headers(self) -> None:
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@contextmanager
def serve_static(node_modules: Path, model_dir: Path) -> Iterator[str]:
    """Serve the harness, the runtimes and one artefact on 127.0.0.1 (a free port); yields the base URL.
    The server is shut down on exit, whatever happened inside."""
    harness = Path(str(resources.files("frameduel.browser")))
    handler = functools.partial(StaticHandler, roots={"/": harness, "npm": node_modules, "model": model_dir})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
