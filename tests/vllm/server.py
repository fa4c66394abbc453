"""The real vLLM server the endpoint tests share (one per test session: scripts/vllm_server.sh serving the bundled
SmolLM2 in fp32 on a free loopback port) and a real `streamlit run app.py` configured with it. tests/conftest.py
loads this module as a plugin, so every test file shares the one server; each starts once, on first use."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from core.serve import endpoints as E
from tests.browser.helpers import free_port

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
STARTUP_DEADLINE_S = float(os.environ.get("LLM_LAB_VLLM_STARTUP_S", 800))  # eager start: ~3 min on 2 busy cores
# A secret key the app is configured with (vLLM without --api-key ignores it), to prove it never reaches a page.
BROWSER_SECRET = "sk-browser-secret-7f3a9c"


@pytest.fixture(scope="session")
def vllm_endpoint(tmp_path_factory):
    """Start the real server once per session on a free loopback port, wait for /health and /v1/models, stop it.
    LLM_LAB_TEST_VLLM_URL=http://127.0.0.1:PORT/v1 reuses a server already started with scripts/vllm_server.sh."""
    reuse = os.environ.get("LLM_LAB_TEST_VLLM_URL")
    if reuse:
        assert httpx.URL(reuse).host in ("127.0.0.1", "localhost"), "tests only talk to loopback servers"
        yield E.Endpoint("local-vllm", reuse, "smollm2")
        return
    if not VENV_PYTHON.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(".venv-vllm is missing: .ci/run builds it with scripts/vllm_server.sh install")
        pytest.skip("no vLLM env (run scripts/vllm_server.sh install)")
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, LLM_LAB_PYTHON=os.environ.get("LLM_LAB_PYTHON", str(Path(os.sys.executable))))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(ROOT / "scripts" / "vllm_server.sh"), "serve", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = E.Endpoint("local-vllm", f"http://127.0.0.1:{port}/v1", "smollm2")
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if (httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
                        and httpx.get(endpoint.api_base + "/models", timeout=5).status_code == 200):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM not ready after {STARTUP_DEADLINE_S:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()



@pytest.fixture(scope="session")
def endpoint_app(vllm_endpoint, chromium_browser, tmp_path_factory):
    from tests.browser import helpers as browser

    config = [{"name": "local vLLM", "base_url": vllm_endpoint.base_url, "model": vllm_endpoint.model,
               "api_key_env": "LLM_LAB_TEST_KEY"}]
    extra_env = {E.ENDPOINTS_ENV: json.dumps(config), "LLM_LAB_TEST_KEY": BROWSER_SECRET}  # the app's alone
    with browser.running_app(tmp_path_factory.mktemp("endpoint_app") / "streamlit.log", extra_env) as url:
        yield url


@pytest.fixture
def endpoint_page(chromium_browser, endpoint_app):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
