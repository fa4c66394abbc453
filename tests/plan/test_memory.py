"""core.plan.memory: formulas checked against their sources and against real transformers / bitsandbytes objects."""
import json
import math

import pytest
import torch

from core.plan import memory
from core.plan.architectures import hf_config, param_breakdown, param_count
from core.plan.memory import (
    BYTES_PER_PARAM,
    GB,
    activation_bytes_per_layer,
    inference_breakdown,
    inference_min_gpus,
    kv_cache_bytes,
    min_gpus,
    model_activation_bytes,
    model_kv_cache_bytes,
    training_bytes_per_param,
    training_min_gpus,
    training_per_gpu,
    weight_memory,
    weights_bytes,
    zero_model_states_bytes,
)

TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 256, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 512, "vocab_size": 1000}
TINY_GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000, "n_positions": 64,
             "bos_token_id": 0, "eos_token_id": 0}
TINY_MISTRAL = {"model_type": "mistral", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                "num_key_value_heads": 1, "intermediate_size": 128, "vocab_size": 100, "sliding_window": 8}


def test_bytes_per_param_table():
    assert BYTES_PER_PARAM == {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int4": 0.5}


def test_store_1b_fp32_is_4gb_and_int4_half_a_gb():
    assert weights_bytes(1e9, "fp32") == 4 * GB
    assert weights_bytes(7e9, "fp16") == 14 * GB
    assert weights_bytes(1e9, "int4") == 0.5 * GB
    with pytest.raises(ValueError):
        weights_bytes(1e9, "fp64")
    with pytest.raises(ValueError):
        weights_bytes(-1, "fp32")


def test_rule_of_thumb_24_bytes_per_param_gives_24_gb_for_1b():
    parts = training_bytes_per_param("rule_of_thumb")
    assert parts == {"weights": 4, "optimizer": 8, "gradients": 4, "activations": 8}
    assert sum(parts.values()) * 1e9 / GB == 24  # 1B params → 24 GB, 6× the 4 GB to store them
    assert sum(parts.values()) / BYTES_PER_PARAM["fp32"] == 6


def test_mixed_precision_16_bytes_per_param():
    parts = training_bytes_per_param("mixed_precision")
    assert parts == {"weights": 2, "gradients": 2, "optimizer": 12}
    assert sum(training_bytes_per_param("hf_mixed_precision").values()) == 18
    with pytest.raises(ValueError):
        training_bytes_per_param("sgd")


@pytest.mark.parametrize("stage,expected_gb", [(0, 120.0), (1, 31.4), (2, 16.6), (3, 1.88)])
def test_zero_paper_figure1_7_5b_on_64_gpus(stage, expected_gb):
    """ZeRO paper Figure 1: Ψ = 7.5B, Nd = 64, K = 12."""
    got = zero_model_states_bytes(7.5e9, 64, stage) / GB
    assert got == pytest.approx(expected_gb, abs=0.06 if stage < 3 else 0.005)


def test_zero_stage3_shards_everything_and_ddp_nothing():
    assert zero_model_states_bytes(1e9, 8, 0) == zero_model_states_bytes(1e9, 1, 0) == 16e9
    assert zero_model_states_bytes(1e9, 8, 3) == 2e9
    with pytest.raises(ValueError):
        zero_model_states_bytes(1e9, 0, 1)
    with pytest.raises(ValueError):
        zero_model_states_bytes(1e9, 8, 4)


def test_kv_cache_formula_llama2_7b():
    # 2 · 32 layers · 32 heads · 128 · 4096 tokens · 1 · 2 bytes = 2 GiB (0.5 MiB per token)
    assert kv_cache_bytes(32, 32, 128, 4096, 1, 2) == 2 * 1024**3
    assert model_kv_cache_bytes("meta-llama/Llama-2-7b-hf", 4096, 1, 2) == 2 * 1024**3


def test_kv_cache_gqa_and_sliding_window():
    # Llama-3-8B: 8 KV heads instead of 32 → a quarter of Llama-2-7B's cache at the same length
    assert model_kv_cache_bytes("meta-llama/Meta-Llama-3-8B", 4096, 1) == 2 * 1024**3 / 4
    mistral_32k = model_kv_cache_bytes("mistralai/Mistral-7B-v0.1", 32768, 1)
    assert mistral_32k == model_kv_cache_bytes("mistralai/Mistral-7B-v0.1", 4096, 1) == kv_cache_bytes(
        32, 8, 128, 4096, 1, 2)
    assert model_kv_cache_bytes("bert-base-uncased", 512, 1) == 0
    assert model_kv_cache_bytes("google/flan-t5-small", 100, 1) == kv_cache_bytes(16, 6, 64, 100, 1, 2)


@pytest.mark.parametrize("cfg", [TINY_LLAMA, TINY_GPT2])
def test_kv_cache_equals_transformers_dynamic_cache(cfg):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(hf_config(cfg), dtype=torch.float16)
    with torch.no_grad():
        out = model(torch.randint(0, 1000, (3, 20)), use_cache=True)
    stored = sum(layer.keys.nbytes + layer.values.nbytes for layer in out.past_key_values.layers)
    assert stored == model_kv_cache_bytes(cfg, 20, 3, 2)


def test_sliding_window_cache_is_capped_like_transformers():
    """transformers keeps window − 1 tokens between steps (the new token makes it window during attention)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_config(hf_config(TINY_MISTRAL), dtype=torch.float16)
    with torch.no_grad():
        out = model(torch.randint(0, 100, (2, 30)), use_cache=True)
    stored = sum(layer.keys.nbytes + layer.values.nbytes for layer in out.past_key_values.layers)
    assert stored == model_kv_cache_bytes(TINY_MISTRAL, 7, 2, 2)
    assert model_kv_cache_bytes(TINY_MISTRAL, 30, 2, 2) == model_kv_cache_bytes(TINY_MISTRAL, 8, 2, 2)


def test_activations_korthikanti_table2():
    s, b, h, a = 2048, 1, 12288, 96  # GPT-3 175B
    none = activation_bytes_per_layer(s, b, h, a, "none")
    assert none == s * b * h * (34 + 5 * a * s / h)
    assert 5 * a * s / h == 80  # the paper's GPT-3 example: the attention term is 80 vs 34 for the rest
    assert activation_bytes_per_layer(s, b, h, a, "selective") == 34 * s * b * h
    assert activation_bytes_per_layer(s, b, h, a, "full") == 2 * s * b * h
    # tensor parallel t = 8: sbh(10 + 24/t + 5as/(ht))
    assert activation_bytes_per_layer(s, b, h, a, "none", tensor_parallel=8) == s * b * h * (10 + 3 + 10)
    with pytest.raises(ValueError):
        activation_bytes_per_layer(s, b, h, a, "sometimes")
    with pytest.raises(ValueError):
        activation_bytes_per_layer(s, b, 0, a)


def test_model_activations_scale_with_layers():
    per_layer = activation_bytes_per_layer(4096, 2, 4096, 32, "selective")
    assert model_activation_bytes("meta-llama/Llama-2-7b-hf", 4096, 2, "selective") == 32 * per_layer


def test_4bit_constants_match_the_bitsandbytes_rates():
    n = 64 * 256 * 1000  # whole blocks, so the per-parameter rates are exact apart from the per-tensor code books
    plain = memory._bnb_4bit_constants_bytes(n, double_quant=False)
    dq = memory._bnb_4bit_constants_bytes(n, double_quant=True)
    assert (plain - 64) * 8 / n == 0.5  # fp32 absmax per 64 values: 0.5 bit/param
    assert (dq - 64 - 1024 - 4) * 8 / n == pytest.approx(0.127, abs=0.001)  # QLoRA: ≈ 0.127 bit/param


def _bnb_stored_bytes(model) -> int:
    """Bytes bitsandbytes really holds: parameters (tied once) + 4-bit quant states + int8 row scales."""
    total = sum(p.nbytes for p in {id(p): p for p in model.parameters()}.values())
    for module in model.modules():
        w = getattr(module, "weight", None)
        state = getattr(w, "quant_state", None)
        if state is not None:
            total += state.absmax.nbytes + state.code.nbytes
            if state.nested:
                total += state.state2.absmax.nbytes + state.state2.code.nbytes + 4  # + fp32 offset
        scb = getattr(w, "SCB", None)
        if scb is not None:
            total += scb.nbytes
    return total


@pytest.fixture(scope="module")
def saved_tiny_models(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    paths = {}
    for name, cfg in (("llama", TINY_LLAMA), ("gpt2", TINY_GPT2)):
        path = tmp_path_factory.mktemp(name)
        AutoModelForCausalLM.from_config(hf_config(cfg), dtype=torch.float16).save_pretrained(path)
        paths[name] = (path, cfg)
    return paths


@pytest.mark.parametrize("fmt", ["int8", "nf4", "nf4-dq"])
@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_weight_memory_equals_real_bitsandbytes_storage(saved_tiny_models, fmt, name):
    """Load a tiny random model through transformers' bitsandbytes integration and count what is stored."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    path, cfg = saved_tiny_models[name]
    if fmt == "int8":
        qconfig = BitsAndBytesConfig(load_in_8bit=True)
    else:
        qconfig = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                     bnb_4bit_use_double_quant=fmt == "nf4-dq",
                                     bnb_4bit_compute_dtype=torch.float16)
    try:
        model = AutoModelForCausalLM.from_pretrained(path, quantization_config=qconfig, dtype=torch.float16,
                                                     device_map="cuda" if torch.cuda.is_available() else "cpu")
    except Exception as exc:  # pragma: no cover - depends on the bitsandbytes backend of the machine
        pytest.skip(f"bitsandbytes cannot quantize on this machine: {exc}")
    assert _bnb_stored_bytes(model) == pytest.approx(sum(weight_memory(cfg, fmt).values()), abs=0)


def test_weight_memory_float_and_raw_counts():
    n = param_count("meta-llama/Llama-2-7b-hf")
    assert weight_memory("meta-llama/Llama-2-7b-hf", "bf16") == {"weights": 2 * n}
    q = weight_memory("meta-llama/Llama-2-7b-hf", "nf4")
    # embeddings + lm_head + norms stay 16-bit: 2 · 32000 · 4096 + norms
    kept_params = 2 * 32000 * 4096 + 32 * 2 * 4096 + 4096
    assert q["unquantized_layers"] == kept_params * 2
    assert q["quantized_weights"] == (n - kept_params) / 2
    assert q["quantization_constants"] == pytest.approx((n - kept_params) / 64 * 4, rel=1e-3)
    raw = weight_memory(7e9, "nf4")
    assert raw["quantized_weights"] == 3.5e9 and raw["quantization_constants"] == 7e9 / 16
    assert weight_memory(7e9, "int8")["quantized_weights"] == 7e9


def test_inference_breakdown_components_and_fit():
    parts = inference_breakdown("meta-llama/Llama-2-7b-hf", "fp16", 4096, 1, 2, workspace_pct=20, overhead_gb=1.3)
    n = param_count("meta-llama/Llama-2-7b-hf")
    assert parts["weights"] == 2 * n
    assert parts["kv_cache"] == 2 * 1024**3
    assert parts["activation_workspace"] == pytest.approx(0.2 * 2 * n)
    assert parts["cuda_context"] == 1.3e9
    total = sum(parts.values())
    assert inference_min_gpus(parts, 80e9) == 1
    assert inference_min_gpus(parts, 16e9) == math.ceil((total - 1.3e9) / (16e9 - 1.3e9))
    assert inference_min_gpus(parts, 1e9) is None  # overhead alone exceeds the GPU


def test_min_gpus_solves_fixed_plus_sharded():
    assert min_gpus(10, 100, 20) == 10
    assert min_gpus(10, 101, 20) == 11
    assert min_gpus(25, 100, 20) is None
    assert min_gpus(5, 0, 20) == 1


def test_training_min_gpus_per_stage():
    n = 7e9
    acts = 5e9
    # DDP never shrinks: 16 B/param · 7B = 112 GB + activations + overhead > 80 GB at any N
    assert training_min_gpus(n, 0, acts, 1.3, 80e9) is None
    n3 = training_min_gpus(n, 3, acts, 1.3, 80e9)
    assert n3 == 2  # 112 GB of model states / (80 − 5 − 1.3 GB free) = 1.52 → 2 GPUs
    assert sum(training_per_gpu(n, n3, 3, acts, 1.3).values()) <= 80e9 < sum(
        training_per_gpu(n, n3 - 1, 3, acts, 1.3).values())
    n2 = training_min_gpus(n, 2, acts, 1.3, 80e9)
    assert n2 is not None and n2 >= n3


# ---------------------------------------------------------------------------------------------------------------
# core.plan.memory_plan: the assembled plan; core.io.plan_io: its inputs in the URL, exports;
# core.plan.memory_charts figures
# ---------------------------------------------------------------------------------------------------------------
from core.plan import memory_charts, memory_plan, memory_tables
from core.io import plan_io


@pytest.mark.parametrize("text,expected", [("7B", 7_000_000_000), ("6.74e9", 6_740_000_000), ("350M", 350_000_000),
                                           ("124,439,808", 124_439_808), ("1.5 b params", 1_500_000_000),
                                           (70e9, 70_000_000_000)])
def test_parse_param_count(text, expected):
    assert memory_plan.parse_param_count(text) == expected
    assert memory_plan.parse_param_count(plan_io.format_count_input(expected)) == expected


@pytest.mark.parametrize("bad", ["", "seven", "-5", "0", "1e30", "7X", "nan", True])
def test_parse_param_count_rejects(bad):
    with pytest.raises(memory_plan.PlanInputError):
        memory_plan.parse_param_count(bad)


def test_a_long_bad_count_is_quoted_by_its_first_characters():
    """Issue 32: a 10,000-character paste was echoed whole in the error, several screens tall."""
    for pasted, start in (("x" * 10_000, "'" + "x" * 40 + "…' is not a parameter count"),
                          ("9" * 10_000, "A parameter count must be between")):
        with pytest.raises(memory_plan.PlanInputError) as err:
            memory_plan.parse_param_count(pasted)
        message = str(err.value)
        assert message.startswith(start) and len(message) < 200 and pasted[:40] + "…" in message
    with pytest.raises(memory_plan.PlanInputError, match="^'seven' is not a parameter count"):
        memory_plan.parse_param_count(" seven ")  # a short value is quoted whole


def test_config_url_round_trip():
    from core.plan.architectures import CATALOG

    cfg = CATALOG["mistralai/Mistral-7B-v0.1"]
    back = plan_io.decode_config(plan_io.encode_config(cfg))
    assert param_count(back) == param_count(cfg)
    assert back["sliding_window"] == 4096 and "rope_theta" not in back  # shape keys only: short URLs
    with pytest.raises(memory_plan.PlanInputError):
        plan_io.decode_config("%%%not-base64")
    with pytest.raises(memory_plan.PlanInputError):
        memory_plan.parse_config_text("{broken")


def test_query_params_round_trip_and_fallbacks():
    defaults = plan_io.defaults()
    query = plan_io.to_query_params(defaults)
    values, problems = plan_io.parse_query_params(query)
    assert problems == []
    assert all(values[k] == defaults[k] for k in values)
    values, problems = plan_io.parse_query_params({"ctx": "0", "gpu": "H100 SXM", "headroom": "95", "extra": "x"})
    assert values["mem_context"] == 4096 and values["mem_gpu"] == "H100 SXM" and values["mem_headroom_pct"] == 10.0
    assert len(problems) == 2
    values, _ = plan_io.parse_query_params({"params": "7000000000"})
    assert values == {"mem_params": "7B", "mem_source": "params"}


def test_build_plan_numbers_follow_the_formulas():
    choice = memory_plan.choose_model("catalog", "meta-llama/Llama-2-7b-hf")
    gpu = memory_plan.selected_gpu("A100 80GB SXM", 80)
    plan = memory_plan.build_plan(choice, gpu, n_gpus=64, stage=1, recompute="full", train_seq=4096, micro_batch=2)
    n = 6_738_415_616
    acts = 32 * 2 * 4096 * 2 * 4096  # full recompute: 2·s·b·h per layer
    assert plan.activations_by_recompute["full"] == acts
    for stage in range(4):
        assert sum(plan.zero[stage][k] for k in ("weights", "gradients", "optimizer")) == pytest.approx(
            zero_model_states_bytes(n, 64, stage))
    assert sum(plan.rule_of_thumb.values()) == 24 * n and plan.store_fp32_bytes == 4 * n
    assert plan.kv_tokens == 4096 and plan.kv_per_token_bytes == 2 * 32 * 32 * 128 * 2
    a100 = next(r for r in plan.fit_rows if r["GPU"] == "A100 80GB SXM")
    assert plan.usable_bytes == pytest.approx(72e9)  # 80 GB minus the default 10% headroom
    assert a100["usable (GB)"] * 1e9 == pytest.approx(plan.usable_bytes)
    assert a100["min GPUs, DDP"] is None
    assert a100["min GPUs, ZeRO-3 / FSDP"] == training_min_gpus(n, 3, acts, 1.3, 72e9)
    rows = memory_tables.plan_rows(plan)
    assert {"section", "item", "value", "unit"} == set(rows[0])
    csv_text = plan_io.plan_csv(plan)
    assert csv_text.startswith("section,item,value,unit") and "GPU fit: H200 SXM" in csv_text
    payload = json.loads(plan_io.plan_json(plan, {"model": "meta-llama/Llama-2-7b-hf"}))
    assert payload["model"]["parameters"] == n and payload["inputs"]["model"] == "meta-llama/Llama-2-7b-hf"


def test_raw_count_uses_the_nearest_catalog_shape():
    choice = memory_plan.choose_model("params", params_text="125M")
    assert choice.shape_source == "gpt2" and not choice.exact
    assert memory_plan.nearest_catalog_decoder(70e9) in ("meta-llama/Llama-2-70b-hf", "meta-llama/Meta-Llama-3-70B")


def test_figures():
    fig = memory_charts.stacked_memory_figure(
        {"fp16": {"weights": 14e9, "KV cache": 2e9}, "int8": {"quantized weights": 7e9, "KV cache": 2e9}},
        "serving", capacity_bytes=24e9, capacity_label="L4: 24 GB")
    bars = [t for t in fig.data if t.type == "bar"]
    assert {t.name for t in bars} == {"weights", "KV cache", "quantized weights"}
    assert list(next(t for t in bars if t.name == "KV cache").y) == [2.0, 2.0]  # GB
    assert fig.layout.shapes[0].y0 == 24  # the GPU capacity line
    curve = memory_charts.per_gpu_vs_gpus_figure(
        {"DDP": [(1, 16e9), (8, 16e9)], "ZeRO-3": [(1, 16e9), (8, 2e9)]}, 80e9, "A100: 80 GB", chosen_n=8)
    names = [t.name for t in curve.data]
    assert names[:2] == ["DDP", "ZeRO-3"] and "A100: 80 GB" in names and curve.layout.xaxis.type == "log"
    parts = param_breakdown("gpt2")
    breakdown = memory_charts.parameter_breakdown_figure(parts)
    assert list(breakdown.data[0].x) == list(parts.values()) and list(breakdown.data[0].y) == list(parts)


def test_log_axis_ticks_are_few_and_round():
    assert memory_charts.log_axis_ticks(1, 1000) == [1.0, 10.0, 100.0, 1000.0]  # 10 ticks > 8: decades only
    assert memory_charts.log_axis_ticks(3, 60) == [5, 10, 20, 50]
    assert memory_charts.log_axis_ticks(1e-3, 1e9, max_ticks=7) == [1e-3, 1e-1, 1e1, 1e3, 1e5, 1e7, 1e9]
    assert memory_charts.log_axis_ticks(3, 4) == [3.0, 4.0]
    with pytest.raises(ValueError):
        memory_charts.log_axis_ticks(0, 10)


def test_multi_gpu_chart_labels_only_the_plotted_gpu_counts_and_round_gigabytes():
    """Plotly's automatic log ticks label every minor step (2 … 9 between decades): cluttered. The chart labels
    the GPU counts it plots and 1-2-5 steps of GB instead."""
    counts = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    curve = memory_charts.per_gpu_vs_gpus_figure(
        {"DDP": [(n, 16e9) for n in counts], "ZeRO-3": [(n, 16e9 / n + 0.5e9) for n in counts]}, 80e9, "A100: 80 GB")
    assert curve.layout.xaxis.tickmode == "array" and list(curve.layout.xaxis.tickvals) == counts
    y = list(curve.layout.yaxis.tickvals)
    assert curve.layout.yaxis.tickmode == "array" and 2 <= len(y) <= 8
    assert all(float(f"{v:.0e}") == v and f"{v:.0e}"[0] in "125" for v in y), y
    assert min(y) >= 0.5 and max(y) <= 80


def test_per_param_and_overhead_arguments_say_their_unit_and_old_keywords_still_work():
    n, acts = 7e9, 3e9
    new = memory.training_per_gpu(n, 8, 2, acts, weight_bytes_per_param=2, optimizer_bytes_per_param=12,
                                  overhead_bytes=1.3e9)
    old = memory.training_per_gpu(n, 8, 2, acts, 1.3, weight_bytes=2, optimizer_bytes=12)
    assert new == old and new["cuda_context"] == 1.3e9 and new["optimizer"] == 12 * n / 8
    assert memory.training_per_gpu(n, 8, 2, acts)["cuda_context"] == memory.DEFAULT_CUDA_OVERHEAD_BYTES == 1.3e9
    assert zero_model_states_bytes(1e9, 8, 1, optimizer_bytes=8) == zero_model_states_bytes(
        1e9, 8, 1, optimizer_bytes_per_param=8) == (2 + 2 + 1) * 1e9
    assert memory.training_min_gpus(n, 3, acts, None, 80e9, overhead_bytes=1.3e9) == memory.training_min_gpus(
        n, 3, acts, 1.3, 80e9)
    serve = inference_breakdown("meta-llama/Llama-2-7b-hf", "fp16", 4096, 1, 2, overhead_bytes=2e9)
    assert serve["cuda_context"] == 2e9
    with pytest.raises(TypeError, match="both"):
        zero_model_states_bytes(1e9, 8, 1, optimizer_bytes=8, optimizer_bytes_per_param=8)
    with pytest.raises(TypeError, match="once"):
        memory.training_per_gpu(n, 8, 2, acts, 1.3, overhead_bytes=1.3e9)
    with pytest.raises(ValueError, match="overhead"):
        inference_breakdown(7e9, "fp16", 1, 1, overhead_bytes=-1)



def test_kv_cache_formula_text_carries_the_numbers_the_formula_multiplies():
    """Issue 31: the KV-cache explanation comes from the formula's module, with the same terms it multiplies."""
    from core.plan import architectures
    from core.common.units import format_gb
    shape = architectures.get_config("meta-llama/Llama-2-7b-hf")
    kv = memory.model_kv_cache_bytes(shape, 4096, 2, 2)
    text = memory.kv_cache_formula_text(shape, 4096, 4096, 2, 2, kv, kv / 4096 / 2)
    assert text.startswith("**KV cache** = 2 × 32 layers × 32 KV heads × 128 head dim × 4,096 tokens × 2 sequences")
    assert f"**{format_gb(kv)}**" in text and kv == 2 * 32 * 32 * 128 * 4096 * 2 * 2
    bert = architectures.get_config("bert-base-uncased")
    assert "no KV cache" in memory.kv_cache_formula_text(bert, 128, 128, 1, 2, 0, 0)
