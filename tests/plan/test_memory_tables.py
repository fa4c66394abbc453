"""Row builders of the Memory planner (core.plan.memory_tables): the page renders these, the numbers are checked here."""
import pytest

from core.plan import memory, memory_plan, memory_tables
from core.io import plan_io

N_LLAMA2_7B = 6_738_415_616


@pytest.fixture(scope="module")
def plan():
    choice = memory_plan.choose_model("catalog", "meta-llama/Llama-2-7b-hf")
    gpu = memory_plan.selected_gpu("A100 80GB SXM", 80)
    return memory_plan.build_plan(choice, gpu, weight_format="nf4", n_gpus=8, stage=2, recompute="full",
                                  train_seq=4096, micro_batch=1, overhead_gb=1.3)


def test_parameter_rows_share_and_bf16_size(plan):
    rows = memory_tables.parameter_rows(plan)
    assert [r["component"] for r in rows] == list(plan.breakdown)
    assert sum(r["parameters"] for r in rows) == N_LLAMA2_7B
    assert sum(r["share (%)"] for r in rows) == pytest.approx(100, abs=0.05)
    for r in rows:  # bf16 = 2 bytes per parameter, GB = 1e9 bytes
        assert r["bf16 size (GB)"] == pytest.approx(r["parameters"] * 2 / 1e9)
        assert r["share (%)"] == round(100 * r["parameters"] / N_LLAMA2_7B, 2)


def test_inference_rows_have_every_component_of_every_format_and_a_total(plan):
    rows = memory_tables.inference_format_rows(plan)
    names = [r["component"] for r in rows]
    assert names[-1] == "total" and names[0] == "weights"
    assert {"KV cache", "CUDA context", "quantized weights", "quantization constants"} <= set(names)
    by_name = {r["component"]: r for r in rows}
    assert by_name["weights"]["fp16 (GB)"] == pytest.approx(N_LLAMA2_7B * 2 / 1e9)
    assert by_name["weights"]["nf4 (GB)"] == 0.0  # nf4 has quantized weights instead
    assert by_name["CUDA context"]["int8 (GB)"] == pytest.approx(1.3)
    for fmt, parts in plan.inference.items():
        assert by_name["total"][f"{fmt} (GB)"] == pytest.approx(sum(parts.values()) / 1e9)
        assert sum(r[f"{fmt} (GB)"] for r in rows[:-1]) == pytest.approx(by_name["total"][f"{fmt} (GB)"])


def test_weights_exclude_cache_workspace_and_context(plan):
    parts = plan.inference["nf4"]
    weights = memory_tables.inference_weights_bytes(parts)
    assert weights == pytest.approx(sum(memory.weight_memory(plan.model.config, "nf4", "fp16").values()))
    assert weights + parts["kv_cache"] + parts["activation_workspace"] + parts["cuda_context"] == pytest.approx(
        sum(parts.values()))


def test_chart_inputs_merge_fp16_bf16_and_label_components(plan):
    bars = memory_tables.inference_bars(plan)
    assert list(bars) == ["fp32", "fp16 / bf16", "int8", "nf4", "nf4-dq"]
    assert memory_tables.inference_bar_highlight("bf16") == "fp16 / bf16"
    assert memory_tables.inference_bar_highlight("nf4") == "nf4"
    recipes = memory_tables.recipe_bars(plan)
    assert sum(recipes["rule of thumb (24 B/param)"].values()) == 24 * N_LLAMA2_7B
    full = recipes[memory_tables.recipe_bar_highlight("full")]
    assert full["optimizer states"] == 12 * N_LLAMA2_7B and full["CUDA context"] == 1.3e9
    assert full["activations"] == 32 * 2 * 4096 * 1 * 4096  # 2·s·b·h per layer (Korthikanti et al., Table 2)
    assert memory_tables.model_states_bytes(plan.mixed_precision) == 16 * N_LLAMA2_7B
    store = memory_tables.store_vs_train_bars(plan)
    assert store["store (fp32 weights)"]["weights"] == 4 * N_LLAMA2_7B


def test_zero_rows_follow_the_zero_paper(plan):
    rows = memory_tables.zero_rows(plan, memory_plan.ZERO_STAGES)
    assert [r["strategy"] for r in rows] == list(memory_plan.ZERO_STAGES.values())
    zero2 = rows[2]  # ZeRO-2 on 8 GPUs: fp16 weights whole, gradients and optimizer sharded
    assert zero2["weights (GB)"] == pytest.approx(2 * N_LLAMA2_7B / 1e9)
    assert zero2["gradients (GB)"] == pytest.approx(2 * N_LLAMA2_7B / 8 / 1e9)
    assert zero2["optimizer states (GB)"] == pytest.approx(12 * N_LLAMA2_7B / 8 / 1e9)
    for r, parts in zip(rows, plan.zero.values()):
        assert r["per GPU (GB)"] == pytest.approx(sum(parts.values()) / 1e9)
        assert r["fits the GPU"] == (sum(parts.values()) <= plan.usable_bytes)
    bars = memory_tables.zero_bars(plan, memory_plan.ZERO_STAGE_NAMES)
    assert set(bars[memory_plan.ZERO_STAGE_NAMES[3]]) == {"weights", "gradients", "optimizer states", "activations",
                                                      "CUDA context"}


def test_fit_display_rows_spell_out_never_and_fits(plan):
    shown = {r["GPU"]: r for r in memory_tables.fit_display_rows(plan)}
    raw = {r["GPU"]: r for r in plan.fit_rows}
    t4 = shown["T4"]
    assert t4["min GPUs, DDP"] == "never" and raw["T4"]["min GPUs, DDP"] is None
    assert t4["train: fits"] in ("fits", "too big")
    h200 = shown["H200 SXM"]
    assert h200["min GPUs to serve"] == f"{raw['H200 SXM']['min GPUs to serve']:,}"
    assert h200["serve: fits 1 GPU"] == "fits" and h200["memory (GB)"] == 141


def test_breakdowns_are_keyed_on_ids_and_labels_live_in_one_map(plan):
    import json

    from core.plan import memory_charts

    assert set(plan.inference["nf4"]) == {"quantized_weights", "quantization_constants", "unquantized_layers",
                                          "kv_cache", "activation_workspace", "cuda_context"}
    for parts in (*plan.inference.values(), plan.mixed_precision, *plan.zero.values()):
        assert all(memory.component_label(k) in memory.COMPONENT_LABELS.values() for k in parts)
    assert memory.component_label("cuda_context") == "CUDA context" and memory.component_label("embeddings") == \
        "embeddings"
    # charts name traces by label whichever key they get
    fig = memory_charts.stacked_memory_figure({"a": {"kv_cache": 1e9, "cuda_context": 1.3e9}}, "t")
    assert [t.name for t in fig.data if t.type == "bar"] == ["KV cache", "CUDA context"]
    assert fig.data[1].marker.color == memory_charts.COMPONENT_COLORS["CUDA context"]
    # exports keep the keys they always had
    exported = json.loads(plan_io.plan_json(plan))
    assert set(exported["inference_bytes"]["int8"]) == {"quantized weights", "quantization constants",
                                                        "16-bit layers (not quantized)", "KV cache",
                                                        "activation workspace", "CUDA context"}
    assert set(exported["training_mixed_precision_bytes"]) == {"weights", "gradients", "optimizer", "activations",
                                                               "CUDA context"}
    items = {(r["section"], r["item"]) for r in memory_tables.plan_rows(plan)}
    assert ("inference fp16", "KV cache") in items and ("training, mixed precision (1 GPU)", "CUDA context") in items
