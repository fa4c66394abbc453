"""Helpers for the real-browser tests: a running `streamlit run app.py` and headless Debian Chromium via Playwright."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT_DIR = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Flags as the machine's probe used them: no sandbox as root, and no background networking on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, log_path: Path, extra_env: dict | None = None) -> subprocess.Popen:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", **(extra_env or {}))
    log = open(log_path, "w")
    return subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited early with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"streamlit did not become healthy at {url}")


@contextlib.contextmanager
def running_app(log_path: Path, extra_env: dict | None = None):
    """A real `streamlit run app.py` on a free localhost port (extra environment variables for it alone); yields its
    base URL once healthy and stops it afterwards."""
    port = free_port()
    proc = start_app(port, log_path, extra_env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def wait_until_idle(page, timeout: float = 120, settle: float = 1.0) -> None:
    """Wait until Streamlit's 'Running…' status widget has been gone for `settle` seconds."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    deadline = time.time() + timeout
    idle_since = None
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        if running:
            idle_since = None
        elif idle_since is None:
            idle_since = time.time()
        elif time.time() - idle_since >= settle:
            return
        time.sleep(0.2)
    raise TimeoutError("the Streamlit script kept running")


def fill_inputs(page, values: dict[str, str]) -> None:
    """Type each value into the input labelled with its key and press Enter, waiting for the rerun after each."""
    for label, value in values.items():
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        wait_until_idle(page)


def wait_for_lazy_elements(page, timeout: float = 60) -> None:
    """Plotly charts and metrics draw after the script finished: wait until every chart has its SVG."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        charts = page.locator('[data-testid="stPlotlyChart"]').count()
        drawn = page.locator('[data-testid="stPlotlyChart"] .main-svg').count()
        if drawn >= charts and page.locator('[data-testid="stSkeleton"]').count() == 0:
            return
        time.sleep(0.2)
    raise TimeoutError("charts were not drawn")


def open_app_page(page, app_url: str, path: str = "/", timeout: float = 120) -> None:
    """Navigate to a page of the app and wait until its script has finished running and its charts are drawn."""
    page.goto(f"{app_url.rstrip('/')}/{path.lstrip('/')}", wait_until="domcontentloaded", timeout=timeout * 1000)
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout * 1000)
    wait_until_idle(page, timeout=timeout)
    wait_for_lazy_elements(page, timeout=timeout)
    # The app's own navigation ran (not Streamlit's legacy `pages/`-folder mode, not its "Page not found" fallback).
    wait_for_text(page.locator('[data-testid="stSidebarNav"]'), "Overview", timeout=timeout)
    assert page.get_by_text("Page not found").count() == 0, "Streamlit showed 'Page not found'"


def wait_for_text(locator, *texts: str, timeout: float = 60) -> None:
    """Wait until the element's visible text contains every one of ``texts`` (Playwright's auto-retrying
    ``expect``), with one deadline for all of them: the page draws after the script, later under load."""
    from playwright.sync_api import expect

    deadline = time.time() + timeout
    for text in texts:
        remaining_ms = max(1.0, deadline - time.time()) * 1000
        expect(locator).to_contain_text(text, timeout=remaining_ms, use_inner_text=True)  # visible text only


def wait_for_main_text(page, *texts: str, timeout: float = 60) -> None:
    wait_for_text(page.locator('[data-testid="stMain"]'), *texts, timeout=timeout)


def wait_for_url_params(page, *fragments: str, timeout: float = 60) -> None:
    """Wait until the page's URL contains every fragment: Streamlit writes st.query_params to the browser after the
    script's last element, later under load, so reading ``page.url`` right away races it."""
    page.wait_for_function(
        "(parts) => parts.every(p => decodeURIComponent(location.href.replace(/\\+/g, ' ')).includes(p))",
        arg=list(fragments), timeout=timeout * 1000)
    assert all(f in _decoded(page.url) for f in fragments), (page.url, fragments)


def _decoded(url: str) -> str:
    from urllib.parse import unquote_plus

    return unquote_plus(url)


def exceptions_on_page(page) -> list[str]:
    """Texts of any exception boxes Streamlit rendered."""
    return page.locator('[data-testid="stException"]').all_inner_texts()


def save_screenshot(page, name: str, max_height: int = 6000) -> Path:
    """Screenshot of the whole page. Streamlit scrolls inside its own container, so the viewport is grown to the
    content's height for the shot (and restored afterwards)."""
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    size = page.viewport_size or {"width": 1400, "height": 1000}
    height = page.evaluate(
        """() => Math.max(...Array.from(document.querySelectorAll('[data-testid="stMain"], [data-testid="stAppScrollToBottomContainer"], section.main'))
                 .map(e => e.scrollHeight), document.body.scrollHeight)"""
    )
    page.set_viewport_size({"width": size["width"], "height": int(min(max(height, size["height"]), max_height))})
    try:
        wait_for_lazy_elements(page)
        page.screenshot(path=str(path), full_page=True)
    finally:
        page.set_viewport_size(size)
    return path
