"""The Quantization page in a real headless browser: the form renders, a small real comparison (fp32 + bf16 of the
bundled SmolLM2) fills the results table, charts and side-by-side outputs."""
import pytest
from playwright.sync_api import expect

from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text, wait_until_idle

pytestmark = pytest.mark.browser


def test_quantization_form_and_a_small_comparison(app_url, page):
    open_app_page(page, app_url, "/quantization")
    main = page.locator('[data-testid="stMain"]')
    assert "Quantization" in main.locator("h1").first.inner_text()
    wait_for_main_text(page, "Model", "Variants", "Prompt", "Max new tokens", "Reference tokens", "Run comparison")
    assert exceptions_on_page(page) == []

    # keep fp32 + bf16 only: remove the int8 and nf4 chips of the multiselect (they are the slow ones on a CPU)
    chips = main.locator('[data-testid="stMultiSelect"] [data-tag]:visible')
    for variant in ("nf4", "int8"):
        main.get_by_role("button", name=f"Remove {variant}").first.click()
    expect(chips).to_have_text(["fp32", "bf16"], timeout=60_000)  # each removal reruns the script
    wait_until_idle(page)

    page.get_by_role("button", name="Run comparison").click()
    page.wait_for_selector('[data-testid="stDataFrame"]', timeout=300_000)
    wait_until_idle(page, timeout=300)
    assert exceptions_on_page(page) == []
    wait_for_main_text(page, "Results", "Outputs side by side", "Download results (CSV)", "MB", "baseline")
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    main.locator("h1").first.hover()  # no tooltip of the Run button over the screenshot
    save_screenshot(page, "quantization")
