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


# Result keys and their order as core/measure.py returned them before the typed results (2026-12-01).
INFERENCE_KEYS = ["architecture", "model_type", "kind", "mode", "setting", "dtype", "seq_len", "batch_size", "device",
                  "device_type", "method", "random_weights", "n_params", "measured_peak_bytes",
                  "predicted_peak_bytes", "error_pct", "measured_components", "predicted_components",
                  "predicted_phase", "textbook_peak_bytes", "textbook_error_pct", "reserved_bytes", "seconds"]
TRAINING_KEYS = ["architecture", "model_type", "kind", "mode", "setting", "recipe", "seq_len", "batch_size",
                 "gradient_checkpointing", "device", "device_type", "method", "random_weights", "n_params",
                 "measured_peak_bytes", "predicted_peak_bytes", "error_pct", "measured_components",
                 "measured_gradients_bytes", "measured_activations_bytes", "measured_phases", "measured_peak_phase",
                 "predicted_components", "predicted_phase", "predicted_candidates", "rule_of_thumb_bytes",
                 "rule_of_thumb_error_pct", "textbook_peak_bytes", "textbook_error_pct", "reserved_bytes", "seconds"]
TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 1, "hidden_size": 32, "intermediate_size": 64,
              "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 128, "max_position_embeddings": 64}


def test_typed_results_keep_todays_dict_keys_and_labels():
    inf = measure.measure_inference(TINY_LLAMA, "fp32", 16, 1, device="cpu")
    assert list(inf) == INFERENCE_KEYS
    assert list(inf["measured_components"]) == ["weights", "KV cache", "activations (peak)"]
    assert list(inf["predicted_components"]) == ["weights", "KV cache", "activations (peak)"]
    train = measure.measure_training_step(TINY_LLAMA, "mixed_precision", 16, 1, device="cpu")
    assert list(train) == TRAINING_KEYS
    assert set(train["measured_components"]) <= set(measure.COMPONENT_LABELS.values())
    assert set(train["predicted_components"]) <= set(measure.COMPONENT_LABELS.values())
    assert set(train["measured_phases"]) == {"forward", "backward", "optimizer step"}


def test_measurement_dataclass_is_frozen_and_labels_live_in_one_map():
    import dataclasses

    m = measure.InferenceMeasurement(
        architecture="x", model_type="llama", kind="decoder", setting="s", seq_len=8, batch_size=1, device="cpu (x)",
        device_type="cpu", method="m", n_params=10, measured_peak_bytes=100.0, predicted_peak_bytes=110.0,
        measured_components=(("weights", 40.0), ("kv_cache", 60.0)), predicted_components=(("weights", 40.0),),
        predicted_phase="p", reserved_bytes=None, seconds=0.1, dtype="fp32", textbook_peak_bytes=90.0)
    try:
        m.measured_peak_bytes = 1.0
    except dataclasses.FrozenInstanceError:
        pass
    else:  # pragma: no cover
        raise AssertionError("measurement is mutable")
    d = m.to_dict()
    assert d["error_pct"] == 10.0 and d["textbook_error_pct"] == -10.0
    assert d["measured_components"] == {"weights": 40.0, "KV cache": 60.0}
    assert measure.component_ids({"KV cache": 1.0}) == (("kv_cache", 1.0),)


def test_tables_and_figures_take_fine_tuning_results_without_a_textbook_number():
    inf = measure.measure_inference(TINY_LLAMA, "fp32", 16, 1, device="cpu")
    ft = measure.measure_finetune_step(TINY_LLAMA, "lora", 4, ["q", "v"], 16, 1, device="cpu")
    assert ft["method"] == "lora" and ft["textbook_peak_bytes"] is None
    rows = measure.results_table([inf, ft])
    assert rows[1]["mode"] == "fine-tune step" and rows[1]["textbook formula (GB)"] is None
    assert "profiler" in rows[1]["method"]  # the table's method column is the instrument
    fig = measure.comparison_figure([inf, ft])
    textbook = next(trace for trace in fig.data if trace.name == "textbook formula")
    assert textbook.y[0] is not None and textbook.y[1] is None
    assert "lora" in measure.results_csv([inf, ft])


def test_cpu_totals_take_out_a_block_freed_by_an_unprofiled_thread():
    """The allocator's running total only goes down for frees on a profiled thread: a block whose address comes back
    without a recorded free was freed elsewhere, and leaves the total (from the hint's time when one is given)."""
    from types import SimpleNamespace as NS

    from core.measure.trackers import _running_totals

    def event(t, ptr, size, total):
        return NS(start_time_ns=t, typed=(None, NS(ptr=ptr, alloc_size=size, total_allocated=total)))

    # 100 bytes at address 1 freed on another thread (the total stays at 100), then address 1 handed out again
    events = [event(0, 1, 100, 100), event(10, 2, 50, 150), event(20, 1, 30, 180)]
    assert _running_totals(events).values == [100, 150, 80]
    first_block = events[0]
    assert _running_totals(events, release_hint=lambda e: 5 if e is first_block else None).values == [100, 50, 80]
    # recorded frees change nothing
    plain = [event(0, 1, 100, 100), event(5, 1, -100, 0), event(10, 1, 30, 30)]
    assert _running_totals(plain).values == [100, 0, 30] and _running_totals(plain).unrecorded_frees == 0
