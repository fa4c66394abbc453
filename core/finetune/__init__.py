"""Fine-tuning: LoRA / QLoRA / prompt tuning / full fine-tuning planned exactly from the architecture
(``core.plan.finetune``).

Public API (a contract): ``lora_trainable_params(model, rank, target_modules) -> int`` and
``plan_finetune(model, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing=False,
optimizer="adamw") -> dict``. The measurement (real PEFT steps) is ``core.measure.measure_finetune_step``.
"""
from core.plan.finetune import (BASE_PRECISIONS, MAX_RANK, METHODS, OPTIMIZER_LABELS, OPTIMIZERS, PROJECTIONS,
                                TARGET_GROUPS, AdaptedMatrix, FinetuneError, FinetunePlan, adaptable_matrices,
                                check_base_precision, finetune_compute, finetune_plan, lora_trainable_params,
                                optimizer_state_bytes, peft_target_modules, plan_finetune,
                                PROMPT_TUNING, prompt_tuning_trainable_params,
                                resolve_targets)

__all__ = ["BASE_PRECISIONS", "MAX_RANK", "METHODS", "OPTIMIZER_LABELS", "OPTIMIZERS", "PROJECTIONS", "TARGET_GROUPS",
           "AdaptedMatrix", "FinetuneError", "FinetunePlan", "adaptable_matrices", "check_base_precision",
           "finetune_compute", "finetune_plan", "lora_trainable_params", "optimizer_state_bytes",
           "peft_target_modules", "plan_finetune", "PROMPT_TUNING", "prompt_tuning_trainable_params",
           "resolve_targets"]
