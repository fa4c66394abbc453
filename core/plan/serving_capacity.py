"""Answers a capacity-planning meeting asks of the serving planner (``core.plan.serving``): latency/throughput curves,
the most users one replica serves within the TTFT and TPOT targets, replicas and GPUs for a target load, cost per
million tokens, and the cheapest catalog GPU and tensor-parallel degree that meets the targets.

Cost per million output tokens = replica $/hour ÷ (3600 × aggregate output tokens/s) × 1e6; per million input tokens
= replica $/hour ÷ (3600 × prefill tokens/s) × 1e6, prefill tokens/s taken from one prompt's prefill time (the
prompt work the replica does in the time it is not decoding).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from core.common import checks
from core.plan.hardware import GPUS
from core.plan.serving import ServingInputError, serving_plan

# $/GPU-hour. A100 80GB, H100 SXM, H200: midpoints of the "specialty cloud" on-demand ranges in Mercatus' cloud GPU
# pricing guide (https://www.mercatus-ai.com/blog/cloud-gpu-pricing, May 2026: $1.10–1.50, $2.50–3.50, $3.50–4.50).
# The others are LLM Lab's estimates (no cited source): replace them with your provider's prices.
DEFAULT_PRICES_PER_GPU_HOUR: dict[str, float] = {
    "V100 SXM2 16GB": 0.60, "V100 SXM2 32GB": 0.70, "T4": 0.35, "A10 (PCIe)": 0.75, "L4": 0.70, "RTX 4090": 0.50,
    "A100 40GB SXM": 1.10, "A100 80GB SXM": 1.30, "H100 SXM": 3.00, "H100 PCIe": 2.40, "H200 SXM": 4.00,
}
CITED_PRICES = ("A100 80GB SXM", "H100 SXM", "H200 SXM")
CURVE_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
TP_CHOICES = (1, 2, 4, 8)


def users_for_request_rate(requests_per_s: float, output_tokens: int, ttft_target_s: float,
                           tpot_target_s: float) -> int:
    """Concurrent users a request rate keeps in flight when requests take the latency targets: Little's law
    L = λ·W (Little 1961), W = TTFT + output tokens × TPOT. An upper bound: faster requests leave fewer in flight."""
    for value, what in ((requests_per_s, "Request rate"), (ttft_target_s, "TTFT target"),
                        (tpot_target_s, "TPOT target"), (output_tokens, "Output tokens")):
        checks.check_positive(value, what, error=ServingInputError)
    return max(1, math.ceil(requests_per_s * (ttft_target_s + output_tokens * tpot_target_s) - 1e-9))


def cost_per_million_tokens(dollars_per_hour: float, tokens_per_s: float) -> float:
    """$ per 1M tokens of a deployment that costs ``dollars_per_hour`` and serves ``tokens_per_s``:
    $/hour ÷ (3600 × tokens/s) × 1e6."""
    return dollars_per_hour / (3600 * tokens_per_s) * 1e6


def single_user_tokens_per_s(model, gpu, **kwargs) -> float:
    """Decode tokens/s of one user alone on the replica (1 ÷ TPOT at concurrency 1)."""
    return 1.0 / serving_plan(model, gpu, **{**kwargs, "concurrency": 1}).tpot_s


def cost_latency_curves(rows: list[CapacityAnswer], curve_for, top: int = 5
                        ) -> tuple[dict[str, list[dict]], dict[str, list[tuple[float, float, int]]]]:
    """Latency curves of the ``top`` cheapest priced deployments in ``rows`` (``compare_gpus`` order) and, per curve
    point, (TPOT in ms, $ per 1M output tokens, concurrency): the inputs of ``serving_charts.throughput_latency_figure``
    and ``cost_latency_figure``. ``curve_for(gpu_name, tensor_parallel)`` returns ``latency_curve`` rows (a page can
    pass a cached one)."""
    curves, points = {}, {}
    for r in [r for r in rows if r.cost_per_hour is not None][:top]:
        label = f"{r.tensor_parallel} × {r.gpu}"
        curve = curve_for(r.gpu, r.tensor_parallel)
        curves[label] = curve
        points[label] = [(p["tpot_s"] * 1e3,
                          cost_per_million_tokens(r.price_per_gpu_hour * r.tensor_parallel, p["throughput_tokens_per_s"]),
                          p["concurrency"]) for p in curve]
    return curves, points


def latency_curve(model, gpu, batches=CURVE_BATCHES, **kwargs) -> list[dict[str, Any]]:
    """One row per concurrency: TTFT, TPOT (s), per-user and aggregate output tokens/s, bound, whether it fits."""
    rows = []
    for b in batches:
        p = serving_plan(model, gpu, **{**kwargs, "concurrency": int(b)})
        rows.append({"gpu": p.gpu, "tensor_parallel": p.tensor_parallel, "concurrency": int(b),
                     "running_batch": p.running_batch, "ttft_s": p.ttft_s, "tpot_s": p.tpot_s,
                     "per_user_tokens_per_s": p.decode_tokens_per_s,
                     "throughput_tokens_per_s": p.throughput_tokens_per_s, "bound": p.bound,
                     "fits_at_once": b <= p.max_concurrent_sequences})
    return rows


def max_users_meeting_targets(model, gpu, ttft_target_s: float, tpot_target_s: float, **kwargs) -> int:
    """Most concurrent users one replica serves with TTFT ≤ target and TPOT ≤ target (0: not even one).

    TTFT and TPOT grow with users, so a binary search over 1 … max_concurrent_sequences finds the largest.
    """
    for value, what in ((ttft_target_s, "TTFT target"), (tpot_target_s, "TPOT target")):
        checks.check_positive(value, what, error=ServingInputError, unit="seconds")
    first = serving_plan(model, gpu, **{**kwargs, "concurrency": 1})
    if not first.fits:
        return 0

    def ok(users: int) -> bool:
        p = serving_plan(model, gpu, **{**kwargs, "concurrency": users})
        return p.ttft_s <= ttft_target_s and p.tpot_s <= tpot_target_s

    if not ok(1):
        return 0
    lo, hi = 1, max(1, first.max_concurrent_sequences)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


@dataclass(frozen=True)
class CapacityAnswer:
    """How a target load is served on one GPU type at one tensor-parallel degree."""

    gpu: str
    tensor_parallel: int
    fits: bool
    users_per_replica: int  # within both latency targets
    replicas: int | None  # for the target users (None: the targets cannot be met)
    gpus: int | None
    price_per_gpu_hour: float
    cost_per_hour: float | None  # all replicas, $
    ttft_s: float | None  # at users_per_replica
    tpot_s: float | None
    throughput_tokens_per_s: float | None  # one replica, aggregate output
    cost_per_million_output_tokens: float | None
    cost_per_million_input_tokens: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def capacity_answer(model, gpu, *, target_users: int, ttft_target_s: float, tpot_target_s: float,
                    price_per_gpu_hour: float | None = None, **kwargs) -> CapacityAnswer:
    """Users per replica, replicas and GPUs for ``target_users``, and the cost, on ``gpu`` with ``kwargs`` (the
    ``serving_plan`` keywords: weight_format, kv_dtype, tensor_parallel, prompt/output tokens, ...)."""
    if isinstance(target_users, bool) or not isinstance(target_users, (int, float)) or target_users < 1 \
            or target_users != int(target_users) or target_users > 1e9:
        raise ServingInputError(f"Target concurrent users must be a whole number from 1 to 1e9, got {target_users!r}.")
    base = serving_plan(model, gpu, **{**kwargs, "concurrency": 1})
    name = base.gpu
    price = DEFAULT_PRICES_PER_GPU_HOUR.get(name, 0.0) if price_per_gpu_hour is None else float(price_per_gpu_hour)
    if not math.isfinite(price) or price < 0:
        raise ServingInputError(f"Price per GPU-hour must be a non-negative number of dollars, got {price!r}.")
    tp = base.tensor_parallel
    users = max_users_meeting_targets(model, gpu, ttft_target_s, tpot_target_s, **kwargs) if base.fits else 0
    if users == 0:
        return CapacityAnswer(name, tp, base.fits, 0, None, None, price, None, None, None, None, None, None)
    p = serving_plan(model, gpu, **{**kwargs, "concurrency": users})
    replicas = math.ceil(int(target_users) / users)
    replica_per_hour = price * tp
    out_cost = cost_per_million_tokens(replica_per_hour, p.throughput_tokens_per_s) if price else 0.0
    in_cost = cost_per_million_tokens(replica_per_hour, p.prompt_tokens / p.prefill_s) if price else 0.0
    return CapacityAnswer(name, tp, True, users, replicas, replicas * tp, price, replicas * replica_per_hour,
                          p.ttft_s, p.tpot_s, p.throughput_tokens_per_s, out_cost, in_cost)


def compare_gpus(model, *, target_users: int, ttft_target_s: float, tpot_target_s: float,
                 prices: dict[str, float] | None = None, gpus=None, tp_choices=TP_CHOICES,
                 **kwargs) -> list[CapacityAnswer]:
    """``capacity_answer`` for every catalog GPU × tensor-parallel degree, cheapest total $/hour first (those that
    cannot meet the targets last). ``prices`` overrides ``DEFAULT_PRICES_PER_GPU_HOUR`` per GPU name."""
    prices = {**DEFAULT_PRICES_PER_GPU_HOUR, **(prices or {})}
    rows = []
    for name in (gpus or list(GPUS)):
        for tp in tp_choices:
            rows.append(capacity_answer(model, name, target_users=target_users, ttft_target_s=ttft_target_s,
                                        tpot_target_s=tpot_target_s, price_per_gpu_hour=prices.get(name, 0.0),
                                        **{**kwargs, "tensor_parallel": tp}))
    return sorted(rows, key=lambda r: (r.cost_per_hour is None, r.cost_per_hour or 0.0, r.gpus or 0))


def cheapest(rows: list[CapacityAnswer]) -> CapacityAnswer | None:
    """The cheapest answer that meets the targets (``compare_gpus`` order), or None."""
    return next((r for r in rows if r.cost_per_hour is not None), None)


def plan_json(plan: dict, answer: CapacityAnswer | None, curve: list[dict], query: dict | None = None) -> str:
    """JSON export: the inputs (as URL query parameters), the plan, the capacity answer and the latency curve."""
    return json.dumps({"query": query or {}, "plan": plan, "capacity": answer.to_dict() if answer else None,
                       "curve": curve}, indent=2, default=str)
