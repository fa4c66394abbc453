"""Measure on this machine: the peak memory of a real (random-weight) model next to the planner's prediction.

Both measurements build the architecture with ``from_config`` (random weights: memory and speed do not depend on the
weight values) on the chosen device:

- ``measure_inference``: the prefill of ``batch_size`` sequences of ``seq_len`` tokens into a KV cache, as
  ``generate()`` runs it (decoders compute only the last position's logits). Peak = weights + KV cache + the
  activations and temporary buffers alive at the busiest moment of the forward pass.
- ``measure_training_step``: one steady-state training step (forward, backward, AdamW step) with the ``"fp32"`` or
  the ``"mixed_precision"`` recipe (``torch.autocast`` 16-bit compute, fp32 master weights, gradients and AdamW
  states), with or without gradient checkpointing. A warm-up step creates the optimizer states first, as in any run.

How memory is measured (the ``method`` of every result):

- CUDA: ``torch.cuda.reset_peak_memory_stats`` / ``torch.cuda.max_memory_allocated`` around each phase: bytes of
  live tensors, as the planner counts them. The caching allocator's reserve and the CUDA context (which
  ``nvidia-smi`` adds on top) are reported apart.
- CPU: the PyTorch profiler with ``profile_memory=True`` records every allocation and free of PyTorch's CPU allocator
  together with the running total of allocated bytes; the peak of that total is the CPU twin of
  ``max_memory_allocated`` (exact tensor bytes). Process RSS would mix in the Python heap, glibc free lists and pages
  not yet returned to the OS, so it is neither repeatable nor comparable with a GPU number. Only if the profiler's
  allocation events are unavailable does the measurement fall back to RSS growth (VmHWM reset through
  /proc/self/clear_refs), and ``method`` says so.

Predictions (``predict_inference`` / ``predict_training_step``) use the planner's formulas in core.memory (weights,
KV cache, model states) and count activations the way Korthikanti et al. 2022 (§4) do — tensor by tensor, what each
layer keeps for backward — but for the Hugging Face implementation of each architecture family, its dtypes under
``torch.autocast`` and the kernels PyTorch picks on the device (the "ledger" section below; ``ledger_table`` lists
one layer).

Plain Python, no Streamlit.
"""
from __future__ import annotations

import contextlib
import gc
import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core import architectures, memory
from core.architectures import ArchitectureError
from core.hardware import GB, detect_hardware, free_device_memory_bytes

RECIPES = ("fp32", "mixed_precision")
INFERENCE_DTYPES = ("fp32", "fp16", "bf16")
DTYPE_BYTES = {name: int(memory.BYTES_PER_PARAM[name]) for name in INFERENCE_DTYPES}
# Course notes' 24 B/param (weights 4 + Adam 8 + gradients 4 + activations/temp 8), from core.memory's recipe table.
RULE_OF_THUMB_BYTES_PER_PARAM = sum(memory.training_bytes_per_param("rule_of_thumb").values())
GUARD_MARGIN = 1.10  # refuse when the predicted peak plus 10 % does not fit in the free memory
# One measurement at a time per process: CUDA's peak counter and the profiler are process-wide, so two Streamlit
# sessions measuring at once would read each other's allocations.
_MEASURE_LOCK = threading.Lock()
MAX_SEQ_LEN = 131_072
MAX_BATCH = 4096


class MeasurementRefused(ValueError):
    """A measurement that would not fit (or would take too long) here; the message is user-facing and carries the
    predicted peak. Attributes: ``predicted_peak_bytes``, ``free_bytes``."""

    def __init__(self, message: str, predicted_peak_bytes: float, free_bytes: float | None = None):
        super().__init__(message)
        self.predicted_peak_bytes = float(predicted_peak_bytes)
        self.free_bytes = None if free_bytes is None else float(free_bytes)


# ---------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------
def _check_int(value, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}.")
    return int(value)


def _inference_dtype(dtype) -> str:
    try:
        import torch

        if isinstance(dtype, torch.dtype):
            dtype = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    key = str(dtype).strip().lower().replace("float32", "fp32").replace("float16", "fp16").replace(
        "bfloat16", "bf16")
    if key not in INFERENCE_DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use one of {', '.join(INFERENCE_DTYPES)}.")
    return key


def _recipe(recipe) -> str:
    key = str(recipe).strip().lower().replace("-", "_").replace(" ", "_")
    if key in ("mixed", "amp", "mixed_precision"):
        return "mixed_precision"
    if key == "fp32":
        return "fp32"
    raise ValueError(f"Unknown training recipe {recipe!r}: use 'fp32' or 'mixed_precision'.")


def learned_position_limit(architecture) -> int | None:
    """Longest sequence a model with learned absolute position embeddings accepts (GPT-2, BERT, RoBERTa);
    None for rotary / relative / ALiBi positions, which have no hard limit."""
    cfg = architectures.get_config(architecture)
    if cfg["model_type"] not in ("gpt2", "bert", "roberta"):
        return None
    return cfg["max_position_embeddings"] - (2 if cfg["model_type"] == "roberta" else 0)


def _setting(architecture, seq_len, batch_size) -> tuple[dict, int, int]:
    cfg = architectures.get_config(architecture)  # ArchitectureError (a ValueError) for unknown / malformed input
    seq_len = _check_int(seq_len, "Sequence length (tokens)", 1, MAX_SEQ_LEN)
    batch_size = _check_int(batch_size, "Batch size (sequences)", 1, MAX_BATCH)
    limit = learned_position_limit(cfg)
    if limit is not None and seq_len > limit:
        raise ValueError(f"{architectures.display_name(cfg.get('_name_or_path') or cfg['model_type'])} has learned "
                         f"position embeddings for {limit:,} tokens; choose a sequence length ≤ {limit:,}.")
    return cfg, seq_len, batch_size


def architecture_label(cfg: Mapping) -> str:
    """A short name for results tables: the catalog id / config name, else the model type and shape."""
    name = cfg.get("_name_or_path")
    if name:
        return architectures.display_name(name)
    return (f"{cfg['model_type']} {cfg['num_hidden_layers']}L×{cfg['hidden_size']}"
            f"{' (custom config)'}")


# ---------------------------------------------------------------------------------------------------------------
# Memory trackers (one per device type); a phase yields its peak and its net change in bytes
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class PhaseMemory:
    """Bytes allocated during one phase, relative to its start: ``peak`` (highest point) and ``end`` (net change)."""
    peak: int = 0
    end: int = 0


class _CudaTracker:
    method = ("torch.cuda.max_memory_allocated (reset_peak_memory_stats before each phase): bytes of live tensors; "
              "the caching allocator's reserve and the CUDA context are not included")

    def __init__(self, device):
        self.device = device

    def allocated(self) -> int:
        import torch

        torch.cuda.synchronize(self.device)
        return int(torch.cuda.memory_allocated(self.device))

    @contextlib.contextmanager
    def phase(self):
        import torch

        result = PhaseMemory()
        start = self.allocated()
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            yield result
        finally:
            torch.cuda.synchronize(self.device)
            result.peak = max(0, int(torch.cuda.max_memory_allocated(self.device)) - start)
            result.end = int(torch.cuda.memory_allocated(self.device)) - start

    def reserved(self) -> int:
        import torch

        return int(torch.cuda.memory_reserved(self.device))


def _walk(events):
    stack = list(events)
    while stack:
        event = stack.pop()
        yield event
        stack.extend(event.children)


class _CpuProfilerTracker:
    method = ("torch.profiler allocation events (profile_memory=True): peak of the bytes allocated by PyTorch's CPU "
              "allocator, the CPU twin of torch.cuda.max_memory_allocated")

    def __init__(self, device):
        self.device = device

    @contextlib.contextmanager
    def phase(self):
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        result = PhaseMemory()
        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        prof.__enter__()
        try:
            yield result
        finally:
            prof.__exit__(None, None, None)
            allocations = [e for e in _walk(prof.profiler.kineto_results.experimental_event_tree())
                           if e.typed[0] == _EventType.Allocation and str(e.typed[1].device).startswith("cpu")]
            if allocations:
                allocations.sort(key=lambda e: e.start_time_ns)
                first = allocations[0].typed[1]
                # The reporter's running total is process-wide: take it relative to the phase's first event.
                base = first.total_allocated - first.alloc_size
                totals = [e.typed[1].total_allocated - base for e in allocations]
                result.peak = max(0, max(totals))
                result.end = totals[-1]

    @staticmethod
    def available() -> bool:
        try:
            import torch
            from torch._C._profiler import _EventType  # noqa: F401
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                torch.empty(1024)
            return hasattr(prof.profiler.kineto_results, "experimental_event_tree")
        except Exception:  # noqa: BLE001 - any failure means: use the RSS fallback
            return False


class _CpuRssTracker:
    method = ("process RSS growth (peak VmHWM after /proc/self/clear_refs): includes allocator slack, less exact "
              "than tensor bytes")

    def __init__(self, device):
        self.device = device

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    @contextlib.contextmanager
    def phase(self):
        result = PhaseMemory()
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS (Linux ≥ 4.0)
        except OSError:
            pass
        start = self._status("VmRSS")
        try:
            yield result
        finally:
            result.peak = max(0, self._status("VmHWM") - start)
            result.end = self._status("VmRSS") - start


_PROFILER_OK: bool | None = None


def _tracker(device):
    global _PROFILER_OK
    if device.type == "cuda":
        return _CudaTracker(device)
    if _PROFILER_OK is None:
        _PROFILER_OK = _CpuProfilerTracker.available()
    return _CpuProfilerTracker(device) if _PROFILER_OK else _CpuRssTracker(device)


def resolve_device_type(device: str = "auto") -> str:
    """"cuda" or "cpu" for a device string ("auto" = CUDA when available); ValueError for an unusable device."""
    from core.hardware import _resolve_device

    return _resolve_device(device).type


def measurement_method(device: str = "auto") -> str:
    """How peaks are measured on ``device`` (the ``method`` string the results carry)."""
    from core.hardware import _resolve_device

    return _tracker(_resolve_device(device)).method


# ---------------------------------------------------------------------------------------------------------------
# Building and running the models
# ---------------------------------------------------------------------------------------------------------------
def _torch_dtype(name: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[name]


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


def _free(*objects) -> None:
    import torch

    del objects
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


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
    return f"cpu ({info['cpu_name']}, {info['cpu_cores']} cores)"


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


def _error_pct(predicted: float, measured: float) -> float | None:
    """(predicted − measured) / measured in %: positive = the planner over-estimates."""
    return None if not measured else 100.0 * (predicted - measured) / measured


# ---------------------------------------------------------------------------------------------------------------
# Prediction: the planner's formulas, with activations counted tensor by tensor for each architecture family
# ---------------------------------------------------------------------------------------------------------------
# Korthikanti et al. 2022 (§4, Table 2) count the tensors one transformer layer keeps for backward; their
# s·b·h·(34 + 5·a·s/h) assumes Megatron's fused kernels and 16-bit activations. The Hugging Face models built here
# keep other tensors: torch.autocast leaves the residual stream and the norms in fp32 and casts every matmul input to
# 16 bits (one copy per consumer); GPT-2's "gelu_new" runs as seven elementwise ops; PyTorch's SDPA kernels keep the
# attention output and its log-sum-exp instead of the s×s scores (flash / memory-efficient), or fp32 scores on the
# math fallback. The ledgers below list those tensors with their bytes per token, read off the transformers 5 model
# code (modeling_gpt2 / modeling_llama / modeling_bert / modeling_t5) and PyTorch's documented rules:
#   - autocast op lists (PyTorch "Automatic Mixed Precision package" docs): on CUDA layer_norm, pow, rsqrt, softmax
#     and log_softmax run in fp32; on CPU only matmul-like ops change dtype; the 16-bit copy of every fp32 weight is
#     cached for the whole autocast region ("cache_enabled"), activations are cast per consumer;
#   - autograd saves an input only when its backward formula needs it (tools/autograd/derivatives.yaml);
#   - dropout keeps a 1-byte mask on CUDA (native_dropout) and a noise tensor of the input's dtype on CPU;
#   - SDPA kernel choice (torch.nn.attention docs): flash for 16-bit inputs without a float mask (GQA included),
#     memory-efficient for fp32 or a float mask (no GQA), else the math path, which upcasts 16-bit q/k/v to fp32
#     and keeps the s×s softmax; on CPU the flash kernel runs unless dropout is on or the mask needs a gradient;
#   - AdamW (torch.optim; foreach on CUDA) allocates one fp32 temporary per parameter in its step (``_foreach_sqrt``
#     of the second moments); the CPU loop needs two temporaries of one tensor at a time.
AUTOCAST_FP32_OPS_CUDA = ("layer_norm", "pow", "rsqrt", "softmax", "log_softmax")


@dataclass(frozen=True)
class Runtime:
    """How a setting runs: device type, training or not, autocast, bytes of compute and residual-stream values."""
    device: str  # "cuda" | "cpu"
    training: bool
    autocast: bool  # training with torch.autocast: 16-bit matmuls, fp32 weights
    p: int  # bytes of a matmul output (the compute dtype)
    r: int  # bytes of the residual stream, norms and embeddings (fp32 under autocast: the weights are fp32)
    flash: bool = True  # CUDA: flash attention kernels exist (compute capability ≥ 8.0)

    def upcast(self, op: str) -> bool:
        """True when autocast runs ``op`` in fp32 on this device."""
        return self.autocast and self.device == "cuda" and op in AUTOCAST_FP32_OPS_CUDA

    def mask_bytes(self, value_bytes: int) -> int:
        """Bytes per element a dropout keeps for backward (CUDA: bool mask; CPU: the scaled noise tensor)."""
        return 1 if self.device == "cuda" else value_bytes

    def matmul_input(self, value_bytes: int, consumers: int = 1) -> int:
        """Bytes per element kept by ``consumers`` matmuls reading one activation: under autocast each one casts
        its own 16-bit copy of an fp32 activation; otherwise they all keep the same tensor."""
        if self.autocast and value_bytes > 2:
            return 2 * consumers
        return value_bytes


def _runtime(device_type: str, training: bool, recipe: str | None = None, dtype: str | None = None,
             flash: bool = True) -> Runtime:
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"device_type must be 'cuda' or 'cpu', got {device_type!r}.")
    if training:
        mixed = recipe == "mixed_precision"
        return Runtime(device_type, True, mixed, 2 if mixed else 4, 4, flash)
    p = DTYPE_BYTES[dtype]
    return Runtime(device_type, False, False, p, p, flash)


def cuda_has_flash_attention(device=None) -> bool:
    """PyTorch's flash-attention kernels need compute capability 8.0+ (Ampere or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)


def _hf(hf, name: str, default=0.0):
    value = getattr(hf, name, None)
    return default if value is None else value


def _sdpa_backend(rt: Runtime, head_dim: int, float_mask: bool, gqa: bool, dropout: float,
                  mask_needs_grad: bool = False) -> str:
    """The kernel ``scaled_dot_product_attention`` picks for this setting (rules above)."""
    dropout = dropout if rt.training else 0.0
    if rt.device == "cuda":
        if rt.flash and rt.p == 2 and head_dim <= 256 and not float_mask:
            return "flash"  # also serves GQA (enable_gqa), which the memory-efficient kernel does not
        return "efficient" if not gqa else "math"
    if dropout > 0 or (mask_needs_grad and rt.training):
        return "math"
    return "flash"


def _activation(rt: Runtime, act: str) -> tuple[float, int, str]:
    """(bytes per element kept by the activation apart from its output, bytes per element of its output, label)."""
    act = (act or "gelu").lower()
    if act in ("gelu_new", "gelu_fast", "gelu_python", "gelu_pytorch_tanh_python"):
        # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) as separate ops: pow keeps x, tanh its output, the product
        # both factors (0.5·x and 1 + tanh). Under CUDA autocast pow runs in fp32, which promotes the rest.
        wide = 4 if rt.upcast("pow") else rt.p
        return wide + wide + rt.p + wide, wide, "gelu_new (tanh GELU as separate ops)"
    if act == "relu":
        return 0, rt.p, "ReLU (keeps its output)"
    return rt.p, rt.p, f"{act} (keeps its input)"


@dataclass
class LayerSpec:
    """The parts of a transformer block that decide what it keeps."""
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    norm: str  # "layernorm" (nn.LayerNorm) | "rmsnorm" (HF python RMSNorm / T5LayerNorm)
    post_ln: bool  # BERT: LayerNorm after each residual add
    fused_qkv: bool  # GPT-2's c_attn: q, k, v are views of one matmul output
    rope: bool
    act: str
    gated: bool
    attn_dropout: float
    resid_dropout: float
    ffn_inner_dropout: float = 0.0  # T5: dropout on the gated product inside the FFN
    float_mask: bool = False  # T5: relative position bias passed as a float mask
    mask_needs_grad: bool = False
    cross_attention: bool = False  # T5 decoder
    cross_mask_needs_grad: bool = False  # T5 under checkpointing marks its zero cross-attention bias as trainable


def _norm_rows(rt: Runtime, spec: LayerSpec, n: int, label: str) -> tuple[list, int]:
    """Rows a pre-norm keeps (input and, for RMSNorm, the fp32 normalized tensor) and its output's bytes."""
    h = spec.hidden
    if spec.norm == "layernorm":
        return [(f"{label} input (residual stream)", rt.r * h * n), (f"{label} mean/rstd (fp32)", 8 * n)], rt.r
    # HF RMSNorm / T5LayerNorm: x·rsqrt(mean(x²)) in fp32 keeps x; weight·normalized keeps the fp32 normalized x.
    return [(f"{label} input (residual stream)", rt.r * h * n), (f"{label} normalized (fp32)", 4 * h * n)], 4


def _attention_rows(rt: Runtime, spec: LayerSpec, n: int, s_q: int, s_k: int, b: int, in_bytes: int,
                    label: str, cross: bool = False, kv_input_rows: bool = True) -> list:
    """Rows one attention sub-block keeps: projections' inputs, q/k/v, the SDPA kernel's own tensors."""
    h, a, kv, d = spec.hidden, spec.heads, spec.kv_heads, spec.head_dim
    ad, kvd = a * d, kv * d
    n_k = s_k * b
    backend = _sdpa_backend(rt, d, spec.float_mask, kv != a, spec.attn_dropout,
                            spec.cross_mask_needs_grad if cross else spec.mask_needs_grad)
    replaced = backend == "math"  # the math path keeps its own fp32 / contiguous copies of q, k, v instead
    rows = []
    if spec.fused_qkv:
        rows.append((f"{label} c_attn input", rt.matmul_input(in_bytes) * h * n))
        if not replaced:
            rows.append((f"{label} q, k, v (views keep c_attn's output whole)", rt.p * (ad + 2 * kvd) * n))
    else:
        consumers = 1 if cross else 3
        rows.append((f"{label} q/k/v projections' input" if not cross else f"{label} query projection input",
                     rt.matmul_input(in_bytes, consumers) * h * n))
        if cross and kv_input_rows and rt.autocast:
            rows.append((f"{label} key/value projections' input (encoder output, two 16-bit copies)",
                         2 * 2 * h * n_k))
        if not replaced:
            # Llama's q·cos with fp32 cos/sin promotes q, k to fp32; SDPA's autocast keeps 16-bit copies.
            qk_bytes = 2 if (spec.rope and rt.autocast) else rt.p
            rows += [(f"{label} query", qk_bytes * ad * n), (f"{label} key, value", (qk_bytes + rt.p) * kvd * n_k)]
    if backend in ("flash", "efficient"):
        rows += [(f"{label} attention output", rt.p * ad * n), (f"{label} softmax log-sum-exp (fp32)", 4 * a * n)]
        if spec.float_mask and backend == "efficient" and rt.training and not cross:
            rows.append((f"{label} position-bias mask (16-bit, s×s)", rt.p * a * s_q * s_k))
    else:
        rows += [(f"{label} scaled query (fp32)", 4 * ad * n), (f"{label} scaled key (fp32)", 4 * ad * n_k)]
        rows.append((f"{label} value (fp32 contiguous / expanded copy)", 4 * ad * n_k))
        rows.append((f"{label} softmax (fp32, s×s)", 4 * a * s_k * n))
        if spec.attn_dropout > 0 and rt.training:
            rows += [(f"{label} attention dropout mask (s×s)", rt.mask_bytes(4) * a * s_k * n),
                     (f"{label} attention dropout output (fp32, s×s)", 4 * a * s_k * n)]
        rows.append((f"{label} attention output", rt.p * ad * n))
    if spec.resid_dropout > 0 and rt.training:
        rows.append((f"{label} output dropout mask", rt.mask_bytes(rt.p) * h * n))
    return rows


def _ffn_rows(rt: Runtime, spec: LayerSpec, n: int, in_bytes: int) -> list:
    h, f = spec.hidden, spec.ffn
    kept, out_bytes, act_label = _activation(rt, spec.act)
    rows = [("MLP input" + (" (two 16-bit copies)" if spec.gated and rt.autocast else ""),
             rt.matmul_input(in_bytes, 2 if spec.gated else 1) * h * n)]
    rows.append((f"MLP activation: {act_label}", kept * f * n))
    if spec.gated:
        prod_bytes = max(out_bytes, rt.p)
        rows += [("MLP activation output (kept by the gate product)", out_bytes * f * n),
                 ("MLP up projection output", rt.p * f * n)]
        if spec.ffn_inner_dropout > 0 and rt.training:
            rows.append(("MLP inner dropout mask", rt.mask_bytes(prod_bytes) * f * n))
        rows.append(("down projection input", rt.matmul_input(prod_bytes) * f * n))
    else:
        rows.append(("down projection input (activation output)", rt.matmul_input(out_bytes) * f * n))
    if spec.resid_dropout > 0 and rt.training:
        rows.append(("MLP output dropout mask", rt.mask_bytes(rt.p) * h * n))
    return rows


def _layer_rows(rt: Runtime, spec: LayerSpec, s: int, b: int, s_enc: int | None = None) -> list:
    """Everything one block keeps for backward (bytes), in forward order."""
    n, h = s * b, spec.hidden
    if spec.post_ln:  # BERT: the block input is the previous LayerNorm's output (fp32), not kept by that norm
        rows = [] if rt.autocast else [("block input (kept by q/k/v)", rt.r * h * n)]
        att = _attention_rows(rt, spec, n, s, s, b, rt.r, "self-attention")
        if not rt.autocast:
            att = [r for r in att if "projections' input" not in r[0]]
        rows += att
        rows += [("attention LayerNorm input (fp32)", rt.r * h * n), ("attention LayerNorm mean/rstd", 8 * n)]
        rows += _ffn_rows(rt, spec, n, rt.r)
        rows += [("output LayerNorm input (fp32)", rt.r * h * n), ("output LayerNorm mean/rstd", 8 * n)]
        return rows
    norm, out = _norm_rows(rt, spec, n, "attention norm")
    rows = norm + _attention_rows(rt, spec, n, s, s, b, out, "self-attention")
    if spec.cross_attention:
        norm, out = _norm_rows(rt, spec, n, "cross-attention norm")
        rows += norm + _attention_rows(rt, _replace_spec(spec, rope=False), n, s, s_enc or s, b, out,
                                       "cross-attention", cross=True)
    norm, out = _norm_rows(rt, spec, n, "MLP norm")
    return rows + norm + _ffn_rows(rt, spec, n, out)


def _replace_spec(spec: LayerSpec, **changes) -> LayerSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def _layer_params(spec: LayerSpec, biases: bool) -> int:
    """Weights of one block's linear layers (what autocast casts to 16 bits)."""
    h, f, ad, kvd = spec.hidden, spec.ffn, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    attn = h * (ad + 2 * kvd) + ad * h
    if spec.cross_attention:
        attn *= 2
    mlp = (3 if spec.gated else 2) * h * f
    bias = (ad + 2 * kvd + h + f + h) if biases else 0
    return attn + mlp + bias


FAMILIES = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama", "bert": "bert",
            "roberta": "bert", "t5": "t5"}


def _family(cfg: Mapping) -> str:
    """Which ledger describes the model's Hugging Face implementation ("generic" = Korthikanti's formula)."""
    return FAMILIES.get(cfg["model_type"], "generic")


def _layer_spec(cfg: Mapping, hf, decoder_block: bool = False) -> LayerSpec:
    fam = _family(cfg)
    common = dict(hidden=cfg["hidden_size"], ffn=cfg["intermediate_size"], heads=cfg["num_attention_heads"],
                  kv_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"])
    if fam == "gpt2":
        return LayerSpec(**common, norm="layernorm", post_ln=False, fused_qkv=True, rope=False,
                         act=str(_hf(hf, "activation_function", "gelu_new")), gated=False,
                         attn_dropout=float(_hf(hf, "attn_pdrop")), resid_dropout=float(_hf(hf, "resid_pdrop")))
    if fam == "llama":
        return LayerSpec(**common, norm="rmsnorm", post_ln=False, fused_qkv=False, rope=True,
                         act=str(_hf(hf, "hidden_act", "silu")), gated=True,
                         attn_dropout=float(_hf(hf, "attention_dropout")), resid_dropout=0.0)
    if fam == "bert":
        return LayerSpec(**common, norm="layernorm", post_ln=True, fused_qkv=False, rope=False,
                         act=str(_hf(hf, "hidden_act", "gelu")), gated=False,
                         attn_dropout=float(_hf(hf, "attention_probs_dropout_prob")),
                         resid_dropout=float(_hf(hf, "hidden_dropout_prob")))
    if fam == "t5":
        proj = str(cfg.get("feed_forward_proj", "relu"))
        gated = proj.startswith("gated-")
        act = proj.split("-")[-1]
        act = "gelu_new" if act == "gelu" else act  # transformers maps T5's "gelu" to gelu_new (tanh form)
        drop = float(_hf(hf, "dropout_rate"))
        return LayerSpec(**common, norm="rmsnorm", post_ln=False, fused_qkv=False, rope=False, act=act,
                         gated=gated, attn_dropout=drop, resid_dropout=drop, ffn_inner_dropout=drop if gated else 0.0,
                         float_mask=True, mask_needs_grad=True, cross_attention=decoder_block)
    raise ValueError("no ledger for this family")


@dataclass
class _Block:
    count: int
    rows: list
    casts: float  # bytes of this block's 16-bit weight copies (autocast)
    checkpoint_input: float  # bytes kept per block under gradient checkpointing
    backward_temp: float  # temporaries while this block runs backward


def _block(rt: Runtime, spec: LayerSpec, count: int, s: int, b: int, biases: bool, s_enc: int | None = None) -> _Block:
    n = s * b
    rows = [r for r in _layer_rows(rt, spec, s, b, s_enc) if r[1]]
    casts = 2 * _layer_params(spec, biases) if rt.autocast else 0.0
    # Backward temporaries: the fp32 gradient of the residual stream, the layer's own fp32 weight gradients, and the
    # widest gradients of the moment — the MLP's (an elementwise product's backward holds three ffn-wide tensors: the
    # incoming gradient and one per factor; a plain GELU two) or, on the math attention path, two fp32 s×s ones.
    product = spec.gated or _activation(rt, spec.act)[2].startswith("gelu_new")
    mlp = (3 if product else 2) * rt.p * spec.ffn
    math = any("softmax (fp32, s×s)" in name for name, _ in rows)
    bias_grad = any("position-bias mask" in name for name, _ in rows)  # efficient kernel: dense bias gradient
    attn = 2 * 4 * spec.heads * (s_enc or s) if math else (rt.p * spec.heads * s if bias_grad else 0)
    # Weight gradients already written when that moment comes: the down projection's (MLP) or the whole MLP's and
    # the output projection's (attention, which runs backward after the MLP).
    h, f, ad = spec.hidden, spec.ffn, spec.heads * spec.head_dim
    # By the attention's moment the MLP's kept tensors have been released.
    mlp_kept = sum(v for name, v in rows if name.startswith(("MLP", "down projection", "output LayerNorm")))
    mlp_moment = n * (2 * rt.r * h + mlp) + 4 * h * f
    attn_moment = (n * (2 * rt.r * h + attn) + 4 * ((3 if spec.gated else 2) * h * f + ad * h) - mlp_kept
                   if attn else 0)
    backward = max(mlp_moment, attn_moment)
    return _Block(count, rows, casts, rt.r * spec.hidden * n, backward)


def _training_parts(cfg: Mapping, hf, rt: Runtime, s: int, b: int,
                    checkpointing: bool = False) -> tuple[list[_Block], list, float]:
    """Blocks, model-level rows (embeddings, final norm, loss) and the 16-bit copies of non-block weights."""
    fam = _family(cfg)
    h, V, n = cfg["hidden_size"], cfg["vocab_size"], s * b
    spec = _layer_spec(cfg, hf)
    lm_cast = 2 * V * h if rt.autocast else 0.0
    loss_rows = [("log-softmax of the logits (fp32, kept by the loss)", 4 * V * n), ("labels (int64)", 16 * n)]
    if fam == "gpt2":
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=True)]
        model = []
        if float(_hf(hf, "embd_pdrop")) > 0:
            model.append(("embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
        model += [("ln_f input", rt.r * h * n), ("ln_f mean/rstd", 8 * n),
                  ("lm_head input", rt.matmul_input(rt.r) * h * n)]
        return blocks, model + loss_rows, lm_cast
    if fam == "llama":
        bias = bool(cfg.get("attention_bias")) or cfg["model_type"] == "qwen2"
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=False)]
        if bias:
            blocks[0].casts += 2 * spec.heads * spec.head_dim + 4 * spec.kv_heads * spec.head_dim if rt.autocast else 0
        model = [("rotary cos/sin (fp32)", 2 * 4 * s * spec.head_dim), ("final norm input", rt.r * h * n),
                 ("final norm normalized (fp32)", 4 * h * n), ("lm_head input", rt.matmul_input(4) * h * n)]
        return blocks, model + loss_rows, lm_cast
    if fam == "bert":
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=True)]
        act_kept, act_out, _ = _activation(rt, spec.act)
        ln_in = 4 if (rt.upcast("layer_norm") or not rt.autocast) else rt.p
        model = [("embedding LayerNorm input (fp32)", rt.r * h * n + 8 * n)]
        if spec.resid_dropout > 0:
            model.append(("embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
        model += [("MLM head transform input", rt.matmul_input(rt.r) * h * n),
                  ("MLM head activation", act_kept * h * n), ("MLM head LayerNorm input", ln_in * h * n + 8 * n),
                  ("MLM decoder input", rt.matmul_input(4 if ln_in == 4 else rt.p) * h * n)]
        other = lm_cast + (2 * (h * h + h) if rt.autocast else 0.0)
        return blocks, model + loss_rows[:1] + [("labels (int64)", 8 * n)], other
    if fam == "t5":
        drop = spec.resid_dropout
        enc = _block(rt, spec, cfg["num_hidden_layers"], s, b, biases=False)
        dec_spec = _replace_spec(_layer_spec(cfg, hf, decoder_block=True), cross_mask_needs_grad=checkpointing)
        dec = _block(rt, dec_spec, cfg["num_decoder_layers"], s, b, biases=False, s_enc=s)
        model = []
        for stack in ("encoder", "decoder"):
            if drop > 0:
                model.append((f"{stack} embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
            model += [(f"{stack} relative-position buckets (int64, s×s)", 8 * s * s),
                      (f"{stack} final norm input", rt.r * h * n), (f"{stack} final norm normalized (fp32)", 4 * h * n)]
            if drop > 0:
                model.append((f"{stack} final dropout mask", rt.mask_bytes(4) * h * n))
        if not rt.autocast:
            model.append(("encoder output (kept by every cross-attention's k/v)", 4 * h * n))
        model += [("cross-attention zero position bias (shared, s×s)", rt.p * spec.heads * s * s),
                  ("lm_head input", rt.matmul_input(4) * h * n)]
        return [enc, dec], model + loss_rows, lm_cast
    raise ValueError("no ledger for this family")


def _largest_param(cfg: Mapping) -> int:
    h, f, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    ad = cfg["num_attention_heads"] * cfg["head_dim"]
    return max(V * h, h * f, h * (ad + 2 * cfg["num_key_value_heads"] * cfg["head_dim"]))


def training_param_count(architecture) -> int:
    """Parameters of the model a training step updates: the architecture with its language-modelling head
    (encoders get BERT's masked-LM head: transform dense + LayerNorm + a vocabulary bias; no pooler)."""
    cfg = architectures.get_config(architecture)
    n = architectures.param_count(cfg)
    if cfg["kind"] == "encoder":
        h, V = cfg["hidden_size"], cfg["vocab_size"]
        pooler = architectures.param_breakdown(cfg).get("pooler", 0)
        n += -pooler + (h * h + h) + 2 * h + V
    return int(n)


def _optimizer_temp(cfg: Mapping, n_params: int, device_type: str) -> float:
    """AdamW step temporaries: foreach (CUDA) one fp32 copy of all parameters; CPU loop two of the largest."""
    return 4.0 * n_params if device_type == "cuda" else 2 * 4.0 * _largest_param(cfg)


def predict_training_step(architecture, recipe: str, seq_len: int, batch_size: int,
                          gradient_checkpointing: bool = False, device_type: str = "cuda",
                          flash_attention: bool = True) -> dict:
    """The planner's prediction of one steady-state training step's peak on ``device_type`` ("cuda" / "cpu").

    Model states: fp32 weights 4 + fp32 gradients 4 + AdamW moments 8 bytes per parameter (the ZeRO paper's 16 B/param
    of mixed-precision Adam, §3.1, with PyTorch AMP's fp32 gradients in place of fp16 gradients + fp32 master copy);
    autocast's 16-bit weight copies (2 B per matmul parameter) while the forward graph is alive. Activations from
    the ledger (``ledger`` in the result: one layer, bytes per token). The peak is the largest of: the loss's
    backward (every activation kept + the fp32 gradients of the logits), the forward's end, the first layer's
    backward, the end of backward (+ all gradients) and the optimizer step (+ its temporaries). Returns
    ``predicted_peak_bytes``, ``components``, ``phase`` (where the peak is), ``candidates``, ``ledger`` and
    ``rule_of_thumb_bytes`` / ``textbook_peak_bytes``.
    """
    cfg, seq_len, batch_size = _setting(architecture, seq_len, batch_size)
    recipe = _recipe(recipe)
    rt = _runtime(device_type, True, recipe=recipe, flash=flash_attention)
    n_params = training_param_count(cfg)
    hf = architectures.hf_config(cfg)
    W, S, G = 4.0 * n_params, 8.0 * n_params, 4.0 * n_params
    textbook = _textbook_training(cfg, n_params, recipe, seq_len, batch_size, gradient_checkpointing)
    result = {"n_params": n_params, "rule_of_thumb_bytes": RULE_OF_THUMB_BYTES_PER_PARAM * n_params,
              "textbook_peak_bytes": textbook, "family": _family(cfg)}
    if _family(cfg) == "generic":
        act = memory.model_activation_bytes(cfg, seq_len, batch_size, "full" if gradient_checkpointing else "none")
        act *= 2 if recipe == "fp32" else 1
        comps = {"weights": W, "optimizer states": S, "gradients": G, "activations": act}
        return {**result, "predicted_peak_bytes": sum(comps.values()), "components": comps,
                "phase": "model states + Korthikanti activations (no ledger for this family)", "candidates": {},
                "ledger": []}
    blocks, model_rows, other_casts = _training_parts(cfg, hf, rt, seq_len, batch_size, gradient_checkpointing)
    n = seq_len * batch_size
    V, h = cfg["vocab_size"], cfg["hidden_size"]
    model_saved = sum(v for _, v in model_rows)
    block_casts = sum(blk.count * blk.casts for blk in blocks)
    if gradient_checkpointing:
        kept = sum(blk.count * blk.checkpoint_input for blk in blocks)
    else:
        kept = sum(blk.count * sum(v for _, v in blk.rows) for blk in blocks)
    saved = kept + model_saved
    casts_fwd = block_casts + other_casts
    casts_bwd = other_casts if gradient_checkpointing else casts_fwd
    logits_fwd = (rt.p * V + 4 * V) * n if rt.autocast else 4 * V * n
    loss_bwd = 8 * V * n
    head_grad = 4 * V * h + (2 * V * h if rt.autocast else 0)
    last = blocks[-1]
    first_layer_bwd = saved - 4 * V * n + head_grad + last.backward_temp
    if gradient_checkpointing:
        first_layer_bwd += sum(v for _, v in last.rows) + last.casts
    opt_temp = _optimizer_temp(cfg, n_params, device_type)
    base = W + S
    candidates = {
        "forward end (loss computed)": base + casts_fwd + saved + logits_fwd,
        "loss backward": base + casts_bwd + saved + loss_bwd,
        "first layer's backward": base + casts_bwd + first_layer_bwd,
        "end of backward": base + G,
        "optimizer step": base + G + opt_temp,
    }
    phase = max(candidates, key=candidates.get)
    peak = candidates[phase]
    comps = {"weights": W, "optimizer states": S}
    if phase in ("end of backward", "optimizer step"):
        comps["gradients"] = G
        if phase == "optimizer step":
            comps["optimizer temporaries"] = opt_temp
    else:
        comps["16-bit weight copies"] = casts_fwd if phase.startswith("forward") else casts_bwd
        comps["activations"] = saved
        if phase == "loss backward":
            comps["logit gradients (temporary)"] = loss_bwd
        elif phase.startswith("forward"):
            comps["logits (temporary)"] = logits_fwd
        else:
            comps["activations"] = first_layer_bwd - head_grad - last.backward_temp
            comps["gradients"] = head_grad
            comps["backward temporaries"] = last.backward_temp
    comps = {k: float(v) for k, v in comps.items() if v}
    ledger = [(name, value / n) for name, value in blocks[0].rows] if n else []
    return {**result, "predicted_peak_bytes": float(peak), "components": comps, "phase": phase,
            "candidates": {k: float(v) for k, v in candidates.items()}, "ledger": ledger,
            "activations_kept_bytes": float(saved), "weight_copies_bytes": float(casts_fwd)}


def _textbook_training(cfg, n_params, recipe, s, b, gradient_checkpointing) -> float:
    """The plain textbook sum: 16 B/param of model states (ZeRO §3.1) + Korthikanti Table 2 activations of every
    layer (16-bit; doubled for the fp32 recipe)."""
    states = sum(memory.training_bytes_per_param("mixed_precision").values()) * n_params
    act = memory.model_activation_bytes(cfg, s, b, "full" if gradient_checkpointing else "none")
    return float(states + act * (2 if recipe == "fp32" else 1))


# ---------------------------------------------------------------------------------------------------------------
# Inference prediction
# ---------------------------------------------------------------------------------------------------------------
def _inference_transient(cfg: Mapping, hf, p: int, s: int, b: int, device_type: str,
                         flash: bool = True) -> tuple[float, str]:
    """Activations and temporaries alive at the busiest moment of one prefill pass (no autograd), bytes.

    Read off each model's forward code: tensors still referenced by Python locals (embeddings, the block's input
    and residual) plus the widest moment of one block, in the last layer (when every layer's KV cache exists):
    GPT-2's gelu_new holds its input and three temporaries (4 × ffn), a SiLU-gated MLP three ffn-wide tensors,
    BERT's GELU two; T5 also keeps its position biases (heads × s × s) and the encoder output.
    """
    fam = _family(cfg)
    h, f, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    a, kv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    n = s * b
    more = 1 if L > 1 else 0
    logits = b * V * p
    if fam == "gpt2":
        act = str(_hf(hf, "activation_function", "gelu_new"))
        act_peak = 4 * f if act in ("gelu_new", "gelu_fast", "gelu_python") else 2 * f
        keep = n * p * (2 * h + more * h) + s * h * p  # token + position embeddings, their sum, the block input
        mlp = keep + n * p * (2 * h + act_peak)  # + residual, ln_2 output, the activation's tensors
        attn = keep + n * p * 6 * h  # ln_1 output, fused q/k/v, attention output, projection
        return max(mlp, attn) + logits, "last layer's MLP (gelu_new temporaries)" if mlp >= attn else "attention"
    if fam == "llama":
        ad, kvd = a * d, kv * d
        keep = n * p * (h + more * h) + 2 * s * d * p  # embeddings, block input, rotary cos/sin
        mlp = keep + n * p * (2 * h + 3 * f)  # residual, norm output, act(gate), up, their product
        norm = keep + n * (p * h + 4 * h + (4 * h if p < 4 else 0))  # RMSNorm's fp32 copy and product
        attn = keep + n * p * (h + 2 * ad + 3 * kvd + ad)
        if device_type == "cuda" and (p == 4 or not flash) and kv != a:  # GQA without flash: math path, s×s
            attn += n * 4 * ad * 2 + 2 * b * a * s * s * 4
        best = max(mlp, norm, attn)
        return best + logits, "last layer's MLP" if best == mlp else ("RMSNorm" if best == norm else "attention")
    if fam == "bert":
        keep = n * p * (h + more * h)
        layer = keep + n * p * (h + 2 * f)
        emb = n * p * 4 * h + s * h * p
        return max(layer, emb) + b * h * p, "last layer's MLP"
    if fam == "t5":
        spec = _layer_spec(cfg, hf)
        inner = a * d
        act_peak = (4 if spec.act == "gelu_new" else 2) * f
        ff = max(act_peak, 3 * f) if spec.gated else act_peak
        Ld = cfg["num_decoder_layers"]
        biases = 2 * a * s * s * p  # decoder self-attention bias and the cross-attention zero bias
        keep = n * p * (2 * h + (h if Ld > 1 else 0))  # encoder output, decoder embeddings, block input
        ffn = keep + biases + n * p * (2 * h + ff)
        attn = keep + biases + n * p * (2 * h + 4 * inner) + a * s * s * p  # + this layer's masked bias copy
        buckets = keep + n * p * (h + 3 * inner) + 48 * s * s  # relative-position bucketing: ~6 int64 s×s
        best = max(ffn, attn, buckets)
        label = "last decoder layer's MLP" if best == ffn else ("attention with position bias" if best == attn
                                                                 else "relative-position bucketing")
        return best + logits, label
    # Generic: the planner's editable assumption (activation workspace = 20 % of the weights).
    return 0.0, "generic"


def predict_inference(architecture, dtype, seq_len: int, batch_size: int, device_type: str = "cuda",
                      flash_attention: bool = True) -> dict:
    """The planner's prediction of a prefill's peak: weights (core.memory.weights_bytes) + KV cache
    (core.memory.model_kv_cache_bytes) + the activations alive at the busiest moment (``_inference_transient``)."""
    cfg, seq_len, batch_size = _setting(architecture, seq_len, batch_size)
    dtype = _inference_dtype(dtype)
    p = DTYPE_BYTES[dtype]
    n_params = architectures.param_count(cfg)
    hf = architectures.hf_config(cfg)
    weights = memory.weights_bytes(n_params, dtype)
    kv = memory.model_kv_cache_bytes(cfg, seq_len, batch_size, p)
    transient, where = _inference_transient(cfg, hf, p, seq_len, batch_size, device_type, flash_attention)
    if _family(cfg) == "generic":
        transient = weights * memory.DEFAULT_INFERENCE_WORKSPACE_PCT / 100
    textbook = weights + kv + weights * memory.DEFAULT_INFERENCE_WORKSPACE_PCT / 100
    comps = {"weights": float(weights), "KV cache": float(kv), "activations (peak)": float(transient)}
    return {"n_params": n_params, "predicted_peak_bytes": float(sum(comps.values())), "components": comps,
            "phase": where, "textbook_peak_bytes": float(textbook), "family": _family(cfg)}


# ---------------------------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------------------------
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


def _base_result(cfg, device, tracker, setting: dict) -> dict:
    return {"architecture": architecture_label(cfg), "model_type": cfg["model_type"], "kind": cfg["kind"],
            **setting, "device": _device_label(device), "device_type": device.type, "method": tracker.method,
            "random_weights": True}


def measure_inference(architecture, dtype, seq_len, batch_size, device="auto", *,
                      max_seconds: float | None = None) -> dict:
    """Peak memory of one prefill (weights + KV cache + activations) on ``device``, next to the prediction.

    Returns ``measured_peak_bytes``, ``predicted_peak_bytes``, ``error_pct`` ((predicted − measured)/measured),
    ``device``, ``method``, ``measured_components`` / ``predicted_components`` (weights, KV cache, activations),
    ``textbook_peak_bytes`` (weights + KV + the planner's 20 % workspace), ``seconds`` and the setting.
    Raises ``MeasurementRefused`` (with the predicted peak) when it would not fit in the free memory, and
    ValueError / ArchitectureError for bad input.
    """
    with _MEASURE_LOCK:
        return _measure_inference(architecture, dtype, seq_len, batch_size, device, max_seconds)


def _measure_inference(architecture, dtype, seq_len, batch_size, device, max_seconds) -> dict:
    import torch

    from core.hardware import _resolve_device

    cfg, seq_len, batch_size = _setting(architecture, seq_len, batch_size)
    dtype = _inference_dtype(dtype)
    dev = _resolve_device(device)
    if dev.type == "cuda" and dtype == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("This GPU has no bf16 support (compute capability < 8.0): choose fp16 or fp32.")
    flash = dev.type != "cuda" or cuda_has_flash_attention(dev)
    prediction = predict_inference(cfg, dtype, seq_len, batch_size, device_type=dev.type, flash_attention=flash)
    predicted = prediction["predicted_peak_bytes"]
    _guard(predicted, dev, "this inference")
    _check_time(prediction["n_params"], seq_len * batch_size, False, dev, max_seconds, predicted)
    tracker = _tracker(dev)
    torch_dtype = _torch_dtype(dtype)
    started = time.perf_counter()
    _free()
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
        _free()
    measured = resident + phase.peak
    measured_components = {"weights": float(weights), "KV cache": float(kv),
                           "activations (peak)": float(max(0, measured - weights - kv))}
    result = _base_result(cfg, dev, tracker, {"mode": "inference", "setting": f"{dtype}, {seq_len} tok × {batch_size}",
                                             "dtype": dtype, "seq_len": seq_len, "batch_size": batch_size})
    result.update(
        n_params=prediction["n_params"], measured_peak_bytes=float(measured), predicted_peak_bytes=predicted,
        error_pct=_error_pct(predicted, measured), measured_components=measured_components,
        predicted_components=prediction["components"], predicted_phase=prediction["phase"],
        textbook_peak_bytes=prediction["textbook_peak_bytes"],
        textbook_error_pct=_error_pct(prediction["textbook_peak_bytes"], measured),
        reserved_bytes=reserved, seconds=time.perf_counter() - started)
    return result


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
    with _MEASURE_LOCK:
        return _measure_training_step(architecture, recipe, seq_len, batch_size, gradient_checkpointing, device,
                                      max_seconds)


def _measure_training_step(architecture, recipe, seq_len, batch_size, gradient_checkpointing, device,
                           max_seconds) -> dict:
    import torch

    from core.hardware import _resolve_device

    cfg, seq_len, batch_size = _setting(architecture, seq_len, batch_size)
    recipe = _recipe(recipe)
    dev = _resolve_device(device)
    flash = dev.type != "cuda" or cuda_has_flash_attention(dev)
    prediction = predict_training_step(cfg, recipe, seq_len, batch_size, gradient_checkpointing, dev.type, flash)
    predicted = prediction["predicted_peak_bytes"]
    _guard(predicted, dev, "this training step")
    _check_time(prediction["n_params"], seq_len * batch_size, True, dev, max_seconds, predicted)
    tracker = _tracker(dev)
    started = time.perf_counter()
    _free()
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
        _free()
    phases = {"forward": resident + fwd.peak, "backward": resident + fwd.end + bwd.peak,
              "optimizer step": resident + fwd.end + bwd.end + opt.peak}
    peak_phase = max(phases, key=phases.get)
    measured = phases[peak_phase]
    comps = {"weights": float(weights), "optimizer states": float(states)}
    if peak_phase == "optimizer step":
        comps["gradients"] = float(grads)
    else:
        comps["activations kept for backward"] = float(fwd.end)
    comps["temporaries at the peak"] = float(max(0.0, measured - sum(comps.values())))
    setting = f"{recipe.replace('_', ' ')}, {seq_len} tok × {batch_size}"
    setting += ", checkpointing" if gradient_checkpointing else ""
    result = _base_result(cfg, dev, tracker, {"mode": "training step", "setting": setting, "recipe": recipe,
                                             "seq_len": seq_len, "batch_size": batch_size,
                                             "gradient_checkpointing": bool(gradient_checkpointing)})
    result.update(
        n_params=prediction["n_params"], measured_peak_bytes=float(measured), predicted_peak_bytes=predicted,
        error_pct=_error_pct(predicted, measured), measured_components=comps,
        measured_gradients_bytes=float(grads), measured_activations_bytes=float(fwd.end),
        measured_phases={k: float(v) for k, v in phases.items()}, measured_peak_phase=peak_phase,
        predicted_components=prediction["components"], predicted_phase=prediction["phase"],
        predicted_candidates=prediction["candidates"],
        rule_of_thumb_bytes=prediction["rule_of_thumb_bytes"],
        rule_of_thumb_error_pct=_error_pct(prediction["rule_of_thumb_bytes"], measured),
        textbook_peak_bytes=prediction["textbook_peak_bytes"],
        textbook_error_pct=_error_pct(prediction["textbook_peak_bytes"], measured),
        reserved_bytes=reserved, seconds=time.perf_counter() - started)
    return result


# ---------------------------------------------------------------------------------------------------------------
# Results: table rows, downloads and figures
# ---------------------------------------------------------------------------------------------------------------
def result_row(result: Mapping) -> dict:
    """One table row (units in the column names) for a measurement result."""
    gb = lambda key: None if result.get(key) is None else round(result[key] / GB, 3)  # noqa: E731
    pct = lambda key: None if result.get(key) is None else round(result[key], 1)  # noqa: E731
    row = {
        "architecture": result["architecture"],
        "mode": result["mode"],
        "setting": result["setting"],
        "device": result["device"],
        "predicted peak (GB)": gb("predicted_peak_bytes"),
        "measured peak (GB)": gb("measured_peak_bytes"),
        "error (%)": pct("error_pct"),
        "textbook formula (GB)": gb("textbook_peak_bytes"),
        "textbook error (%)": pct("textbook_error_pct"),
        "24 B/param rule (GB)": gb("rule_of_thumb_bytes"),
        "24 B/param error (%)": pct("rule_of_thumb_error_pct"),
        "parameters": result.get("n_params"),
        "method": result["method"],
        "seconds": round(result.get("seconds", 0.0), 1),
    }
    return row


def results_table(results: Iterable[Mapping]) -> list[dict]:
    """Rows for a table / CSV of many results (newest last)."""
    return [result_row(r) for r in results]


def results_csv(results: Iterable[Mapping]) -> str:
    """The results table as CSV text."""
    import csv
    import io

    rows = results_table(results)
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def results_json(results: Iterable[Mapping]) -> str:
    """All result fields (bytes, components, phases) as JSON text."""
    import json

    return json.dumps(list(results), indent=2, default=float)


def comparison_figure(results: Iterable[Mapping]):
    """Grouped bars per measured setting: predicted vs measured peak (GB), with the textbook formula and, for
    training, the 24 B/param rule as markers; the error % labels the predicted bar."""
    import plotly.graph_objects as go

    results = list(results)
    labels = [f"{r['architecture']}<br>{r['mode']}: {r['setting']}" for r in results]
    fig = go.Figure()
    fig.add_bar(name="measured", x=labels, y=[r["measured_peak_bytes"] / GB for r in results],
                marker_color="#2563eb", hovertemplate="%{x}<br>measured %{y:.3f} GB<extra></extra>")
    fig.add_bar(name="predicted (planner)", x=labels, y=[r["predicted_peak_bytes"] / GB for r in results],
                marker_color="#f59e0b",
                text=[("" if r.get("error_pct") is None else f"{r['error_pct']:+.1f}%") for r in results],
                textposition="outside", hovertemplate="%{x}<br>predicted %{y:.3f} GB<extra></extra>")
    fig.add_scatter(name="textbook formula", x=labels, y=[r["textbook_peak_bytes"] / GB for r in results],
                    mode="markers", marker=dict(symbol="diamond", size=11, color="#6b7280"),
                    hovertemplate="%{x}<br>textbook %{y:.3f} GB<extra></extra>")
    rule = [r.get("rule_of_thumb_bytes") for r in results]
    if any(v is not None for v in rule):
        fig.add_scatter(name="24 B/param rule", x=labels, y=[None if v is None else v / GB for v in rule],
                        mode="markers", marker=dict(symbol="x", size=11, color="#dc2626"),
                        hovertemplate="%{x}<br>24 B/param %{y:.3f} GB<extra></extra>")
    fig.update_layout(barmode="group", yaxis_title="peak memory (GB)", legend_title_text="",
                      margin=dict(t=30, b=10), height=420)
    return fig


def components_figure(result: Mapping):
    """Stacked bars: the measured and the predicted peak split into their components (GB)."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = list(dict.fromkeys(list(result["measured_components"]) + list(result["predicted_components"])))
    for name in names:
        fig.add_bar(name=name, x=["measured", "predicted"],
                    y=[result["measured_components"].get(name, 0.0) / GB,
                       result["predicted_components"].get(name, 0.0) / GB],
                    hovertemplate=f"{name}: %{{y:.3f}} GB<extra></extra>")
    fig.update_layout(barmode="stack", yaxis_title="GB", legend_title_text="component", height=380,
                      margin=dict(t=30, b=10))
    return fig


def ledger_table(prediction: Mapping) -> list[dict]:
    """What one layer keeps for backward, per token (bytes), from a ``predict_training_step`` result's ledger."""
    return [{"tensor kept for backward": name, "bytes per token": round(value, 1)}
            for name, value in prediction.get("ledger", [])]


def components_table(result: Mapping) -> list[dict]:
    """The measured and the predicted peak of one result split into their components (GB), one row each."""
    names = list(dict.fromkeys(list(result["measured_components"]) + list(result["predicted_components"])))
    return [{"component": name,
             "measured (GB)": round(result["measured_components"].get(name, 0.0) / GB, 4),
             "predicted (GB)": round(result["predicted_components"].get(name, 0.0) / GB, 4)} for name in names]
