"""The compute planner in a real headless browser: renders its plan, charts and tables, restores a shared link."""
import pytest

from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text, wait_for_url_params

pytestmark = pytest.mark.browser


def test_compute_planner_renders_in_chromium(app_url, page):
    open_app_page(page, app_url, "/compute")
    page.wait_for_selector('[data-testid="stMetricValue"]', timeout=60_000)  # metrics mount lazily
    main = page.locator('[data-testid="stMain"]')
    assert "Compute planner" in main.locator("h1").first.inner_text()
    wait_for_main_text(page, "The plan", "PF/s-days", "GPU-hours", "Wall-clock time", "26.3B", "525B", "30.0 days",
                       "Scaling-law view", "Reference runs")
    assert exceptions_on_page(page) == []
    # plotly loads lazily: wait for the iso-FLOP chart to draw before the screenshot
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    # every input is in the URL (written after the script's last element), and the memory planner link carries
    # the plan's size
    wait_for_url_params(page, "params=", "gpu=")
    page.locator('[data-testid="stMain"] a[href*="memory?params=26269641794"]').first.wait_for(timeout=60_000)
    save_screenshot(page, "compute_planner")
    page.locator('[data-testid="stPlotlyChart"]').first.scroll_into_view_if_needed()
    save_screenshot(page, "compute_planner_iso_flop")


def test_shared_link_restores_a_model_size_plan(app_url, page):
    open_app_page(page, app_url, "/compute?mode=params&params=70000000000&gpu=H100%20SXM&gpus=1024")
    wait_for_main_text(page, "70B", "1.4T", "Model size N", "H100 SXM")
    assert exceptions_on_page(page) == []
    wait_for_url_params(page, "mode=params", "params=70000000000", "gpu=H100 SXM", "gpus=1024")
