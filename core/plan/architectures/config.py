"""Normalization of ``config.json`` dicts: every supported architecture's keys read into one canonical set (Llama-style
HF keys plus derived ones), with user-facing errors for malformed or implausible values."""
from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.plan.architectures import families as _families
from core.plan.architectures.catalog import CATALOG, resolve_id
from core.plan.architectures.shapes import ArchitectureError

SUPPORTED_MODEL_TYPES = ("gpt2", "bert", "roberta", "t5", "llama", "mistral", "qwen2", "bloom")
KINDS = {"gpt2": "decoder", "bloom": "decoder", "llama": "decoder", "mistral": "decoder", "qwen2": "decoder",
         "bert": "encoder", "roberta": "encoder", "t5": "encoder-decoder"}
_LLAMA_LIKE = ("llama", "mistral", "qwen2")
# Families with their own layout module (MoE, MLA, sliding-window/global hybrids): core/plan/architectures/families.py.
SUPPORTED_MODEL_TYPES += _families.MODEL_TYPES
KINDS.update({t: "decoder" for t in _families.MODEL_TYPES})
_GQA_TYPES = _LLAMA_LIKE + _families.MODEL_TYPES

# Upper bounds that catch typos ("hidden_size": 40960000) before they turn into absurd plans.
_LIMITS = {"num_hidden_layers": 10_000, "num_decoder_layers": 10_000, "hidden_size": 1_000_000,
           "num_attention_heads": 10_000, "num_key_value_heads": 10_000, "head_dim": 100_000,
           "intermediate_size": 10_000_000, "vocab_size": 10_000_000, "max_position_embeddings": 100_000_000,
           "type_vocab_size": 1_000_000, "relative_attention_num_buckets": 100_000, "sliding_window": 100_000_000}


# ---------------------------------------------------------------------------------------------------------------
# Normalization of config.json dicts
# ---------------------------------------------------------------------------------------------------------------
# Canonical (Llama-style HF) key -> keys other config.json files use for the same thing, in lookup order.
_ALIASES_BY_FIELD: dict[str, tuple[str, ...]] = {
    "num_hidden_layers": ("num_hidden_layers", "n_layer", "num_layers", "n_layers"),
    "hidden_size": ("hidden_size", "n_embd", "n_embed", "d_model", "dim"),
    "num_attention_heads": ("num_attention_heads", "n_head", "num_heads", "n_heads"),
    "num_key_value_heads": ("num_key_value_heads", "num_kv_heads", "n_kv_heads", "n_head_kv"),
    "head_dim": ("head_dim", "d_kv"),
    "intermediate_size": ("intermediate_size", "n_inner", "d_ff", "ffn_dim"),
    "vocab_size": ("vocab_size", "n_vocab", "padded_vocab_size"),
    "max_position_embeddings": ("max_position_embeddings", "n_positions", "n_ctx", "seq_length", "max_seq_len"),
}
_ALL_ALIAS_KEYS = {k for keys in _ALIASES_BY_FIELD.values() for k in keys}
ALIASES_BY_FIELD = _ALIASES_BY_FIELD
"""Public, read-only by convention: canonical HF config key → every config.json key read for it, in lookup order."""
ALIAS_KEYS: frozenset[str] = frozenset(_ALL_ALIAS_KEYS)
"""Every config.json key that ``get_config`` reads as a shape field (the values of ``ALIASES_BY_FIELD``)."""
_ARCH_PREFIXES = {"GPT2": "gpt2", "Bert": "bert", "Roberta": "roberta", "T5": "t5", "Llama": "llama",
                  "Mistral": "mistral", "Qwen2": "qwen2", "Bloom": "bloom"}
# Keys that get_config adds and hf_config must not pass to transformers.
DERIVED_KEYS = {"kind", "num_decoder_layers", "sliding_window_effective", "attention_bias", "mlp_bias",
                 "tie_word_embeddings", "type_vocab_size", "relative_attention_num_buckets", "feed_forward_proj"}
DERIVED_KEYS |= _families.DERIVED_KEYS
_ARCH_PREFIXES.update(_families.ARCH_PREFIXES)


def _pick(cfg: Mapping, field: str):
    for key in _ALIASES_BY_FIELD[field]:
        if cfg.get(key) is not None:
            return cfg[key]
    return None


def _as_int(value, field: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or value is None:
        raise ArchitectureError(f"config.json: {field!r} must be a whole number, got {value!r}.")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise ArchitectureError(f"config.json: {field!r} must be a whole number, got {value!r}.")
        value = int(value)
    if not isinstance(value, int):
        raise ArchitectureError(f"config.json: {field!r} must be a whole number, got {value!r}.")
    if value < 0 or (value == 0 and not allow_zero):
        raise ArchitectureError(f"config.json: {field!r} must be positive, got {value}.")
    limit = _LIMITS.get(field)
    if limit is not None and value > limit:
        raise ArchitectureError(f"config.json: {field!r} = {value:,} is implausibly large (limit {limit:,}).")
    return value


def _infer_model_type(cfg: Mapping) -> str | None:
    model_type = cfg.get("model_type")
    if isinstance(model_type, str) and model_type.strip():
        return model_type.strip().lower()
    archs = cfg.get("architectures")
    for arch in archs if isinstance(archs, (list, tuple)) else []:  # "architectures": 5 is not a list
        if isinstance(arch, str):
            for prefix, mtype in _ARCH_PREFIXES.items():
                if arch.startswith(prefix):  # e.g. "LlamaForCausalLM" → llama
                    return mtype
    if "n_embd" in cfg:
        return "gpt2"
    if "d_model" in cfg and "d_kv" in cfg:
        return "t5"
    if "n_embed" in cfg and "n_layer" in cfg:
        return "bloom"
    return None


# Public views for core.plan.model_size (sizing a config before any load): shape keys by field, and their limits.
SHAPE_LIMITS = _LIMITS


def is_supported_model_type(cfg: Mapping) -> bool:
    """Whether the config's model_type (given or inferred from ``architectures``) is one the planner counts."""
    try:
        return _infer_model_type(cfg) in SUPPORTED_MODEL_TYPES
    except (TypeError, AttributeError):
        return False


def _normalize(raw: Mapping, name: str | None = None) -> dict:
    if not isinstance(raw, Mapping):
        raise ArchitectureError(f"A config must be a JSON object (a dict), got {type(raw).__name__}.")
    model_type = _infer_model_type(raw)
    if model_type is None:
        raise ArchitectureError(
            "config.json has no 'model_type' (and none could be inferred from 'architectures'). "
            f"Supported model types: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise ArchitectureError(
            f"model_type {model_type!r} is not supported for exact parameter counts. Supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}. Enter the model's parameter count instead."
        )
    cfg = dict(raw)
    cfg["model_type"] = model_type
    out: dict[str, Any] = {}

    def required(field: str, default=None) -> int:
        value = _pick(cfg, field)
        if value is None:
            value = default
        if value is None:
            keys = " / ".join(_ALIASES_BY_FIELD[field])
            raise ArchitectureError(f"config.json is missing {field!r} (looked for {keys}).")
        return _as_int(value, field)

    layers = required("num_hidden_layers", 12 if model_type in ("gpt2",) else None)
    hidden = required("hidden_size", 768 if model_type == "gpt2" else None)
    heads = required("num_attention_heads", 12 if model_type == "gpt2" else None)
    vocab = required("vocab_size", 50257 if model_type == "gpt2" else (32128 if model_type == "t5" else None))
    if model_type == "t5":
        head_dim = required("head_dim", 64)
        ffn = required("intermediate_size", 2048)
    else:
        explicit_hd = _pick(cfg, "head_dim")
        if explicit_hd is not None and model_type in _GQA_TYPES:
            head_dim = _as_int(explicit_hd, "head_dim")
        else:
            if hidden % heads:
                raise ArchitectureError(
                    f"hidden_size {hidden} is not divisible by num_attention_heads {heads}.")
            head_dim = hidden // heads
        ffn_default = 4 * hidden if model_type in ("gpt2", "bloom") else None
        ffn = required("intermediate_size", ffn_default)
    if model_type in _GQA_TYPES:
        kv_heads = required("num_key_value_heads", heads)
        if heads % kv_heads:
            raise ArchitectureError(
                f"num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}.")
    else:
        kv_heads = heads
    max_pos_default = {"gpt2": 1024, "bert": 512, "roberta": 514, "t5": 512, "bloom": 2048}.get(model_type)
    max_pos_raw = _pick(cfg, "max_position_embeddings")
    max_pos = _as_int(max_pos_raw if max_pos_raw is not None else (max_pos_default or 2048),
                      "max_position_embeddings")

    out.update(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
               num_key_value_heads=kv_heads, head_dim=head_dim, intermediate_size=ffn, vocab_size=vocab,
               max_position_embeddings=max_pos)
    tie = cfg.get("tie_word_embeddings")
    if model_type == "t5":
        tie = True if tie is None else bool(tie)
        out["num_decoder_layers"] = _as_int(cfg.get("num_decoder_layers") or layers, "num_decoder_layers")
        out["relative_attention_num_buckets"] = _as_int(cfg.get("relative_attention_num_buckets", 32),
                                                        "relative_attention_num_buckets")
        proj = cfg.get("feed_forward_proj", "relu")
        if not isinstance(proj, str) or len(proj.split("-")) > 2 or (
                len(proj.split("-")) == 2 and not proj.startswith("gated-")):
            raise ArchitectureError(f"config.json: feed_forward_proj {proj!r} is not valid (e.g. 'relu', 'gated-gelu').")
        out["feed_forward_proj"] = proj
    else:
        out["num_decoder_layers"] = 0
        if model_type in _LLAMA_LIKE:
            tie = False if tie is None else bool(tie)
        else:
            tie = True  # GPT-2 and BLOOM always tie lm_head to wte; encoders have no lm_head in AutoModel.
    out["tie_word_embeddings"] = bool(tie)
    if model_type in ("bert", "roberta"):
        out["type_vocab_size"] = _as_int(cfg.get("type_vocab_size", 2 if model_type == "bert" else 1),
                                         "type_vocab_size", allow_zero=True)
    if model_type == "llama":
        out["attention_bias"] = bool(cfg.get("attention_bias", False))
        out["mlp_bias"] = bool(cfg.get("mlp_bias", False))
    # Sliding window: Mistral applies it whenever set; Qwen2 only with use_sliding_window=true.
    window = cfg.get("sliding_window")
    effective = None
    if window is not None and model_type == "mistral":
        effective = _as_int(window, "sliding_window")
    elif window is not None and model_type == "qwen2" and cfg.get("use_sliding_window"):
        effective = _as_int(window, "sliding_window")
    out["sliding_window_effective"] = effective
    if model_type in _families.MODEL_TYPES:
        out.update(_families.normalize(cfg, model_type, out, _as_int))
    out["kind"] = KINDS[model_type]
    cfg.update(out)
    if name:
        cfg["_name_or_path"] = name
    return cfg


def get_config(model) -> dict:
    """Normalized config dict of a catalog id, an alias (HF id, short name) or a config dict / PretrainedConfig.

    The result keeps the original config.json keys and adds canonical Llama-style keys: ``num_hidden_layers``,
    ``hidden_size``, ``num_attention_heads``, ``num_key_value_heads``, ``head_dim``, ``intermediate_size``,
    ``vocab_size``, ``max_position_embeddings``, ``tie_word_embeddings``, ``num_decoder_layers`` (T5, else 0),
    ``sliding_window_effective`` (tokens, or None) and ``kind`` ("decoder" | "encoder" | "encoder-decoder").
    Raises ArchitectureError for unknown names and malformed or unsupported configs.
    """
    if isinstance(model, str):
        model_id = resolve_id(model)
        return _normalize(CATALOG[model_id], model_id)
    if hasattr(model, "to_dict") and not isinstance(model, Mapping):
        return _normalize(model.to_dict())
    if isinstance(model, Mapping):
        return _normalize(model)
    raise ArchitectureError(f"Expected a model name or a config dict, got {type(model).__name__}.")


def model_kind(model) -> str:
    """"decoder", "encoder" or "encoder-decoder"."""
    return get_config(model)["kind"]
