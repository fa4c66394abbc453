"""Running the measurements: build a random-weight model, run a prefill or a training step, read the trackers."""
from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import Iterable, Mapping

from core.plan import architectures
from core.plan.hardware import detect_hardware, free_device_memory_bytes
from core.common.device import MEMORY_DEVICE_TYPES, resolve_device
from core.common.units import GB
from core.common.process_memory import free_released_memory as free_memory  # re-exported: core.measure.free_memory
from core.common.scheduler import GENERATION_QUEUE
from core.plan.peak_memory.inputs import (MeasurementRefused, architecture_label, check_setting, normalize_dtype,
                                 normalize_recipe)
from core.plan.peak_memory.ledger import cuda_has_flash_attention
from core.plan.peak_memory.predict import predict_inference, predict_training_step
from core.measure.results import FinetuneMeasurement, InferenceMeasurement, TrainingMeasurement
from core.plan.peak_memory.components import component_ids
from core.measure.trackers import cpu_kernels, matmul_workspace_bytes, tracker_for

GUARD_MARGIN = 1.10  # refuse when the predicted peak plus 10 % does not fit in the free memory
# Measurements take a turn in the process-wide model-work queue: CUDA's peak counter, the profiler and VmHWM are
# process-wide, so a generation, quantization or another measurement running at the same time in another Streamlit
# session would be read as this measurement's allocations.


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


def _step_peak(resident: float, fwd, bwd, opt) -> tuple[dict[str, float], str, float]:
    """Peak bytes of each phase of a training step, the highest phase and its peak: each phase's peak sits on top of
    what the step holds from before it — ``resident`` (weights, states), then the forward's and backward's leftovers."""
    phases = {"forward": resident + fwd.peak, "backward": resident + fwd.end + bwd.peak,
              "optimizer step": resident + fwd.end + bwd.end + opt.peak}
    peak_phase = max(phases, key=phases.get)
    return phases, peak_phase, phases[peak_phase]


def _tensor_bytes(tensors: Iterable) -> int:
    """Bytes of distinct storages among ``tensors`` (tied weights and views counted once)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        storage = t.untyped_storage()
        key = (storage.data_ptr(), t.device)
        if key in seen or storage.nbytes() == 0:
            continue
        seen.add(key)
        total += storage.nbytes()
    return total


def _build(cfg: Mapping, torch_dtype, device, training: bool):
    """A random-weight model of the architecture, built directly on ``device`` in ``torch_dtype``."""
    import torch
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoModelForSeq2SeqLM

    hf = architectures.hf_config(cfg)
    kind = cfg["kind"]
    if kind == "decoder":
        auto = AutoModelForCausalLM
    elif kind == "encoder-decoder":
        auto = AutoModelForSeq2SeqLM
    else:
        auto = AutoModelForMaskedLM if training else AutoModel
    with torch.device(device):
        model = auto.from_config(hf, dtype=torch_dtype, attn_implementation="sdpa")
    architectures.apply_checkpoint_tying(model, cfg)
    return model.to(device)




def _warm_up_device(device, torch_dtype) -> None:
    """Run a tiny linear forward/backward on ``device`` so per-thread cuBLAS / cuBLASLt workspaces (which PyTorch
    keeps allocated once created) exist before the baseline is taken."""
    import torch

    if device.type != "cuda":
        return
    x = torch.ones(16, 16, device=device, dtype=torch_dtype, requires_grad=True)
    w = torch.ones(16, 16, device=device, dtype=torch_dtype, requires_grad=True)
    b = torch.ones(16, device=device, dtype=torch_dtype, requires_grad=True)
    (torch.nn.functional.linear(x, w, b) @ w).float().sum().backward()
    with torch.autocast("cuda", dtype=torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16):
        y = torch.nn.functional.linear(x.float(), w.float(), b.float())
    y.float().sum().backward()
    torch.cuda.synchronize(device)
    del x, w, b, y


def _random_ids(cfg: Mapping, batch_size: int, seq_len: int, device):
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab_size"], (batch_size, seq_len), generator=generator)
    return ids.to(device)


def _prefill(model, cfg: Mapping, ids):
    """One prefill pass with a KV cache, keeping only the last position's logits (as ``generate`` does)."""
    kind = cfg["kind"]
    if kind == "decoder":
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        return out.past_key_values, out.logits
    if kind == "encoder-decoder":
        from transformers import DynamicCache, EncoderDecoderCache

        encoder_out = model.get_encoder()(input_ids=ids)
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        decoder_out = model.get_decoder()(input_ids=ids, encoder_hidden_states=encoder_out.last_hidden_state,
                                          past_key_values=cache, use_cache=True)
        logits = model.lm_head(decoder_out.last_hidden_state[:, -1:, :])
        return decoder_out.past_key_values, (logits, encoder_out.last_hidden_state)
    out = model(input_ids=ids)
    return None, out.last_hidden_state


def _cache_tensors(cache) -> list:
    if cache is None:
        return []
    caches = [cache.self_attention_cache, cache.cross_attention_cache] if hasattr(cache, "cross_attention_cache") \
        else [cache]
    tensors = []
    for c in caches:
        for layer in getattr(c, "layers", []):
            tensors += [getattr(layer, "keys", None), getattr(layer, "values", None)]
    return [t for t in tensors if t is not None and t.numel() > 0]


def _device_label(device) -> str:
    info = detect_hardware(str(device))
    if info["device"] == "cuda":
        return f"cuda ({info['gpu_name']})"
    kernels = cpu_kernels()
    bf16 = ""
    if kernels["onednn_bf16"]:
        bf16 = ", oneDNN bf16 with an fp32 scratch per matmul" if kernels["bf16_matmul_scratch"] else ", native bf16"
    return f"cpu ({info['cpu_name']}, {info['cpu_cores']} cores, {kernels['aten_cpu_capability']} kernels{bf16})"


def _guard(predicted_bytes: float, device, what: str) -> float:
    free = free_device_memory_bytes(str(device))
    if predicted_bytes * GUARD_MARGIN > free:
        where = "GPU memory" if device.type == "cuda" else "RAM"
        raise MeasurementRefused(
            f"Not measured: {what} is predicted to peak at {predicted_bytes / GB:.2f} GB, and this machine has "
            f"{free / GB:.2f} GB of free {where} (a {int((GUARD_MARGIN - 1) * 100)} % margin is kept). Choose a "
            "smaller model, sequence length or batch, or run it on a bigger machine.",
            predicted_bytes, free)
    return free


CPU_FLOPS_PER_S = 2e10  # a conservative guess for PyTorch on a few CPU cores; only used to refuse hour-long runs


def estimated_seconds(n_params: int, tokens: int, training: bool, device_type: str) -> float:
    """Rough run time: 2·N FLOPs per token forward, 6·N with backward (Kaplan et al. 2020), ×2 for the warm-up step
    of a training measurement, at ``CPU_FLOPS_PER_S`` on CPU (GPUs are never refused for time)."""
    if device_type == "cuda":
        return 0.0
    flops = (2 * 6 if training else 2) * n_params * tokens
    return flops / CPU_FLOPS_PER_S


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _check_time(n_params: int, tokens: int, training: bool, device, max_seconds: float | None, predicted: float):
    if max_seconds is None:
        return
    eta = estimated_seconds(n_params, tokens, training, device.type)
    if eta > max_seconds:
        raise MeasurementRefused(
            f"Not measured: on this CPU the run would take about {_duration(eta)} (limit {_duration(max_seconds)}). "
            "Choose a smaller model, sequence length or batch, or measure on a GPU.", predicted)


def _identity(cfg, device, tracker) -> dict:
    """The fields every measurement result starts with: what was built, where, and how it was measured."""
    return {"architecture": architecture_label(cfg), "model_type": cfg["model_type"], "kind": cfg["kind"],
            "device": _device_label(device), "device_type": device.type, "method": tracker.method}


def measure_inference(architecture, dtype, seq_len, batch_size, device="auto", *,
                      max_seconds: float | None = None) -> dict:
    """Peak memory of one prefill (weights + KV cache + activations) on ``device``, next to the prediction.

    Returns ``measured_peak_bytes``, ``predicted_peak_bytes``, ``error_pct`` ((predicted − measured)/measured),
    ``device``, ``method``, ``measured_components`` / ``predicted_components`` (weights, KV cache, activations),
    ``textbook_peak_bytes`` (weights + KV + the planner's 20 % workspace), ``seconds`` and the setting.
    Raises ``MeasurementRefused`` (with the predicted peak) when it would not fit in the free memory, and
    ValueError / ArchitectureError for bad input.
    """
    with GENERATION_QUEUE.admit("measure"):
        return _measure_inference(architecture, dtype, seq_len, batch_size, device, max_seconds)


def _measure_inference(architecture, dtype, seq_len, batch_size, device, max_seconds) -> dict:
    import torch

    cfg, seq_len, batch_size = check_setting(architecture, seq_len, batch_size)
    dtype = normalize_dtype(dtype)
    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    if dev.type == "cuda" and dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU has no bf16 support (compute capability < 8.0): choose fp16 or fp32.")
    flash = dev.type != "cuda" or cuda_has_flash_attention(dev)
    prediction = predict_inference(cfg, dtype, seq_len, batch_size, device_type=dev.type, flash_attention=flash,
                                   bf16_matmul_scratch=matmul_workspace_bytes if dev.type == "cpu" else False)
    predicted = prediction["predicted_peak_bytes"]
    _guard(predicted, dev, "this inference")
    _check_time(prediction["n_params"], seq_len * batch_size, False, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    torch_dtype = _torch_dtype(dtype)
    started = time.perf_counter()
    free_memory()
    _warm_up_device(dev, torch_dtype)
    base = tracker.allocated() if dev.type == "cuda" else 0
    model = ids = cache = out = None
    try:
        model = _build(cfg, torch_dtype, dev, training=False).eval()
        weights = _tensor_bytes(list(model.parameters()) + list(model.buffers()))
        ids = _random_ids(cfg, batch_size, seq_len, dev)
        resident = (tracker.allocated() - base) if dev.type == "cuda" else weights + ids.numel() * ids.element_size()
        with torch.inference_mode(), tracker.phase() as phase:
            cache, out = _prefill(model, cfg, ids)
        kv = _tensor_bytes(_cache_tensors(cache))
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, ids, cache, out
        free_memory()
    measured = resident + phase.peak
    measured_components = {"weights": float(weights), "kv_cache": float(kv),
                           "activations_peak": float(max(0, measured - weights - kv))}
    return InferenceMeasurement(
        **_identity(cfg, dev, tracker), setting=f"{dtype}, {seq_len} tok × {batch_size}", dtype=dtype,
        seq_len=seq_len, batch_size=batch_size, n_params=prediction["n_params"], measured_peak_bytes=float(measured),
        predicted_peak_bytes=predicted, measured_components=tuple(measured_components.items()),
        predicted_components=component_ids(prediction["components"]), predicted_phase=prediction["phase"],
        textbook_peak_bytes=prediction["textbook_peak_bytes"], reserved_bytes=reserved,
        seconds=time.perf_counter() - started).to_dict()


def _enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing of every layer (transformers 5 name, older name as fallback)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - transformers < 5
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _training_batch(cfg: Mapping, ids):
    batch = {"input_ids": ids, "labels": ids}
    if cfg["kind"] != "encoder":
        batch["use_cache"] = False  # training never fills a KV cache (transformers warns and disables it too)
    return batch


def _autocast(device, enabled: bool):
    import torch

    if not enabled:
        return contextlib.nullcontext(), None
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.bfloat16
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    return torch.autocast(device.type, dtype=dtype), scaler


def measure_training_step(architecture, recipe, seq_len, batch_size, gradient_checkpointing=False, device="auto",
                          *, max_seconds: float | None = None) -> dict:
    """Peak memory of one steady-state training step (forward, backward, AdamW step) on ``device``.

    ``recipe``: "fp32" (fp32 weights, gradients, AdamW states, fp32 compute) or "mixed_precision" (torch.autocast
    bf16 — fp16 with a GradScaler on GPUs without bf16 — over fp32 master weights, fp32 gradients and AdamW states).
    A warm-up step creates the optimizer states; the second step is measured phase by phase. Returns
    ``measured_peak_bytes``, ``predicted_peak_bytes``, ``error_pct``, ``rule_of_thumb_bytes`` (24 B/param),
    ``textbook_peak_bytes`` (16 B/param + Korthikanti activations), ``device``, ``method``, per-component numbers
    (``measured_components``: weights, optimizer states, gradients, activations kept for backward incl. autocast's
    weight copies, and the temporaries at the peak), ``measured_phases`` and the setting.
    """
    with GENERATION_QUEUE.admit("measure"):
        return _measure_training_step(architecture, recipe, seq_len, batch_size, gradient_checkpointing, device,
                                      max_seconds)


def _measure_training_step(architecture, recipe, seq_len, batch_size, gradient_checkpointing, device,
                           max_seconds) -> dict:
    import torch

    cfg, seq_len, batch_size = check_setting(architecture, seq_len, batch_size)
    recipe = normalize_recipe(recipe)
    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    flash = dev.type != "cuda" or cuda_has_flash_attention(dev)
    prediction = predict_training_step(cfg, recipe, seq_len, batch_size, gradient_checkpointing, dev.type, flash)
    predicted = prediction["predicted_peak_bytes"]
    _guard(predicted, dev, "this training step")
    _check_time(prediction["n_params"], seq_len * batch_size, True, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    started = time.perf_counter()
    free_memory()
    autocast, scaler = _autocast(dev, recipe == "mixed_precision")
    _warm_up_device(dev, torch.float32)
    base = tracker.allocated() if dev.type == "cuda" else 0
    model = optimizer = batch = loss = None
    try:
        model = _build(cfg, torch.float32, dev, training=True)
        model.train()
        if gradient_checkpointing:
            _enable_checkpointing(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        batch = _training_batch(cfg, _random_ids(cfg, batch_size, seq_len, dev))

        def forward():
            with autocast:
                out = model(**batch)
            value = out.loss
            del out  # a training loop keeps the loss, not the logits
            return value

        def backward(value):
            (scaler.scale(value) if scaler else value).backward()

        def step():
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()

        loss = forward()  # warm-up step: creates AdamW's moments (and the GradScaler's state)
        backward(loss)
        step()
        optimizer.zero_grad(set_to_none=True)
        loss = None
        weights = _tensor_bytes(list(model.parameters()) + list(model.buffers()))
        states = _tensor_bytes([v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)])
        resident = (tracker.allocated() - base) if dev.type == "cuda" else weights + states
        with tracker.phase() as fwd:
            loss = forward()
        with tracker.phase() as bwd:
            backward(loss)
            loss = None
        grads = _tensor_bytes([p.grad for p in model.parameters()])
        with tracker.phase() as opt:
            step()
        optimizer.zero_grad(set_to_none=True)
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, optimizer, batch, loss
        free_memory()
    phases, peak_phase, measured = _step_peak(resident, fwd, bwd, opt)
    comps = {"weights": float(weights), "optimizer_states": float(states)}
    if peak_phase == "optimizer step":
        comps["gradients"] = float(grads)
    else:
        comps["activations_kept"] = float(fwd.end)
    comps["temporaries_at_peak"] = float(max(0.0, measured - sum(comps.values())))
    setting = f"{recipe.replace('_', ' ')}, {seq_len} tok × {batch_size}"
    setting += ", checkpointing" if gradient_checkpointing else ""
    return TrainingMeasurement(
        **_identity(cfg, dev, tracker), setting=setting, recipe=recipe, seq_len=seq_len, batch_size=batch_size,
        gradient_checkpointing=bool(gradient_checkpointing), n_params=prediction["n_params"],
        measured_peak_bytes=float(measured), predicted_peak_bytes=predicted, measured_components=tuple(comps.items()),
        measured_gradients_bytes=float(grads), measured_activations_bytes=float(fwd.end),
        measured_phases=tuple((k, float(v)) for k, v in phases.items()), measured_peak_phase=peak_phase,
        predicted_components=component_ids(prediction["components"]), predicted_phase=prediction["phase"],
        predicted_candidates=tuple(prediction["candidates"].items()),
        rule_of_thumb_bytes=prediction["rule_of_thumb_bytes"], textbook_peak_bytes=prediction["textbook_peak_bytes"],
        reserved_bytes=reserved, seconds=time.perf_counter() - started).to_dict()


# ---------------------------------------------------------------------------------------------------------------
# Fine-tuning (LoRA / QLoRA through PEFT)
# ---------------------------------------------------------------------------------------------------------------
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
    _guard(predicted, dev, "this fine-tuning step")
    _check_time(plan.n_params, seq_len * batch_size, True, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    started = time.perf_counter()
    free_memory()
    _warm_up_device(dev, torch.bfloat16)
    model = optimizer = batch = loss = None
    try:
        dtype = torch.float16 if plan.base_precision == "fp16" else torch.bfloat16
        with tracker.phase() as load:
            model = _build(cfg, dtype, dev, training=True)
            if plan.base_precision in ("nf4", "nf4-dq", "int8"):
                _quantize_linears(model, plan.base_precision, dev)
            gc.collect()
            if gradient_checkpointing:
                _enable_checkpointing(model)
            if method == "prompt-tuning":
                config = PromptTuningConfig(task_type=TaskType.CAUSAL_LM, num_virtual_tokens=int(num_virtual_tokens))
            else:
                config = LoraConfig(r=plan.rank, lora_alpha=2 * plan.rank, lora_dropout=dropout,
                                    target_modules=peft_target_modules(cfg, target_modules), bias="none")
            model = get_peft_model(model, config)
        model.train()
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        batch = _training_batch(cfg, _random_ids(cfg, batch_size, seq_len, dev))

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
        states = _tensor_bytes([v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)])
        resident = load.end + states
        with tracker.phase() as fwd:
            loss = forward()
        with tracker.phase() as bwd:
            loss.backward()
            loss = None
        grads = _tensor_bytes([p.grad for p in trainable])
        with tracker.phase() as opt:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, optimizer, batch, loss
        free_memory()
    phases, peak_phase, measured = _step_peak(resident, fwd, bwd, opt)
    comps = {"weights": float(load.end), "adapter_optimizer_states": float(states)}
    if peak_phase == "optimizer step":
        comps["adapter_gradients"] = float(grads)
    else:
        comps["activations_kept"] = float(fwd.end)
    comps["temporaries_at_peak"] = float(max(0.0, measured - sum(comps.values())))
    what = (f"{method}, {int(num_virtual_tokens)} virtual tokens" if method == "prompt-tuning"
            else f"{method} r={plan.rank} on {'/'.join(plan.target_modules)}")
    setting = (f"{what}, {plan.base_precision} base, {seq_len} tok × {batch_size}"
               + (", checkpointing" if gradient_checkpointing else ""))
    return FinetuneMeasurement(
        **_identity(cfg, dev, tracker), setting=setting, finetune_method=method, rank=plan.rank,
        target_modules=plan.target_modules, base_precision=plan.base_precision, seq_len=seq_len,
        batch_size=batch_size, gradient_checkpointing=bool(gradient_checkpointing), n_params=plan.n_params,
        trainable_params=plan.trainable_params, measured_peak_bytes=float(measured), predicted_peak_bytes=predicted,
        measured_components=tuple(comps.items()), predicted_components=plan.components,
        measured_phases=tuple((k, float(v)) for k, v in phases.items()), measured_peak_phase=peak_phase,
        predicted_phase=plan.peak_phase, reserved_bytes=reserved, seconds=time.perf_counter() - started).to_dict()
