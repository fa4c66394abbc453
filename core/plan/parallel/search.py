"""Evaluate one training layout, or every layout of a cluster, and rank the feasible ones by step time.

A layout is infeasible when it breaks a divisibility rule (``layout.why_infeasible_shape``) or when its fullest
pipeline stage needs more bytes than the GPU has (``memory.peak_stage_memory`` against the datasheet capacity);
each infeasible layout keeps every reason. Feasible layouts are ranked fastest first (the global batch is fixed, so
this is also most tokens/s), then by per-GPU peak memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

from core.common.checks import check_positive, check_positive_int
from core.common.units import GB
from core.plan.hardware import GPU
from core.plan.memory import DEFAULT_CUDA_OVERHEAD_BYTES
from core.plan.parallel.layout import (Cluster, Layout, LayoutError, ModelShape, layout_advice,
                                       why_infeasible_shape)
from core.plan.parallel.memory import StageMemory, peak_stage_memory
from core.plan.parallel.step_time import MATMUL_EFFICIENCY, StepTime, TrainingTime, step_time, training_time

DEFAULT_MICRO_BATCHES = (1, 2, 4, 8)
DEFAULT_VIRTUAL_STAGES = (1, 2, 4)


@dataclass(frozen=True)
class LayoutPlan:
    """One layout evaluated: feasible or why not, its per-GPU memory peak and its step time."""
    layout: Layout
    feasible: bool
    why_infeasible: tuple[str, ...]
    advice: tuple[str, ...] = ()
    memory: StageMemory | None = None
    step: StepTime | None = None
    training: TrainingTime | None = None

    @property
    def per_gpu_peak_bytes(self) -> float | None:
        return None if self.memory is None else self.memory.total_bytes

    def to_dict(self) -> dict:
        return {"layout": self.layout.to_dict(), "label": self.layout.label(), "feasible": self.feasible,
                "why_infeasible": list(self.why_infeasible), "advice": list(self.advice),
                "per_gpu_peak_bytes": self.per_gpu_peak_bytes,
                "memory": None if self.memory is None else self.memory.to_dict(),
                "step": None if self.step is None else self.step.to_dict(),
                "step_time_s": None if self.step is None else self.step.total_s,
                "tflops_per_gpu": None if self.step is None else self.step.tflops_per_gpu,
                "mfu": None if self.step is None else self.step.mfu,
                "training": None if self.training is None else self.training.to_dict()}


def evaluate_layout(model: ModelShape, gpu: GPU, cluster: Cluster, layout: Layout, seq_len: int, global_batch: int,
                    token_budget: float | None = None, price_per_gpu_hour: float | None = None,
                    matmul_efficiency: float = MATMUL_EFFICIENCY,
                    overhead_bytes: float = DEFAULT_CUDA_OVERHEAD_BYTES) -> LayoutPlan:
    """Divisibility, per-GPU memory against the GPU's capacity, and (when it fits) the step time and the time and
    cost to train ``token_budget`` tokens."""
    why = why_infeasible_shape(model, layout, cluster, global_batch)
    advice = tuple(layout_advice(layout, cluster))
    if why:
        return LayoutPlan(layout, False, tuple(why), advice)
    m = layout.num_microbatches(global_batch)
    memory = peak_stage_memory(model, layout, seq_len, m, overhead_bytes)
    if memory.total_bytes > gpu.memory_bytes:
        return LayoutPlan(layout, False, (f"Needs {memory.total_bytes / GB:.1f} GB per GPU on pipeline stage "
                                          f"{memory.stage}; the {gpu.name} has {gpu.memory_gb:g} GB.",),
                          advice, memory)
    step = step_time(model, layout, cluster, gpu, global_batch, seq_len, matmul_efficiency)
    training = (None if token_budget is None else
                training_time(step, layout.gpus, global_batch, seq_len, token_budget, price_per_gpu_hour))
    return LayoutPlan(layout, True, (), advice, memory, step, training)


def divisors(n: int) -> list[int]:
    """The divisors of n, ascending."""
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_layouts(model: ModelShape, gpus: int, micro_batches=DEFAULT_MICRO_BATCHES,
                      virtual_stages=DEFAULT_VIRTUAL_STAGES, zero_stages=(0, 1, 2, 3),
                      recomputes=("none", "selective", "full"), sequence_parallel=(False, True),
                      flash_attention: bool = False):
    """Every TP × PP over the divisors of ``gpus`` (DP the rest), each ZeRO stage, micro-batch, number of virtual
    stages (PP ≥ 2), sequence parallelism (TP ≥ 2) and recomputation; ``flash_attention`` is a setting of all of
    them (the attention kernel), not searched."""
    for tp in divisors(gpus):
        for pp in divisors(gpus // tp):
            dp = gpus // (tp * pp)
            for zero, mb, v, sp, rc in product(zero_stages, micro_batches, virtual_stages if pp > 1 else (1,),
                                               sequence_parallel if tp > 1 else (False,), recomputes):
                yield Layout(tp, pp, dp, zero, mb, v, sp, rc, bool(flash_attention))


@dataclass(frozen=True)
class LayoutSearch:
    """Every layout evaluated: the feasible ones fastest first, the infeasible ones each with its reasons."""
    feasible: tuple[LayoutPlan, ...]
    infeasible: tuple[LayoutPlan, ...]

    @property
    def best(self) -> LayoutPlan | None:
        return self.feasible[0] if self.feasible else None

    def to_dict(self, top: int | None = None) -> dict:
        return {"feasible": [p.to_dict() for p in self.feasible[:top]],
                "infeasible": [p.to_dict() for p in self.infeasible[:top]],
                "feasible_count": len(self.feasible), "infeasible_count": len(self.infeasible)}


def plan_layouts(model: ModelShape, gpu: GPU, cluster: Cluster, seq_len: int, global_batch: int,
                 token_budget: float | None = None, price_per_gpu_hour: float | None = None,
                 matmul_efficiency: float = MATMUL_EFFICIENCY, **candidates) -> LayoutSearch:
    """Evaluate ``candidate_layouts`` on all of the cluster's GPUs and rank them (module docstring).

    Layouts that differ only in ZeRO stage share their step time but for ZeRO-3's extra all-gather; the evaluation
    is a few tens of microseconds per layout, so the 70B / 64-GPU space (thousands of layouts) takes well under 2 s
    (benchmarks and tests measure it, never assert it)."""
    check_positive_int(seq_len, "Sequence length", error=LayoutError)
    check_positive_int(global_batch, "Global batch", error=LayoutError)
    if token_budget is not None:
        check_positive(token_budget, "Token budget", error=LayoutError, unit="tokens")
    feasible, infeasible = [], []
    for layout in candidate_layouts(model, cluster.gpus, **candidates):
        plan = evaluate_layout(model, gpu, cluster, layout, seq_len, global_batch, token_budget, price_per_gpu_hour,
                               matmul_efficiency)
        (feasible if plan.feasible else infeasible).append(plan)
    feasible.sort(key=lambda p: (p.step.total_s, p.memory.total_bytes))
    return LayoutSearch(tuple(feasible), tuple(infeasible))
