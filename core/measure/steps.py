"""The inference and training measurements: build a random-weight model, run a prefill or a training step, read the
trackers. The fine-tuning step is ``core.measure.finetune_run``; what they share, ``core.measure.harness``."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping

from core.common.device import MEMORY_DEVICE_TYPES, resolve_device
from core.common.process_memory import free_released_memory as free_memory
from core.common.scheduler import GENERATION_QUEUE
from core.plan.peak_memory.inputs import check_setting, normalize_dtype, normalize_recipe
from core.plan.peak_memory.ledger import cuda_has_flash_attention
from core.plan.peak_memory.predict import predict_inference, predict_training_step
from core.measure.harness import (build_random_model, check_time, enable_checkpointing, guard_memory, random_ids,
                                  measured_step, result_identity, step_components, tensor_bytes, training_batch,
                                  warm_up_device)
from core.measure.results import InferenceMeasurement, TrainingMeasurement
from core.plan.peak_memory.components import component_ids
from core.measure.trackers import matmul_workspace_bytes, tracker_for


def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


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
    guard_memory(predicted, dev, "this inference")
    check_time(prediction["n_params"], seq_len * batch_size, False, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    torch_dtype = _torch_dtype(dtype)
    started = time.perf_counter()
    free_memory()
    warm_up_device(dev, torch_dtype)
    base = tracker.allocated() if dev.type == "cuda" else 0
    model = ids = cache = out = None
    try:
        model = build_random_model(cfg, torch_dtype, dev, training=False).eval()
        weights = tensor_bytes(list(model.parameters()) + list(model.buffers()))
        ids = random_ids(cfg, batch_size, seq_len, dev)
        resident = (tracker.allocated() - base) if dev.type == "cuda" else weights + ids.numel() * ids.element_size()
        with torch.inference_mode(), tracker.phase() as phase:
            cache, out = _prefill(model, cfg, ids)
        kv = tensor_bytes(_cache_tensors(cache))
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, ids, cache, out
        free_memory()
    measured = resident + phase.peak
    measured_components = {"weights": float(weights), "kv_cache": float(kv),
                           "activations_peak": float(max(0, measured - weights - kv))}
    return InferenceMeasurement(
        **result_identity(cfg, dev, tracker), setting=f"{dtype}, {seq_len} tok × {batch_size}", dtype=dtype,
        seq_len=seq_len, batch_size=batch_size, n_params=prediction["n_params"], measured_peak_bytes=float(measured),
        predicted_peak_bytes=predicted, measured_components=tuple(measured_components.items()),
        predicted_components=component_ids(prediction["components"]), predicted_phase=prediction["phase"],
        textbook_peak_bytes=prediction["textbook_peak_bytes"], reserved_bytes=reserved,
        seconds=time.perf_counter() - started).to_dict()


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
    guard_memory(predicted, dev, "this training step")
    check_time(prediction["n_params"], seq_len * batch_size, True, dev, max_seconds, predicted)
    tracker = tracker_for(dev)
    started = time.perf_counter()
    free_memory()
    autocast, scaler = _autocast(dev, recipe == "mixed_precision")
    warm_up_device(dev, torch.float32)
    base = tracker.allocated() if dev.type == "cuda" else 0
    model = optimizer = batch = loss = None
    try:
        model = build_random_model(cfg, torch.float32, dev, training=True)
        model.train()
        if gradient_checkpointing:
            enable_checkpointing(model)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
        batch = training_batch(cfg, random_ids(cfg, batch_size, seq_len, dev))

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
        weights = tensor_bytes(list(model.parameters()) + list(model.buffers()))
        states = tensor_bytes([v for st in optimizer.state.values() for v in st.values() if torch.is_tensor(v)])
        resident = (tracker.allocated() - base) if dev.type == "cuda" else weights + states
        fwd, bwd, opt, grads = measured_step(tracker, forward, backward, step, optimizer, model.parameters())
        reserved = tracker.reserved() if dev.type == "cuda" else None
    finally:
        del model, optimizer, batch, loss
        free_memory()
    phases, peak_phase, measured, comps = step_components(
        resident, fwd, bwd, opt, {"weights": weights, "optimizer_states": states}, grads)
    setting = f"{recipe.replace('_', ' ')}, {seq_len} tok × {batch_size}"
    setting += ", checkpointing" if gradient_checkpointing else ""
    return TrainingMeasurement(
        **result_identity(cfg, dev, tracker), setting=setting, recipe=recipe, seq_len=seq_len, batch_size=batch_size,
        gradient_checkpointing=bool(gradient_checkpointing), n_params=prediction["n_params"],
        measured_peak_bytes=float(measured), predicted_peak_bytes=predicted, measured_components=tuple(comps.items()),
        measured_gradients_bytes=float(grads), measured_activations_bytes=float(fwd.end),
        measured_phases=tuple((k, float(v)) for k, v in phases.items()), measured_peak_phase=peak_phase,
        predicted_components=component_ids(prediction["components"]), predicted_phase=prediction["phase"],
        predicted_candidates=tuple(prediction["candidates"].items()),
        rule_of_thumb_bytes=prediction["rule_of_thumb_bytes"], textbook_peak_bytes=prediction["textbook_peak_bytes"],
        reserved_bytes=reserved, seconds=time.perf_counter() - started).to_dict()
