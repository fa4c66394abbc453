"""Weight memory of a loaded model: every tensor it holds including bitsandbytes' quantization constants, the copy
that frees a quantized CPU model from its memory-mapped checkpoint, and the memory planner's prediction for the
same storage format (``core.plan.memory.weight_memory``)."""
from __future__ import annotations

from typing import Any

from core.common.process_memory import process_rss_bytes
from core.run.quantization.variants import VARIANT_SPECS


# ---------------------------------------------------------------------------------------------------------------------
# Memory measurement


def model_weight_bytes(model) -> int:
    """Bytes of every tensor the model holds: parameters and buffers (tied weights once) plus bitsandbytes'
    quantization state — 4-bit: absmax per block, code book, nested absmax/code/offset with double quantization
    (``Params4bit.quant_state``); int8: the fp32 row scales ``SCB`` (``Int8Params``). transformers'
    ``get_memory_footprint()`` counts only parameters and buffers, so it misses these constants."""
    seen: set[tuple[str, int]] = set()
    total = 0

    def add(tensor) -> None:
        nonlocal total
        if tensor is None or not hasattr(tensor, "data_ptr") or tensor.numel() == 0:
            return
        key = (str(tensor.device), tensor.data_ptr())
        if key in seen:
            return
        seen.add(key)
        total += tensor.numel() * tensor.element_size()

    params = list(model.parameters())
    for tensor in params:
        add(tensor)
    for tensor in model.buffers():
        add(tensor)
    for tensor in params:
        state = getattr(tensor, "quant_state", None)
        if state is not None:
            for attr in ("absmax", "code", "offset"):
                add(getattr(state, attr, None))
            nested = getattr(state, "state2", None)
            if nested is not None:
                add(getattr(nested, "absmax", None))
                add(getattr(nested, "code", None))
        for attr in ("SCB", "CB"):
            add(getattr(tensor, attr, None))
    return int(total)


def detach_from_checkpoint(model) -> int:
    """Copy the CPU parameters and buffers that are plain tensors (not bitsandbytes' Params4bit / Int8Params) into
    memory the model owns; returns the bytes copied.

    transformers loads safetensors checkpoints memory-mapped and leaves the layers bitsandbytes does not quantize
    (embeddings, norms) as zero-copy views into that mapping, so a quantized model on the CPU keeps the whole fp32
    checkpoint mapped: the quantization reads every page of it, and those pages stay in the process's resident memory
    (for SmolLM2: +538 MB next to 173 MB of nf4 weights). Copying the views lets the checkpoint be unmapped, so the
    resident memory measured afterwards is what the variant itself needs. Tied weights are one Parameter object and
    stay tied.
    """
    import torch

    copied = 0
    with torch.no_grad():
        for module in model.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                if type(param) is torch.nn.Parameter and param.device.type == "cpu":
                    param.data = param.data.clone()
                    copied += param.numel() * param.element_size()
            for name, buffer in list(module.named_buffers(recurse=False)):
                if buffer is not None and buffer.device.type == "cpu":
                    module._buffers[name] = buffer.clone()
                    copied += buffer.numel() * buffer.element_size()
    return copied


def device_memory_in_use(device) -> int:
    """Bytes this variant can grow from: CUDA allocated bytes on a GPU, process RSS on CPU."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.memory_allocated(device))
    return process_rss_bytes()




# ---------------------------------------------------------------------------------------------------------------------
# Prediction (the memory planner)


def planner_weight_format(variant: str, double_quant: bool = False) -> str:
    """The memory planner's storage format for a variant. FP4 is stored exactly like NF4 (packed 4-bit values + the
    same absmax blocks; only the 16-value code book differs), so both map to "nf4" / "nf4-dq"."""
    spec = VARIANT_SPECS[variant]
    if spec.quantization in ("nf4", "fp4"):
        return "nf4-dq" if double_quant else "nf4"
    return spec.quantization or spec.dtype


def predicted_weight_bytes(model, variant: str, *, double_quant: bool = False,
                           unquantized_dtype: str = "fp32") -> float:
    """The memory planner's weight bytes for ``model`` (catalog id or config dict) stored as ``variant``.

    ``core.plan.memory.weight_memory`` (bitsandbytes storage: quantize_4bit with blocksize 64 and fp32 absmax, 8-bit absmax +
    nested blocksize 256 with double quantization; Linear8bitLt int8 + one fp32 scale per row; layers transformers'
    get_keys_to_not_convert keeps — embeddings, norms, lm_head — in ``unquantized_dtype``), summed over components.
    """
    from core.plan import memory

    spec = VARIANT_SPECS[variant]
    keep = spec.dtype if spec.quantization is None else unquantized_dtype
    parts = memory.weight_memory(model, planner_weight_format(variant, double_quant), compute_dtype=keep)
    return float(sum(parts.values()))


def planner_model(loaded) -> Any:
    """What to give the planner: the catalog id of the bundled model, else the loaded model's config as a dict."""
    from core.run import models

    if loaded.name == models.BUNDLED_DECODER:
        return models.BUNDLED_DECODER
    return loaded.model.config.to_dict()
