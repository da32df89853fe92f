"""Build the documentation site as README.md says, then open three of its pages in headless Chromium.

Run in a fresh process by tests/test_docs.py: ``python tests/docs_worker.py DIRECTORY REPORT.json``. The site
is built into ``DIRECTORY/html`` with warnings as errors; it is served on 127.0.0.1 and every request for
anything else is blocked (and recorded). For each page it records the console's errors, the page's
uncaught exceptions, the images that did not load, the math MathJax rendered and any TeX left raw in the
page's text, and saves a screenshot beside the report.

Chromium is Debian's (``apt-get install chromium``; ``CHROMIUM`` names another binary), driven by Playwright,
which needs no browser download when given the executable. Writes ``{"build": {...}, "pages": {page: {...}}}``,
or ``{"missing": why}`` when Playwright or Chromium is not installed.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# README's build command, into DIRECTORY/html.
BUILD = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-b", "html", "docs"]
PAGES = {
    "home": "index.html",
    "api": "_autosummary/adaptive_tx.adam.html",
    "notebook": "notebooks/03_adam_bias_correction.html",
}
# What a headless Chromium needs on a machine with no network (no background connections, no sandbox as root).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# TeX that MathJax leaves in the text when it did not run.
RAW_TEX = ("\\frac", "\\sqrt", "\\beta", "\\eta", "\\hat")

_MATH = """async () => {
    if (window.MathJax === undefined || MathJax.startup === undefined) return -1;
    await MathJax.startup.promise;
    return document.querySelectorAll("mjx-container").length;
}"""
_BROKEN_IMAGES = """() => Array.from(document.images)
    .filter(image => !image.complete || image.naturalWidth === 0)
    .map(image => image.getAttribute("src"))"""


def build(out: Path) -> dict:
    start = time.monotonic()
    process = subprocess.run([*BUILD, str(out)], cwd=ROOT, capture_output=True, text=True)
    return {
        "seconds": round(time.monotonic() - start, 1),
        "returncode": process.returncode,
        "warnings": [line for line in process.stderr.splitlines() if "WARNING" in line or "ERROR" in line],
        "output": (process.stdout + process.stderr)[-4000:],
    }


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _only(origin: str, blocked: list[str]):
    """A route handler: requests for the site go through, any other is aborted and noted in ``blocked``."""

    def route(route) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    return route


def _listen(page, origin: str, record: dict) -> None:
    """Note the page's console errors, uncaught exceptions and failed requests for the site in ``record``."""

    def console(message) -> None:
        if message.type == "error":
            record["console errors"].append(message.text)

    def failed(request) -> None:
        if request.url.startswith(origin):
            record["failed"].append(request.url)

    page.on("console", console)
    page.on("pageerror", lambda error: record["page errors"].append(str(error)))
    page.on("requestfailed", failed)


def visit(site: Path, shots: Path, chromium: str) -> dict:
    from playwright.sync_api import sync_playwright

    server = serve(site)
    origin = f"http://127.0.0.1:{server.server_address[1]}/"
    pages: dict = {}
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for name, path in PAGES.items():
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                record: dict = {"console errors": [], "page errors": [], "blocked": [], "failed": []}
                context.route("**/*", _only(origin, record["blocked"]))
                page = context.new_page()
                _listen(page, origin, record)
                response = page.goto(origin + path, wait_until="load")
                record["status"] = response.status if response else None
                record["math"] = page.evaluate(_MATH)
                page.wait_for_load_state("networkidle")
                record["images"] = page.evaluate("() => document.images.length")
                record["broken images"] = page.evaluate(_BROKEN_IMAGES)
                text = page.inner_text("body")
                record["raw tex"] = sorted({tex for tex in RAW_TEX if tex in text})
                record["screenshot"] = str(shots / f"{name}.png")
                page.screenshot(path=record["screenshot"], full_page=False)
                context.close()
                pages[name] = record
            browser.close()
    finally:
        server.shutdown()
    return pages


def main(directory: str, out: str) -> None:
    chromium = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    report: dict = {}
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        report["missing"] = 'Playwright: pip install -e ".[docs]"'
    if chromium is None:
        report["missing"] = "Chromium: apt-get install chromium (or CHROMIUM=/path/to/chromium)"
    report["build"] = build(Path(directory) / "html")
    if "missing" not in report and report["build"]["returncode"] == 0:
        shots = Path(out).parent
        report["pages"] = visit(Path(directory) / "html", shots, chromium)
    Path(out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(*sys.argv[1:])
