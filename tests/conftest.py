"""Test-wide settings (never touch the network), the Chromium every browser test shares, and the tiers.

Tests are laid out like the code: tests/<package>/ for core's packages (plan, run, measure, serve, finetune,
distributed, optimize, evaluate, common, io), tests/pages/ for AppTest runs of the pages, tests/browser/ for headless
Chromium against a running app (its fixtures: tests/browser/conftest.py), tests/vllm/ for a real vLLM server (its
fixtures: tests/vllm/conftest.py), tests/project/ for the project's rules."""
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

@pytest.fixture(scope="session")
def chromium_browser():
    """Headless Debian Chromium driven by Playwright (never `playwright install`)."""
    from tests.browser import helpers as browser

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


# --- tiers -----------------------------------------------------------------------------------------------------
# `python -m pytest -m fast` is the check between two edits (README): every test that needs no browser, no vLLM
# server, no GPU, no extra processes and no long model run. Markers are applied here: by folder (tests/browser,
# tests/vllm) and, for the long model runs that live beside their package's quick tests, by file, so a new test file
# lands in the fast tier unless its folder, the list below or the test itself says otherwise.
FOLDER_MARKERS = {"browser": "browser", "vllm": "vllm"}
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
        folder_marker = FOLDER_MARKERS.get(item.path.parent.name)
        if folder_marker:
            item.add_marker(getattr(pytest.mark, folder_marker))
        if name in LONG_FILES:
            item.add_marker(pytest.mark.long)
        if not any(item.get_closest_marker(m) for m in ("browser", "vllm", "gpu", "slow", "long")):
            item.add_marker(pytest.mark.fast)
