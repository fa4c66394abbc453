"""The running app in a real headless browser: the home page and its navigation."""
import pytest

from tests.browser import exceptions_on_page, open_app_page, save_screenshot

pytestmark = pytest.mark.browser


def test_home_page_renders_in_chromium(app_url, page):
    open_app_page(page, app_url, "/")
    assert page.locator('[data-testid="stMain"] h1').first.inner_text().startswith("LLM Lab") or \
        "LLM Lab" in page.locator('[data-testid="stMain"] h1').first.inner_text()
    main = page.locator('[data-testid="stMain"]').inner_text()
    for name in ("Generate", "Attention", "Quantization", "Memory planner", "Compute planner"):
        assert name in main
    nav = page.locator('[data-testid="stSidebarNav"]').inner_text()
    assert "Memory planner" in nav and "Compute planner" in nav
    assert exceptions_on_page(page) == []
    save_screenshot(page, "home")
