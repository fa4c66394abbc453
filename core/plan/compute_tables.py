"""Display rows of the Compute planner's tables, built from core.plan.compute_plan / core.plan.training_runs results.

The page renders these as they are; each number keeps its unit in the column name. Sources of the numbers are in
the functions that make the input rows (``compute_plan.data_limited_alternatives``, ``training_runs.reference_table``).
"""
from __future__ import annotations

from typing import Any

from core.plan import compute, compute_plan, compute_text
from core.plan.hardware import GPUS
from core.common.units import format_count

COURSE_RULE_GPUS = {"V100 SXM2 16GB": 8, "V100 SXM2 32GB": 8, "A100 40GB SXM": 2, "A100 80GB SXM": 2}
"""The course notes' rule "1 PF/s-day ≈ 8 V100s or 2 A100s for a day at full efficiency", per catalog GPU."""


def percent_or_dash(fraction) -> str:
    """0.477 → '47.7'; None → '–' (for table cells and captions)."""
    return "–" if fraction is None else f"{100 * fraction:.1f}"


def data_limit_rows(rows: list[dict]) -> list[dict[str, Any]]:
    """``compute_plan.data_limited_alternatives`` rows for display: size as "1.5× = 105B", rounded values, and the extra
    compute of each size as % of the compute-optimal model's (the row with multiplier 1)."""
    optimal = next(r for r in rows if r["size vs compute-optimal"] == 1.0)
    return [{
        "model size": f"{r['size vs compute-optimal']:g}× = {format_count(r['parameters'])}",
        "tokens/param": round(r["tokens per parameter"], 1),
        "compute (PF/s-days)": round(r["compute (PF/s-days)"], 1),
        "extra compute vs optimal (%)": round(100 * r["extra compute vs optimal (FLOPs)"] / optimal["compute (FLOPs)"]),
        "GPU-hours": round(r["GPU-hours"]),
        "days": round(r["days"], 1),
        "cost ($)": round(r["cost ($)"]),
        "fitted loss (nats/token)": round(r["fitted loss (nats/token)"], 4),
        "loss change vs optimal (nats/token)": round(r["loss change vs optimal (nats/token)"], 4),
    } for r in rows]


def reference_run_rows(rows: list[dict], cluster: compute_plan.Cluster) -> list[dict[str, Any]]:
    """``training_runs.reference_table`` rows for display, each also run on ``cluster``: days and cost of its
    k·N·D FLOPs at the cluster's MFU and price (``compute_plan.run_on_cluster``)."""
    days_column = f"days on your {cluster.n_gpus:,} × {cluster.gpu_name}"
    table = []
    for r in rows:
        here = compute_plan.run_on_cluster(r["compute k·N·D (FLOPs)"], cluster)
        table.append({
            "run": r["run"],
            "params": format_count(r["parameters"]),
            "tokens": format_count(r["tokens"]),
            "tokens/param": round(r["tokens per parameter"], 1),
            "compute (FLOPs)": f"{r['compute k·N·D (FLOPs)']:.3g}",
            "PF/s-days": f"{r['compute (PF/s-days)']:,.0f}",
            "published FLOPs": f"{r['published compute (FLOPs)']:.3g}" if r["published compute (FLOPs)"] else "–",
            "hardware": r["hardware"],
            "published GPU-hours": f"{r['published GPU-hours']:,.0f}" if r["published GPU-hours"] else "–",
            "implied MFU (%)": percent_or_dash(r["implied MFU (k·N·D)"]),
            "implied util. from published FLOPs (%)": percent_or_dash(r["implied utilisation (published FLOPs)"]),
            days_column: round(here["days"], 1),
            "cost on your cluster (US$)": compute_text.format_dollars(here["cost_dollars"]),
            "source": r["source"],
        })
    return table


def one_pflop_s_rows(mfu_pct: float) -> list[dict[str, Any]]:
    """Per catalog GPU: how many sustain 1 PF/s at 100 % and at ``mfu_pct`` % MFU (``compute.gpus_for_one_pflop_s``),
    next to the course rule and what that rule's GPUs deliver at datasheet peak."""
    mfu = mfu_pct / 100
    return [{
        "GPU": g.name,
        "peak dense bf16/fp16 (TFLOP/s)": g.bf16_tflops,
        "GPUs for 1 PF/s at 100%": round(compute.gpus_for_one_pflop_s(g.peak_flops), 2),
        f"GPUs for 1 PF/s at {mfu_pct:g}% MFU": round(compute.gpus_for_one_pflop_s(g.peak_flops, mfu), 2),
        "course rule (GPUs)": str(COURSE_RULE_GPUS[g.name]) if g.name in COURSE_RULE_GPUS else "–",
        "course rule at datasheet peak (TFLOP/s)":
            f"{COURSE_RULE_GPUS[g.name] * g.bf16_tflops:,.0f}" if g.name in COURSE_RULE_GPUS else "–",
    } for g in GPUS.values()]
