"""Serving-planner inputs in the URL, the page's table rows, and CSV export.

The model and GPU inputs share their session-state keys and URL keys with the Memory planner (``core.io.plan_io.FIELDS``:
src, model, params, cfg, gpu, gpu_gb), so the choice carries over between /memory and /serving and a link's model
part works on both pages. The serving inputs have their own keys (``srv_*``).
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from core.io import plan_io
from core.plan import serving, serving_capacity
from core.plan.hardware import GPU, GPUS, custom_gpu
from core.common.units import GB
from core.plan.memory_plan import CUSTOM_GPU, PlanInputError, choose_model
from core.io.url_state import Field, UrlCodec, choice_parser, number_parser

SHARED_URL_KEYS = ("src", "model", "params", "cfg", "gpu", "gpu_gb")
LOAD_KINDS = {"users": "Concurrent users", "rate": "Requests per second"}


def _g(v) -> str:
    return f"{v:g}"


FIELDS: dict[str, Field] = {
    **{k: plan_io.FIELDS[k] for k in SHARED_URL_KEYS},
    **{f.url_key: f for f in [
        Field("gpu_bw", "srv_custom_bandwidth_gbs", 2000.0, number_parser(1, 100_000), _g),
        Field("gpu_tflops", "srv_custom_tflops", 300.0, number_parser(0.001, 100_000), _g),
        Field("gpu_link", "srv_custom_link_gbs", 64.0, number_parser(0, 100_000), _g),
        Field("tp", "srv_tp", 1, number_parser(1, 64, integer=True)),
        Field("fmt", "srv_weight_format", "bf16", choice_parser(serving.WEIGHT_FORMATS)),
        Field("kv", "srv_kv_dtype", "bf16", choice_parser(serving.KV_DTYPES)),
        Field("prompt", "srv_prompt_tokens", 1024, number_parser(1, 10_000_000, integer=True)),
        Field("output", "srv_output_tokens", 256, number_parser(1, 10_000_000, integer=True)),
        Field("load", "srv_load_kind", "users", choice_parser(LOAD_KINDS)),
        Field("users", "srv_users", 100, number_parser(1, 1_000_000_000, integer=True)),
        Field("rps", "srv_requests_per_s", 10.0, number_parser(0.001, 1_000_000), _g),
        Field("ttft", "srv_ttft_ms", 1000.0, number_parser(1, 3_600_000), _g),
        Field("tpot", "srv_tpot_ms", 50.0, number_parser(0.01, 60_000), _g),
        Field("util", "srv_util", 0.9, number_parser(0.05, 1.0), _g),
        Field("maxseqs", "srv_max_seqs", serving.DEFAULT_MAX_NUM_SEQS, number_parser(1, 100_000, integer=True)),
        Field("mbt", "srv_max_batched_tokens", serving.DEFAULT_MAX_BATCHED_TOKENS,
              number_parser(16, 10_000_000, integer=True)),
        Field("graphs", "srv_cuda_graph_gib", serving.DEFAULT_CUDA_GRAPH_BYTES / serving.GIB, number_parser(0, 1000),
              _g),
        Field("bw", "srv_bandwidth_pct", serving.DEFAULT_BANDWIDTH_EFFICIENCY * 100, number_parser(1, 100), _g),
        Field("mfu", "srv_mfu_pct", serving.DEFAULT_MFU * 100, number_parser(1, 100), _g),
        Field("price", "srv_price", serving_capacity.DEFAULT_PRICES_PER_GPU_HOUR[plan_io.FIELDS["gpu"].default],
              number_parser(0, 10_000), _g),
    ]},
}


CODEC = UrlCodec(FIELDS.values())


def defaults() -> dict[str, Any]:
    """Session-state key → default value."""
    return CODEC.defaults()


def parse_query_params(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """URL query → (session values for the keys present, problems); invalid values fall back to the default. The
    shared model keys read as the Memory planner reads them (a ``params`` link plans from a parameter count)."""
    values, problems = plan_io.parse_query_params({k: v for k, v in query.items() if k in SHARED_URL_KEYS})
    ours, more = CODEC.parse({k: v for k, v in query.items() if k not in SHARED_URL_KEYS})
    return {**values, **ours}, problems + more


def to_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Session values → URL query params (the model source's own key only; custom-GPU keys only for a custom GPU)."""
    out = {k: v for k, v in plan_io.to_query_params(values).items() if k in SHARED_URL_KEYS}
    custom = values.get("mem_gpu") == CUSTOM_GPU
    skip = [*SHARED_URL_KEYS, "rps" if values.get("srv_load_kind") != "rate" else "users"]
    if not custom:
        skip += ["gpu_bw", "gpu_tflops", "gpu_link"]
        out.pop("gpu_gb", None)
    return {**out, **CODEC.write(values, skip=skip)}


def selected_gpu(values: Mapping[str, Any]) -> GPU:
    """The catalog GPU, or the custom one from its memory, bandwidth, TFLOP/s and link inputs."""
    name = values["mem_gpu"]
    if name != CUSTOM_GPU:
        return GPUS[name]
    from dataclasses import replace

    gb = values["mem_custom_gpu_gb"]
    base = custom_gpu(gb, values["srv_custom_tflops"], values["srv_custom_bandwidth_gbs"],
                      name=f"Custom GPU ({gb:g} GB)")
    return replace(base, interconnect="custom", interconnect_gbs=float(values["srv_custom_link_gbs"]))


def model_input(choice) -> Any:
    """What ``plan_serving`` takes for a ``ModelChoice`` (core.plan.memory_plan): the config when known, else the
    parameter count."""
    if choice.config is not None:
        return choice.config
    return choice.n_params


def plan_kwargs(values: Mapping[str, Any]) -> dict[str, Any]:
    """``serving_plan`` keywords from the page's session values."""
    return {"weight_format": values["srv_weight_format"], "kv_dtype": values["srv_kv_dtype"],
            "tensor_parallel": int(values["srv_tp"]), "prompt_tokens": int(values["srv_prompt_tokens"]),
            "output_tokens": int(values["srv_output_tokens"]), "gpu_memory_utilization": float(values["srv_util"]),
            "bandwidth_efficiency": float(values["srv_bandwidth_pct"]) / 100, "mfu": float(values["srv_mfu_pct"]) / 100,
            "max_num_seqs": int(values["srv_max_seqs"]), "max_batched_tokens": int(values["srv_max_batched_tokens"]),
            "cuda_graph_bytes": float(values["srv_cuda_graph_gib"]) * serving.GIB}


# ---------------------------------------------------------------------------------------------------------------
# Rows for the page's tables and the CSV
# ---------------------------------------------------------------------------------------------------------------
def memory_rows(plan: serving.ServingPlan) -> list[dict[str, Any]]:
    """Memory of one GPU of the replica: (component, GB, what it is)."""
    free = max(0.0, plan.memory_budget_bytes - plan.weights_bytes - plan.activation_reserve_bytes
               - plan.runtime_overhead_bytes)
    return [
        {"Component": "Weights", "Per GPU (GB)": plan.weights_bytes / GB,
         "What": f"{plan.total_params:,} parameters in {plan.weight_format}, split over {plan.tensor_parallel} GPU(s)"},
        {"Component": "Activation reserve", "Per GPU (GB)": plan.activation_reserve_bytes / GB,
         "What": "Largest prefill chunk's activations + the sampler's fp32 logits"},
        {"Component": "Runtime overhead", "Per GPU (GB)": plan.runtime_overhead_bytes / GB,
         "What": "CUDA context + CUDA graphs"},
        {"Component": "KV cache pool", "Per GPU (GB)": free / GB,
         "What": f"{plan.kv_capacity_tokens:,} tokens in blocks of {serving.KV_BLOCK_TOKENS} → "
                 f"{plan.max_concurrent_sequences} sequences of {plan.prompt_tokens + plan.output_tokens:,} tokens"},
        {"Component": "Budget (utilization × memory)", "Per GPU (GB)": plan.memory_budget_bytes / GB,
         "What": f"{plan.gpu_memory_utilization:g} × GPU memory"},
    ]


def curve_rows(curve: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Latency-curve rows with display units (ms, tokens/s)."""
    return [{"Concurrent users": r["concurrency"], "Running batch": r["running_batch"],
             "TTFT (ms)": r["ttft_s"] * 1e3, "TPOT (ms)": r["tpot_s"] * 1e3,
             "Per-user tokens/s": r["per_user_tokens_per_s"], "Aggregate tokens/s": r["throughput_tokens_per_s"],
             "Bound": r["bound"], "All fit at once": r["fits_at_once"]} for r in curve]


def compare_rows(rows: list[serving_capacity.CapacityAnswer]) -> list[dict[str, Any]]:
    """GPU comparison rows with display units."""
    out = []
    for r in rows:
        out.append({"GPU": r.gpu, "GPUs per replica": r.tensor_parallel,
                    "Users per replica": r.users_per_replica or None, "Replicas": r.replicas, "GPUs": r.gpus,
                    "$/GPU-hour": r.price_per_gpu_hour, "$/hour": r.cost_per_hour,
                    "$ per 1M output tokens": r.cost_per_million_output_tokens,
                    "$ per 1M input tokens": r.cost_per_million_input_tokens,
                    "TTFT (ms)": None if r.ttft_s is None else r.ttft_s * 1e3,
                    "TPOT (ms)": None if r.tpot_s is None else r.tpot_s * 1e3,
                    "Meets targets": r.cost_per_hour is not None,
                    "Why not": "" if r.cost_per_hour is not None else (
                        "does not fit in memory" if not r.fits else "latency targets not met even for one user")})
    return out


def plan_csv(plan: serving.ServingPlan) -> str:
    """The plan as CSV: one row per field (name, value)."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["field", "value"])
    for key, value in plan.to_dict().items():
        writer.writerow([key, "; ".join(value) if isinstance(value, list) else value])
    return buf.getvalue()


def rows_csv(rows: list[dict[str, Any]]) -> str:
    """Table rows as CSV (header from the first row)."""
    if not rows:
        return ""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def target_users(values: Mapping[str, Any]) -> int:
    """The target load in concurrent users: as entered, or from the request rate by Little's law."""
    if values.get("srv_load_kind") == "rate":
        return serving_capacity.users_for_request_rate(float(values["srv_requests_per_s"]),
                                                       int(values["srv_output_tokens"]),
                                                       float(values["srv_ttft_ms"]) / 1e3,
                                                       float(values["srv_tpot_ms"]) / 1e3)
    return int(values["srv_users"])


def check_model_choice(values: Mapping[str, Any]):
    """``memory_plan.choose_model`` for the shared model inputs (raises PlanInputError / ArchitectureError)."""
    return choose_model(values["mem_source"], values["mem_model"], values["mem_params"], values["mem_config_text"])


__all__ = ["FIELDS", "defaults", "parse_query_params", "to_query_params", "selected_gpu", "model_input",
           "plan_kwargs", "memory_rows", "curve_rows", "compare_rows", "plan_csv", "rows_csv",
           "check_model_choice", "target_users", "LOAD_KINDS", "PlanInputError"]
