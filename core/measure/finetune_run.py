"""The fine-tuning measurement: the peak memory of one LoRA / QLoRA / prompt-tuning training step through PEFT on a
random-weight model (QLoRA's base quantized by bitsandbytes), next to ``core.plan.finetune``'s prediction."""
from __future__ import annotations

import gc
import time

from core.common.device import MEMORY_DEVICE_TYPES, resolve_device
from core.common.process_memory import free_released_memory as free_memory
from core.common.scheduler import GENERATION_QUEUE
from core.plan.peak_memory.inputs import check_setting
from core.measure.harness import (build_random_model, check_time, enable_checkpointing, guard_memory, random_ids,
                                  measured_step, result_identity, step_components, tensor_bytes, training_batch,
                                  warm_up_device)
from core.measure.results import FinetuneMeasurement
from core.measure.trackers import tracker_for


def _quantize_linears(model, base_precision: str, device) -> None:
    """Replace every nn.Linear except the output head by bitsandbytes' 4-bit (NF4, double quantization for
    "nf4-dq") or 8-bit layer holding the same (random) weights — what ``from_pretrained(quantization_config=
    BitsAndBytesConfig(...))`` builds, without a checkpoint on disk."""
    import bitsandbytes as bnb
    import torch

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, torch.nn.Linear) or name == "lm_head":
                continue
            if base_precision == "int8":
                layer = bnb.nn.Linear8bitLt(child.in_features, child.out_features, bias=child.bias is not None,
                                            has_fp16_weights=False)
                layer.weight = bnb.nn.Int8Params(child.weight.data.to(torch.float16), requires_grad=False,
                                                 has_fp16_weights=False).to(device)
            else:
                layer = bnb.nn.Linear4bit(child.in_features, child.out_features, bias=child.bias is not None,
                                          compute_dtype=torch.bfloat16, quant_type="nf4",
                                          compress_statistics=base_precision == "nf4-dq")
                weight = bnb.nn.Params4bit(child.weight.data.float(), requires_grad=False, quant_type="nf4",
                                           compress_statistics=base_precision == "nf4-dq")
                layer.weight = weight._quantize(device) if device.type == "cpu" else weight.to(device)
            if child.bias is not None:
                layer.bias = torch.nn.Parameter(child.bias.data, requires_grad=False)
            setattr(parent, name, layer)
            del child


def measure_finetune_step(model, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing=False,
                          device="auto", *, base_precision: str | None = None, dropout: float = 0.0,
                          max_seconds: float | None = None, num_virtual_tokens: int = 20) -> dict:
    """Peak memory of one steady-state LoRA / QLoRA / prompt-tuning training step with PEFT on ``device``, next to
    ``core.finetune.plan_finetune``'s prediction.

    ``model``: a catalog id or config dict, built with random weights (memory does not depend on the values; the
    bundled SmolLM2's architecture is "HuggingFaceTB/SmolLM2-135M-Instruct"). "lora": the base in bf16 (or
    ``base_precision`` fp16); "qlora": every linear layer but the head in bitsandbytes NF4 (double quantization by
    default, ``base_precision`` "nf4" / "int8" otherwise) with bf16 compute. PEFT ``LoraConfig(r=rank,
    lora_alpha=2·rank, lora_dropout=dropout, target_modules=...)`` ("prompt-tuning": the bf16 base with PEFT
    ``PromptTuningConfig(num_virtual_tokens=…)``, ``rank`` and ``target_modules`` unused) and AdamW on the trainable
    parameters; a warm-up step creates the optimizer states, the second step is measured phase by phase. Returns
    ``measured_peak_bytes``, ``predicted_peak_bytes``, ``error_pct``, ``device``, ``method``, components and phases.
    """
    with GENERATION_QUEUE.admit("measure"):
        return _measure_finetune_step(model, method, rank, target_modules, seq_len, batch_size,
                                      gradient_checkpointing, device, base_precision, dropout, max_seconds,
                                      num_virtual_tokens)


def _measure_finetune_step(model_name, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing,
                           device, base_precision, dropout, max_seconds, num_virtual_tokens) -> dict:
    import torch
    from peft import LoraConfig, PromptTuningConfig, TaskType, get_peft_model

    from core.plan.finetune import FinetuneError, finetune_plan, peft_target_modules

    cfg, seq_len, batch_size = check_setting(model_name, seq_len, batch_size)
    if cfg["kind"] != "decoder":
        raise FinetuneError("Fine-tuning measurements build causal language models: choose a decoder.")
    method = str(method).strip().lower()
    if method not in ("lora", "qlora", "prompt-tuning"):
        raise FinetuneError(f"measure_finetune_step measures 'lora', 'qlora' or 'prompt-tuning', got {method!r}.")
    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    bf16_ok = dev.type != "cuda" or torch.cuda.is_bf16_supported()
    plan = finetune_plan(cfg, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing, "adamw",
                         base_precision=base_precision, dropout=dropout, device_type=dev.type,
                         bf16_supported=bf16_ok, num_virtual_tokens=num_virtual_tokens)
    predicted = plan.total_bytes
    guard_memory(predicted, dev, "this fine-tuning step")
    check_time(plan.n_params, seq_len * batch_size, True, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    started = time.perf_counter()
    free_memory()
    warm_up_device(dev, torch.bfloat16)
    model = optimizer = batch = loss = None
    try:
        dtype = torch.float16 if plan.base_precision == "fp16" else torch.bfloat16
        with tracker.phase() as load:
            model = build_random_model(cfg, dtype, dev, training=True)
            if plan.base_precision in ("nf4", "nf4-dq", "int8"):
                _quantize_linears(model, plan.base_precision, dev)
            gc.collect()
            if gradient_checkpointing:
                enable_checkpointing(model)
            if method == "prompt-tuning":
                config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=int(num_virtual_tokens))
            else:
                config = LoraConfig(r=plan.rank, lora_alpha=2 * plan.rank, lora_dropout=dropout,
                                    target_modules=peft_target_modules(cfg, target_modules), bias="none")
            model = get_peft_model(model, config)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        batch = training_batch(cfg, random_ids(cfg, batch_size, seq_len, dev))

        def forward():
            out = model(**batch)
            value = out.loss
            del out
            return value

        loss = forward()  # warm-up step: creates AdamW's moments
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = None
        states = tensor_bytes([v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)])
        resident = load.end + states
        fwd, bwd, opt, grads = measured_step(tracker, forward, lambda value: value.backward(), optimizer.step,
                                             optimizer, trainable)
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, optimizer, batch, loss
        free_memory()
    phases, peak_phase, measured, comps = step_components(
        resident, fwd, bwd, opt, {"weights": load.end, "adapter_optimizer_states": states}, grads, "adapter_gradients")
    what = (f"{method}, {int(num_virtual_tokens)} virtual tokens" if method == "prompt-tuning"
            else f"{method} r={plan.rank} on {'/'.join(plan.target_modules)}")
    setting = (f"{what}, {plan.base_precision} base, {seq_len} tok × {batch_size}"
               + (", checkpointing" if gradient_checkpointing else ""))
    return FinetuneMeasurement(
        **result_identity(cfg, dev, tracker), setting=setting, finetune_method=method, rank=plan.rank,
        target_modules=plan.target_modules, base_precision=plan.base_precision, seq_len=seq_len,
        batch_size=batch_size, gradient_checkpointing=bool(gradient_checkpointing), n_params=plan.n_params,
        trainable_params=plan.trainable_params, measured_peak_bytes=float(measured), predicted_peak_bytes=predicted,
        measured_components=tuple(comps.items()), predicted_components=plan.components,
        measured_phases=tuple((k, float(v)) for k, v in phases.items()), measured_peak_phase=peak_phase,
        predicted_phase=plan.peak_phase, reserved_bytes=reserved, seconds=time.perf_counter() - started).to_dict()
