"""Many people on one server, in real headless Chromium: a waiting session sees its place in the model's queue, and
several sessions on a mix of pages at once all finish with the right content while the server's memory stays
bounded across rounds. Every wait is for a state, with a deadline; nothing asserts on timing."""
import re
import time

import psutil
import pytest

from core.run.generation import run_generation
from core.run.generation_charts import display_token
from core.run.models import load_model
from core.run.sampling import DecodingSettings
from tests.browser.helpers import exceptions_on_page, open_app_page, save_screenshot, wait_for_lazy_elements, wait_until_idle

pytestmark = pytest.mark.browser

STEP_SPANS = '[data-testid="stMain"] span[title^="step "]'
TOKENS = 6
GENERATE_PROMPTS = ["The capital of France is", "Water boils at"]
COUNTING = "1, 2, 3, 4, 5,"


def server_process(app_url: str) -> psutil.Process:
    """The `streamlit run` process behind app_url (a child of this test process)."""
    port = app_url.rsplit(":", 1)[1]
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = child.cmdline()
        except psutil.Error:
            continue
        if "streamlit" in " ".join(cmdline) and port in cmdline:
            return child
    raise AssertionError(f"no streamlit process serves {app_url}")


def wait_for(page, condition, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"timed out waiting for {what}")


def main_text(page) -> str:
    return page.locator('[data-testid="stMain"]').inner_text()


def set_number(page, label: str, value: int) -> None:
    box = page.locator(f'input[aria-label="{label}"]:visible').first  # the open tab's (others are hidden)
    box.fill(str(value))
    box.press("Enter")
    wait_until_idle(page)


def set_prompt(page, prompt: str) -> None:
    box = page.locator('textarea[aria-label="Prompt"]:visible').first
    box.fill(prompt)
    box.press("Control+Enter")
    wait_until_idle(page)


def open_generate(page, app_url: str) -> None:
    """Open the Generate page and wait until its controls are there (the model loads first; on a busy machine, or
    the first time, that takes a while, with the page idle-looking meanwhile)."""
    open_app_page(page, app_url, "/generate", timeout=300)
    page.wait_for_selector('input[aria-label="Max new tokens"]:visible', timeout=300_000)
    wait_until_idle(page, timeout=300)


def shown_tokens(page) -> list[str]:
    """The generated tokens as the page labels them (each step's hover title)."""
    titles = page.locator(STEP_SPANS).evaluate_all("spans => spans.map(s => s.title)")
    return [re.match(r"step \d+: (.*?) · model p=", title).group(1) for title in titles]


@pytest.fixture(scope="module")
def expected_tokens():
    """Each prompt's greedy tokens from core, solo: what every browser session must show."""
    lm = load_model()
    expected = {}
    for prompt in GENERATE_PROMPTS:
        result = run_generation(lm, prompt, DecodingSettings(max_new_tokens=TOKENS))
        expected[prompt] = [display_token(step.token) for step in result.steps]
    return expected


def new_page(chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    return context, context.new_page()


def test_a_waiting_session_sees_its_place_in_the_queue_and_a_closed_tab_leaves_it(app_url, chromium_browser, expected_tokens):
    (ctx_a, first), (ctx_b, second) = new_page(chromium_browser), new_page(chromium_browser)
    ctx_gone, gone = new_page(chromium_browser)
    try:
        open_generate(first, app_url)
        open_generate(second, app_url)
        open_generate(gone, app_url)
        set_prompt(first, COUNTING)  # greedy counting does not reach end-of-text: the first keeps the model busy
        set_number(first, "Max new tokens", 400)
        set_number(second, "Max new tokens", TOKENS)
        first.get_by_role("button", name="Generate", exact=True).click()
        first.wait_for_function(f"document.querySelectorAll('{STEP_SPANS}').length >= 1", timeout=240_000)
        gone.get_by_role("button", name="Generate", exact=True).click()
        wait_for(gone, lambda: "Queued: position 1 of 1 waiting" in main_text(gone), 300, "the first queued line")
        ctx_gone.close()  # a closed tab while queued leaves the line: the next session is first in line, not second
        second.get_by_role("button", name="Generate", exact=True).click()
        wait_for(second, lambda: "Queued: position 1 of 1 waiting" in main_text(second), 300, "the queued line")
        wait_for(second, lambda: re.search(r"waited [1-9]\d* s", main_text(second)) is not None, 300,
                 "the wait to count up")
        assert "1 request ahead of you" in main_text(second)
        # ... and that one request is the first session's, still generating (not the closed tab's, got its turn)
        assert "running…" in main_text(first)
        save_screenshot(second, "generate_queued")
        first.get_by_role("button", name="Stop", exact=True).click()  # the first leaves; the second gets its turn
        wait_for(second, lambda: second.locator(STEP_SPANS).count() >= TOKENS
                 and second.locator('[data-testid="stStatusWidget"]').count() == 0, 240, "the second generation")
        wait_until_idle(second, timeout=240)
        text = main_text(second)
        assert "Queued" not in text
        assert shown_tokens(second) == expected_tokens[GENERATE_PROMPTS[0]]
        assert "Queue wait" in text and "Time to first token" in text
        wait_until_idle(first, timeout=240)
        assert "Stopped after" in main_text(first)  # Stop kept its tokens
        assert exceptions_on_page(first) == [] and exceptions_on_page(second) == []
    finally:
        ctx_a.close()
        ctx_b.close()
        ctx_gone.close()


def test_sessions_on_a_mix_of_pages_at_once_all_finish_correctly_with_bounded_memory(app_url, chromium_browser,
                                                                                     expected_tokens):
    server = server_process(app_url)
    rss = []
    for round_index in range(2):
        sessions = {name: new_page(chromium_browser)
                    for name in ("generate-0", "generate-1", "memory", "compute", "attention")}
        try:
            paths = {"generate-0": "/generate", "generate-1": "/generate", "memory": "/memory", "compute": "/compute",
                     "attention": "/attention"}
            for name, (_, pg) in sessions.items():  # everyone arrives at once
                pg.goto(f"{app_url}{paths[name]}", wait_until="domcontentloaded", timeout=300_000)
            for name, (_, pg) in sessions.items():
                pg.wait_for_selector('[data-testid="stMain"] h1', timeout=300_000)
            for i, prompt in enumerate(GENERATE_PROMPTS):
                pg = sessions[f"generate-{i}"][1]
                pg.wait_for_selector('input[aria-label="Max new tokens"]:visible', timeout=300_000)
                wait_until_idle(pg, timeout=300)
                set_prompt(pg, prompt)
                set_number(pg, "Max new tokens", TOKENS)
            for i in range(len(GENERATE_PROMPTS)):  # both press Generate together
                sessions[f"generate-{i}"][1].get_by_role("button", name="Generate", exact=True).click()

            for i, prompt in enumerate(GENERATE_PROMPTS):
                pg = sessions[f"generate-{i}"][1]
                wait_for(pg, lambda: pg.locator(STEP_SPANS).count() >= TOKENS
                         and pg.locator('[data-testid="stStatusWidget"]').count() == 0, 300, f"generation {i}")
                wait_until_idle(pg, timeout=300)
                assert shown_tokens(pg) == expected_tokens[prompt], f"round {round_index}, session {i}"
            memory = sessions["memory"][1]
            wait_until_idle(memory, timeout=300)
            wait_for(memory, lambda: "21.11 GB" in main_text(memory), 120, "the memory plan")
            assert "8.03B" in main_text(memory)
            compute = sessions["compute"][1]
            wait_until_idle(compute, timeout=300)
            wait_for(compute, lambda: "30.0 days" in main_text(compute), 120, "the compute plan")
            assert "26.3B" in main_text(compute)
            attention = sessions["attention"][1]
            attention.wait_for_selector('[data-testid="stPlotlyChart"] .js-plotly-plot', timeout=300_000)
            wait_until_idle(attention, timeout=300)
            wait_for_lazy_elements(attention, timeout=120)
            assert "teacher" in attention.locator('[data-testid="stPlotlyChart"] .xtick text').all_text_contents()
            for name, (_, pg) in sessions.items():
                assert exceptions_on_page(pg) == [], name
                assert "Overview" in pg.locator('[data-testid="stSidebarNav"]').inner_text(), name
        finally:
            for context, _ in sessions.values():
                context.close()
        rss.append(server.memory_info().rss)
    # Round 1 loaded everything (models, caches); round 2 must not keep adding to it.
    assert rss[1] - rss[0] < max(200 * 2**20, 0.15 * rss[0]), f"server RSS per round: {rss}"
