"""The browser tests' fixtures: one real `streamlit run app.py` for the whole run, and a fresh page per test in the
Chromium the root conftest starts (``chromium_browser``)."""
import pytest


@pytest.fixture(scope="session")
def app_url(tmp_path_factory):
    """Base URL of a real `streamlit run app.py` on a free localhost port."""
    from tests.browser import helpers as browser

    with browser.running_app(tmp_path_factory.mktemp("streamlit") / "streamlit.log") as url:
        yield url


@pytest.fixture
def page(chromium_browser, app_url):
    context = chromium_browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    try:
        yield pg
    finally:
        context.close()
