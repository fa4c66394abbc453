"""Serving planner: memory per GPU, paged KV capacity, roofline speed and the capacity answers."""
import math

import pytest

from core.plan import architectures as A
from core.plan.hardware import GPUS, custom_gpu
from core.plan.serving import (
    KV_BLOCK_TOKENS,
    ServingInputError,
    decode_weight_bytes,
    expected_experts_touched,
    kv_bytes_per_sequence,
    kv_shards,
    plan_serving,
    serving_model,
    serving_plan,
    weight_bytes,
)
from core.plan.serving_capacity import (
    capacity_answer,
    cheapest,
    compare_gpus,
    latency_curve,
    max_users_meeting_targets,
)

LLAMA3 = "meta-llama/Meta-Llama-3-8B"
CONTRACT_KEYS = {"kv_bytes_per_token", "kv_capacity_tokens", "max_concurrent_sequences", "prefill_s", "ttft_s",
                 "tpot_s", "decode_tokens_per_s", "throughput_tokens_per_s", "decode_ceiling_tokens_per_s", "bound"}


def test_contract_keys_and_kv_per_token():
    plan = plan_serving(LLAMA3, "A100 80GB SXM")
    assert CONTRACT_KEYS <= set(plan)
    assert plan["bound"] in ("memory", "compute")
    # 32 layers · 8 KV heads · 128 dims · (K + V) · 2 bytes (prompt + output = 1280 tokens, a multiple of 16)
    assert plan["kv_bytes_per_token"] == 32 * 8 * 128 * 2 * 2 == 131_072
    assert plan["decode_tokens_per_s"] == pytest.approx(1 / plan["tpot_s"])
    assert plan["decode_tokens_per_s"] < plan["decode_ceiling_tokens_per_s"]


def test_memory_budget_adds_up_and_capacity_in_blocks():
    p = serving_plan(LLAMA3, "A100 80GB SXM", gpu_memory_utilization=0.9)
    assert p.memory_budget_bytes == pytest.approx(0.9 * 80e9)
    assert p.weights_bytes == A.param_count(LLAMA3) * 2
    assert p.kv_pool_bytes == pytest.approx(p.memory_budget_bytes - p.weights_bytes - p.activation_reserve_bytes
                                            - p.runtime_overhead_bytes)
    assert p.kv_capacity_tokens % KV_BLOCK_TOKENS == 0
    assert p.kv_capacity_tokens * p.kv_bytes_per_token <= p.kv_pool_bytes
    # the most sequences: whole sequences of 1280 tokens in the pool, capped by vLLM's max_num_seqs 256
    small = serving_plan(LLAMA3, "L4", weight_format="int4", prompt_tokens=4000, output_tokens=96)
    assert small.max_concurrent_sequences == int(small.kv_pool_bytes // small.kv_bytes_per_sequence)
    assert serving_plan(LLAMA3, "A100 80GB SXM", max_num_seqs=7).max_concurrent_sequences == 7


def test_paged_blocks_round_up():
    m = serving_model(LLAMA3)
    per_token = 32 * 8 * 128 * 2 * 2
    assert kv_bytes_per_sequence(m, 17, 2) == 32 * per_token
    assert kv_bytes_per_sequence(m, 17, 2, block_tokens=1) == 17 * per_token


def test_moe_total_for_memory_active_for_speed():
    m = serving_model("mistralai/Mixtral-8x7B-v0.1")
    assert weight_bytes(m, "bf16") == 46_702_792_704 * 2
    one = decode_weight_bytes(m, "bf16", 1)
    assert one == pytest.approx(A.active_param_count("mistralai/Mixtral-8x7B-v0.1") * 2 - 32000 * 4096 * 2)
    assert one < decode_weight_bytes(m, "bf16", 4) < decode_weight_bytes(m, "bf16", 512) <= weight_bytes(m, "bf16")
    assert expected_experts_touched(8, 2, 1) == pytest.approx(2)
    assert expected_experts_touched(8, 2, 1000) == pytest.approx(8)
    # 93 GB of weights do not fit one 80 GB GPU; two GPUs (tensor parallel) do
    assert not serving_plan("mistralai/Mixtral-8x7B-v0.1", "H100 SXM").fits
    assert serving_plan("mistralai/Mixtral-8x7B-v0.1", "H100 SXM", tensor_parallel=2).fits


def test_mla_latent_is_replicated_and_small():
    m = serving_model("deepseek-ai/DeepSeek-V3")
    assert kv_shards(m, 8) == 1 and kv_shards(serving_model(LLAMA3), 8) == 8
    assert kv_shards(serving_model("meta-llama/Meta-Llama-3-70B"), 16) == 8  # 8 KV heads: replicated past 8 GPUs
    p = serving_plan("deepseek-ai/DeepSeek-V3", "H200 SXM", tensor_parallel=8, weight_format="fp8")
    assert p.kv_bytes_per_token == 61 * 576 * 2


def test_hybrid_window_bounds_local_layers():
    m = serving_model("google/gemma-2-9b")
    full = 42 * 2 * 8 * 256 * 2
    assert kv_bytes_per_sequence(m, 8192, 2) == 21 * 2 * 8 * 256 * 2 * (8192 + 4096)
    assert kv_bytes_per_sequence(m, 8192, 2) < full * 8192


def test_roofline_batch_one_is_weights_over_bandwidth():
    gpu = GPUS["H100 SXM"]
    p = serving_plan(LLAMA3, gpu, prompt_tokens=16, output_tokens=16, bandwidth_efficiency=1.0)
    m = serving_model(LLAMA3)
    expected = (decode_weight_bytes(m, "bf16", 1) + kv_bytes_per_sequence(m, 24, 2, 1)) / gpu.bandwidth_bytes_per_s
    assert p.tpot_s == pytest.approx(expected)
    assert p.bound == "memory"
    assert p.decode_ceiling_tokens_per_s == pytest.approx(1 / expected)


def test_throughput_rises_until_the_knee_and_latency_grows():
    rows = latency_curve(LLAMA3, "H100 SXM", prompt_tokens=512, output_tokens=256)
    tp = [r["throughput_tokens_per_s"] for r in rows]
    tpot = [r["tpot_s"] for r in rows]
    assert all(b >= a for a, b in zip(tpot, tpot[1:]))
    assert tp[1] > 1.8 * tp[0] and tp[3] > 1.5 * tp[2]  # memory-bound: batching is almost free
    assert rows[0]["bound"] == "memory" and rows[-1]["bound"] == "compute"
    assert tp[-1] / tp[-2] < 1.2  # past the knee aggregate throughput flattens


def test_tensor_parallel_pays_an_all_reduce_that_depends_on_the_link():
    nv = serving_plan("meta-llama/Meta-Llama-3-70B", "H100 SXM", tensor_parallel=4)
    pcie = serving_plan("meta-llama/Meta-Llama-3-70B", "H100 PCIe", tensor_parallel=4, bandwidth_efficiency=1.0)
    assert nv.allreduce_time_s > 0
    assert pcie.allreduce_time_s > nv.allreduce_time_s
    one = serving_plan(LLAMA3, "H100 SXM")
    two = serving_plan(LLAMA3, "H100 SXM", tensor_parallel=2)
    assert two.weights_bytes == one.weights_bytes / 2 and two.tpot_s < one.tpot_s
    assert GPUS["H100 SXM"].interconnect_gbs == 900 and GPUS["L4"].interconnect_gbs == 64


def test_parameter_count_and_custom_gpu():
    p = plan_serving(7e9, custom_gpu(24, 100, 900), weight_format="int4")
    assert p["kv_capacity_tokens"] > 0 and p["bound"] == "memory"
    assert serving_plan(7e9, "L4").total_params == 7_000_000_000


@pytest.mark.parametrize("kwargs, match", [
    ({"prompt_tokens": -5}, "Prompt tokens"), ({"concurrency": 0}, "Concurrent users"),
    ({"weight_format": "int3"}, "weight format"), ({"kv_dtype": "int2"}, "KV-cache"),
    ({"gpu_memory_utilization": 1.5}, "utilization"), ({"tensor_parallel": 3.5}, "tensor parallel"),
    ({"output_tokens": float("nan")}, "Output tokens"), ({"bandwidth_efficiency": 0}, "bandwidth"),
])
def test_bad_inputs_are_clear_errors(kwargs, match):
    with pytest.raises(ServingInputError, match=match):
        plan_serving(LLAMA3, "H100 SXM", **kwargs)


def test_bad_model_and_gpu():
    with pytest.raises(ServingInputError, match="Unknown GPU"):
        plan_serving(LLAMA3, "Z9000")
    with pytest.raises(ServingInputError, match="decoder"):
        plan_serving("bert-base-uncased", "H100 SXM")
    with pytest.raises(A.ArchitectureError):
        plan_serving("no-such-model", "H100 SXM")


def test_max_users_meets_both_targets():
    kw = dict(prompt_tokens=1024, output_tokens=256)
    users = max_users_meeting_targets(LLAMA3, "H100 SXM", 0.5, 0.02, **kw)
    assert users >= 1
    at = serving_plan(LLAMA3, "H100 SXM", concurrency=users, **kw)
    above = serving_plan(LLAMA3, "H100 SXM", concurrency=users + 1, **kw)
    assert at.ttft_s <= 0.5 and at.tpot_s <= 0.02
    assert above.ttft_s > 0.5 or above.tpot_s > 0.02 or users == at.max_concurrent_sequences
    assert max_users_meeting_targets(LLAMA3, "H100 SXM", 0.5, 1e-5, **kw) == 0


def test_capacity_cost_and_cheapest_gpu():
    ans = capacity_answer(LLAMA3, "H100 SXM", target_users=1000, ttft_target_s=1.0, tpot_target_s=0.05,
                          price_per_gpu_hour=3.0)
    assert ans.replicas == math.ceil(1000 / ans.users_per_replica) and ans.gpus == ans.replicas
    assert ans.cost_per_hour == pytest.approx(ans.gpus * 3.0)
    assert ans.cost_per_million_output_tokens == pytest.approx(3.0 / (3600 * ans.throughput_tokens_per_s) * 1e6)
    rows = compare_gpus(LLAMA3, target_users=100, ttft_target_s=1.0, tpot_target_s=0.05,
                        gpus=["H100 SXM", "L4", "A100 80GB SXM"], tp_choices=(1, 2))
    best = cheapest(rows)
    assert best is not None and best.cost_per_hour == min(r.cost_per_hour for r in rows if r.cost_per_hour)
    with pytest.raises(ServingInputError, match="Target"):
        capacity_answer(LLAMA3, "H100 SXM", target_users=0, ttft_target_s=1, tpot_target_s=0.05)


def test_request_rate_to_users_by_littles_law():
    from core.plan.serving_capacity import users_for_request_rate

    assert users_for_request_rate(10, 256, 1.0, 0.05) == 138  # 10/s × (1 s + 256 × 0.05 s) = 138 in flight
    assert users_for_request_rate(0.001, 10, 0.1, 0.01) == 1
    with pytest.raises(ServingInputError, match="Request rate"):
        users_for_request_rate(-1, 256, 1.0, 0.05)


def test_parameter_count_borrows_a_dense_shape():
    from core.plan.serving import nearest_dense_decoder

    assert nearest_dense_decoder(46e9) != "mistralai/Mixtral-8x7B-v0.1"
    assert nearest_dense_decoder(16e9) != "deepseek-ai/DeepSeek-V2-Lite"
    m = serving_model(16e9)
    assert not m.mla and not m.num_experts and not m.exact
