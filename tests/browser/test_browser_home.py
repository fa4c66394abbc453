"""The running app in a real headless browser: the home page and its navigation."""
import pytest

from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text, wait_for_text

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


@pytest.mark.parametrize("width", [1400, 1024])
def test_home_offers_three_ways_in_and_each_first_step_opens(app_url, page, width):
    """Issue 32: Home starts each use (explore, demo, plan) with its first page, readable at 1,400 and 1,024 px."""
    page.set_viewport_size({"width": width, "height": 1000})
    open_app_page(page, app_url, "/")
    main = page.locator('[data-testid="stMain"]')
    wait_for_main_text(page, "Explore a model", "Give a demo", "Plan hardware", "1. Generate", "1. Memory planner")
    for heading in ("Explore a model", "Give a demo", "Plan hardware"):
        box = main.locator("h3", has_text=heading).first
        # the heading's text fits its column: nothing cut off or scrolled out of it
        assert box.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), (width, heading)
    main.get_by_text("1. Memory planner").first.click()
    wait_for_main_text(page, "Memory planner")
    page.wait_for_url("**/memory**", timeout=60_000)
    assert exceptions_on_page(page) == []
