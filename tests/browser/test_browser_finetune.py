"""The Fine-tune page in a real headless browser: controls render, bad input shows its message, and a tiny real run
(2 steps of batch 1) streams its progress, then shows both answers and the adapter download; a soft prompt trained
there is scored on the Evaluate page in the same session."""
import re

import pytest

from tests.browser.helpers import (exceptions_on_page, fill_inputs, open_app_page, save_screenshot, wait_for_main_text,
                           wait_until_idle)

pytestmark = pytest.mark.browser


def _set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_until_idle(page, timeout=120)


def _start_a_tiny_run(page) -> None:
    """2 steps of batch 1 × 48 tokens and 3-token comparison answers: the shortest run that trains and compares."""
    _set_number(page, "Steps", 2)
    _set_number(page, "Sequence length (tokens)", 48)
    _set_number(page, "Batch (sequences)", 1)
    _set_number(page, "Answer length (tokens)", 3)
    page.get_by_role("button", name="Start fine-tune").click()


def test_finetune_page_bad_input_and_a_tiny_run(app_url, page):
    open_app_page(page, app_url, "/finetune")
    main = page.locator('[data-testid="stMain"]')
    assert "Fine-tune" in main.locator("h1").first.inner_text()
    page.get_by_text("Predicted peak").first.wait_for(timeout=120_000)  # the plan is checked below the inputs
    page.get_by_role("button", name="Start fine-tune").wait_for(timeout=120_000)
    wait_until_idle(page, timeout=120)
    wait_for_main_text(page, "Rank r", "Alpha", "Dropout", "Learning rate", "Target modules", "Steps",
                       "Sequence length (tokens)", "Batch (sequences)", "Start fine-tune", "Predicted peak", timeout=120)
    assert exceptions_on_page(page) == []

    _set_number(page, "Rank r", 0)
    page.get_by_text("must be at least 1").first.wait_for(timeout=60_000)
    assert page.get_by_role("button", name="Start fine-tune").is_disabled()
    _set_number(page, "Rank r", 4)

    _start_a_tiny_run(page)
    page.get_by_text("Base + LoRA adapter").first.wait_for(timeout=900_000)
    wait_until_idle(page, timeout=120)
    assert exceptions_on_page(page) == []
    wait_for_main_text(page, "Loss, last step (nats/token)", "Mean speed (tokens/s)",
                       "Same prompts, base vs base + adapter", "Base model", "Download adapter (PEFT safetensors, zip)",
                       timeout=120)
    page.wait_for_selector('[data-testid="stPlotlyChart"] .main-svg', timeout=60_000)
    save_screenshot(page, "finetune")


def test_prompt_tuning_runs_from_the_page_and_is_evaluated_on_the_next(app_url, page):
    """The second method in a real browser: the LoRA controls give way to the soft prompt's length, the caption
    shows PEFT's count and the predicted peak, and a 2-step run ends with the base vs base + soft prompt answers.
    Then the same browser session takes the trained soft prompt to the Evaluate page and scores it."""
    open_app_page(page, app_url, "/finetune")
    page.get_by_role("button", name="Start fine-tune").wait_for(timeout=120_000)
    page.get_by_text("Prompt tuning (Lester et al. 2021)").first.click()
    page.get_by_label("Virtual tokens", exact=True).wait_for(timeout=60_000)
    wait_until_idle(page, timeout=120)
    assert page.get_by_label("Rank r", exact=True).count() == 0
    _set_number(page, "Virtual tokens", 8)
    page.get_by_text("4,608 trainable parameters = 8 virtual tokens × 576").first.wait_for(timeout=60_000)
    wait_for_main_text(page, "Predicted peak", "positions", timeout=60)
    _start_a_tiny_run(page)
    page.get_by_text("Base + soft prompt").first.wait_for(timeout=900_000)
    wait_until_idle(page, timeout=120)
    assert exceptions_on_page(page) == []
    wait_for_main_text(page, "Loss, last step (nats/token)", "Same prompts, base vs base + adapter",
                       "Download adapter (PEFT safetensors, zip)", timeout=120)

    page.locator('[data-testid="stSidebarNav"]').get_by_text("Evaluate", exact=True).click()  # keeps the session
    wait_for_main_text(page, "Model variants", "Prompt techniques", timeout=120)
    main = page.locator('[data-testid="stMain"]')
    main.locator('[data-testid="stMultiSelect"]').nth(1).locator("input").click()
    page.keyboard.type("fine-tuned")
    page.get_by_role("option", name=re.compile("fine-tuned adapter")).click()
    wait_for_main_text(page, "Trained on the Fine-tune page", "prompt-tuning adapter, 2 steps", timeout=120)
    fill_inputs(page, {"Items": "1"})
    run = page.get_by_role("button", name="Run evaluation")
    page.wait_for_function("b => !b.disabled", arg=run.element_handle(), timeout=60_000)
    run.click()
    wait_for_main_text(page, "Best on this task", "SmolLM2-135M + fine-tuned adapter", "SmolLM2-135M fp32",
                       timeout=300)
    assert exceptions_on_page(page) == []
