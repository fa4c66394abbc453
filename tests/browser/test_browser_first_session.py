"""A copied plan link always reopens the same plan, even as the very first browser session of a fresh server.

Streamlit switches to its legacy multipage mode (one page per file in a `pages/` folder next to the main script)
for the first session of a process whenever that folder exists, before app.py's `st.navigation` has run: a deep
link then showed "Page not found" and the default page instead of the shared plan. The page scripts therefore
live in `views/`, and this test opens a fresh server's first session straight on a shared link, with no warm-up.
"""
import pytest

from tests.browser import helpers as browser
from tests.browser.helpers import exceptions_on_page

pytestmark = pytest.mark.browser

SHARED_PLAN = "/memory?src=params&params=70000000000&gpu=H100%20SXM&ctx=8192"


@pytest.fixture
def fresh_app_url(tmp_path):
    """A server of its own, so the test's session is the first one that process ever sees."""
    with browser.running_app(tmp_path / "streamlit.log") as url:
        yield url


def test_no_pages_folder_next_to_the_entry_point():
    assert not (browser.ROOT / "pages").exists(), (
        "a pages/ folder next to app.py puts the first session of every server into Streamlit's legacy "
        "multipage mode; page scripts live in views/")


def test_first_session_of_a_fresh_server_reopens_a_shared_plan(fresh_app_url, chromium_browser):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        page.goto(fresh_app_url + SHARED_PLAN, wait_until="domcontentloaded", timeout=120_000)
        # the shared plan, not the home page Streamlit falls back to
        page.wait_for_function(
            "() => { const m = document.querySelector('[data-testid=\"stMain\"]');"
            " return m && m.innerText.includes('Memory planner') && m.innerText.includes('140.0 GB'); }",
            timeout=180_000)
        browser.wait_until_idle(page, timeout=180)
        browser.wait_for_main_text(page, "70B", "H100 SXM", timeout=120)
        assert page.get_by_text("Page not found").count() == 0, "Streamlit showed 'Page not found'"
        nav = page.locator('[data-testid="stSidebarNav"]')
        nav.wait_for(timeout=60_000)
        assert "Overview" in nav.inner_text(), "app.py's navigation is missing (legacy pages/ mode)"
        assert "memory_planner" not in nav.inner_text(), "the sidebar lists raw files (legacy pages/ mode)"
        assert exceptions_on_page(page) == []
        # the link's inputs stay in the URL
        page.wait_for_url("**/memory?*params=70000000000*", timeout=60_000)
        assert "gpu=H100" in page.url
    finally:
        context.close()
