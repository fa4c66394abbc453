"""core.measure as a package: every name the single module exported stays importable from ``core.measure``, each
concern lives in its own module, and compute modules do not import plotly."""
import ast
import pathlib

import core.measure as measure

# Every public (non-underscore) top-level name of core/measure.py before the split (2026-12-01).
OLD_PUBLIC = [
    "RECIPES", "INFERENCE_DTYPES", "DTYPE_BYTES", "RULE_OF_THUMB_BYTES_PER_PARAM", "GUARD_MARGIN", "MAX_SEQ_LEN",
    "MAX_BATCH", "MeasurementRefused", "learned_position_limit", "architecture_label", "PhaseMemory",
    "resolve_device_type", "measurement_method", "AUTOCAST_FP32_OPS_CUDA", "Runtime", "cuda_has_flash_attention",
    "LayerSpec", "FAMILIES", "training_param_count", "predict_training_step", "predict_inference", "CPU_FLOPS_PER_S",
    "estimated_seconds", "measure_inference", "measure_training_step", "result_row", "results_table", "results_csv",
    "results_json", "comparison_figure", "components_figure", "ledger_table", "components_table",
]
PACKAGE = pathlib.Path(measure.__file__).parent


def test_every_old_public_name_is_still_exported():
    missing = [name for name in OLD_PUBLIC if not hasattr(measure, name)]
    assert missing == []
    assert set(OLD_PUBLIC) <= set(measure.__all__)


def test_published_replacements_for_old_private_names():
    assert measure.normalize_dtype("bfloat16") == "bf16"
    assert measure.normalize_recipe("amp") == "mixed_precision"
    for bad, fn in (("int3", measure.normalize_dtype), ("sgd", measure.normalize_recipe)):
        try:
            fn(bad)
        except ValueError as exc:
            assert bad in str(exc)
        else:  # pragma: no cover
            raise AssertionError(f"{bad!r} accepted")


def _imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_the_charts_module_imports_plotly():
    for path in PACKAGE.glob("*.py"):
        if path.name == "charts.py":
            continue
        assert not any(name.startswith("plotly") for name in _imports(path)), path.name


def test_modules_stay_small_and_use_no_private_names_of_siblings():
    for path in PACKAGE.glob("*.py"):
        assert len(path.read_text().splitlines()) < 600, path.name
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("core"):
                assert not [a.name for a in node.names if a.name.startswith("_")], (path.name, node.module)
