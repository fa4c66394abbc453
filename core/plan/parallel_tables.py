"""Display rows of the training-layout planner (core.plan.parallel): ranked layouts, infeasible ones with their
reasons, the published runs as presets. Every number keeps its unit in the column name; GB = 1e9 bytes."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from core.common.units import GB
from core.plan import architectures
from core.plan.parallel.layout import LayoutError, model_shape
from core.plan.parallel.published import PUBLISHED_RUNS, PublishedRun
from core.plan.parallel.search import LayoutPlan

SECONDS_PER_DAY = 86_400
CUSTOM_PRESET = "Your model (catalog)"
"""The preset choice that plans a catalog model on your cluster instead of a published run."""
DEFAULT_LAYOUT_MODEL = "meta-llama/Llama-2-70b-hf"


@lru_cache(maxsize=1)
def layout_model_ids() -> tuple[str, ...]:
    """Catalog models the layout planner covers: dense decoders (``model_shape`` refuses the rest)."""
    ids = []
    for model_id in architectures.catalog_ids():
        try:
            model_shape(model_id)
        except LayoutError:
            continue
        ids.append(model_id)
    return tuple(ids)


def layout_rows(plans: tuple[LayoutPlan, ...] | list[LayoutPlan], top: int | None = None) -> list[dict[str, Any]]:
    """One row per feasible layout, fastest first: the layout, step time and its parts, throughput, MFU, memory and,
    where a token budget was given, days and cost to train it."""
    rows = []
    for rank, p in enumerate(plans[:top], 1):
        lay, step = p.layout, p.step
        row = {"rank": rank, "layout": lay.label(), "TP": lay.tp, "PP": lay.pp, "v": lay.virtual_stages,
               "DP": lay.dp, "ZeRO": lay.zero_stage, "micro-batch": lay.micro_batch,
               "SP": "yes" if lay.sequence_parallel else "no", "recompute": lay.recompute,
               "step time (s)": round(step.total_s, 3), "compute (s)": round(step.compute_s, 3),
               "TP comm (s)": round(step.tp_comm_s, 3), "bubble (s)": round(step.pp_bubble_s, 3),
               "DP comm exposed (s)": round(step.dp_comm_s, 3), "tokens/s": round(step.tokens_per_s),
               "TFLOP/s per GPU": round(step.tflops_per_gpu, 1), "MFU (%)": round(100 * step.mfu, 1),
               "per-GPU peak (GB)": round(p.memory.total_bytes / GB, 1)}
        if p.training is not None:
            row["days to train"] = round(p.training.time_s / SECONDS_PER_DAY, 1)
            row["GPU-hours"] = round(p.training.gpu_hours)
            if p.training.cost is not None:
                row["cost ($)"] = round(p.training.cost)
        if p.advice:
            row["advice"] = " ".join(p.advice)
        rows.append(row)
    return rows


def infeasible_rows(plans: tuple[LayoutPlan, ...] | list[LayoutPlan], top: int | None = None) -> list[dict[str, Any]]:
    """One row per infeasible layout: the layout and every reason it fails (memory rows also give the bytes)."""
    return [{"layout": p.layout.label(), "why infeasible": " ".join(p.why_infeasible),
             "per-GPU peak (GB)": None if p.memory is None else round(p.memory.total_bytes / GB, 1)}
            for p in plans[:top]]


def reason_counts(plans: tuple[LayoutPlan, ...] | list[LayoutPlan]) -> list[dict[str, Any]]:
    """How many infeasible layouts fail each kind of rule (a layout may fail several)."""
    kinds = {"heads": "heads not divisible by TP", "key/value heads": "key/value heads not divisible by TP",
             "layers": "layers not divisible by PP × v", "Global batch": "batch not divisible by DP × micro-batch",
             "interleaved": "micro-batches not divisible by PP (interleaving)", "ZeRO-": "ZeRO-2/3 with PP",
             "Needs": "does not fit in GPU memory", "cluster has": "layout ≠ cluster size"}
    counts = {label: 0 for label in kinds.values()}
    for p in plans:
        for reason in p.why_infeasible:
            for marker, label in kinds.items():
                if (marker in reason and (marker != "heads" or "key/value" not in reason)):
                    counts[label] += 1
                    break
    return [{"reason": label, "layouts": n} for label, n in counts.items() if n]


def preset_names() -> list[str]:
    """The published runs offered as presets (after ``CUSTOM_PRESET``)."""
    return [r.name for r in PUBLISHED_RUNS]


def preset(name: str) -> PublishedRun:
    """A published run by name; KeyError lists the known ones."""
    for run in PUBLISHED_RUNS:
        if run.name == name:
            return run
    raise KeyError(f"Unknown published run {name!r}. Known: {', '.join(preset_names())}")
