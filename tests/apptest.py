"""AppTest for a script of this repo by its repo-relative path (AppTest resolves relative paths against the caller)."""
import re
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


# A Python repr as st.write / Streamlit magic shows it: None, True, a call-like EvalRun(task=...), a dict or a list
_REPR = re.compile(r"(None|True|False|[A-Za-z_][\w.]*\(.*\)|\{.*\}|\[.*\])", re.DOTALL)


def stray_writes(at: AppTest) -> list[str]:
    """What a stray bare expression (Streamlit magic) or st.write of an object put in the page: st.help panels
    (magic's view of an object), code / JSON blocks holding a repr, and a repr in backticks (``None``) as markdown.
    Empty for a page that shows only what it means to."""
    found = [f"help: {h.proto.name} = {h.proto.value}" for h in at.get("help")]
    found += [f"code: {c.proto.code_text}" for c in at.get("code") if _REPR.fullmatch(c.proto.code_text.strip())]
    found += [f"json: {j.proto.body}" for j in at.get("json") if re.search(r"[A-Za-z_]\w*\(\w+=", j.proto.body)]
    found += [f"markdown: {m.value}" for m in at.markdown if _REPR.fullmatch(m.value.strip().strip("`").strip())
              and m.value.strip().startswith("`")]
    return found
