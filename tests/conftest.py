"""Test-wide settings (never touch the network) and the real-browser fixtures."""
import os
import shutil

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
# Idle OpenMP threads sleep instead of spinning; the app server and the tests share 2 cores. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Marks every process this test session starts (the app server, its rank processes…), so a leftover check counts
# this session's processes only, not another run's on the same machine.
os.environ["LLM_LAB_TEST_SESSION"] = f"{os.getpid()}"

# One real vLLM server (and one app configured with it) for every test file that asks for it.
pytest_plugins = ["tests.vllm_server"]


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """Base URL of a real `streamlit run app.py` on a free localhost port."""
    from tests import browser

    with browser.running_app(tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture(scope="session")
def chromium_browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    from tests import browser

    if not shutil.which(browser.CHROMIUM) and not os.path.exists(browser.CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs the Debian package `chromium`")
        pytest.skip("Debian chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=browser.CHROMIUM, headless=True, args=browser.CHROMIUM_ARGS)
    try:
        yield b
    finally:
        b.close()
        pw.stop()


@pytest.fixture
def page(chromium_browser, app_url):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()


# --- tiers -----------------------------------------------------------------------------------------------------
# `python -m pytest -m fast` is the check between two edits (README): every test that needs no browser, no vLLM
# server, no GPU, no extra processes and no long model run. Markers are applied here, by file, so a new test file
# lands in the fast tier unless it is named below or marks itself.
VLLM_FILES = {"test_endpoints_vllm.py", "test_evaluate_loglik_vllm.py", "test_load_test_vllm.py",
              "test_serve_sim_vllm.py"}
# Real runs that take tens of seconds to minutes each here (2 cores): rank processes, ISA subprocesses, training,
# pruning and distillation of SmolLM2, whole evaluation / optimization / fine-tuning pages.
# Files where only some tests run long mark those with @pytest.mark.long, so their quick checks stay in the tier
# (evaluate, optimize: bad input, scoring, refusals).
LONG_FILES = {"test_distributed.py", "test_evaluate_loglik.py", "test_measure_isa.py", "test_finetune_runner.py",
              "test_page_optimize.py", "test_page_evaluate.py", "test_page_finetune.py", "test_device_bench.py",
              "test_batch_serving.py", "test_distributed_parallel.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        name = item.path.name
        if name in VLLM_FILES:
            item.add_marker(pytest.mark.vllm)
        if name.startswith("test_browser_"):
            item.add_marker(pytest.mark.browser)
        if name in LONG_FILES:
            item.add_marker(pytest.mark.long)
        if not any(item.get_closest_marker(m) for m in ("browser", "vllm", "gpu", "slow", "long")):
            item.add_marker(pytest.mark.fast)
