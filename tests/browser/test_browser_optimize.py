"""The Optimize page in real headless Chromium: a pruning run ends in its table and charts, and a short
distillation ends in its scores; Stop in the middle of a longer one keeps its loss curve."""
import pytest

from tests.browser.helpers import exceptions_on_page, fill_inputs, open_app_page, wait_for_main_text, wait_until_idle

pytestmark = pytest.mark.browser


def test_optimize_in_chromium(app_url, page):
    open_app_page(page, app_url, "/optimize")
    wait_for_main_text(page, "Optimize", "Zeros in dense tensors save no memory")
    page.get_by_role("button", name="Prune and measure").click()
    wait_for_main_text(page, "Answers side by side", timeout=400)
    wait_until_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    assert page.locator('[data-testid="stPlotlyChart"]').count() == 2  # perplexity and KL against sparsity
    page.get_by_role("tab", name="Distil").click()
    fill_inputs(page, {"Steps": "2"})
    page.get_by_role("button", name="Distil", exact=True).click()
    wait_for_main_text(page, "recovered) on the held-out reference text", "Distilled student", timeout=400)
    wait_until_idle(page)
    fill_inputs(page, {"Steps": "200"})
    page.get_by_role("button", name="Distil", exact=True).click()
    wait_for_main_text(page, "Step 2/200", timeout=400)
    page.get_by_role("button", name="Stop", exact=True).filter(visible=True).click()  # the Distil tab's
    wait_for_main_text(page, "Stopped after", "steps; the student was not scored", timeout=120)
    wait_until_idle(page)
    # the loss so far (the Prune tab's hidden charts come first in the page)
    page.locator('[data-testid="stPlotlyChart"] .main-svg:visible').first.wait_for(timeout=60_000)
    assert exceptions_on_page(page) == []


def test_an_out_of_range_entry_blocks_the_run_in_the_browser(app_url, page):
    """Issue 32 item 4: 99999 layers turned red while "Prune and measure" stayed enabled and ran with 4."""
    open_app_page(page, app_url, "/optimize")
    wait_for_main_text(page, "Optimize", "Zeros in dense tensors save no memory")
    box = page.get_by_label("Layers to remove", exact=True).first  # the Prune tab's (the Distil tab has one too)
    box.fill("99999")
    box.press("Enter")
    wait_for_main_text(page, "Layers to remove must be at most 60", "99,999 was entered")
    wait_until_idle(page)
    assert box.input_value() == "99999"  # kept as typed
    assert page.get_by_role("button", name="Prune and measure").is_disabled()
    box.fill("4")
    box.press("Enter")
    wait_until_idle(page)
    page.wait_for_function("() => !document.body.innerText.includes('99,999 was entered')", timeout=60_000)
    assert page.get_by_role("button", name="Prune and measure").is_enabled()
    assert exceptions_on_page(page) == []
