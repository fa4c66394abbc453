"""Rows and chart inputs of the Memory planner, built from a ``core.plan.memory_plan.MemoryPlan`` (bytes in, GB out).

The page only renders what these return, so every share, GB conversion and table here has a unit test. Columns that
end in "(GB)" hold GB = 1e9 bytes (``core.common.units.GB``); labels of components come from ``memory.COMPONENT_LABELS``.
"""
from __future__ import annotations

from typing import Any

from core.plan import memory
from core.plan.memory import component_label
from core.plan.memory_plan import ZERO_STAGES, MemoryPlan
from core.common.units import GB, bytes_per_value

NOT_WEIGHTS = ("kv_cache", "activation_workspace", "cuda_context")
"""Components of a serving breakdown that are not the model's weights."""
FP16_AND_BF16 = "fp16 / bf16"
"""One bar for fp16 and bf16: they store the same 2 bytes per value."""


def labelled(parts: dict[str, float]) -> dict[str, float]:
    """The same components under their display labels (input of ``memory_charts.stacked_memory_figure``)."""
    return {component_label(k): v for k, v in parts.items()}


def parameter_rows(plan) -> list[dict[str, Any]]:
    """Parameters per component (embeddings, attention, mlp, norms, lm_head): count, share of the total in %
    (2 decimals) and its size in bf16 (GB). Empty for a bare parameter count (no breakdown)."""
    total = sum(plan.breakdown.values())
    per_param = bytes_per_value("bf16")
    return [{"component": name, "parameters": count, "share (%)": round(100 * count / total, 2) if total else 0.0,
             "bf16 size (GB)": count * per_param / GB} for name, count in plan.breakdown.items()]


def inference_weights_bytes(parts: dict[str, float]) -> float:
    """Bytes of the weights in a serving breakdown: every component except KV cache, workspace and CUDA context
    (so bitsandbytes' quantization constants and 16-bit layers count as weights)."""
    return sum(v for k, v in parts.items() if k not in NOT_WEIGHTS)


def inference_format_rows(plan) -> list[dict[str, Any]]:
    """One row per serving component (in first-seen order) and a "total" row; one "<format> (GB)" column per weight
    format; a component a format does not have is 0."""
    components: list[str] = []
    for parts in plan.inference.values():
        components += [k for k in parts if k not in components]
    rows = [{"component": component_label(c),
             **{f"{fmt} (GB)": parts.get(c, 0.0) / GB for fmt, parts in plan.inference.items()}} for c in components]
    rows.append({"component": "total",
                 **{f"{fmt} (GB)": sum(parts.values()) / GB for fmt, parts in plan.inference.items()}})
    return rows


def inference_bars(plan) -> dict[str, dict[str, float]]:
    """Serving breakdown per weight format for the stacked chart (labelled components), fp16 and bf16 as one bar
    (same bytes)."""
    return {(FP16_AND_BF16 if fmt == "fp16" else fmt): labelled(parts) for fmt, parts in plan.inference.items()
            if fmt != "bf16"}


def inference_bar_highlight(weight_format: str) -> str:
    """The bar of ``inference_bars`` that shows ``weight_format``."""
    return FP16_AND_BF16 if weight_format in ("fp16", "bf16") else weight_format


def model_states_bytes(parts: dict[str, float]) -> float:
    """Weights + gradients + optimizer states of a training breakdown."""
    return sum(parts.get(k, 0.0) for k in ("weights", "gradients", "optimizer"))


def store_vs_train_bars(plan) -> dict[str, dict[str, float]]:
    """fp32 weights to store vs the 24 B/param rule of thumb to train (course notes), labelled components."""
    return {"store (fp32 weights)": {"weights": plan.store_fp32_bytes},
            "train (rule of thumb)": labelled(plan.rule_of_thumb)}


def recipe_bars(plan) -> dict[str, dict[str, float]]:
    """Training memory on one GPU: the rule of thumb, then mixed-precision Adam model states (ZeRO paper §3.1) with
    the activations of each recompute option (Korthikanti et al. 2022, Table 2) and the CUDA context."""
    mp = plan.mixed_precision
    states = labelled({k: mp[k] for k in ("weights", "gradients", "optimizer")})
    bars = {"rule of thumb (24 B/param)": labelled(plan.rule_of_thumb)}
    for option, activations in plan.activations_by_recompute.items():
        bars[f"mixed precision, {option} recompute"] = {
            **states, **labelled({"activations": activations, "cuda_context": mp["cuda_context"]})}
    return bars


def recipe_bar_highlight(recompute: str) -> str:
    """The bar of ``recipe_bars`` for the chosen recompute option."""
    return f"mixed precision, {recompute} recompute"


def zero_rows(plan, strategy_names: dict[int, str]) -> list[dict[str, Any]]:
    """Per-GPU memory of each ZeRO stage at the plan's GPU count: one "(GB)" column per component, the total
    "per GPU (GB)" and whether it fits the usable memory (ZeRO paper, Figure 1)."""
    rows = []
    for stage, parts in plan.zero.items():
        total = sum(parts.values())
        rows.append({"strategy": strategy_names[stage], **{f"{component_label(k)} (GB)": v / GB for k, v in parts.items()},
                     "per GPU (GB)": total / GB, "fits the GPU": total <= plan.usable_bytes})
    return rows


def zero_bars(plan, stage_names: dict[int, str]) -> dict[str, dict[str, float]]:
    """Per-GPU components of each ZeRO stage under display labels, for the stacked chart."""
    return {stage_names[stage]: labelled(parts) for stage, parts in plan.zero.items()}


def fit_display_rows(plan) -> list[dict[str, Any]]:
    """``plan.fit_rows`` for display: GPU counts as "1,024" or "never", fit flags as "fits" / "too big"."""
    rows = []
    for row in plan.fit_rows:
        shown = {}
        for column, value in row.items():
            if column.startswith("min GPUs"):
                shown[column] = "never" if value is None or value != value else f"{int(value):,}"
            elif ": fits" in column:
                shown[column] = "fits" if value else "too big"
            else:
                shown[column] = value
        rows.append(shown)
    return rows


def plan_rows(plan: MemoryPlan) -> list[dict[str, Any]]:
    """The plan as rows (section, item, value, unit): the summary table, and the CSV export
    (``core.io.plan_io.plan_csv``)."""
    rows: list[dict[str, Any]] = []

    def add(section, item, value, unit):
        rows.append({"section": section, "item": item, "value": value, "unit": unit})

    m = plan.model
    add("model", "model", m.label, "")
    add("model", "parameters", m.n_params, "parameters")
    add("model", "parameter count exact (from architecture)", m.exact, "")
    add("model", "shape used for KV cache and activations", m.shape_source, "")
    for comp, count in plan.breakdown.items():
        add("parameters", comp, count, "parameters")
    for fmt, parts in plan.inference.items():
        for comp, value in memory.export_keys(parts).items():
            add(f"inference {fmt}", comp, round(value / GB, 4), "GB")
        add(f"inference {fmt}", "total", round(sum(parts.values()) / GB, 4), "GB")
    add("KV cache", "tokens cached per sequence", plan.kv_tokens, "tokens")
    add("KV cache", "per token per sequence", round(plan.kv_per_token_bytes / 1e6, 6), "MB")
    for comp, value in plan.rule_of_thumb.items():
        add("training, rule of thumb (24 B/param)", comp, round(value / GB, 4), "GB")
    add("training, rule of thumb (24 B/param)", "total", round(sum(plan.rule_of_thumb.values()) / GB, 4), "GB")
    add("training, rule of thumb (24 B/param)", "store fp32 weights", round(plan.store_fp32_bytes / GB, 4), "GB")
    for comp, value in memory.export_keys(plan.mixed_precision).items():
        add("training, mixed precision (1 GPU)", comp, round(value / GB, 4), "GB")
    add("training, mixed precision (1 GPU)", "total", round(sum(plan.mixed_precision.values()) / GB, 4), "GB")
    for option, value in plan.activations_by_recompute.items():
        add("activations per micro-batch", f"recompute {option}", round(value / GB, 4), "GB")
    for s, parts in plan.zero.items():
        section = f"per GPU, {ZERO_STAGES[s]}, {plan.inputs['n_gpus']} GPUs"
        for comp, value in memory.export_keys(parts).items():
            add(section, comp, round(value / GB, 4), "GB")
        add(section, "total", round(sum(parts.values()) / GB, 4), "GB")
    for row in plan.fit_rows:
        for key, value in row.items():
            if key != "GPU":
                add(f"GPU fit: {row['GPU']}", key, value if value is not None else "never", "")
    return rows

