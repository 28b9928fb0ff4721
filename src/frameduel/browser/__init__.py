"""Running exported models in a real browser: headless Chromium, TF.js and ONNX Runtime Web, all from 127.0.0.1.

    setup.py    `frameduel browser setup`: the pinned npm runtimes and the tfjs converter's own venv
    server.py   the static server on 127.0.0.1 (harness page, runtimes, one artefact)
    proxy.py    the refusing, recording proxy Chromium is pointed at: nothing leaves the machine
    page.py     Chromium via Playwright (the system executable), one runtime and backend per page
    harness.*   the page side: load a runtime, run inputs, time calls in the page

Framework-free: nothing here imports torch or tensorflow (the converter runs in its own venv).
"""
