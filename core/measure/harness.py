"""What every measurement shares: the guards that refuse a run (memory, time), a random-weight model built on the
device, a warmed-up device, a random batch, the storage bytes of tensors, the phase peaks of a training step and the
fields every result starts with. The measurements themselves are ``core.measure.steps`` (an inference prefill and a training step) and
``core.measure.finetune_run`` (LoRA / QLoRA / prompt tuning through PEFT).

Measurements take a turn in the process-wide model-work queue (``core.common.scheduler.GENERATION_QUEUE``): CUDA's
peak counter, the profiler and VmHWM are process-wide, so a generation, quantization or another measurement running
at the same time in another Streamlit session would be read as this measurement's allocations.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from core.plan import architectures
from core.plan.hardware import detect_hardware, free_device_memory_bytes
from core.common.units import GB
from core.plan.peak_memory.inputs import MeasurementRefused, architecture_label
from core.measure.trackers import cpu_kernels

GUARD_MARGIN = 1.10  # refuse when the predicted peak plus 10 % does not fit in the free memory


def guard_memory(predicted_bytes: float, device, what: str) -> float:
    """Refuse (``MeasurementRefused``) when ``predicted_bytes`` plus ``GUARD_MARGIN`` does not fit in the device's free
    memory; returns the free bytes."""
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


def check_time(n_params: int, tokens: int, training: bool, device, max_seconds: float | None, predicted: float):
    """Refuse (``MeasurementRefused``) a run ``estimated_seconds`` puts over ``max_seconds`` (no limit when None)."""
    if max_seconds is None:
        return
    eta = estimated_seconds(n_params, tokens, training, device.type)
    if eta > max_seconds:
        raise MeasurementRefused(
            f"Not measured: on this CPU the run would take about {_duration(eta)} (limit {_duration(max_seconds)}). "
            "Choose a smaller model, sequence length or batch, or measure on a GPU.", predicted)


def build_random_model(cfg: Mapping, torch_dtype, device, training: bool):
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


def warm_up_device(device, torch_dtype) -> None:
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


def random_ids(cfg: Mapping, batch_size: int, seq_len: int, device):
    """A ``batch_size`` × ``seq_len`` batch of random token ids (seed 0, so every run measures the same batch)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, cfg["vocab_size"], (batch_size, seq_len), generator=generator)
    return ids.to(device)


def tensor_bytes(tensors: Iterable) -> int:
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


def enable_checkpointing(model) -> None:
    """Non-reentrant activation checkpointing of every layer (transformers 5 name, older name as fallback)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:  # pragma: no cover - transformers < 5
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def training_batch(cfg: Mapping, ids):
    """The model inputs of a training step on ``ids``: the ids are their own labels (causal or masked LM loss)."""
    batch = {"input_ids": ids, "labels": ids}
    if cfg["kind"] != "encoder":
        batch["use_cache"] = False  # training never fills a KV cache (transformers warns and disables it too)
    return batch


def step_peak(resident: float, fwd, bwd, opt) -> tuple[dict[str, float], str, float]:
    """Peak bytes of each phase of a training step, the highest phase and its peak: each phase's peak sits on top of
    what the step holds from before it — ``resident`` (weights, states), then the forward's and backward's leftovers."""
    phases = {"forward": resident + fwd.peak, "backward": resident + fwd.end + bwd.peak,
              "optimizer step": resident + fwd.end + bwd.end + opt.peak}
    peak_phase = max(phases, key=phases.get)
    return phases, peak_phase, phases[peak_phase]


def measured_step(tracker, forward, backward, step, optimizer, grad_params) -> tuple:
    """One training step after its warm-up, each phase under ``tracker``: ``forward()`` returns the loss,
    ``backward(loss)`` and ``step()`` run the other two; the loss is dropped after the backward pass, as a training
    loop drops it. Returns the three phases and the gradients' bytes (of ``grad_params``) before the step."""
    with tracker.phase() as fwd:
        loss = forward()
    with tracker.phase() as bwd:
        backward(loss)
        loss = None
    grad_bytes = tensor_bytes([p.grad for p in grad_params])
    with tracker.phase() as opt:
        step()
    optimizer.zero_grad(set_to_none=True)
    return fwd, bwd, opt, grad_bytes


def step_components(resident: float, fwd, bwd, opt, held: Mapping[str, float], grad_bytes: float,
                    grad_key: str = "gradients") -> tuple[dict[str, float], str, float, dict[str, float]]:
    """The step's phase peaks (``step_peak``) and what makes up its peak: what it held from before (``held``), then
    the gradients if the optimizer step is the peak, else the activations the forward pass kept, and the
    temporaries at the peak (the rest)."""
    phases, peak_phase, measured = step_peak(resident, fwd, bwd, opt)
    comps = {k: float(v) for k, v in held.items()}
    if peak_phase == "optimizer step":
        comps[grad_key] = float(grad_bytes)
    else:
        comps["activations_kept"] = float(fwd.end)
    comps["temporaries_at_peak"] = float(max(0.0, measured - sum(comps.values())))
    return phases, peak_phase, measured, comps


def _device_label(device) -> str:
    info = detect_hardware(str(device))
    if info["device"] == "cuda":
        return f"cuda ({info['gpu_name']})"
    kernels = cpu_kernels()
    bf16 = ""
    if kernels["onednn_bf16"]:
        bf16 = ", oneDNN bf16 with an fp32 scratch per matmul" if kernels["bf16_matmul_scratch"] else ", native bf16"
    return f"cpu ({info['cpu_name']}, {info['cpu_cores']} cores, {kernels['aten_cpu_capability']} kernels{bf16})"


def result_identity(cfg, device, tracker) -> dict:
    """The fields every measurement result starts with: what was built, where, and how it was measured."""
    return {"architecture": architecture_label(cfg), "model_type": cfg["model_type"], "kind": cfg["kind"],
            "device": _device_label(device), "device_type": device.type, "method": tracker.method}
