"""Training layouts: tensor × pipeline × data parallelism with ZeRO, sequence parallelism and recomputation, planned
together (pure formulas, layer 1 "plan").

Modules: ``communication`` (bytes per rank per step of the TP / PP / DP collectives: the public API real runs are
set beside), ``layout`` (model shape, layout, cluster, divisibility rules), ``memory`` (per-GPU bytes, one function
per term), ``step_time`` (FLOPs, step-time breakdown, MFU, time to train), ``search`` (one layout or all of them,
ranked), ``published`` (Narayanan et al. 2021 Table 1 and Korthikanti et al. 2022 beside the planner); figures in
``core.plan.parallel_charts``.
"""
from __future__ import annotations

from core.plan.parallel.communication import (RECOMPUTE_OPTIONS, dp_allreduce_bytes_per_step,
                                              dp_allreduce_payload_bytes_per_step, pp_p2p_bytes_per_step,
                                              ring_allreduce_factor, tp_allreduce_bytes_per_step,
                                              tp_allreduce_payload_bytes_per_step, tp_allreduces_per_layer)
from core.plan.parallel.layout import (Cluster, Layout, LayoutError, ModelShape, check_layout, default_cluster,
                                       gpt_shape, layout_advice, model_shape, why_infeasible_shape)
from core.plan.parallel.memory import (StageMemory, attention_activation_bytes, in_flight_microbatches,
                                       layer_activation_bytes, layernorm_activation_bytes, mlp_activation_bytes,
                                       peak_stage_memory, recompute_working_bytes, stage_memory,
                                       stage_params)
from core.plan.parallel.published import (KORTHIKANTI_TABLE, NARAYANAN_TABLE1, PUBLISHED_RUNS, PublishedRun,
                                          predict_published, published_comparison)
from core.plan.parallel.search import (LayoutPlan, LayoutSearch, candidate_layouts, evaluate_layout,
                                       plan_layouts)
from core.plan.parallel.step_time import (MATMUL_EFFICIENCY, StepTime, TrainingTime, elementwise_seconds,
                                          flops_per_step, step_time, training_time)

__all__ = ["Cluster", "KORTHIKANTI_TABLE", "Layout", "LayoutError", "LayoutPlan", "LayoutSearch",
           "MATMUL_EFFICIENCY", "ModelShape", "NARAYANAN_TABLE1", "PUBLISHED_RUNS", "PublishedRun",
           "RECOMPUTE_OPTIONS", "StageMemory", "StepTime", "TrainingTime", "attention_activation_bytes",
           "candidate_layouts", "check_layout", "default_cluster", "dp_allreduce_bytes_per_step",
           "dp_allreduce_payload_bytes_per_step", "elementwise_seconds", "evaluate_layout", "flops_per_step",
           "gpt_shape", "in_flight_microbatches", "layer_activation_bytes", "layernorm_activation_bytes",
           "layout_advice", "mlp_activation_bytes", "model_shape", "peak_stage_memory", "plan_layouts", "recompute_working_bytes",
           "pp_p2p_bytes_per_step", "predict_published", "published_comparison", "ring_allreduce_factor",
           "stage_memory", "stage_params", "step_time", "tp_allreduce_bytes_per_step",
           "tp_allreduce_payload_bytes_per_step", "tp_allreduces_per_layer", "training_time",
           "why_infeasible_shape"]
