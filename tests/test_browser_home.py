"""The running app in a real headless browser: the home page and its navigation."""
import pytest

from tests.browser import exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text, wait_for_text

pytestmark = pytest.mark.browser


def test_home_page_renders_in_chromium(app_url, page):
    open_app_page(page, app_url, "/")
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().startswith("LLM Lab") or \
        "LLM Lab" in page.locator('[data-testid="stMain"] h1').first.inner_text()
    wait_for_main_text(page, "Generate", "Attention", "Quantization", "Memory planner", "Compute planner")
    # Every page of app.py's navigation is in the sidebar (10 pages: under Streamlit's 12 before "View more").
    wait_for_text(page.locator('[data-testid="stSidebarNav"]'), "Generate", "Attention", "Layers", "Quantization",
                  "Fine-tune", "Memory planner", "Compute planner", "Serving planner", "Serving load test")
    assert exceptions_on_page(page) == []
    save_screenshot(page, "home")
