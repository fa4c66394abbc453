"""The serving planner (core.plan.serving) next to a real engine: its prediction for each measured load-test level, and
its KV-cache capacity next to the one vLLM reports.

Prediction of a level: ``core.plan.serving.serving_plan`` for the served model on the device the server runs on — this
machine's measured profile (core.measure.device_bench: achieved bandwidth and matmul FLOP/s, so efficiency and MFU are 1,
plus the framework's overhead per step when given) or a catalog GPU — at the level's measured prompt and output
lengths. A closed-loop level is planned at its concurrency; an open-loop level at the users its request rate keeps in
flight by Little's law, L = λ·(TTFT + output tokens × TPOT) (Little 1961), iterated to a fixed point of the plan's
own latencies. Errors are (predicted − measured) ÷ measured.

KV capacity: vLLM gives the KV cache a fixed pool (``--kv-cache-memory-bytes``, or what is left of
``--gpu-memory-utilization``) and cuts it into blocks of ``block_size`` tokens (Kwon et al. 2023, "Efficient Memory
Management for Large Language Model Serving with PagedAttention", §4.1); the planner's capacity for that pool is
pool ÷ KV bytes per token (2 × layers × KV heads × head dim × bytes per value, summed over attention groups), in
whole blocks.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

from core.common.units import error_pct
from core.plan import architectures, serving
from core.plan.serving_capacity import users_for_request_rate
from core.serve.endpoints import Endpoint, EndpointError, check_response, describe_http_error, timeout


LITTLE_ITERATIONS = 20


def served_model(endpoint: Endpoint, read_timeout_s: float = 10.0):
    """What the planner can plan for the served model: its config dict when the server's ``/v1/models`` names a
    folder with a config.json readable here (vLLM's ``root``: a server on this machine), else its catalog id when
    the served name or root is in the catalog, else None (the caller asks the user)."""
    try:
        response = httpx.get(endpoint.api_base + "/models", headers=endpoint.headers(), timeout=timeout(read_timeout_s))
        check_response(endpoint, response)
        entries = {str(m.get("id")): m for m in response.json().get("data", []) if isinstance(m, dict)}
    except httpx.HTTPError as exc:
        raise EndpointError(describe_http_error(endpoint, exc)) from None
    except (ValueError, AttributeError):
        return None
    entry = entries.get(endpoint.model, {})
    root = str(entry.get("root") or "")
    config = Path(root) / "config.json" if root else None
    if config is not None and config.is_file():
        try:
            data = json.loads(config.read_text())
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict):
            return data | {"_name_or_path": endpoint.model}
    for name in (endpoint.model, root):
        try:
            return architectures.resolve_id(name) if name else None
        except architectures.ArchitectureError:
            continue
    return None


@dataclass(frozen=True)
class LevelPrediction:
    """One level: measured p50 TTFT / TPOT and output tokens/s beside the planner's, errors in %."""

    level: str
    planned_concurrency: int
    prompt_tokens: int
    output_tokens: int
    measured_ttft_s: float
    predicted_ttft_s: float
    measured_tpot_s: float
    predicted_tpot_s: float
    measured_output_tokens_per_s: float
    predicted_output_tokens_per_s: float

    @staticmethod
    def _error(predicted: float, measured: float) -> float:
        return error_pct(predicted, measured, missing=float("nan"))

    @property
    def ttft_error_pct(self) -> float:
        return self._error(self.predicted_ttft_s, self.measured_ttft_s)

    @property
    def tpot_error_pct(self) -> float:
        return self._error(self.predicted_tpot_s, self.measured_tpot_s)

    @property
    def output_tokens_per_s_error_pct(self) -> float:
        return self._error(self.predicted_output_tokens_per_s, self.measured_output_tokens_per_s)

    def to_dict(self) -> dict:
        return asdict(self) | {"ttft_error_pct": self.ttft_error_pct, "tpot_error_pct": self.tpot_error_pct,
                               "output_tokens_per_s_error_pct": self.output_tokens_per_s_error_pct}


def _plan(model, gpu, prompt: int, output: int, users: int, options: dict) -> serving.ServingPlan:
    return serving.serving_plan(model, gpu, prompt_tokens=prompt, output_tokens=output, concurrency=users, **options)


def users_at_rate(model, gpu, request_rate: float, prompt_tokens: int, output_tokens: int, **options) -> int:
    """Users in flight at ``request_rate`` by Little's law on the plan's own latencies (fixed point, from 1 user);
    at a rate past the replica's capacity it stops at the most the replica holds plus one wave of waiting users."""
    if math.isinf(request_rate):
        raise serving.ServingInputError("An infinite request rate has no steady number of users in flight.")
    users = 1
    for _ in range(LITTLE_ITERATIONS):
        p = _plan(model, gpu, prompt_tokens, output_tokens, users, options)
        nxt = users_for_request_rate(request_rate, output_tokens, p.ttft_s, p.tpot_s)
        nxt = min(nxt, 2 * max(p.max_concurrent_sequences, 1))
        if nxt == users:
            break
        users = nxt
    return users


def predict_levels(rows: list[dict], model, gpu, **options) -> list[LevelPrediction]:
    """The planner beside each load-test row (core.serve.load_test.COLUMNS); ``options`` go to serving_plan (weight_format,
    kv_dtype, bandwidth_efficiency, mfu, step_overhead_s, …). Rows with no successful request are skipped."""
    out = []
    for row in rows:
        if not row.get("requests") or row.get("requests") == row.get("errors"):
            continue
        prompt = int(round(row.get("prompt_tokens_mean") or 0)) or 1
        output = int(round(row.get("output_tokens_mean") or 0)) or 1
        rate = row.get("request_rate")
        if rate is not None and not (isinstance(rate, float) and math.isnan(rate)) and math.isfinite(rate):
            users = users_at_rate(model, gpu, float(rate), prompt, output, **options)
            cap = row.get("concurrency")
            if cap is not None and not (isinstance(cap, float) and math.isnan(cap)):
                users = min(users, int(cap))
            label = f"{float(rate):g} req/s"
        elif rate is not None and not (isinstance(rate, float) and math.isnan(rate)):  # inf: all sent at once
            cap = row.get("concurrency")
            users = int(row["requests"]) if cap is None or (isinstance(cap, float) and math.isnan(cap)) else int(cap)
            label = "all at once"
        else:
            users = int(row["concurrency"])
            label = f"concurrency {users}"
        plan = _plan(model, gpu, prompt, output, users, options)
        predicted_tps = plan.throughput_tokens_per_s
        if label.endswith("req/s"):  # open loop: throughput is the offered load if the replica keeps up
            predicted_tps = min(predicted_tps, float(rate) * output)
        out.append(LevelPrediction(label, users, prompt, output, row["ttft_p50_s"], plan.ttft_s, row["tpot_p50_s"],
                                   plan.tpot_s, row["output_tokens_per_s"], predicted_tps))
    return out


@dataclass(frozen=True)
class KVCapacityCheck:
    """vLLM's reported KV capacity beside the planner's for the same pool."""

    kv_pool_bytes: int
    block_size_tokens: int
    kv_bytes_per_token: float
    planner_tokens_unblocked: int  # pool ÷ bytes per token
    planner_tokens: int  # in whole blocks, as vLLM allocates
    engine_tokens: int

    @property
    def error_pct(self) -> float:
        return error_pct(self.planner_tokens, self.engine_tokens, missing=float("nan"))

    def to_dict(self) -> dict:
        return asdict(self) | {"error_pct": self.error_pct}


def kv_bytes_per_token(model, kv_dtype: str = "bf16") -> float:
    """KV-cache bytes one token takes across all layers (full-attention layers; a window caps the rest)."""
    m = serving.serving_model(model)
    return serving.kv_bytes_per_sequence(m, 1, serving.KV_DTYPES[kv_dtype], block_tokens=1)


def kv_capacity_check(model, engine_counters, kv_dtype: str = "bf16") -> KVCapacityCheck | None:
    """The planner's tokens for vLLM's pool (``engine_counters``: core.serve.vllm_metrics.EngineCounters) beside
    vLLM's own count; None when the server did not report its pool size and block count."""
    c = engine_counters
    if c is None or not c.block_size_tokens:
        return None
    engine_tokens = c.kv_cache_size_tokens or ((c.num_blocks or 0) * c.block_size_tokens)
    pool = c.kv_cache_memory_bytes
    if not pool or not engine_tokens:
        return None
    per_token = kv_bytes_per_token(model, kv_dtype)
    unblocked = int(pool // per_token)
    blocked = unblocked // c.block_size_tokens * c.block_size_tokens
    return KVCapacityCheck(int(pool), int(c.block_size_tokens), per_token, unblocked, blocked, int(engine_tokens))


THIS_MACHINE = "This machine (measured)"


@dataclass(frozen=True)
class PlannerComparison:
    """Every level's prediction, the KV-capacity check and what the planner assumed."""

    device: str
    weight_format: str
    kv_dtype: str
    step_overhead_s: float
    predictions: tuple[LevelPrediction, ...]
    kv: KVCapacityCheck | None

    def to_dict(self) -> dict:
        return {"device": self.device, "weight_format": self.weight_format, "kv_dtype": self.kv_dtype,
                "step_overhead_s": self.step_overhead_s, "levels": [p.to_dict() for p in self.predictions],
                "kv_capacity": self.kv.to_dict() if self.kv else None}


def compare_with_planner(rows: list[dict], model, gpu: str = THIS_MACHINE, *, weight_format: str = "fp32",
                         kv_dtype: str = "fp32", engine_counters=None) -> PlannerComparison:
    """The planner for the deployment that was measured: on ``THIS_MACHINE`` (a server on this machine: its
    microbenchmarked profile at efficiency 1, plus the framework overhead per step of the model's tiny twin,
    core.measure.device_bench) or on a catalog GPU at the planner's default efficiencies."""
    from core.measure import device_bench

    if gpu == THIS_MACHINE:
        profile = device_bench.measure_device("cpu", model=model)
        overhead = device_bench.measure_step_overhead(model, 1)
        options = dict(weight_format=weight_format, kv_dtype=kv_dtype, bandwidth_efficiency=1.0, mfu=1.0,
                       step_overhead_s=overhead)
        target, label = profile.as_gpu(), profile.as_gpu().name
    else:
        overhead = 0.0
        options = dict(weight_format=weight_format, kv_dtype=kv_dtype)
        target, label = gpu, str(gpu)
    predictions = tuple(predict_levels(rows, model, target, **options))
    return PlannerComparison(label, weight_format, kv_dtype, overhead, predictions,
                             kv_capacity_check(model, engine_counters, kv_dtype))
