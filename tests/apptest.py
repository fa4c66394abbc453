"""AppTest for a script of this repo by its repo-relative path (AppTest resolves relative paths against the caller)."""
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]


def app_test(script: str, timeout: float = 120) -> AppTest:
    """`app_test("views/generate.py")` → an AppTest of that page, not yet run."""
    return AppTest.from_file(str(ROOT / script), default_timeout=timeout)


def run_page_with_query(script: str, query: dict | None = None, timeout: float = 120) -> AppTest:
    """Run a page once with these URL query parameters (a shared link) and assert it raised nothing."""
    at = app_test(script, timeout)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at
