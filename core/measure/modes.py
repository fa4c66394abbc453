"""What "Measure on this machine" runs and predicts for each mode — one decision, used by the page and tested.

Modes: "inference" (one prefill), "training" (one full training step), "lora", "qlora" and "prompt-tuning" (one
PEFT fine-tuning step). ``plan_runs`` lists the measurements one press of *Measure* makes; ``predict_request`` gives
the prediction shown before running; ``run_request`` runs one.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

MODE_LABELS = {"inference": "Inference (prefill)", "training": "Training step",
               "lora": "LoRA fine-tune step", "qlora": "QLoRA fine-tune step",
               "prompt-tuning": "Prompt-tuning step"}
TRAINING_MODES = ("training", "lora", "qlora", "prompt-tuning")  # modes with a backward pass (checkpointing applies)
FINETUNE_MODES = ("lora", "qlora", "prompt-tuning")
LORA_MODES = ("lora", "qlora")  # modes with a rank and target modules


@dataclass(frozen=True)
class MeasureRequest:
    """One measurement to run: the mode and the setting it needs (fields a mode does not use are ignored)."""
    mode: str
    architecture: object  # catalog id or config dict
    seq_len: int
    batch_size: int
    dtype: str = "bf16"  # inference
    recipe: str = "mixed_precision"  # training
    gradient_checkpointing: bool = False  # training, lora, qlora
    rank: int = 8  # lora, qlora
    target_modules: tuple[str, ...] = ("q", "k", "v", "o")
    num_virtual_tokens: int = 20  # prompt-tuning
    device: str = "auto"

    @property
    def what(self) -> str:
        """How the page announces the run ("a prefill", "a LoRA step with checkpointing", …)."""
        text = {"inference": "a prefill", "training": "a training step", "lora": "a LoRA fine-tuning step",
                "qlora": "a QLoRA fine-tuning step", "prompt-tuning": "a prompt-tuning step"}[self.mode]
        return text + (" with checkpointing" if self.gradient_checkpointing and self.mode in TRAINING_MODES else "")


def check_mode(mode: str) -> str:
    if mode not in MODE_LABELS:
        raise ValueError(f"Unknown measurement mode {mode!r}: use one of {', '.join(MODE_LABELS)}.")
    return mode


def plan_runs(request: MeasureRequest, both_checkpointing: bool = False) -> list[MeasureRequest]:
    """The measurements one press makes: the request itself, or — for modes with a backward pass and
    ``both_checkpointing`` — the same setting without and with gradient checkpointing."""
    check_mode(request.mode)
    if request.mode in TRAINING_MODES and both_checkpointing:
        return [replace(request, gradient_checkpointing=False), replace(request, gradient_checkpointing=True)]
    if request.mode == "inference":
        return [replace(request, gradient_checkpointing=False)]
    return [request]


def predict_request(request: MeasureRequest, device_type: str, flash_attention: bool = True) -> dict:
    """The prediction for one request on ``device_type``: a dict with at least ``predicted_peak_bytes`` and
    ``n_params`` (training adds the per-layer ``ledger``; fine-tuning ``trainable_params``)."""
    from core.measure.trackers import matmul_workspace_bytes
    from core.plan.peak_memory.predict import predict_inference, predict_training_step

    check_mode(request.mode)
    if request.mode == "inference":
        return predict_inference(request.architecture, request.dtype, request.seq_len, request.batch_size,
                                 device_type=device_type, flash_attention=flash_attention,
                                 bf16_matmul_scratch=matmul_workspace_bytes if device_type == "cpu" else False)
    if request.mode == "training":
        return predict_training_step(request.architecture, request.recipe, request.seq_len, request.batch_size,
                                     request.gradient_checkpointing, device_type=device_type,
                                     flash_attention=flash_attention)
    from core.plan.finetune import finetune_plan

    plan = finetune_plan(request.architecture, request.mode, request.rank, request.target_modules,
                         request.seq_len, request.batch_size, request.gradient_checkpointing, "adamw",
                         device_type=device_type, num_virtual_tokens=request.num_virtual_tokens)
    return {**plan.to_dict(), "predicted_peak_bytes": plan.total_bytes, "ledger": []}


def run_request(request: MeasureRequest, max_seconds: float | None = None) -> dict:
    """Run one measurement (``measure_inference`` / ``measure_training_step`` / ``measure_finetune_step``)."""
    from core.measure.finetune_run import measure_finetune_step
    from core.measure.steps import measure_inference, measure_training_step

    check_mode(request.mode)
    if request.mode == "inference":
        return measure_inference(request.architecture, request.dtype, request.seq_len, request.batch_size,
                                 device=request.device, max_seconds=max_seconds)
    if request.mode == "training":
        return measure_training_step(request.architecture, request.recipe, request.seq_len, request.batch_size,
                                     request.gradient_checkpointing, device=request.device, max_seconds=max_seconds)
    return measure_finetune_step(request.architecture, request.mode, request.rank, request.target_modules,
                                 request.seq_len, request.batch_size, request.gradient_checkpointing,
                                 device=request.device, max_seconds=max_seconds,
                                 num_virtual_tokens=request.num_virtual_tokens)
