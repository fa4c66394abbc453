"""The Evaluate page in real headless Chromium: one run of the bundled model over the prompt techniques ends in the
verdict, the chart and the downloads."""
import pytest

from tests.browser.helpers import exceptions_on_page, fill_inputs, open_app_page, wait_for_main_text, wait_until_idle

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


@pytest.mark.parametrize("width", [1400, 1024])
def test_the_task_box_shows_its_whole_label(app_url, page, width):
    """Issue 32, item 6: at 1,024 px the task box, a third of the row, cut "Review sentiment (classification, 16
    reviews)" to "Review sentiment (classifica"; its value must fit the box."""
    page.set_viewport_size({"width": width, "height": 1000})
    open_app_page(page, app_url, "/evaluate")
    wait_for_main_text(page, "Evaluate", "Prompt techniques")
    box = page.locator('[data-testid="stSelectbox"]').first
    box.wait_for(timeout=60_000)
    # The selected task's title, wherever the select draws it (a text node or a combobox input's value), and whether
    # any element holding it is narrower than its content.
    shown = box.evaluate("""b => [...b.querySelectorAll('*')]
        .filter(e => (e.value || e.textContent || '').includes('Review sentiment'))
        .filter(e => e.children.length === 0)
        .map(e => [e.value || e.textContent, e.scrollWidth, e.clientWidth])""")
    assert shown, "the task box shows no task"
    assert all(scroll <= client + 1 for _, scroll, client in shown), (width, shown)
    assert exceptions_on_page(page) == []


def test_an_uploaded_adapter_is_evaluated_beside_the_base_model(app_url, page, tmp_path):
    """The adapter variant in Chromium: pick it, upload a real PEFT adapter zip, run; the chart names both setups."""
    import re

    from core.run.models import load_model
    from tests.evaluate.test_evaluate import _adapter_zip

    archive = tmp_path / "adapter.zip"
    archive.write_bytes(_adapter_zip(load_model(None, dtype="fp32", device="cpu")))
    open_app_page(page, app_url, "/evaluate")
    wait_for_main_text(page, "Evaluate", "Model variants")
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stMultiSelect"]').nth(1).locator("input").click()
    page.keyboard.type("fine-tuned")
    page.get_by_role("option", name=re.compile("fine-tuned adapter")).click()
    wait_for_main_text(page, "Upload an adapter zip", "Train an adapter on the Fine-tune page or upload its zip")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(archive))
    wait_until_idle(page)
    fill_inputs(page, {"Items": "1"})
    run = page.get_by_role("button", name="Run evaluation")
    run.wait_for(state="visible")
    page.wait_for_function("b => !b.disabled", arg=run.element_handle(), timeout=60_000)
    run.click()
    wait_for_main_text(page, "Best on this task", "Every answer, side by side", timeout=300)
    wait_until_idle(page)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    wait_for_main_text(page, "SmolLM2-135M + fine-tuned adapter", "SmolLM2-135M fp32")
    assert exceptions_on_page(page) == []


def test_log_likelihood_upload_run_comparison_and_download(app_url, page, tmp_path):
    """Log-likelihood mode in Chromium: upload a JSONL of items, score it on fp32 and 4 layers removed, read the
    paired sentence and the "why differ" rows, download lm-eval's results JSON."""
    import json

    items = tmp_path / "mine.jsonl"
    items.write_text("".join(json.dumps({"question": f"What is {a} plus {a}?", "choices": [str(2 * a), str(2 * a + 1)],
                                         "answer": 0}) + "\n" for a in range(1, 7)))
    open_app_page(page, app_url, "/evaluate")
    wait_for_main_text(page, "Evaluate", "Scoring")
    page.get_by_text("Log-likelihood (lm-eval)").click()
    wait_for_main_text(page, "Run log-likelihood evaluation")
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stSelectbox"]').first.click()
    page.get_by_role("option", name="(upload your own items)").click()
    wait_for_main_text(page, "Upload a task file")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(items))
    wait_until_idle(page)
    run = page.get_by_role("button", name="Run log-likelihood evaluation")
    page.wait_for_function("b => !b.disabled", arg=run.element_handle(), timeout=60_000)
    run.click()
    wait_for_main_text(page, "mine: scores ± standard error", "SmolLM2-135M fp32 vs SmolLM2-135M 4 layers removed",
                       "items flip", timeout=300)
    wait_until_idle(page)
    with page.expect_download() as download:
        page.get_by_role("button", name="Download lm-eval results JSON").click()
    results = json.loads(open(download.value.path()).read())
    assert {"acc,none", "acc_stderr,none"} <= set(results["results"]["mine"])
    assert exceptions_on_page(page) == []
