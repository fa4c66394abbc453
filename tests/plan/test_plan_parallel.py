"""The training-layout planner (core.plan.parallel): formulas pinned against their papers, the published runs
reproduced, the 70B / 64 H100 search, bad input and the CLI."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.plan.hardware import get_gpu
from core.plan.parallel import (KORTHIKANTI_TABLE, NARAYANAN_TABLE1, Cluster, Layout, LayoutError, check_layout,
                                default_cluster, dp_allreduce_bytes_per_step, dp_allreduce_payload_bytes_per_step,
                                evaluate_layout, flops_per_step, gpt_shape, in_flight_microbatches,
                                layer_activation_bytes, model_shape, peak_stage_memory, plan_layouts, recompute_working_bytes,
                                pp_p2p_bytes_per_step, predict_published, stage_memory, step_time,
                                tp_allreduce_bytes_per_step, tp_allreduce_payload_bytes_per_step)

ROOT = Path(__file__).resolve().parents[2]

# --- communication ------------------------------------------------------------------------------------------------

def test_tp_allreduce_bytes_hand_computed():
    # h=64, s=32, b=2 → 4096 values; 2 layers, 3 micro-batches, fp32: 4 all-reduces × 2 × 3 × 4096 × 4 = 393,216 B
    payload = tp_allreduce_payload_bytes_per_step(64, 32, 2, 2, 2, 3, 4)
    assert payload == 4 * 2 * 3 * 4096 * 4
    assert tp_allreduce_bytes_per_step(64, 32, 2, 2, 2, 3, 4) == payload * 2 * 1 / 2  # ring 2(t−1)/t at t = 2
    assert tp_allreduce_bytes_per_step(64, 32, 2, 2, 4, 3, 4) == payload * 2 * 3 / 4
    # sequence parallelism: all-gather + reduce-scatter of the same tensor: twice the payload, the same wire bytes
    assert tp_allreduce_payload_bytes_per_step(64, 32, 2, 2, 2, 3, 4, sequence_parallel=True) == 2 * payload
    assert tp_allreduce_bytes_per_step(64, 32, 2, 2, 2, 3, 4, sequence_parallel=True) == \
        tp_allreduce_bytes_per_step(64, 32, 2, 2, 2, 3, 4)
    # full recomputation repeats the forward's two all-reduces; TP = 1 communicates nothing
    assert tp_allreduce_payload_bytes_per_step(64, 32, 2, 2, 2, 3, 4, recompute="full") == payload * 6 / 4
    assert tp_allreduce_bytes_per_step(64, 32, 2, 2, 1, 3, 4) == 0


def test_pp_and_dp_bytes_hand_computed():
    assert pp_p2p_bytes_per_step(64, 32, 2, 3, 4) == 2 * 3 * 4096 * 4  # forward activations + backward gradients
    assert pp_p2p_bytes_per_step(64, 32, 2, 3, 4, tp=2, scatter_gather=True) == 3 * 4096 * 4
    assert dp_allreduce_payload_bytes_per_step(1e6, 2) == 2e6
    assert dp_allreduce_bytes_per_step(1e6, 2, 4) == 2e6 * 2 * 3 / 4
    assert dp_allreduce_bytes_per_step(1e6, 2, 4, zero_stage=3) == 2e6 * 3 * 3 / 4  # ZeRO §7.2: 1.5× baseline
    assert dp_allreduce_bytes_per_step(1e6, 2, 1) == 0


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", None])
def test_communication_rejects_bad_sizes(bad):
    with pytest.raises(ValueError):
        tp_allreduce_bytes_per_step(64, 32, 2, 2, bad, 3, 4)


# --- memory: Korthikanti et al. 2022, Table 2, by hand --------------------------------------------------------------
GPT175 = gpt_shape("175B", 96, 12288, 96)
SBH = 2048 * 1 * 12288  # s·b·h = 25,165,824; 5as/(ht) at t = 8 is 10, 5as/h is 80


@pytest.mark.parametrize("layout, per_sbh", [
    (Layout(), 34 + 80),  # sbh(34 + 5as/h)
    (Layout(tp=8), 10 + 24 / 8 + 10),  # sbh(10 + 24/t + 5as/(ht))
    (Layout(tp=8, sequence_parallel=True), 34 / 8 + 10),  # sbh(34/t + 5as/(ht))
    (Layout(tp=8, recompute="selective"), 10 + 24 / 8),  # sbh(10 + 24/t)
    (Layout(tp=8, sequence_parallel=True, recompute="selective"), 34 / 8),  # 34sbh/t
    (Layout(tp=8, recompute="full"), 2),  # 2sbh
])
def test_activation_bytes_per_layer_match_table2(layout, per_sbh):
    assert layer_activation_bytes(GPT175, 2048, 1, layout) == pytest.approx(per_sbh * SBH)


def test_hand_computed_bytes():
    assert layer_activation_bytes(GPT175, 2048, 1, Layout()) == 2_868_903_936
    assert layer_activation_bytes(GPT175, 2048, 1, Layout(tp=8)) == 578_813_952


def test_first_stage_holds_p_microbatches_under_1f1b():
    layout = Layout(tp=8, pp=8, dp=1, recompute="full")
    per_layer = layer_activation_bytes(GPT175, 2048, 1, layout)
    assert in_flight_microbatches(layout, 64) == 8
    assert in_flight_microbatches(layout, 64, stage=7) == 1
    assert in_flight_microbatches(layout, 3) == 3  # fewer micro-batches than stages
    first = stage_memory(GPT175, layout, 2048, 64, 0)
    embedding_dropout = 8 * SBH
    working = layer_activation_bytes(GPT175, 2048, 1, Layout(tp=8))  # the layer being recomputed, all of it
    assert recompute_working_bytes(GPT175, 2048, layout) == working
    assert first.activations_bytes == pytest.approx(96 * per_layer + embedding_dropout + working)  # p × (l/p) layers
    v2 = Layout(tp=8, pp=8, dp=1, virtual_stages=2, recompute="full")
    assert in_flight_microbatches(v2, 64) == pytest.approx(8 * (1 + 7 / 16))  # Korthikanti §4.2.3


def test_model_states_follow_zero_over_dp():
    base = Layout(tp=8, pp=1, dp=8)
    s0 = stage_memory(GPT175, base, 2048, 8, 0)
    assert s0.weights_bytes == pytest.approx(2 * s0.params) and s0.optimizer_bytes == pytest.approx(12 * s0.params)
    s1 = stage_memory(GPT175, Layout(tp=8, dp=8, zero_stage=1), 2048, 8, 0)
    assert s1.optimizer_bytes == pytest.approx(12 * s0.params / 8) and s1.gradients_bytes == s0.gradients_bytes
    s2 = stage_memory(GPT175, Layout(tp=8, dp=8, zero_stage=2), 2048, 8, 0)
    assert s2.gradients_bytes == pytest.approx(2 * s0.params / 8)
    # the first stage holds the embedding, the last the (tied) output layer's copy
    pp = Layout(tp=8, pp=8, dp=1)
    first, last = (stage_memory(GPT175, pp, 2048, 8, k).params for k in (0, 7))
    middle = stage_memory(GPT175, pp, 2048, 8, 3).params
    assert first - middle == pytest.approx(GPT175.embedding_params / 8)
    assert last - middle == pytest.approx(51200 * 12288 / 8)


# --- FLOPs and published runs -------------------------------------------------------------------------------------

def test_flops_follow_narayanan_eq3():
    B, s, l, h, V = 1536, 2048, 96, 12288, 51200
    eq3 = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h))
    assert flops_per_step(GPT175, B, s, "full") == pytest.approx(eq3, rel=1e-12)
    assert flops_per_step(GPT175, B, s, "none") == pytest.approx(72 * B * s * l * h * h * (1 + s / (6 * h) + V / (
        12 * l * h)), rel=1e-12)


@pytest.mark.parametrize("run", NARAYANAN_TABLE1, ids=lambda r: r.name)
def test_narayanan_table1_feasible_and_within_15_pct(run):
    row = predict_published(run)
    assert row["feasible"], row
    assert row["per_gpu_peak_bytes"] <= 80e9
    assert abs(row["predicted_params_b"] - run.params_b) < 0.051  # eq. (2) rounds to the table's one decimal
    assert abs(row["tflops_error_pct"]) < 15, row


@pytest.mark.parametrize("run", KORTHIKANTI_TABLE, ids=lambda r: r.name)
def test_korthikanti_runs_feasible_with_mfu_below_hfu(run):
    row = predict_published(run)
    assert row["feasible"], row
    assert row["predicted_mfu_pct"] < row["predicted_hfu_pct"]  # selective recomputation executes a little more
    assert abs(row["mfu_error_pct"]) < 20, row


def test_bubble_shrinks_with_interleaving_and_microbatches():
    gpu, cluster = get_gpu("A100 80GB SXM"), default_cluster("A100 80GB SXM", 64)
    plain = step_time(GPT175, Layout(tp=8, pp=8, dp=1, recompute="full"), cluster, gpu, 64, 2048)
    inter = step_time(GPT175, Layout(tp=8, pp=8, dp=1, virtual_stages=4, recompute="full"), cluster, gpu, 64, 2048)
    assert plain.pp_bubble_s == pytest.approx(7 / 64 * (plain.compute_s + plain.tp_comm_s))
    assert inter.pp_bubble_s == pytest.approx(plain.pp_bubble_s / 4)
    assert plain.total_s == pytest.approx(plain.compute_s + plain.tp_comm_s + plain.pp_bubble_s + plain.pp_p2p_s
                                          + plain.dp_comm_s)


# --- search: 70B on 64 H100 ---------------------------------------------------------------------------------------

def test_70b_on_64_h100_ranks_feasible_layouts_and_explains_the_rest():
    model = model_shape("meta-llama/Llama-2-70b-hf")
    result = plan_layouts(model, get_gpu("H100 SXM"), default_cluster("H100 SXM", 64), 4096, 512, 2e12,
                          price_per_gpu_hour=3.0)
    assert len(result.feasible) > 10 and result.infeasible
    times = [p.step.total_s for p in result.feasible]
    assert times == sorted(times)
    assert all(p.memory.total_bytes <= 80e9 for p in result.feasible)
    assert all(p.why_infeasible and all(isinstance(w, str) and w for w in p.why_infeasible)
               for p in result.infeasible)
    reasons = " ".join(w for p in result.infeasible for w in p.why_infeasible)
    assert "per GPU" in reasons and "layers are not divisible" in reasons
    best = result.best
    assert best.layout.tp <= 8 and 0.2 < best.step.mfu < 0.7
    assert best.training.gpu_hours == pytest.approx(best.training.time_s * 64 / 3600)
    assert best.training.cost == pytest.approx(best.training.gpu_hours * 3.0)


# --- bad input ----------------------------------------------------------------------------------------------------

def test_divisibility_messages():
    model = model_shape("gpt2")  # 12 heads, 12 layers
    cluster = Cluster(1, 8)
    with pytest.raises(LayoutError, match="12 attention heads are not divisible by TP = 8"):
        check_layout(model, Layout(tp=8), cluster, 8)
    with pytest.raises(LayoutError, match="12 layers are not divisible by PP × v = 8 × 1"):
        check_layout(model, Layout(pp=8), cluster, 8)
    with pytest.raises(LayoutError, match="Global batch 12 is not divisible by DP × micro-batch = 8 × 1"):
        check_layout(model, Layout(dp=8), cluster, 12)
    with pytest.raises(LayoutError, match="16 GPUs, but the cluster has 8"):
        check_layout(model, Layout(tp=4, pp=2, dp=2), cluster, 8)
    plan = evaluate_layout(model, get_gpu("A100 80GB SXM"), cluster, Layout(tp=8), 1024, 8)
    assert not plan.feasible and plan.step is None and "heads" in plan.why_infeasible[0]


@pytest.mark.parametrize("kwargs, match", [({"tp": 0}, "tp"), ({"zero_stage": 4}, "ZeRO stage"),
                                           ({"recompute": "some"}, "Recomputation"),
                                           ({"sequence_parallel": True}, "TP ≥ 2"),
                                           ({"virtual_stages": 2}, "PP ≥ 2")])
def test_bad_layouts(kwargs, match):
    with pytest.raises(LayoutError, match=match):
        Layout(**kwargs)


def test_bad_models_and_clusters():
    with pytest.raises(LayoutError, match="decoder-only"):
        model_shape("bert-base-uncased")
    with pytest.raises(LayoutError):
        model_shape("no-such-model")
    with pytest.raises(LayoutError, match="whole nodes"):
        default_cluster("H100 SXM", 12)
    with pytest.raises(LayoutError, match="Nodes"):
        Cluster(0)


# --- CLI ----------------------------------------------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, "-m", "core.plan.parallel", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_cli_one_layout_and_published(tmp_path):
    out = _cli("--model", "meta-llama/Llama-2-70b-hf", "--gpu", "H100 SXM", "--gpus", "64", "--tp", "8", "--pp",
               "4", "--interleave", "2", "--global-batch", "512", "--micro-batch", "1", "--seq-len", "4096",
               "--recompute", "selective", "--sequence-parallel", "--zero", "1")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["feasible"] is True and plan["why_infeasible"] == []
    assert 1e9 < plan["per_gpu_peak_bytes"] < 80e9 and plan["step_time_s"] > 0
    assert 0 < plan["mfu"] < 1 and plan["tflops_per_gpu"] > 0
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 256,
                                  "num_attention_heads": 4, "intermediate_size": 688, "vocab_size": 1000}))
    out = _cli("--model", str(config), "--gpus", "8", "--tp", "8", "--global-batch", "8", "--seq-len", "128")
    assert out.returncode == 0 and json.loads(out.stdout)["feasible"] is False  # 4 heads over TP = 8
    assert "heads" in json.loads(out.stdout)["why_infeasible"][0]
    published = json.loads(_cli("--published").stdout)
    assert len(published) == 14
    assert all("published_tflops_per_gpu" in r and "predicted_tflops_per_gpu" in r for r in published)


@pytest.mark.parametrize("args, match", [
    (("--model", "gpt2", "--gpus", "6", "--tp", "4", "--global-batch", "8", "--seq-len", "64"), "multiple"),
    (("--model", "gpt2", "--gpu", "Nope", "--gpus", "8", "--global-batch", "8", "--seq-len", "64"), "Unknown GPU"),
    (("--model", "gpt2", "--gpus", "8"), "Missing"),
    (("--model", "missing.json", "--gpus", "8", "--global-batch", "8", "--seq-len", "64"), "Cannot read"),
])
def test_cli_bad_input_exits_2_without_traceback(args, match):
    out = _cli(*args)
    assert out.returncode == 2 and match in out.stderr and "Traceback" not in out.stderr


def test_charts_stack_the_typed_results():
    from core.plan.parallel_charts import memory_stack_figure, step_time_figure

    model = model_shape("meta-llama/Llama-2-70b-hf")
    gpu, cluster = get_gpu("H100 SXM"), default_cluster("H100 SXM", 64)
    plan = evaluate_layout(model, gpu, cluster, Layout(tp=8, pp=4, dp=2, zero_stage=1, sequence_parallel=True,
                                                       recompute="selective"), 4096, 512)
    fig = memory_stack_figure([("stage 0", plan.memory)], gpu.memory_bytes)
    assert sum(t.y[0] for t in fig.data) == pytest.approx(plan.memory.total_bytes / 1e9)
    fig = step_time_figure([("best", plan.step)])
    assert sum(t.x[0] for t in fig.data) == pytest.approx(plan.step.total_s)


def test_grouped_query_heads_and_experts():
    llama3 = model_shape("meta-llama/Meta-Llama-3-70B")  # 64 query heads, 8 key/value heads
    plan = evaluate_layout(llama3, get_gpu("H100 SXM"), Cluster(2, 8), Layout(tp=16), 4096, 16)
    assert any("key/value heads" in w for w in plan.why_infeasible)
    with pytest.raises(LayoutError, match="mixture of experts"):
        model_shape("mistralai/Mixtral-8x7B-v0.1")


def test_table_rows_for_the_page():
    from core.plan import parallel_tables

    model = model_shape("meta-llama/Llama-2-70b-hf")
    result = plan_layouts(model, get_gpu("H100 SXM"), default_cluster("H100 SXM", 64), 4096, 512, 2e12,
                          price_per_gpu_hour=2.0, zero_stages=(1,), micro_batches=(1,))
    rows = parallel_tables.layout_rows(result.feasible, 5)
    assert [r["rank"] for r in rows] == [1, 2, 3, 4, 5]
    best = result.best
    assert rows[0]["step time (s)"] == round(best.step.total_s, 3)
    assert rows[0]["cost ($)"] == round(best.training.gpu_hours * 2.0)
    assert rows[0]["MFU (%)"] == round(100 * best.step.mfu, 1)
    why = parallel_tables.infeasible_rows(result.infeasible)
    assert len(why) == len(result.infeasible) and all(r["why infeasible"] for r in why)
    counts = {r["reason"]: r["layouts"] for r in parallel_tables.reason_counts(result.infeasible)}
    assert counts["does not fit in GPU memory"] == sum("Needs" in p.why_infeasible[0] for p in result.infeasible)
    assert parallel_tables.preset("GPT 1.7B").published_tflops_per_gpu == 137
    with pytest.raises(KeyError, match="Known"):
        parallel_tables.preset("GPT-5")


def test_flash_attention_stores_no_scores():
    flash = Layout(tp=8, sequence_parallel=True, flash_attention=True)
    lse = 4 * 96 * 2048 * 1 / 8  # one fp32 log-sum-exp per query row and head, over t
    assert layer_activation_bytes(GPT175, 2048, 1, flash) == pytest.approx(34 / 8 * SBH + lse)
    model = model_shape("meta-llama/Llama-2-70b-hf")
    gpu, cluster = get_gpu("H100 SXM"), default_cluster("H100 SXM", 64)
    plain = plan_layouts(model, gpu, cluster, 4096, 512, zero_stages=(1,))
    fused = plan_layouts(model, gpu, cluster, 4096, 512, zero_stages=(1,), flash_attention=True)
    assert len(fused.feasible) > len(plain.feasible)
    assert all(p.layout.flash_attention for p in fused.feasible)
    assert fused.best.step.total_s <= plain.best.step.total_s
