"""One model at fp32 / fp16 / bf16 / int8 / nf4 / fp4, compared on measured memory, speed and quality.

What is measured for every variant (``compare_variants``), one variant loaded at a time:

- load time; weight memory: every tensor the model holds (parameters, buffers and the bitsandbytes quantization
  constants — absmax, code books, int8 row scales — that transformers' ``get_memory_footprint()`` leaves out), the
  footprint transformers reports, and on CUDA ``torch.cuda.memory_allocated`` growth;
- the memory planner's prediction for the same storage format (``core.plan.memory.weight_memory``) and the error in %;
- peak memory during a greedy generation: CUDA peak statistics on a GPU; on CPU the process's resident-memory peak
  (VmHWM, reset through ``/proc/self/clear_refs`` just before generating; where Linux does not allow that or does
  not keep the mark for unmapped memory, RSS sampled every 2 ms in a thread) minus the resident memory before the variant was loaded (it can read low when the
  allocator reuses memory freed by the previous variant); quantized CPU variants are first detached from the
  memory-mapped fp32 checkpoint (``detach_from_checkpoint``) so its pages do not count;
- tokens/s of the greedy generation (prompt prefill included);
- quality the way llama.cpp's ``perplexity`` tool reports it (``--kl-divergence``): perplexity on a reference text,
  ΔPPL versus the baseline (fp32), mean and 99th-percentile KL divergence of next-token distributions, top-1 agreement;
- greedy and same-seed sampled outputs, with the first position where they diverge from the baseline's.

Quantization formats: bitsandbytes LLM.int8() (Dettmers et al. 2022, "LLM.int8(): 8-bit Matrix Multiplication for
Transformers at Scale") and 4-bit NF4 / FP4 with optional double quantization (Dettmers et al. 2023, "QLoRA", §3),
through transformers' BitsAndBytesConfig (core.run.models.load_model).

Plain Python, no Streamlit.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import logging
import time
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from core.common import checks
from core.common.process_memory import PeakMemoryMeter, process_rss_bytes  # re-exported (core.run.quantization.*)
from core.common.scheduler import GENERATION_QUEUE
from core.common.paths import DATA_DIR

ProgressCallback = Callable[[float, str], None]

VARIANTS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "nf4", "fp4")
DEFAULT_VARIANTS: tuple[str, ...] = ("fp32", "bf16", "int8", "nf4")
COMPUTE_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16")
UNQUANTIZED_DTYPES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

DEFAULT_PROMPT = "Explain in two sentences why a lighthouse is useful to ships."
DEFAULT_MAX_NEW_TOKENS = 16
DEFAULT_REFERENCE_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 256
MAX_REFERENCE_TOKENS_LIMIT = 2048
MIN_REFERENCE_TOKENS = 8
MAX_PROMPT_CHARS = 4000
KL_PERCENTILE = 99.0

REFERENCE_TEXT_PATH = DATA_DIR / "reference_text.txt"


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is stored: the dtype its unquantized layers load in and the bitsandbytes format, if any."""

    name: str
    label: str
    quantization: str | None  # None | "int8" | "nf4" | "fp4"
    dtype: str | None  # fp32 / fp16 / bf16 for float variants; None = the unquantized-layers option
    bits: float  # bits per quantized weight value (constants not included)
    description: str


VARIANT_SPECS: dict[str, VariantSpec] = {
    "fp32": VariantSpec("fp32", "fp32", None, "fp32", 32, "32-bit float, the unquantized baseline (4 B/param)."),
    "fp16": VariantSpec("fp16", "fp16", None, "fp16", 16,
                        "IEEE half precision (2 B/param): 5 exponent bits, max ≈ 65504, so large activations can overflow."),
    "bf16": VariantSpec("bf16", "bf16", None, "bf16", 16,
                        "bfloat16 (2 B/param): fp32's 8 exponent bits (same range), only 7 mantissa bits."),
    "int8": VariantSpec("int8", "int8 (LLM.int8)", "int8", None, 8,
                        "bitsandbytes LLM.int8(): int8 weights with one fp32 scale per row; outlier features "
                        "(|x| > 6) are multiplied in 16-bit (Dettmers et al. 2022)."),
    "nf4": VariantSpec("nf4", "nf4 (4-bit NormalFloat)", "nf4", None, 4,
                       "bitsandbytes 4-bit NormalFloat: 16 levels placed at quantiles of a normal distribution, one "
                       "absmax scale per block of 64 weights (QLoRA, Dettmers et al. 2023)."),
    "fp4": VariantSpec("fp4", "fp4 (4-bit float)", "fp4", None, 4,
                       "bitsandbytes 4-bit float (1 sign, 2 exponent, 1 mantissa bit), one absmax per block of 64."),
}


class QuantizationInputError(ValueError):
    """Bad input to the comparison (the message is user-facing)."""


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def load_reference_text(path: Path | str = REFERENCE_TEXT_PATH) -> str:
    """The reference text shipped with LLM Lab (core/data/reference_text.txt), without its '#' header lines."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")).strip()


def normalize_variants(variants) -> list[str]:
    """Validated variant names in canonical order (fp32, fp16, bf16, int8, nf4, fp4), duplicates dropped."""
    if variants is None or isinstance(variants, (str, bytes)):
        variants = [variants] if isinstance(variants, str) else []
    chosen = []
    for v in variants:
        key = str(v).strip().lower()
        if key not in VARIANT_SPECS:
            raise QuantizationInputError(f"Unknown variant '{v}'. Choose from: {', '.join(VARIANTS)}.")
        chosen.append(key)
    if not chosen:
        raise QuantizationInputError("Choose at least one variant to compare (fp32 is the usual baseline).")
    return [v for v in VARIANTS if v in chosen]


_check_int = functools.partial(checks.check_int, error=QuantizationInputError)
_check_choice = functools.partial(checks.check_choice, error=QuantizationInputError)


# ---------------------------------------------------------------------------------------------------------------------
# Quality metrics (numpy; logits of shape (positions, vocab))


def _as_2d_float64(logits, name: str) -> np.ndarray:
    if hasattr(logits, "detach"):  # torch tensor (bf16 has no numpy dtype: go through fp32)
        logits = logits.detach().float().cpu().numpy()
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (positions, vocab) or (1, positions, vocab), got {array.shape}.")
    return array


def log_softmax(logits) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64: x − max − log Σ exp(x − max)."""
    x = _as_2d_float64(logits, "logits")
    shifted = x - np.max(x, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def kl_divergence(base_logits, other_logits, chunk_positions: int = 64) -> np.ndarray:
    """KL(P_base ‖ Q_other) per position, in nats: Σ_v p(v) · (log p(v) − log q(v)).

    P and Q are the softmax of each model's next-token logits at the same position; the direction (baseline first)
    is the one llama.cpp's ``perplexity --kl-divergence`` reports. Computed from log-softmax in float64, a chunk of
    positions at a time to bound memory. Exactly 0 for identical logits; tiny negative rounding is clipped to 0.
    Accepts numpy arrays or torch tensors of shape (positions, vocab) or (1, positions, vocab).
    """
    base = _as_2d_float64(base_logits, "base_logits")
    other = _as_2d_float64(other_logits, "other_logits")
    if base.shape != other.shape:
        raise ValueError(f"Logit shapes differ: {base.shape} vs {other.shape}.")
    out = np.empty(base.shape[0], dtype=np.float64)
    for start in range(0, base.shape[0], max(1, int(chunk_positions))):
        stop = start + max(1, int(chunk_positions))
        log_p = log_softmax(base[start:stop])
        log_q = log_softmax(other[start:stop])
        p = np.exp(log_p)
        with np.errstate(invalid="ignore"):
            terms = np.where(p > 0, p * (log_p - log_q), 0.0)
        out[start:stop] = terms.sum(axis=-1)
    return np.maximum(out, 0.0)


def token_nll(logits, token_ids) -> np.ndarray:
    """Negative log-likelihood (nats) of tokens 1..T−1, each predicted from the logits at the position before it."""
    log_probs = log_softmax(logits)
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != log_probs.shape[0]:
        raise ValueError(f"{ids.shape[0]} token ids for {log_probs.shape[0]} positions of logits.")
    if ids.shape[0] < 2:
        raise ValueError("Perplexity needs at least 2 tokens.")
    return -log_probs[np.arange(ids.shape[0] - 1), ids[1:]]


def perplexity_from_logits(logits, token_ids) -> float:
    """Perplexity = exp(mean NLL) of the text, every token after the first scored (as llama.cpp's perplexity tool
    defines it, https://github.com/ggml-org/llama.cpp/tree/master/tools/perplexity)."""
    return float(np.exp(np.mean(token_nll(logits, token_ids))))


def top1_agreement(base_logits, other_logits) -> float:
    """Fraction (0–1) of positions where both models' most likely next token is the same ("Same top p" in llama.cpp)."""
    base = _as_2d_float64(base_logits, "base_logits")
    other = _as_2d_float64(other_logits, "other_logits")
    if base.shape != other.shape:
        raise ValueError(f"Logit shapes differ: {base.shape} vs {other.shape}.")
    return float(np.mean(np.argmax(base, axis=-1) == np.argmax(other, axis=-1)))


def kl_percentile(kl_per_position, percentile: float = KL_PERCENTILE) -> float:
    """The ``percentile``-th percentile (linear interpolation) of per-position KL values ("99.0% KLD" in llama.cpp)."""
    values = np.asarray(kl_per_position, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, percentile))


# ---------------------------------------------------------------------------------------------------------------------
# Token-level comparison of generated outputs


def first_divergence(base_ids, other_ids) -> int | None:
    """Index of the first generated token that differs from the baseline's (or where one output stops while the other
    goes on); None when both outputs are identical."""
    base, other = list(base_ids), list(other_ids)
    for index, (a, b) in enumerate(zip(base, other)):
        if a != b:
            return index
    if len(base) != len(other):
        return min(len(base), len(other))
    return None


def token_diff(base_ids, other_ids, other_tokens=None) -> list[dict]:
    """Position-by-position comparison of a variant's tokens with the baseline's.

    One entry per token of the variant: {"position", "token" (text), "same" (equal to the baseline's token at that
    position), "after_divergence" (at or after the first divergence: the context differs from the baseline's from
    there on, so later matches are coincidences)}.
    """
    other = list(other_ids)
    texts = list(other_tokens) if other_tokens is not None else [str(t) for t in other]
    divergence = first_divergence(base_ids, other)
    base = list(base_ids)
    entries = []
    for index, (token_id, text) in enumerate(zip(other, texts)):
        same = index < len(base) and base[index] == token_id
        entries.append({"position": index, "token": text, "same": bool(same),
                        "after_divergence": divergence is not None and index >= divergence})
    return entries


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


def _device_memory_in_use(device) -> int:
    """Bytes this variant can grow from: CUDA allocated bytes on a GPU, process RSS on CPU."""
    if getattr(device, "type", str(device)) == "cuda":
        import torch

        return int(torch.cuda.memory_allocated(device))
    return process_rss_bytes()


def free_released_memory() -> None:
    """After a model's references are dropped: collect garbage, empty the CUDA cache, and ask glibc to hand freed heap
    pages back to the OS (``malloc_trim(0)``), so process memory does not ratchet up from variant to variant."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): the allocator keeps its own policy


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


def _planner_model(loaded) -> Any:
    """What to give the planner: the catalog id of the bundled model, else the loaded model's config as a dict."""
    from core.run import models

    if loaded.name == models.BUNDLED_DECODER:
        return models.BUNDLED_DECODER
    return loaded.model.config.to_dict()


# ---------------------------------------------------------------------------------------------------------------------
# The comparison

@dataclass(frozen=True)
class VariantResult:
    """One variant's record in ``compare_quantization`` (one row of its DataFrame; ``to_dict()`` gives that row's
    keys, which are ``RESULT_COLUMNS``). Bytes, seconds, nats and percent (0–100) as the names say; None where a
    value does not apply or the variant could not run (``available=False`` with the ``reason``)."""
    variant: str
    label: str
    available: bool = False
    reason: str = ""
    baseline: str | None = None  # variant the quality metrics compare against
    device: str | None = None
    dtype: str | None = None  # dtype of the layers left unquantized (or of all layers)
    quantization: str | None = None  # "int8" / "nf4" / "fp4" (bitsandbytes) or None
    double_quant: bool | None = None
    compute_dtype: str | None = None
    load_seconds: float | None = None
    weight_bytes: int | None = None  # measured: parameters, buffers and quantization constants
    footprint_bytes: int | None = None  # transformers' get_memory_footprint()
    cuda_allocated_bytes: int | None = None
    predicted_weight_bytes: float | None = None  # core.plan.memory's prediction
    prediction_error_pct: float | None = None
    peak_bytes: int | None = None  # peak during greedy generation minus memory in use before loading
    peak_process_bytes: int | None = None
    peak_method: str | None = None
    tokens_per_s: float | None = None
    generated_tokens: int | None = None
    generation_seconds: float | None = None
    reference_tokens: int | None = None
    perplexity: float | None = None
    delta_ppl: float | None = None
    delta_ppl_pct: float | None = None
    kl_mean: float | None = None  # nats
    kl_p99: float | None = None  # nats
    kl_max: float | None = None  # nats
    top1_agreement: float | None = None  # percent
    greedy_text: str | None = None
    sampled_text: str | None = None
    greedy_first_divergence: int | None = None
    sampled_first_divergence: int | None = None
    greedy_ids: list | None = None
    greedy_tokens: list | None = None
    sampled_ids: list | None = None
    sampled_tokens: list | None = None
    kl_per_position: list | None = None  # KL per reference position, nats
    notes: str | None = None

    def to_dict(self) -> dict:
        return {column: getattr(self, column) for column in RESULT_COLUMNS}


RESULT_COLUMNS = [f.name for f in fields(VariantResult)]


def _empty_row(spec: VariantSpec) -> dict:
    return VariantResult(variant=spec.name, label=spec.label, quantization=spec.quantization).to_dict()


def _prompt_ids(tokenizer, prompt: str, use_chat_template: bool):
    """Token ids of the prompt, wrapped in the tokenizer's chat template when it has one and it is asked for."""
    if use_chat_template and getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, return_tensors="pt", add_special_tokens=False)
    return tokenizer(prompt, return_tensors="pt")


@contextlib.contextmanager
def quiet_libraries():
    """Silence per-call library chatter while variants run: bitsandbytes logs "MatMul8bitLt: inputs will be cast…"
    on every int8 matmul and a hint about an optional CPU kernels package; transformers warns about generation flags."""
    names = ("bitsandbytes", "transformers")
    previous = {n: logging.getLogger(n).level for n in names}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for n in names:
                logging.getLogger(n).setLevel(logging.ERROR)
            yield
    finally:
        for n, level in previous.items():
            logging.getLogger(n).setLevel(level)


def _generate(loaded, inputs, max_new_tokens: int, sample: bool, seed: int, temperature: float, top_k: int):
    import torch
    from transformers import GenerationConfig

    tokenizer = loaded.tokenizer
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=sample,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **({"temperature": temperature, "top_k": top_k, "top_p": 1.0} if sample else {}),
    )
    device_inputs = {k: v.to(loaded.device) for k, v in inputs.items()}
    # Its turn at the model in the same first-come-first-served line as the Generate page (core.common.scheduler): the
    # seed above must not be re-seeded by another session's run, and timings are not shared with another run.
    with GENERATION_QUEUE.admit("quantization"):
        if sample:
            torch.manual_seed(seed)
            if loaded.device.type == "cuda":
                torch.cuda.manual_seed_all(seed)
        started = time.perf_counter()
        with torch.inference_mode():
            output = loaded.model.generate(**device_inputs, generation_config=config)
        if loaded.device.type == "cuda":
            torch.cuda.synchronize(loaded.device)
        seconds = time.perf_counter() - started
    new_ids = output[0, device_inputs["input_ids"].shape[1]:].tolist()
    return new_ids, seconds


def _token_texts(tokenizer, ids) -> list[str]:
    return [tokenizer.decode([i], skip_special_tokens=False) for i in ids]


def _reference_logits(loaded, reference_ids) -> np.ndarray:
    import torch

    with torch.inference_mode():
        logits = loaded.model(input_ids=reference_ids.to(loaded.device)).logits[0]
    return logits.float().cpu().numpy()


def compare_variants(
    name: str | None = None,
    variants=DEFAULT_VARIANTS,
    prompt: str = DEFAULT_PROMPT,
    reference_text: str | None = None,
    *,
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
    max_reference_tokens: int = DEFAULT_REFERENCE_TOKENS,
    double_quant: bool = False,
    compute_dtype: str = "fp32",
    unquantized_dtype: str = "auto",
    device: str = "auto",
    seed: int = 0,
    temperature: float = 0.8,
    top_k: int = 50,
    use_chat_template: bool = True,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Load each variant of ``name`` in turn (None → the bundled SmolLM2-135M-Instruct), measure it, release it.

    Returns one row per requested variant (canonical order fp32, fp16, bf16, int8, nf4, fp4), columns
    ``RESULT_COLUMNS``: ``weight_bytes`` (measured, incl. quantization constants), ``predicted_weight_bytes`` (memory
    planner) and ``prediction_error_pct``, ``footprint_bytes`` (get_memory_footprint), ``load_seconds``, ``peak_bytes``
    (peak during greedy generation minus memory in use before loading), ``tokens_per_s``, ``perplexity`` on the first
    ``max_reference_tokens`` tokens of ``reference_text`` (None → the bundled text), ``delta_ppl`` / ``kl_mean`` /
    ``kl_p99`` (nats) / ``top1_agreement`` (%, 0–100) versus the baseline, greedy and same-seed sampled outputs with the
    first divergence from the baseline's. The baseline is fp32 when requested, else the first variant that loads.
    A variant this machine cannot run has ``available=False`` and the reason; the others still run.

    4-bit options: ``double_quant`` (quantize the absmax scales too), ``compute_dtype`` (dtype of the 4-bit matmuls).
    ``unquantized_dtype`` is the dtype of the layers bitsandbytes keeps (embeddings, norms, lm_head); "auto" = fp32 on
    CPU, bf16/fp16 on CUDA. ``progress(fraction, message)`` is called as the comparison advances.
    Raises QuantizationInputError on bad input and core.run.models.ModelLoadError when the model itself cannot be found.
    """
    from core.run import models

    report = progress or (lambda fraction, message: None)
    chosen = normalize_variants(variants)
    if not isinstance(prompt, str) or not prompt.strip():
        raise QuantizationInputError("The prompt is empty: type a prompt for the models to continue.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise QuantizationInputError(f"The prompt is {len(prompt):,} characters long; keep it under {MAX_PROMPT_CHARS:,}.")
    max_new_tokens = _check_int(max_new_tokens, "Max new tokens", 1, MAX_NEW_TOKENS_LIMIT)
    max_reference_tokens = _check_int(max_reference_tokens, "Reference tokens", MIN_REFERENCE_TOKENS,
                                      MAX_REFERENCE_TOKENS_LIMIT)
    compute_dtype = _check_choice(compute_dtype, "Compute dtype", COMPUTE_DTYPES)
    unquantized_dtype = _check_choice(unquantized_dtype, "Unquantized layers' dtype", UNQUANTIZED_DTYPES)
    seed = _check_int(seed, "Seed", 0, 2**31 - 1)
    if reference_text is None:
        reference_text = load_reference_text()
    if not isinstance(reference_text, str) or not reference_text.strip():
        raise QuantizationInputError("The reference text is empty: perplexity and KL need a text to score.")

    target_device = models.select_device(device)
    resolved_name = models.canonical_name(name)
    if resolved_name == models.BUNDLED_ENCODER:
        raise QuantizationInputError(
            f"{models.BUNDLED_ENCODER} is an encoder: it does not generate text or predict next tokens. Compare a "
            f"decoder such as the bundled {models.BUNDLED_DECODER}.")
    report(0.0, f"Reading the tokenizer of {resolved_name}…")
    tokenizer = models.load_tokenizer(resolved_name)  # ModelLoadError here: the model itself is unavailable
    reference_ids = tokenizer(reference_text, return_tensors="pt").input_ids[:, :max_reference_tokens]
    if reference_ids.shape[1] < MIN_REFERENCE_TOKENS:
        raise QuantizationInputError(
            f"The reference text has only {reference_ids.shape[1]} tokens; perplexity needs at least "
            f"{MIN_REFERENCE_TOKENS}.")
    prompt_inputs = _prompt_ids(tokenizer, prompt, use_chat_template)
    del tokenizer

    keep_dtype = (models.SHORT_DTYPE[models.resolve_dtype("auto", target_device)]
                  if unquantized_dtype == "auto" else unquantized_dtype)
    baseline_name: str | None = None
    baseline_logits: np.ndarray | None = None
    baseline_ppl: float | None = None
    baseline_greedy: list[int] | None = None
    baseline_sampled: list[int] | None = None
    rows: list[dict] = []
    steps_per_variant = 4
    total_steps = steps_per_variant * len(chosen)

    def step(index: int, stage: int, message: str) -> None:
        report(min(1.0, (index * steps_per_variant + stage) / total_steps), message)

    for index, variant in enumerate(chosen):
        spec = VARIANT_SPECS[variant]
        row = _empty_row(spec)
        row.update(device=str(target_device), reference_tokens=int(reference_ids.shape[1]),
                   double_quant=bool(double_quant) if spec.quantization in ("nf4", "fp4") else None,
                   compute_dtype=compute_dtype if spec.quantization in ("nf4", "fp4") else None)
        dtype = spec.dtype or keep_dtype
        row["dtype"] = dtype
        loaded = None
        free_released_memory()
        memory_before = _device_memory_in_use(target_device)
        try:
            step(index, 0, f"{spec.label}: loading…")
            with quiet_libraries():
                loaded = models.load_model(resolved_name, dtype=dtype, device=target_device,
                                           quantization=spec.quantization, double_quant=bool(double_quant),
                                           compute_dtype=compute_dtype if spec.quantization else None)
            if loaded.kind != "decoder":
                raise QuantizationInputError(
                    f"'{resolved_name}' is an {loaded.kind}; the comparison needs a decoder (causal language model) "
                    f"such as the bundled {models.BUNDLED_DECODER}.")
            row["load_seconds"] = float(loaded.load_seconds)
            if spec.quantization and target_device.type == "cpu":
                detach_from_checkpoint(loaded.model)  # else the fp32 checkpoint stays mapped and resident
                free_released_memory()
            row["notes"] = "; ".join(loaded.notes)
            row["weight_bytes"] = model_weight_bytes(loaded.model)
            row["footprint_bytes"] = int(loaded.model.get_memory_footprint())
            if target_device.type == "cuda":
                row["cuda_allocated_bytes"] = _device_memory_in_use(target_device) - memory_before
            try:
                predicted = predicted_weight_bytes(_planner_model(loaded), variant, double_quant=bool(double_quant),
                                                   unquantized_dtype=dtype)
                row["predicted_weight_bytes"] = predicted
                row["prediction_error_pct"] = 100.0 * (row["weight_bytes"] - predicted) / predicted
            except Exception as exc:  # noqa: BLE001 - an architecture the planner does not know: no prediction
                row["notes"] = "; ".join(filter(None, [row["notes"], f"no planner prediction: {exc}"]))

            step(index, 1, f"{spec.label}: scoring {reference_ids.shape[1]} reference tokens…")
            with quiet_libraries():
                logits = _reference_logits(loaded, reference_ids)
            row["perplexity"] = perplexity_from_logits(logits, reference_ids[0].numpy())
            if baseline_logits is None:
                baseline_name, baseline_logits, baseline_ppl = variant, logits, row["perplexity"]
                kl = np.zeros(logits.shape[0])
                row["top1_agreement"] = 100.0
            else:
                kl = kl_divergence(baseline_logits, logits)
                row["top1_agreement"] = 100.0 * top1_agreement(baseline_logits, logits)
            del logits
            row["baseline"] = baseline_name
            row["delta_ppl"] = row["perplexity"] - baseline_ppl
            row["delta_ppl_pct"] = 100.0 * row["delta_ppl"] / baseline_ppl
            row["kl_mean"] = float(np.mean(kl))
            row["kl_p99"] = kl_percentile(kl)
            row["kl_max"] = float(np.max(kl))
            row["kl_per_position"] = kl.astype(np.float32).tolist()

            step(index, 2, f"{spec.label}: greedy generation of up to {max_new_tokens} tokens…")
            free_released_memory()  # loading and scoring leave garbage behind: measure generation, not them
            with quiet_libraries():
                with PeakMemoryMeter(target_device) as meter:
                    greedy, seconds = _generate(loaded, prompt_inputs, max_new_tokens, False, seed, temperature,
                                                top_k)
            row["peak_process_bytes"] = meter.peak_bytes
            row["peak_bytes"] = max(0, meter.peak_bytes - memory_before)
            row["peak_method"] = meter.method
            row["generated_tokens"] = len(greedy)
            row["generation_seconds"] = seconds
            row["tokens_per_s"] = len(greedy) / seconds if seconds > 0 and greedy else float("nan")

            step(index, 3, f"{spec.label}: sampled generation (seed {seed})…")
            with quiet_libraries():
                sampled, _ = _generate(loaded, prompt_inputs, max_new_tokens, True, seed, temperature, top_k)

            tok = loaded.tokenizer
            row["greedy_ids"], row["sampled_ids"] = greedy, sampled
            row["greedy_tokens"], row["sampled_tokens"] = _token_texts(tok, greedy), _token_texts(tok, sampled)
            row["greedy_text"] = tok.decode(greedy, skip_special_tokens=True)
            row["sampled_text"] = tok.decode(sampled, skip_special_tokens=True)
            if baseline_greedy is None:
                baseline_greedy, baseline_sampled = greedy, sampled
            row["greedy_first_divergence"] = first_divergence(baseline_greedy, greedy)
            row["sampled_first_divergence"] = first_divergence(baseline_sampled, sampled)
            row["available"] = True
        except QuantizationInputError:
            raise
        except models.ModelLoadError as exc:
            row["reason"] = str(exc)
        except (MemoryError, RuntimeError, ValueError, TypeError, ImportError, OSError) as exc:
            text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if isinstance(exc, MemoryError) or "out of memory" in text.lower():
                text = f"out of memory on {target_device}: {text}"
            row["reason"] = f"{spec.label} failed on {target_device}: {text}"
        finally:
            if loaded is not None:
                models.release_model(loaded)
                loaded = None
            free_released_memory()
        if not row["available"]:
            for column in ("greedy_ids", "sampled_ids", "greedy_tokens", "sampled_tokens", "kl_per_position"):
                row[column] = None
        rows.append(VariantResult(**row).to_dict())
    del baseline_logits
    free_released_memory()
    report(1.0, "Done.")
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    for column in ("greedy_first_divergence", "sampled_first_divergence", "generated_tokens", "reference_tokens"):
        frame[column] = frame[column].astype("Int64")
    numeric = ["load_seconds", "weight_bytes", "footprint_bytes", "cuda_allocated_bytes", "predicted_weight_bytes",
               "prediction_error_pct", "peak_bytes", "peak_process_bytes", "tokens_per_s", "generation_seconds",
               "perplexity", "delta_ppl", "delta_ppl_pct", "kl_mean", "kl_p99", "kl_max", "top1_agreement"]
    for column in numeric:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame


# ---------------------------------------------------------------------------------------------------------------------
# Tables for display and download

MEMORY_SPEED_COLUMNS: dict[str, str] = {
    "label": "Variant",
    "weight_mb": "Weights (MB)",
    "predicted_mb": "Predicted (MB)",
    "prediction_error_pct": "Error (%)",
    "footprint_mb": "HF footprint (MB)",
    "peak_mb": "Peak (MB)",
    "load_seconds": "Load (s)",
    "tokens_per_s": "Speed (tok/s)",
}
QUALITY_COLUMNS: dict[str, str] = {
    "label": "Variant",
    "perplexity": "Perplexity",
    "delta_ppl": "ΔPPL vs baseline",
    "delta_ppl_pct": "ΔPPL vs baseline (%)",
    "kl_mean": "KL mean (nats)",
    "kl_p99": "KL p99 (nats)",
    "top1_agreement": "Top-1 agreement (%)",
    "greedy_first_divergence": "Greedy diverges at",
}
DISPLAY_COLUMNS: dict[str, str] = {**MEMORY_SPEED_COLUMNS, **QUALITY_COLUMNS}

CSV_COLUMNS = [c for c in RESULT_COLUMNS if c not in ("greedy_ids", "sampled_ids", "greedy_tokens", "sampled_tokens",
                                                       "kl_per_position")]


def summary_table(results: pd.DataFrame, columns: dict[str, str] | None = None) -> pd.DataFrame:
    """The results of available variants with human units (MB = 1e6 bytes), columns named for display.

    ``columns``: MEMORY_SPEED_COLUMNS, QUALITY_COLUMNS or (default) DISPLAY_COLUMNS, both together."""
    columns = columns or DISPLAY_COLUMNS
    frame = results[results["available"]].copy()
    frame["weight_mb"] = frame["weight_bytes"] / 1e6
    frame["predicted_mb"] = frame["predicted_weight_bytes"] / 1e6
    frame["footprint_mb"] = frame["footprint_bytes"] / 1e6
    frame["peak_mb"] = frame["peak_bytes"] / 1e6
    frame["greedy_first_divergence"] = [
        "baseline" if variant == base else ("identical" if pd.isna(index) else f"token {int(index)}")
        for variant, base, index in zip(frame["variant"], frame["baseline"], frame["greedy_first_divergence"])]
    return frame[list(columns)].rename(columns=columns).reset_index(drop=True)


def unavailable_variants(results: pd.DataFrame) -> list[tuple[str, str]]:
    """(label, reason) of the variants that could not run."""
    frame = results[~results["available"]]
    return list(zip(frame["label"], frame["reason"]))


def results_csv(results: pd.DataFrame) -> str:
    """All measured columns (no per-token lists) as CSV text, bytes and seconds in base units."""
    return results[CSV_COLUMNS].to_csv(index=False)
