"""The Generate page in a real headless browser: a generation streams token by token."""
import time

import pytest

from playwright.sync_api import expect

from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_for_main_text, wait_until_idle

pytestmark = pytest.mark.browser

TOKENS = 24  # long enough that a busy machine's browser still draws some intermediate states
STEP_SPANS = '[data-testid="stMain"] span[title^="step "]'


def test_generation_streams_token_by_token(app_url, page):
    open_app_page(page, app_url, "/generate", timeout=300)  # first use may convert the bundled model
    main = page.locator('[data-testid="stMain"]')
    assert "Generate" in main.locator("h1").first.inner_text()
    wait_for_main_text(page, "SmolLM2-135M-Instruct")

    max_new = page.get_by_label("Max new tokens", exact=True).first
    max_new.fill(str(TOKENS))
    max_new.press("Enter")
    wait_until_idle(page)

    # Every count of token spans the page ever draws, recorded by the browser itself at each DOM change (a poll
    # from here can miss them when the machine is busy).
    page.evaluate("""sel => { window.__stepCounts = new Set();
        new MutationObserver(() => window.__stepCounts.add(document.querySelectorAll(sel).length))
            .observe(document.body, {childList: true, subtree: true, characterData: true}); }""", STEP_SPANS)
    page.get_by_role("button", name="Generate", exact=True).click()
    deadline = time.time() + 240
    while time.time() < deadline:
        if (page.locator(STEP_SPANS).count() >= TOKENS
                and page.locator('[data-testid="stStatusWidget"]').count() == 0):
            break
        time.sleep(0.1)
    wait_until_idle(page, timeout=240)
    seen_counts = set(page.evaluate("() => [...window.__stepCounts]"))
    # streaming: the text grew through intermediate lengths instead of appearing all at once
    assert any(0 < c < TOKENS for c in seen_counts), seen_counts
    wait_for_main_text(page, f"{TOKENS} tokens", "Time to first token", "tokens/s")
    expect(page.locator(STEP_SPANS)).to_have_count(TOKENS, timeout=60_000)
    assert exceptions_on_page(page) == []
    page.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=60_000)
    page.mouse.move(5, 5)  # no tooltip in the picture
    save_screenshot(page, "generate")


def test_stop_button_keeps_the_tokens_so_far(app_url, page):
    open_app_page(page, app_url, "/generate", timeout=300)  # first use may convert the bundled model
    max_new = page.get_by_label("Max new tokens", exact=True).first
    max_new.fill("5")  # a first, short result ...
    max_new.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.get_by_role("button", name="Download steps (CSV)").wait_for(timeout=240_000)
    wait_until_idle(page, timeout=240)
    max_new.fill("300")  # ... then a long run, stopped part-way
    max_new.press("Enter")
    wait_until_idle(page)
    # a prompt whose greedy continuation never ends by itself (it counts on for all 300 tokens): the default one
    # reaches end-of-text after ~30 tokens, which on a loaded machine came before the Stop click did
    prompt = page.locator('textarea[aria-label="Prompt"]:visible').first
    prompt.fill("1, 2, 3, 4, 5, 6, 7, 8,")
    prompt.press("Control+Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    # while the new run streams, the previous result is gone (not left greyed out under the new tokens)
    page.wait_for_function(
        f"""() => document.querySelectorAll('{STEP_SPANS}').length >= 3
                  && ![...document.querySelectorAll('button')].some(b => b.innerText.includes('Download steps'))""",
        timeout=240_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    wait_until_idle(page, timeout=240)
    wait_for_main_text(page, "Stopped after")
    shown = page.locator(STEP_SPANS).count()
    assert 3 <= shown < 300
    assert exceptions_on_page(page) == []
