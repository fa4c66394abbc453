"""The Multi-GPU tab's "Run it here" in real headless Chromium: a real distributed step on 2 rank processes shows its
per-rank table; closing the tab mid-run ends every rank process."""
import time

import pytest

from tests.browser.helpers import exceptions_on_page, fill_inputs, open_app_page, wait_for_main_text, wait_until_idle
from tests.distributed.test_distributed import _workers

pytestmark = pytest.mark.browser


def _open_multi_gpu(page, app_url):
    open_app_page(page, app_url, "/memory")
    page.get_by_role("tab", name="Multi-GPU (DDP vs ZeRO)").click()
    wait_for_main_text(page, "Run it here", "Predicted before running")


def _wait(condition, timeout: float, what: str):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_run_it_here_shows_each_rank_measured_vs_predicted(app_url, page):
    _open_multi_gpu(page, app_url)
    page.get_by_role("button", name="Run here").click()
    wait_for_main_text(page, "Worst per-rank peak error", "Finished", timeout=300)
    wait_until_idle(page)
    assert exceptions_on_page(page) == []
    main = page.locator('[data-testid="stMain"]').inner_text()
    worst = float(main.split("Worst per-rank peak error: ", 1)[1].split(" %", 1)[0])
    assert worst < 10.0
    assert page.get_by_role("button", name="Download CSV").count() >= 1
    page.get_by_text("The same step on real GPUs (torchrun)").click()
    wait_for_main_text(page, "torchrun --nproc-per-node 2 -m core.distributed.worker")
    assert not _workers()


def test_closing_the_tab_mid_run_ends_every_rank(app_url, chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        _open_multi_gpu(page, app_url)
        fill_inputs(page, {"Steps": "100"})
        page.get_by_role("button", name="Run here").click()
        _wait(lambda: len(_workers()) >= 2, 120, "both rank processes to start")
    finally:
        context.close()
    _wait(lambda: not _workers(), 60, "every rank process to end after the tab closed")


def test_stop_mid_run_says_how_far_it_got_and_ends_every_rank(app_url, page):
    """Issue 32: after Stop the page says "Stopped after k of n strategies" (like the other pages) and keeps the
    finished strategies' rows; no rank process is left."""
    _open_multi_gpu(page, app_url)
    page.get_by_role("button", name="Run here").click()
    wait_for_main_text(page, "DDP: done in", timeout=300)  # the first of the four strategies has finished
    page.get_by_role("button", name="Stop").click()
    wait_for_main_text(page, "Stopped after", "of 4 strategies", timeout=120)
    main = page.locator('[data-testid="stMain"]').inner_text()
    done = int(main.split("Stopped after ", 1)[1].split(" of 4", 1)[0])
    assert 1 <= done < 4, done
    assert "Worst per-rank peak error" in main  # the finished strategies' table stays
    _wait(lambda: not _workers(), 60, "every rank process to end after Stop")
    assert exceptions_on_page(page) == []
