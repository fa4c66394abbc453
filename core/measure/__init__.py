"""Measure on this machine: the peak memory of a real (random-weight) model next to the planner's prediction.

Both measurements build the architecture with ``from_config`` (random weights: memory and speed do not depend on the
weight values) on the chosen device:

- ``measure_inference``: the prefill of ``batch_size`` sequences of ``seq_len`` tokens into a KV cache, as
  ``generate()`` runs it (decoders compute only the last position's logits). Peak = weights + KV cache + the
  activations and temporary buffers alive at the busiest moment of the forward pass.
- ``measure_training_step``: one steady-state training step (forward, backward, AdamW step) with the ``"fp32"`` or
  the ``"mixed_precision"`` recipe (``torch.autocast`` 16-bit compute, fp32 master weights, gradients and AdamW
  states), with or without gradient checkpointing. A warm-up step creates the optimizer states first, as in any run.
- ``measure_finetune_step``: the same for LoRA / QLoRA fine-tuning through PEFT (``core.measure.finetune_run``).

How memory is measured (the ``method`` of every result; ``core.measure.trackers``):

- CUDA: ``torch.cuda.reset_peak_memory_stats`` / ``torch.cuda.max_memory_allocated`` around each phase: bytes of
  live tensors, as the planner counts them. The caching allocator's reserve and the CUDA context (which
  ``nvidia-smi`` adds on top) are reported apart.
- CPU: the PyTorch profiler with ``profile_memory=True`` records every allocation and free of PyTorch's CPU allocator
  together with the running total of allocated bytes; the peak of that total is the CPU twin of
  ``max_memory_allocated`` (exact tensor bytes). Process RSS would mix in the Python heap, glibc free lists and pages
  not yet returned to the OS, so it is neither repeatable nor comparable with a GPU number. Only if the profiler's
  allocation events are unavailable does the measurement fall back to RSS growth (VmHWM reset through
  /proc/self/clear_refs), and ``method`` says so.

Predictions (``predict_inference`` / ``predict_training_step``, ``core.plan.peak_memory.predict``) use the planner's formulas
in core.plan.memory (weights, KV cache, model states) and count activations the way Korthikanti et al. 2022 (§4) do —
tensor by tensor, what each layer keeps for backward — but for the Hugging Face implementation of each architecture
family, its dtypes under ``torch.autocast`` and the kernels PyTorch picks on the device (``core.plan.peak_memory.ledger``;
``ledger_table`` lists one layer).

Modules (shared leaves come from ``core.common.checks``, ``core.common.device`` and ``core.common.units``): ``inputs``,
``trackers`` (the instrument), ``ledger`` + ``predict`` (the prediction), ``results`` (typed results), ``harness``
(what the measurements share: guards, a random-weight model, a random batch), ``steps`` (the inference and training
step measurements), ``finetune_run`` (the fine-tuning one), ``report`` (tables, CSV, JSON) and ``charts`` (Plotly). Plain
Python, no Streamlit.
"""
from __future__ import annotations

from core.measure.charts import comparison_figure, components_figure
from core.plan.peak_memory.inputs import (DTYPE_BYTES, INFERENCE_DTYPES, MAX_BATCH, MAX_SEQ_LEN, RECIPES,
                                          MeasurementRefused, architecture_label, check_setting,
                                          learned_position_limit, normalize_dtype, normalize_recipe)
from core.plan.peak_memory.ledger import (AUTOCAST_FP32_OPS_CUDA, FAMILIES, LayerSpec, Runtime,
                                          cuda_has_flash_attention, training_param_count)
from core.measure.modes import (FINETUNE_MODES, LORA_MODES, MODE_LABELS, TRAINING_MODES, MeasureRequest, plan_runs,
                                predict_request, run_request)
from core.plan.peak_memory.predict import RULE_OF_THUMB_BYTES_PER_PARAM, predict_inference, predict_training_step
from core.plan.peak_memory.components import COMPONENT_LABELS, component_ids, labelled
from core.measure.report import components_table, ledger_table, result_row, results_csv, results_json, results_table
from core.measure.results import FinetuneMeasurement, InferenceMeasurement, TrainingMeasurement
from core.common.process_memory import free_released_memory as free_memory
from core.measure.finetune_run import measure_finetune_step
from core.measure.harness import CPU_FLOPS_PER_S, GUARD_MARGIN, estimated_seconds
from core.measure.steps import measure_inference, measure_training_step
from core.measure.trackers import (PhaseMemory, bf16_matmul_scratch, cpu_kernels, matmul_workspace_bytes,
                                   measurement_method, resolve_device_type, tracker_for)

__all__ = [
    "COMPONENT_LABELS", "FinetuneMeasurement", "InferenceMeasurement", "TrainingMeasurement", "component_ids",
    "labelled", "measure_finetune_step", "FINETUNE_MODES", "LORA_MODES", "MODE_LABELS", "TRAINING_MODES",
    "MeasureRequest",
    "plan_runs", "predict_request", "run_request", "cpu_kernels", "bf16_matmul_scratch", "matmul_workspace_bytes",
    "AUTOCAST_FP32_OPS_CUDA", "CPU_FLOPS_PER_S", "DTYPE_BYTES", "FAMILIES", "GUARD_MARGIN", "INFERENCE_DTYPES",
    "MAX_BATCH", "MAX_SEQ_LEN", "RECIPES", "RULE_OF_THUMB_BYTES_PER_PARAM", "LayerSpec", "MeasurementRefused",
    "PhaseMemory", "Runtime", "architecture_label", "check_setting", "comparison_figure", "components_figure",
    "components_table", "cuda_has_flash_attention", "estimated_seconds", "free_memory", "learned_position_limit",
    "ledger_table", "measure_inference", "measure_training_step", "measurement_method", "normalize_dtype",
    "normalize_recipe", "predict_inference", "predict_training_step", "resolve_device_type", "result_row",
    "results_csv", "results_json", "results_table", "tracker_for", "training_param_count",
]
