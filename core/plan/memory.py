"""GPU memory formulas for serving and training transformers, each with its source.

Units: bytes everywhere; GB = 1e9 bytes (as GPU datasheets and the ZeRO paper use). Sources are collected in
docs/references/formulas.md:
- bytes per parameter and the 24 B/param training rule of thumb: the course notes;
- mixed-precision Adam model states 16 B/param and ZeRO stages: Rajbhandari et al. 2019, "ZeRO: Memory Optimizations
  Toward Training Trillion Parameter Models", §3.1 and Figure 1;
- activations per layer: Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models",
  §4 and Table 2;
- KV cache: 2 · layers · kv_heads · head_dim · tokens · batch · bytes (K and V of every attention layer);
- bitsandbytes storage: bitsandbytes.functional.quantize_4bit (blocksize 64, fp32 absmax; nested 8-bit absmax with
  blocksize 256 for double quantization) and Linear8bitLt (int8 weights + one fp32 scale per output row, SCB);
  layers left in 16-bit follow transformers' get_keys_to_not_convert.

Public API (a contract): BYTES_PER_PARAM, weights_bytes, training_bytes_per_param, zero_model_states_bytes,
kv_cache_bytes, activation_bytes_per_layer. The rest serves the Memory planner page.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

from core.plan import architectures
from core.common import checks
from core.common.units import BYTES_PER_VALUE, GB, format_gb, subset  # GB re-exported (a contract: core.plan.memory.GB)

BYTES_PER_PARAM: dict[str, float] = subset(("fp32", "fp16", "bf16", "int8", "int4"))

# Weight storage formats the planner knows. "int8"/"nf4"/"nf4-dq" are bitsandbytes formats (with their constants).
WEIGHT_FORMATS: dict[str, str] = {
    "fp32": "fp32 (4 B/param)",
    "fp16": "fp16 (2 B/param)",
    "bf16": "bf16 (2 B/param)",
    "int8": "int8, bitsandbytes LLM.int8 (1 B/param + 1 fp32 scale per row)",
    "nf4": "4-bit NF4, bitsandbytes (0.5 B/param + fp32 absmax per 64)",
    "nf4-dq": "4-bit NF4 + double quant (0.5 B/param + 8-bit absmax per 64)",
}
_FORMAT_BYTES = {**subset(("fp32", "fp16", "bf16", "int8")), "nf4": BYTES_PER_VALUE["int4"],
                 "nf4-dq": BYTES_PER_VALUE["int4"]}

# bitsandbytes constants (bitsandbytes.functional.quantize_4bit / nn.Linear4bit defaults in transformers).
BNB_4BIT_BLOCKSIZE = 64
BNB_NESTED_BLOCKSIZE = 256
BNB_4BIT_QUANT_MAP_VALUES = 16  # fp32 code book of NF4 / FP4
BNB_NESTED_QUANT_MAP_VALUES = 256  # fp32 code book of the 8-bit dynamic map used for the nested absmax

RECOMPUTE_OPTIONS = ("none", "selective", "full")

# Editable defaults of the planner (never hidden: the page shows them as inputs).
DEFAULT_INFERENCE_WORKSPACE_PCT = 20.0
"""Activations and temporary buffers while serving, as % of weight memory: EleutherAI "Transformer Math 101"
(Anthony, Biderman, Schoelkopf 2023): total inference memory ≈ 1.2 × model weights."""
DEFAULT_CUDA_OVERHEAD_GB = 1.3
"""CUDA context + PyTorch kernels per GPU process: Hugging Face "Model training anatomy" guide measures ~1.3 GB
occupied right after the first tensor is put on the GPU, before any model is loaded."""
DEFAULT_CUDA_OVERHEAD_BYTES = DEFAULT_CUDA_OVERHEAD_GB * GB
"""The same default in bytes, the unit the functions below take (``overhead_bytes``)."""


_check_nonnegative = checks.check_nonnegative
_check_positive_int = checks.check_positive_int
# Bytes per parameter of the model states, named for their unit; the old names stay accepted as keywords.
_PER_PARAM_KEYWORDS = {"weight_bytes": "weight_bytes_per_param", "grad_bytes": "grad_bytes_per_param",
                       "optimizer_bytes": "optimizer_bytes_per_param"}


def _overhead_bytes(overhead_gb: float | None, overhead_bytes: float | None) -> float:
    """Per-GPU overhead in bytes from either ``overhead_bytes`` or the older ``overhead_gb`` (GB = 1e9 bytes)."""
    if overhead_gb is not None and overhead_bytes is not None:
        raise TypeError("Give the overhead once: overhead_bytes (or the older overhead_gb), not both.")
    if overhead_bytes is None:
        overhead_bytes = DEFAULT_CUDA_OVERHEAD_BYTES if overhead_gb is None else \
            _check_nonnegative(overhead_gb, "overhead") * GB
    return _check_nonnegative(overhead_bytes, "overhead")


# ---------------------------------------------------------------------------------------------------------------
# Weights
# ---------------------------------------------------------------------------------------------------------------
def weights_bytes(n_params: float, dtype: str) -> float:
    """Bytes to store ``n_params`` weights at ``dtype`` ("fp32" 4, "fp16"/"bf16" 2, "int8" 1, "int4" 0.5 B/param).

    Source: the course notes' bytes-per-parameter table (4 GB stores 1B fp32 parameters). No quantization constants:
    see ``weight_memory`` for bitsandbytes' real storage.
    """
    if dtype not in BYTES_PER_PARAM:
        raise ValueError(f"Unknown dtype {dtype!r}. Known: {', '.join(BYTES_PER_PARAM)}.")
    return _check_nonnegative(n_params, "n_params") * BYTES_PER_PARAM[dtype]


def _bnb_4bit_constants_bytes(n_values: int, double_quant: bool) -> float:
    """Per-tensor constants of bitsandbytes 4-bit storage (quantize_4bit, blocksize 64).

    Without double quantization: one fp32 absmax per block of 64 (32/64 = 0.5 bit/param) + the 16-value fp32 code.
    With double quantization: absmax stored as uint8 (8/64 = 0.125 bit/param) + one fp32 absmax per 256 absmax values
    (32/(64·256) ≈ 0.002 bit/param) + its 256-value fp32 code + one fp32 offset → ≈ 0.127 bit/param (QLoRA §3).
    """
    blocks = math.ceil(n_values / BNB_4BIT_BLOCKSIZE)
    code = BNB_4BIT_QUANT_MAP_VALUES * 4
    if not double_quant:
        return blocks * 4 + code
    nested_blocks = math.ceil(blocks / BNB_NESTED_BLOCKSIZE)
    return blocks * 1 + nested_blocks * 4 + BNB_NESTED_QUANT_MAP_VALUES * 4 + 4 + code


def weight_memory(model, weight_format: str, compute_dtype: str = "fp16") -> dict[str, float]:
    """Bytes of a model's weights in ``weight_format`` (see WEIGHT_FORMATS), split into components.

    ``model`` is a catalog id / config dict (exact, per weight matrix) or a raw parameter count (int/float: every
    parameter treated as quantizable, constants at their per-parameter rate). Float formats return {"weights": ...}.
    bitsandbytes formats return "quantized_weights" (int8 / packed 4-bit values), "quantization_constants" (int8: one
    fp32 scale per output row, SCB; 4-bit: absmax per 64-value block) and "unquantized_layers" (16-bit) —
    embeddings, norms, biases, lm_head and the last module (transformers' get_keys_to_not_convert) in ``compute_dtype``.
    """
    if weight_format not in _FORMAT_BYTES:
        raise ValueError(f"Unknown weight format {weight_format!r}. Known: {', '.join(WEIGHT_FORMATS)}.")
    if compute_dtype not in ("fp16", "bf16", "fp32"):
        raise ValueError(f"compute_dtype must be fp16, bf16 or fp32, got {compute_dtype!r}.")
    keep_bytes = BYTES_PER_PARAM[compute_dtype]
    if isinstance(model, (int, float)) and not isinstance(model, bool):
        n = _check_nonnegative(model, "parameter count")
        if weight_format in ("fp32", "fp16", "bf16"):
            return {"weights": n * _FORMAT_BYTES[weight_format]}
        if weight_format == "int8":
            return {"quantized_weights": n, "quantization_constants": 0.0, "unquantized_layers": 0.0}
        per_param = 4 / BNB_4BIT_BLOCKSIZE if weight_format == "nf4" else (
            1 / BNB_4BIT_BLOCKSIZE + 4 / (BNB_4BIT_BLOCKSIZE * BNB_NESTED_BLOCKSIZE))
        return {"quantized_weights": n * 0.5, "quantization_constants": n * per_param,
                "unquantized_layers": 0.0}

    total_params = architectures.param_count(model)
    if weight_format in ("fp32", "fp16", "bf16"):
        return {"weights": total_params * _FORMAT_BYTES[weight_format]}
    quantized_values = 0.0
    constants = 0.0
    quantized_params = 0
    for layer in architectures.linear_layers(model):
        if not layer.quantizable or layer.count == 0:
            continue
        per_tensor = layer.in_features * layer.out_features
        quantized_params += per_tensor * layer.count
        if weight_format == "int8":
            quantized_values += per_tensor * layer.count
            constants += layer.out_features * 4 * layer.count  # SCB: fp32 absmax per output row
        else:
            quantized_values += math.ceil(per_tensor / 2) * layer.count
            constants += _bnb_4bit_constants_bytes(per_tensor, weight_format == "nf4-dq") * layer.count
    kept = (total_params - quantized_params) * keep_bytes
    return {"quantized_weights": float(quantized_values), "quantization_constants": float(constants),
            "unquantized_layers": float(kept)}


# ---------------------------------------------------------------------------------------------------------------
# KV cache
# ---------------------------------------------------------------------------------------------------------------
def kv_cache_bytes(n_layers: int, n_kv_heads: int, head_dim: int, seq_len: int, batch_size: int,
                   bytes_per_value: float) -> float:
    """KV cache bytes: 2 (K and V) · layers · kv_heads · head_dim · tokens · batch · bytes per value.

    Source: the key and value projections of every attention layer (Vaswani et al. 2017, §3.2); every attention layer caches one key and one value vector of
    kv_heads · head_dim values per token. GQA/MQA models have kv_heads < heads (Ainslie et al. 2023).
    """
    for value, name in ((n_layers, "n_layers"), (n_kv_heads, "n_kv_heads"), (head_dim, "head_dim"),
                        (seq_len, "seq_len"), (batch_size, "batch_size")):
        _check_nonnegative(value, name)
    _check_nonnegative(bytes_per_value, "bytes_per_value")
    return 2.0 * n_layers * n_kv_heads * head_dim * seq_len * batch_size * bytes_per_value


def model_kv_cache_bytes(model, seq_len: int, batch_size: int, bytes_per_value: float = 2) -> float:
    """KV cache of a catalog model / config for ``seq_len`` tokens per sequence and ``batch_size`` sequences.

    Uses num_key_value_heads (GQA/MQA) and head_dim from the config. Sliding-window attention (Mistral; Qwen2 with
    use_sliding_window) keeps at most ``window`` tokens per layer (Jiang et al. 2023, Mistral 7B §2 "rolling buffer
    cache"). Encoder-decoders cache decoder self-attention over the generated tokens plus cross-attention K/V of the
    encoder output (assumed ``seq_len`` tokens too): 2 × decoder layers. Encoders do not generate: 0.
    Gemma 2/3 cap only their local (sliding) layers; MLA (DeepSeek-V2/V3) caches the compressed latent
    (``architectures.kv_groups``).
    """
    for value, name in ((seq_len, "seq_len"), (batch_size, "batch_size"), (bytes_per_value, "bytes_per_value")):
        _check_nonnegative(value, name)
    total = 0.0
    for group in architectures.kv_groups(model):
        tokens = min(seq_len, group.window) if group.window else seq_len
        total += float(group.layers) * group.values_per_token * tokens * batch_size * bytes_per_value
    return total


def kv_cache_formula_text(shape: Mapping, context_tokens: int, cached_tokens: int, batch_size: int,
                          bytes_per_value: float, kv_bytes: float, kv_per_token_bytes: float) -> str:
    """The KV-cache formula with this model's numbers in it (Markdown, one paragraph), the same terms
    ``kv_cache_bytes`` and ``model_kv_cache_bytes`` multiply: 2 (K and V) · layers · KV heads · head dim · tokens ·
    sequences · bytes per value (Vaswani et al. 2017, §3.2); one term per group of layers for MLA (DeepSeek-V2
    §2.1.2, the compressed latent) and local/global hybrids; ``cached_tokens`` is what a sliding window keeps of
    ``context_tokens`` (Mistral 7B §2). Encoders cache nothing."""
    if shape["kind"] == "encoder":
        return "Encoders do not generate text, so there is no KV cache."
    total = f"**{format_gb(kv_bytes)}**"
    groups = architectures.kv_groups(shape)
    if shape.get("mla") or len(groups) > 1:
        terms = [f"{g.layers}{' local (≤ ' + format(g.window, ',') + ' tokens)' if g.window else ''} layers × "
                 f"{g.values_per_token:,} values" for g in groups]
        return (f"**KV cache** = ({' + '.join(terms)}) per token × {context_tokens:,} tokens × {batch_size} "
                f"sequences × {bytes_per_value:g} bytes = {total}"
                + (" — MLA caches a compressed latent (kv_lora_rank + qk_rope_head_dim) per layer "
                   "(DeepSeek-V2 §2.1.2)." if shape.get("mla") else
                   " — sliding-window layers stop growing at the window."))
    layers = shape["num_hidden_layers"] if shape["kind"] == "decoder" else 2 * shape["num_decoder_layers"]
    return (f"**KV cache** = 2 × {layers} layers × {shape['num_key_value_heads']} KV heads × "
            f"{shape['head_dim']} head dim × {cached_tokens:,} tokens × {batch_size} sequences × "
            f"{bytes_per_value:g} bytes = {total} ({kv_per_token_bytes / 1e6:.3g} MB per token per sequence)."
            + (" Encoder-decoder: decoder self-attention + cross-attention caches."
               if shape["kind"] == "encoder-decoder" else ""))


# ---------------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------------
_RECIPES: dict[str, dict[str, float]] = {
    # Course notes: weights 4 + Adam (2 states) 8 + gradients 4 + activations and temporary memory 8 = 24 B/param.
    "rule_of_thumb": {"weights": 4.0, "optimizer": 8.0, "gradients": 4.0, "activations": 8.0},
    # ZeRO paper §3.1: fp16 weights 2Ψ + fp16 gradients 2Ψ + K·Ψ (fp32 master weights, momentum, variance; K = 12).
    "mixed_precision": {"weights": 2.0, "gradients": 2.0, "optimizer": 12.0},
    # Hugging Face "Model training anatomy": fp32 + fp16 weights 6, fp32 gradients 4, AdamW 8 = 18 B/param.
    "hf_mixed_precision": {"weights": 6.0, "gradients": 4.0, "optimizer": 8.0},
}
COMPONENT_LABELS = {
    "weights": "weights",
    "gradients": "gradients",
    "optimizer": "optimizer states",
    "activations": "activations",
    "activations + temporary": "activations + temporary",
    "quantized_weights": "quantized weights",
    "quantization_constants": "quantization constants",
    "unquantized_layers": "16-bit layers (not quantized)",
    "kv_cache": "KV cache",
    "activation_workspace": "activation workspace",
    "cuda_context": "CUDA context",
}
"""Display label of each memory component. Breakdowns are keyed on these stable ids; labels are shown only."""
_EXPORT_KEYS = {k: COMPONENT_LABELS[k] for k in ("quantized_weights", "quantization_constants", "unquantized_layers",
                                                 "kv_cache", "activation_workspace", "cuda_context")}


def component_label(component: str) -> str:
    """Display label of a component id ("cuda_context" → "CUDA context"); unknown names are returned as they are."""
    return COMPONENT_LABELS.get(component, component)


def export_keys(parts: Mapping[str, float]) -> dict[str, float]:
    """A breakdown under the keys CSV/JSON exports have always used (the labels of the components that were keyed
    by label before they got ids, e.g. "KV cache"; "weights", "optimizer", ... unchanged), so exports stay the same."""
    return {_EXPORT_KEYS.get(k, k): v for k, v in parts.items()}


def training_bytes_per_param(recipe: str) -> dict[str, float]:
    """Bytes per parameter of each training-memory component for ``recipe``.

    "rule_of_thumb" (course notes): weights 4 + optimizer 8 (Adam's 2 fp32 states) + gradients 4 + activations 8
    = 24 B/param, so 1B parameters need ~24 GB to train versus 4 GB to store in fp32.
    "mixed_precision" (ZeRO paper, Rajbhandari et al. 2019, §3.1): weights 2 (fp16) + gradients 2 (fp16) + optimizer
    K = 12 (fp32 master weights 4, momentum 4, variance 4) = 16 B/param of model states, activations extra.
    "hf_mixed_precision" (Hugging Face "Model training anatomy"): weights 6 + gradients 4 + optimizer 8 = 18.
    """
    if recipe not in _RECIPES:
        raise ValueError(f"Unknown training recipe {recipe!r}. Known: {', '.join(_RECIPES)}.")
    return dict(_RECIPES[recipe])


@checks.renamed_keywords(**_PER_PARAM_KEYWORDS)
def zero_model_states_breakdown(n_params: float, n_gpus: int, stage: int, weight_bytes_per_param: float = 2,
                                grad_bytes_per_param: float = 2,
                                optimizer_bytes_per_param: float = 12) -> dict[str, float]:
    """Per-GPU bytes of weights, gradients and optimizer states with ZeRO ``stage`` over ``n_gpus`` data-parallel GPUs.

    ZeRO paper (Rajbhandari et al. 2019), Figure 1 and §5: stage 0 (DDP) (2 + 2 + K)Ψ; stage 1 shards the optimizer
    states (KΨ/Nd); stage 2 also the gradients (2Ψ/Nd); stage 3 also the parameters (2Ψ/Nd). PyTorch FSDP
    SHARD_GRAD_OP ≈ stage 2, FULL_SHARD ≈ stage 3. The ``*_bytes_per_param`` arguments are the 2 / 2 / K of the paper
    (older keywords ``weight_bytes`` / ``grad_bytes`` / ``optimizer_bytes`` are still accepted).
    """
    n = _check_nonnegative(n_params, "n_params")
    nd = _check_positive_int(n_gpus, "n_gpus")
    if stage not in (0, 1, 2, 3) or isinstance(stage, bool):
        raise ValueError(f"ZeRO stage must be 0 (DDP), 1, 2 or 3, got {stage!r}.")
    for value, name in ((weight_bytes_per_param, "weight_bytes_per_param"),
                        (grad_bytes_per_param, "grad_bytes_per_param"),
                        (optimizer_bytes_per_param, "optimizer_bytes_per_param")):
        _check_nonnegative(value, name)
    return {
        "weights": weight_bytes_per_param * n / (nd if stage >= 3 else 1),
        "gradients": grad_bytes_per_param * n / (nd if stage >= 2 else 1),
        "optimizer": optimizer_bytes_per_param * n / (nd if stage >= 1 else 1),
    }


@checks.renamed_keywords(**_PER_PARAM_KEYWORDS)
def zero_model_states_bytes(n_params: float, n_gpus: int, stage: int, weight_bytes_per_param: float = 2,
                            grad_bytes_per_param: float = 2, optimizer_bytes_per_param: float = 12) -> float:
    """Per-GPU bytes of model states for ZeRO stage 0 (DDP), 1, 2 or 3 across ``n_gpus`` GPUs.

    ZeRO paper, Figure 1: Ψ = 7.5B, Nd = 64, K = 12 → 120 GB (DDP), 31.4 GB (Pos), 16.6 GB (Pos+g), 1.88 GB (Pos+g+p).
    """
    return sum(zero_model_states_breakdown(n_params, n_gpus, stage, weight_bytes_per_param, grad_bytes_per_param,
                                           optimizer_bytes_per_param).values())


def activation_bytes_per_layer(seq_len: int, batch_size: int, hidden_size: int, n_heads: int,
                               recompute: str = "none", tensor_parallel: int = 1) -> float:
    """Activation bytes stored for backward by one transformer layer with 16-bit activations.

    Korthikanti et al. 2022, Table 2 (s = seq_len, b = micro-batch, h = hidden, a = heads, t = tensor parallel):
    "none": s·b·h·(34 + 5·a·s/h) for t = 1, s·b·h·(10 + 24/t + 5·a·s/(h·t)) with tensor parallelism;
    "selective" (recompute the attention core, + sequence parallelism): 34·s·b·h/t;
    "full" (keep only the layer input, recompute the rest): 2·s·b·h.
    """
    s = _check_nonnegative(seq_len, "seq_len")
    b = _check_nonnegative(batch_size, "batch_size")
    h = _check_positive_int(hidden_size, "hidden_size")
    a = _check_positive_int(n_heads, "n_heads")
    t = _check_positive_int(tensor_parallel, "tensor_parallel")
    if recompute == "none":
        return s * b * h * (10 + 24 / t + 5 * a * s / (h * t))
    if recompute == "selective":
        return 34 * s * b * h / t
    if recompute == "full":
        return 2 * s * b * h
    raise ValueError(f"recompute must be one of {', '.join(RECOMPUTE_OPTIONS)}, got {recompute!r}.")


def model_activation_bytes(model, seq_len: int, micro_batch: int, recompute: str = "none") -> float:
    """Activations of all transformer layers of a model for one micro-batch (Korthikanti et al. 2022, Table 2 × L).

    Encoder-decoders count encoder + decoder layers with the same per-layer formula (the decoder's cross-attention
    adds a little more). Embedding and output-layer activations are not included (the paper shows they are small next
    to the layers for large models; with a large vocabulary the logits of long sequences add s·b·V·4 bytes in fp32).
    """
    c = architectures.get_config(model)
    layers = c["num_hidden_layers"] + c.get("num_decoder_layers", 0)
    return layers * activation_bytes_per_layer(seq_len, micro_batch, c["hidden_size"], c["num_attention_heads"],
                                               recompute)


# ---------------------------------------------------------------------------------------------------------------
# Plans: per-GPU totals and fitting
# ---------------------------------------------------------------------------------------------------------------
def usable_bytes(capacity_bytes: float, headroom_pct: float) -> float:
    """Memory a plan may use on a GPU when ``headroom_pct`` % is kept free (fragmentation, spikes)."""
    _check_nonnegative(capacity_bytes, "capacity")
    if not 0 <= headroom_pct < 100:
        raise ValueError(f"Headroom must be between 0 and 100 %, got {headroom_pct!r}.")
    return capacity_bytes * (1 - headroom_pct / 100)


def min_gpus(fixed_bytes: float, shardable_bytes: float, capacity_bytes: float, max_gpus: int = 1_000_000) -> int | None:
    """Smallest N with fixed + shardable / N ≤ capacity (None if no N ≤ max_gpus fits).

    Per-GPU memory of data-parallel ZeRO stages and of an even tensor/pipeline split has this form.
    """
    if fixed_bytes > capacity_bytes:
        return None
    if shardable_bytes <= 0:
        return 1
    free = capacity_bytes - fixed_bytes
    if free <= 0:
        return None
    n = max(1, math.ceil(shardable_bytes / free - 1e-12))
    # guard against float rounding at the boundary
    while n > 1 and fixed_bytes + shardable_bytes / (n - 1) <= capacity_bytes:
        n -= 1
    return n if n <= max_gpus else None


def inference_breakdown(model, weight_format: str, seq_len: int, batch_size: int, kv_bytes_per_value: float = 2,
                        workspace_pct: float = DEFAULT_INFERENCE_WORKSPACE_PCT,
                        overhead_gb: float | None = None, compute_dtype: str = "fp16",
                        shape_model=None, *, overhead_bytes: float | None = None) -> dict[str, float]:
    """Serving memory on one GPU: weight components + KV cache + activation workspace + CUDA/framework overhead.

    ``model`` may be a raw parameter count; then ``shape_model`` (a catalog id or config) supplies the shape for the
    KV cache. Workspace = ``workspace_pct`` % of the weights (EleutherAI Transformer Math 101: ≈ 20 %); overhead is a
    fixed per-GPU amount, ``overhead_bytes`` (Hugging Face's anatomy guide: ~1.3 GB of CUDA context and kernels;
    the older ``overhead_gb`` in GB is still accepted). Keys: ``weight_memory``'s components, "kv_cache",
    "activation_workspace" and "cuda_context" (labels: ``COMPONENT_LABELS``).
    """
    _check_nonnegative(workspace_pct, "activation workspace %")
    overhead = _overhead_bytes(overhead_gb, overhead_bytes)
    parts = dict(weight_memory(model, weight_format, compute_dtype))
    weights_total = sum(parts.values())
    shape = shape_model if shape_model is not None else model
    if isinstance(shape, (int, float)) and not isinstance(shape, bool):
        kv = 0.0
    else:
        kv = model_kv_cache_bytes(shape, seq_len, batch_size, kv_bytes_per_value)
    parts["kv_cache"] = kv
    parts["activation_workspace"] = weights_total * workspace_pct / 100
    parts["cuda_context"] = overhead
    return parts


def inference_min_gpus(breakdown: Mapping[str, float], capacity_bytes: float) -> int | None:
    """GPUs needed when weights, KV cache and workspace are split evenly (tensor/pipeline parallel) and every GPU
    carries its own CUDA context: fixed = overhead, shardable = the rest."""
    fixed = breakdown.get("cuda_context", 0.0)
    return min_gpus(fixed, sum(breakdown.values()) - fixed, capacity_bytes)


@checks.renamed_keywords(**_PER_PARAM_KEYWORDS)
def training_per_gpu(n_params: float, n_gpus: int, stage: int, activation_bytes: float,
                     overhead_gb: float | None = None, weight_bytes_per_param: float = 2,
                     grad_bytes_per_param: float = 2, optimizer_bytes_per_param: float = 12, *,
                     overhead_bytes: float | None = None) -> dict[str, float]:
    """Per-GPU training memory: ZeRO model states + activations of one micro-batch + CUDA/framework overhead.

    Data parallelism does not shard activations (each GPU runs its own micro-batch). The overhead is
    ``overhead_bytes`` (or the older ``overhead_gb``, GB; default ``DEFAULT_CUDA_OVERHEAD_BYTES``).
    """
    parts = zero_model_states_breakdown(n_params, n_gpus, stage, weight_bytes_per_param, grad_bytes_per_param,
                                        optimizer_bytes_per_param)
    parts["activations"] = _check_nonnegative(activation_bytes, "activation bytes")
    parts["cuda_context"] = _overhead_bytes(overhead_gb, overhead_bytes)
    return parts


@checks.renamed_keywords(**_PER_PARAM_KEYWORDS)
def training_min_gpus(n_params: float, stage: int, activation_bytes: float, overhead_gb: float | None,
                      capacity_bytes: float, weight_bytes_per_param: float = 2, grad_bytes_per_param: float = 2,
                      optimizer_bytes_per_param: float = 12, *, overhead_bytes: float | None = None) -> int | None:
    """Minimum data-parallel GPUs for ZeRO ``stage`` to fit ``capacity_bytes`` per GPU (None: never fits).

    Pass the overhead as ``overhead_bytes=`` (with ``overhead_gb`` None) or, as before, ``overhead_gb`` in GB."""
    one = training_per_gpu(n_params, 1, stage, activation_bytes, overhead_gb, weight_bytes_per_param,
                           grad_bytes_per_param, optimizer_bytes_per_param, overhead_bytes=overhead_bytes)
    sharded = {1: ("optimizer",), 2: ("optimizer", "gradients"), 3: ("optimizer", "gradients", "weights")}.get(stage, ())
    shardable = sum(one[k] for k in sharded)
    fixed = sum(one.values()) - shardable
    return min_gpus(fixed, shardable, capacity_bytes)
