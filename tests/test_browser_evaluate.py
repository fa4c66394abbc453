"""The Evaluate page in real headless Chromium: one run of the bundled model over the prompt techniques ends in the
verdict, the chart and the downloads."""
import pytest

from tests.browser import exceptions_on_page, fill_inputs, open_app_page, wait_for_main_text, wait_until_idle

pytestmark = pytest.mark.browser


def test_evaluate_in_chromium(app_url, page):
    open_app_page(page, app_url, "/evaluate")
    wait_for_main_text(page, "Evaluate", "Prompt techniques", "The task's items (16)")
    fill_inputs(page, {"Items": "3"})
    page.get_by_role("button", name="Run evaluation").click()
    wait_for_main_text(page, "Best on this task", "Every answer, side by side", timeout=300)
    wait_until_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    assert page.get_by_role("button", name="Download CSV").count() == 1
    assert exceptions_on_page(page) == []
