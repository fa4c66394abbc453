"""The Attention page in a real headless browser: the heatmap renders, a view switch redraws, a screenshot."""
import pytest
from playwright.sync_api import expect

from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_until_idle

pytestmark = pytest.mark.browser

HEATMAP = '[data-testid="stPlotlyChart"] .js-plotly-plot'


def _tick_labels(page, axis: str) -> list[str]:
    return page.locator(f"{HEATMAP} .{axis}tick text").all_text_contents()


def test_attention_page_renders_the_heatmap_in_chromium(app_url, page):
    open_app_page(page, app_url, "/attention", timeout=300)
    page.wait_for_selector(HEATMAP, timeout=300_000)
    wait_until_idle(page, timeout=300)
    assert page.locator('[data-testid="stMain"] h1').first.inner_text() == "Attention"
    assert "Overview" in page.locator('[data-testid="stSidebarNav"]').inner_text()
    page.locator(f"{HEATMAP} .hm image").first.wait_for(state="attached", timeout=60_000)  # plotly draws the cells as an image
    page.wait_for_function(
        "() => { const t = [...document.querySelectorAll('.js-plotly-plot .xtick text')].map(e => e.textContent);"
        " return t.includes('teacher') && t.includes('book'); }", timeout=60_000)
    keys = _tick_labels(page, "x")
    assert "teacher" in keys and "book" in keys
    expect(page.locator(HEATMAP).first).to_contain_text("Self-attention: layer 0, head 0", timeout=60_000)
    assert exceptions_on_page(page) == []

    page.set_viewport_size({"width": 1400, "height": 1800})  # the whole heatmap in one screenshot
    page.locator(HEATMAP).first.scroll_into_view_if_needed()
    save_screenshot(page, "attention")

    page.get_by_text("Model view", exact=True).click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.js-plotly-plot .ytick text')]"
        ".some(t => t.textContent === 'layer 29')", timeout=120_000)
    wait_until_idle(page)
    assert exceptions_on_page(page) == []
    save_screenshot(page, "attention_model_view")
