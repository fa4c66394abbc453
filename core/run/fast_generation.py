"""Fast generation on a GPU: transformers' static KV cache + ``torch.compile``, next to the default ``generate()``
and to the memory-bandwidth bound on decode speed.

- The fast path is the one transformers documents for ``generate`` (``CompileConfig`` docstring, "Automatic compile
  configuration, used with static cache"): ``model.generate(..., cache_implementation="static",
  compile_config=CompileConfig(...))``. The static cache gives the decode step fixed shapes, so ``generate``
  compiles the forward pass once (mode "reduce-overhead": CUDA graphs) and replays it for every new token.
  transformers only auto-compiles on CUDA (and a few accelerators), so the fast path needs a CUDA GPU.
- The bound: at batch 1 every decode step reads all weights and the KV cache written so far from GPU memory, so
  tokens/s ≤ bandwidth / (weight bytes + KV-cache bytes read per token) (the roofline argument of Williams,
  Waterman & Patterson 2009, "Roofline: An Insightful Visual Performance Model for Multicore Architectures"). With batch B each step
  yields B tokens for one read of the weights.

Plain Python, no Streamlit. Timing lives here as functions; speed numbers are produced by benchmarks, not tests.
The figure is ``core.run.fast_generation_charts.speed_figure``.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace

from core.plan import hardware, memory
from core.common.checks import check_int
from core.run.quantization import model_weight_bytes  # re-exported: core.run.fast_generation.model_weight_bytes
from core.common.scheduler import GENERATION_QUEUE


# ---------------------------------------------------------------------------------------------------------------
# The bandwidth bound
# ---------------------------------------------------------------------------------------------------------------
def decode_bytes_per_step(weight_bytes: float, kv_cache_bytes: float = 0.0) -> float:
    """Bytes one decode step reads from memory: every weight once plus the KV cache of the tokens so far."""
    if weight_bytes < 0 or kv_cache_bytes < 0:
        raise ValueError("Byte counts must be non-negative.")
    return float(weight_bytes) + float(kv_cache_bytes)


def bandwidth_bound_tokens_per_s(weight_bytes: float, bandwidth_bytes_per_s: float, kv_cache_bytes: float = 0.0,
                                 batch_size: int = 1) -> float:
    """Upper bound on decode speed: tokens/s ≤ batch × bandwidth / (weight bytes + KV-cache bytes read per step).

    Source: decode at batch 1 is memory-bandwidth bound; roofline model (Williams,
    Waterman, Patterson 2009): a step that moves M bytes over a link of B bytes/s takes at least M / B seconds.
    """
    if bandwidth_bytes_per_s <= 0:
        raise ValueError("Memory bandwidth must be a positive number of bytes/s.")
    if batch_size < 1:
        raise ValueError("Batch size must be at least 1.")
    per_step = decode_bytes_per_step(weight_bytes, kv_cache_bytes)
    if per_step == 0:
        raise ValueError("A decode step that reads no bytes has no bandwidth bound.")
    return batch_size * bandwidth_bytes_per_s / per_step


def kv_bytes_per_token(config, bytes_per_value: float) -> float:
    """KV-cache bytes one token adds, from a transformers config: ``core.plan.memory.kv_cache_bytes`` for one token
    of one sequence (2 · layers · kv_heads · head_dim · bytes; docs/references/formulas.md, KV cache)."""
    layers = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None) or 0
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_head", None) or 1
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    hidden = getattr(config, "hidden_size", None) or getattr(config, "n_embd", None) or 0
    head_dim = getattr(config, "head_dim", None) or (hidden // heads if heads else 0)
    return memory.kv_cache_bytes(layers, kv_heads, head_dim, 1, 1, bytes_per_value)


def generation_bound_tokens_per_s(weight_bytes: float, bandwidth_bytes_per_s: float, prompt_tokens: int,
                                  new_tokens: int, kv_per_token: float, batch_size: int = 1) -> float:
    """Bound for a whole generation: new tokens ÷ Σ over steps of (weights + KV of the tokens so far) / bandwidth.

    Step i reads the weights and the KV cache of prompt_tokens + i tokens (per sequence, × batch)."""
    if new_tokens < 1:
        raise ValueError("Generate at least one new token.")
    seconds = sum(decode_bytes_per_step(weight_bytes, kv_per_token * (prompt_tokens + i) * batch_size)
                  for i in range(new_tokens)) / bandwidth_bytes_per_s
    return batch_size * new_tokens / seconds


def model_generation_bound_tokens_per_s(model, weight_bytes: float, bandwidth_bytes_per_s: float,
                                       prompt_tokens: int, new_tokens: int) -> float:
    """``generation_bound_tokens_per_s`` for a loaded transformers model at batch 1: its KV bytes per token at the
    model's own dtype (``kv_bytes_per_token``)."""
    return generation_bound_tokens_per_s(weight_bytes, bandwidth_bytes_per_s, prompt_tokens, new_tokens,
                                         kv_bytes_per_token(model.config, model.dtype.itemsize))


# ---------------------------------------------------------------------------------------------------------------
# Running the two paths
# ---------------------------------------------------------------------------------------------------------------
def fast_generation_support(device=None) -> tuple[bool, str]:
    """(available, reason): the static-cache + compile path needs a CUDA GPU and a working ``torch.compile``."""
    import torch

    if device is not None and getattr(device, "type", str(device)) != "cuda":
        return False, "Fast generation (static cache + torch.compile) runs on a CUDA GPU; this model is on the CPU."
    if not torch.cuda.is_available():
        return False, "Fast generation (static cache + torch.compile) needs a CUDA GPU; none is available here."
    try:
        import triton  # noqa: F401 - inductor's GPU code generator
    except ImportError:
        return False, "torch.compile needs Triton for GPU kernels and it is not installed."
    return True, "CUDA GPU with torch.compile available."


@dataclass
class GenerationRun:
    """One timed ``generate`` call."""
    path: str  # "default" | "static cache + torch.compile"
    new_tokens: int
    seconds: float
    token_ids: list = field(default_factory=list)
    text: str = ""
    warmup_seconds: float = 0.0  # first (compiling) call, for the fast path

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.seconds if self.seconds > 0 else 0.0


def _sync(device) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def _check_new_tokens(max_new_tokens) -> int:
    return check_int(max_new_tokens, "max_new_tokens", 1, 4096)


def _generate_kwargs(max_new_tokens: int, pad_token_id) -> dict:
    # Greedy and exactly max_new_tokens tokens (no early stop at EOS), so both paths do the same work.
    n = _check_new_tokens(max_new_tokens)
    return {"do_sample": False, "max_new_tokens": n, "min_new_tokens": n, "pad_token_id": pad_token_id}


def _timed_generate(model, input_ids, kwargs, path: str) -> GenerationRun:
    import torch

    device = input_ids.device
    attention_mask = torch.ones_like(input_ids)
    with GENERATION_QUEUE.admit(f"fast generation ({path})"):  # timed alone, in turn with other sessions' runs
        _sync(device)
        started = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        _sync(device)
        seconds = time.perf_counter() - started
    new = out[0, input_ids.shape[1]:].tolist()
    return GenerationRun(path, len(new), seconds, new)


def run_default(model, input_ids, max_new_tokens: int, pad_token_id=None) -> GenerationRun:
    """Timed ``generate`` with the default dynamic KV cache and an eager forward pass."""
    kwargs = _generate_kwargs(max_new_tokens, pad_token_id)
    kwargs["disable_compile"] = True
    return _timed_generate(model, input_ids, kwargs, "default")


def run_fast(model, input_ids, max_new_tokens: int, pad_token_id=None, warmup: bool = True) -> GenerationRun:
    """Timed ``generate`` with ``cache_implementation="static"`` and a ``CompileConfig`` (transformers' documented
    path: the decode step is compiled once with mode "reduce-overhead", i.e. CUDA graphs).

    The first call compiles (tens of seconds); with ``warmup`` it runs once untimed and its time is reported as
    ``warmup_seconds``. Raises RuntimeError with a user-facing message when no CUDA GPU / compiler is available.
    """
    from transformers import CompileConfig

    ok, reason = fast_generation_support(input_ids.device)
    if not ok:
        raise RuntimeError(reason)
    kwargs = _generate_kwargs(max_new_tokens, pad_token_id)
    kwargs.update(cache_implementation="static", compile_config=CompileConfig(fullgraph=True, mode="reduce-overhead"))
    warm = _timed_generate(model, input_ids, kwargs, "static cache + torch.compile").seconds if warmup else 0.0
    run = _timed_generate(model, input_ids, kwargs, "static cache + torch.compile")
    run.warmup_seconds = warm
    return run


@dataclass(frozen=True)
class SpeedComparison:
    """Default ``generate`` vs static cache + ``torch.compile`` on the same greedy input, next to the bandwidth bound.

    ``to_dict()`` gives the keys ``compare_runs`` returned as a dict before (plus the texts when decoded)."""
    default_tokens_per_s: float
    fast_tokens_per_s: float
    speedup: float | None  # fast ÷ default
    same_output: bool  # identical greedy token ids
    same_leading_tokens: int  # how many leading token ids agree
    new_tokens: int
    prompt_tokens: int
    bound_tokens_per_s: float | None  # bandwidth bound of ``gpu`` (None without a catalog GPU)
    gpu: str | None  # catalog GPU name
    bandwidth_gbs: float | None  # its datasheet bandwidth, GB/s
    weight_bytes: int  # total bytes of the model's weights (model_weight_bytes)
    default_fraction_of_bound: float | None
    fast_fraction_of_bound: float | None
    compile_warmup_seconds: float  # first, compiling call of the fast path (not timed)
    default_token_ids: list = field(default_factory=list)
    fast_token_ids: list = field(default_factory=list)
    default_text: str | None = None  # decoded new tokens (compare_generation only)
    fast_text: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        for key in ("default_text", "fast_text"):
            if out[key] is None:
                del out[key]
        return out


def compare_runs(model, input_ids, max_new_tokens: int, gpu=None, pad_token_id=None) -> SpeedComparison:
    """Default vs fast path on the same greedy input ids, both next to the bandwidth bound of ``gpu`` (a catalog
    ``GPU``; the bound is None without one)."""
    max_new_tokens = _check_new_tokens(max_new_tokens)
    default = run_default(model, input_ids, max_new_tokens, pad_token_id)
    fast = run_fast(model, input_ids, max_new_tokens, pad_token_id)
    same_prefix = 0
    for a, b in zip(default.token_ids, fast.token_ids):
        if a != b:
            break
        same_prefix += 1
    weight_bytes = model_weight_bytes(model)
    bound = None
    if gpu is not None and gpu.bandwidth_gbs > 0:
        bound = model_generation_bound_tokens_per_s(model, weight_bytes, gpu.bandwidth_bytes_per_s,
                                                    input_ids.shape[1], max_new_tokens)
    return SpeedComparison(
        default_tokens_per_s=default.tokens_per_s,
        fast_tokens_per_s=fast.tokens_per_s,
        speedup=fast.tokens_per_s / default.tokens_per_s if default.tokens_per_s else None,
        same_output=default.token_ids == fast.token_ids,
        same_leading_tokens=same_prefix,
        new_tokens=max_new_tokens,
        prompt_tokens=int(input_ids.shape[1]),
        bound_tokens_per_s=bound,
        gpu=gpu.name if gpu else None,
        bandwidth_gbs=gpu.bandwidth_gbs if gpu else None,
        weight_bytes=weight_bytes,
        default_fraction_of_bound=default.tokens_per_s / bound if bound else None,
        fast_fraction_of_bound=fast.tokens_per_s / bound if bound else None,
        compile_warmup_seconds=fast.warmup_seconds,
        default_token_ids=default.token_ids,
        fast_token_ids=fast.token_ids,
    )


# --- the same for a core.run.models.LoadedModel and a text prompt ---------------------------------------------------
def _encode(loaded, prompt: str):
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("Enter a prompt to generate from.")
    return loaded.tokenizer(prompt, return_tensors="pt")["input_ids"].to(loaded.device)


def _pad_id(loaded):
    pad = loaded.tokenizer.pad_token_id
    return loaded.tokenizer.eos_token_id if pad is None else pad


def generate_default(loaded, prompt: str, max_new_tokens: int) -> GenerationRun:
    """Default ``generate`` on a loaded model and a prompt; ``text`` holds the decoded new tokens."""
    _check_new_tokens(max_new_tokens)
    run = run_default(loaded.model, _encode(loaded, prompt), max_new_tokens, _pad_id(loaded))
    run.text = loaded.tokenizer.decode(run.token_ids, skip_special_tokens=True)
    return run


def generate_fast(loaded, prompt: str, max_new_tokens: int, warmup: bool = True) -> GenerationRun:
    """Static cache + ``torch.compile`` ``generate`` on a loaded decoder (CUDA only; RuntimeError otherwise)."""
    ok, reason = fast_generation_support(loaded.device)
    if not ok:
        raise RuntimeError(reason)
    if loaded.kind != "decoder":
        raise RuntimeError("Fast generation applies to decoder models (text generation).")
    _check_new_tokens(max_new_tokens)
    run = run_fast(loaded.model, _encode(loaded, prompt), max_new_tokens, _pad_id(loaded), warmup)
    run.text = loaded.tokenizer.decode(run.token_ids, skip_special_tokens=True)
    return run


def weight_bytes_and_bandwidth(loaded, gpu_name: str | None = None) -> tuple[int, object | None]:
    """The model's weight bytes and the catalog GPU whose bandwidth bounds it (the detected GPU unless named)."""
    gpu = None
    if gpu_name:
        gpu = hardware.get_gpu(gpu_name)
    elif getattr(loaded.device, "type", "cpu") == "cuda":
        info = hardware.detect_hardware(str(loaded.device))
        gpu = hardware.get_gpu(info["catalog_gpu_name"]) if info["catalog_gpu_name"] else None
    return model_weight_bytes(loaded.model), gpu


def compare_generation(loaded, prompt: str, max_new_tokens: int, gpu_name: str | None = None) -> SpeedComparison:
    """Default vs fast path for a loaded decoder and a prompt (see ``compare_runs``), with the decoded texts."""
    ok, reason = fast_generation_support(loaded.device)
    if not ok:
        raise RuntimeError(reason)
    if loaded.kind != "decoder":
        raise RuntimeError("Fast generation applies to decoder models (text generation).")
    _, gpu = weight_bytes_and_bandwidth(loaded, gpu_name)
    result = compare_runs(loaded.model, _encode(loaded, prompt), max_new_tokens, gpu, _pad_id(loaded))
    return replace(result,
                   default_text=loaded.tokenizer.decode(result.default_token_ids, skip_special_tokens=True),
                   fast_text=loaded.tokenizer.decode(result.fast_token_ids, skip_special_tokens=True))
