"""Catalog of transformer architectures and exact parameter counts computed from their configs.

Every catalog entry is stored with the keys of the model's real Hugging Face ``config.json`` (incl. ``model_type``), so
``hf_config`` can rebuild it with transformers and ``AutoModelFor*.from_config`` gives a random-weight model of the
same shape. Parameter counts follow each architecture's module layout in transformers' ``modeling_<type>.py``; they equal
``model.num_parameters()`` of the published checkpoint with tied weights counted once (facts and published counts, each
from the model's config.json on the Hugging Face hub: docs/references/architectures.md).

Public API (a contract for the other pages): ``CATALOG``, ``catalog_ids``, ``get_config``, ``param_count``,
``param_breakdown``, ``hf_config``, ``ArchitectureError``. Also: ``linear_layers`` (the matrices a bitsandbytes
quantizer replaces), ``model_kind``, ``display_name``, ``apply_checkpoint_tying``, ``SUPPORTED_MODEL_TYPES``,
``is_supported_model_type``, ``ALIASES_BY_FIELD`` / ``SHAPE_LIMITS`` (used by core.plan.model_size to size configs before loads).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.plan import architecture_families as _families


class ArchitectureError(ValueError):
    """A model name, or a config, that cannot be turned into an architecture (message is user-facing)."""


SUPPORTED_MODEL_TYPES = ("gpt2", "bert", "roberta", "t5", "llama", "mistral", "qwen2", "bloom")
KINDS = {"gpt2": "decoder", "bloom": "decoder", "llama": "decoder", "mistral": "decoder", "qwen2": "decoder",
         "bert": "encoder", "roberta": "encoder", "t5": "encoder-decoder"}
_LLAMA_LIKE = ("llama", "mistral", "qwen2")
# Families with their own layout module (MoE, MLA, sliding-window/global hybrids): core/plan/architecture_families.py.
SUPPORTED_MODEL_TYPES += _families.MODEL_TYPES
KINDS.update({t: "decoder" for t in _families.MODEL_TYPES})
_GQA_TYPES = _LLAMA_LIKE + _families.MODEL_TYPES

# Upper bounds that catch typos ("hidden_size": 40960000) before they turn into absurd plans.
_LIMITS = {"num_hidden_layers": 10_000, "num_decoder_layers": 10_000, "hidden_size": 1_000_000,
           "num_attention_heads": 10_000, "num_key_value_heads": 10_000, "head_dim": 100_000,
           "intermediate_size": 10_000_000, "vocab_size": 10_000_000, "max_position_embeddings": 100_000_000,
           "type_vocab_size": 1_000_000, "relative_attention_num_buckets": 100_000, "sliding_window": 100_000_000}


def _gpt2(name: str, n_layer: int, n_embd: int, n_head: int, arch: str = "GPT2LMHeadModel", **extra) -> dict:
    return {"_name_or_path": name, "architectures": [arch], "model_type": "gpt2", "n_layer": n_layer,
            "n_embd": n_embd, "n_head": n_head, "n_inner": None, "n_positions": 1024, "n_ctx": 1024,
            "vocab_size": 50257, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "bos_token_id": 50256, "eos_token_id": 50256, **extra}


def _t5(name: str, d_model: int, num_layers: int, num_heads: int, d_ff: int) -> dict:
    # T5 v1.1 / FLAN-T5: gated-gelu FFN, lm_head not tied to the shared embedding.
    return {"_name_or_path": name, "architectures": ["T5ForConditionalGeneration"], "model_type": "t5",
            "d_model": d_model, "d_kv": 64, "d_ff": d_ff, "num_layers": num_layers, "num_decoder_layers": num_layers,
            "num_heads": num_heads, "vocab_size": 32128, "feed_forward_proj": "gated-gelu",
            "tie_word_embeddings": False, "relative_attention_num_buckets": 32,
            "relative_attention_max_distance": 128, "n_positions": 512, "layer_norm_epsilon": 1e-6,
            "decoder_start_token_id": 0, "pad_token_id": 0, "eos_token_id": 1}


def _llama(name: str, model_type: str, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int, vocab: int,
           tied: bool, max_pos: int, arch: str, **extra) -> dict:
    cfg = {"_name_or_path": name, "architectures": [arch], "model_type": model_type, "num_hidden_layers": layers,
           "hidden_size": hidden, "num_attention_heads": heads, "num_key_value_heads": kv_heads,
           "intermediate_size": ffn, "vocab_size": vocab, "tie_word_embeddings": tied,
           "max_position_embeddings": max_pos, "hidden_act": "silu", "rms_norm_eps": 1e-5}
    cfg.update(extra)
    return cfg


def _meta_llama(name: str, layers: int, hidden: int, heads: int, kv_heads: int, ffn: int, vocab: int, max_pos: int,
                rope_theta: float, bos: int, eos: int) -> dict:
    # Llama 2 / Llama 3 base checkpoints: untied embeddings, no attention/MLP biases.
    return _llama(name, "llama", layers, hidden, heads, kv_heads, ffn, vocab, False, max_pos, "LlamaForCausalLM",
                  rope_theta=rope_theta, attention_bias=False, mlp_bias=False, bos_token_id=bos, eos_token_id=eos)


_BERT_COMMON = {"architectures": ["BertModel"], "model_type": "bert", "hidden_act": "gelu",
                "max_position_embeddings": 512, "type_vocab_size": 2, "vocab_size": 30522, "layer_norm_eps": 1e-12,
                "pad_token_id": 0, "position_embedding_type": "absolute"}

CATALOG: dict[str, dict[str, Any]] = {
    "gpt2": _gpt2("gpt2", 12, 768, 12),
    "gpt2-medium": _gpt2("gpt2-medium", 24, 1024, 16),
    "gpt2-large": _gpt2("gpt2-large", 36, 1280, 20),
    "gpt2-xl": _gpt2("gpt2-xl", 48, 1600, 25),
    "bert-base-uncased": {"_name_or_path": "bert-base-uncased", **_BERT_COMMON, "hidden_size": 768,
                          "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "sentence-transformers/all-MiniLM-L6-v2": {"_name_or_path": "sentence-transformers/all-MiniLM-L6-v2",
                                               **_BERT_COMMON, "hidden_size": 384, "num_hidden_layers": 6,
                                               "num_attention_heads": 12, "intermediate_size": 1536},
    "google/flan-t5-small": _t5("google/flan-t5-small", 512, 8, 6, 1024),
    "google/flan-t5-base": _t5("google/flan-t5-base", 768, 12, 12, 2048),
    "google/flan-t5-large": _t5("google/flan-t5-large", 1024, 24, 16, 2816),
    "google/flan-t5-xl": _t5("google/flan-t5-xl", 2048, 24, 32, 5120),
    "HuggingFaceTB/SmolLM2-135M-Instruct": _llama(
        "HuggingFaceTB/SmolLM2-135M-Instruct", "llama", 30, 576, 9, 3, 1536, 49152, True, 8192, "LlamaForCausalLM",
        head_dim=64, rope_theta=100000.0, attention_bias=False, mlp_bias=False, bos_token_id=1, eos_token_id=2),
    "Qwen/Qwen2.5-0.5B": _llama(
        "Qwen/Qwen2.5-0.5B", "qwen2", 24, 896, 14, 2, 4864, 151936, True, 32768, "Qwen2ForCausalLM",
        rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=32768, use_sliding_window=False,
        max_window_layers=24, bos_token_id=151643, eos_token_id=151643),
    "Qwen/Qwen2.5-7B": _llama(
        "Qwen/Qwen2.5-7B", "qwen2", 28, 3584, 28, 4, 18944, 152064, False, 131072, "Qwen2ForCausalLM",
        rms_norm_eps=1e-6, rope_theta=1000000.0, sliding_window=131072, use_sliding_window=False,
        max_window_layers=28, bos_token_id=151643, eos_token_id=151643),
    "meta-llama/Llama-2-7b-hf": _meta_llama("meta-llama/Llama-2-7b-hf", 32, 4096, 32, 32, 11008, 32000, 4096,
                                            10000.0, 1, 2),
    "meta-llama/Llama-2-13b-hf": _meta_llama("meta-llama/Llama-2-13b-hf", 40, 5120, 40, 40, 13824, 32000, 4096,
                                             10000.0, 1, 2),
    "meta-llama/Llama-2-70b-hf": _meta_llama("meta-llama/Llama-2-70b-hf", 80, 8192, 64, 8, 28672, 32000, 4096,
                                             10000.0, 1, 2),
    "meta-llama/Meta-Llama-3-8B": _meta_llama("meta-llama/Meta-Llama-3-8B", 32, 4096, 32, 8, 14336, 128256, 8192,
                                              500000.0, 128000, 128001),
    "meta-llama/Meta-Llama-3-70B": _meta_llama("meta-llama/Meta-Llama-3-70B", 80, 8192, 64, 8, 28672, 128256, 8192,
                                               500000.0, 128000, 128001),
    "mistralai/Mistral-7B-v0.1": _llama(
        "mistralai/Mistral-7B-v0.1", "mistral", 32, 4096, 32, 8, 14336, 32000, False, 32768, "MistralForCausalLM",
        rope_theta=10000.0, sliding_window=4096, bos_token_id=1, eos_token_id=2),
    "bigscience/bloom": {"_name_or_path": "bigscience/bloom", "architectures": ["BloomForCausalLM"],
                         "model_type": "bloom", "n_layer": 70, "n_embed": 14336, "num_attention_heads": 112,
                         "vocab_size": 250880, "layer_norm_epsilon": 1e-5, "pretraining_tp": 4,
                         "apply_residual_connection_post_layernorm": False, "bos_token_id": 1, "eos_token_id": 2,
                         "seq_length": 2048},
    # Brown et al. 2020, Table 2.1: n_layers 96, d_model 12288, n_heads 96, d_head 128, context 2048; GPT-2 layout
    # (learned positions, tied embeddings, 4x FFN) and GPT-2's BPE vocabulary. No public weights.
    "gpt3-175b": _gpt2("gpt3-175b", 96, 12288, 96, n_positions=2048, n_ctx=2048),
}

# Mixture-of-experts, MLA and sliding-window/global hybrids (config.json values of the published checkpoints).
CATALOG.update({
    "google/gemma-2-2b": _llama(
        "google/gemma-2-2b", "gemma2", 26, 2304, 8, 4, 9216, 256000, True, 8192, "Gemma2ForCausalLM",
        head_dim=256, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, sliding_window=4096,
        query_pre_attn_scalar=256, attn_logit_softcapping=50.0, final_logit_softcapping=30.0, bos_token_id=2,
        eos_token_id=1, pad_token_id=0),
    "google/gemma-2-9b": _llama(
        "google/gemma-2-9b", "gemma2", 42, 3584, 16, 8, 14336, 256000, True, 8192, "Gemma2ForCausalLM",
        head_dim=256, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, sliding_window=4096,
        query_pre_attn_scalar=256, attn_logit_softcapping=50.0, final_logit_softcapping=30.0, bos_token_id=2,
        eos_token_id=1, pad_token_id=0),
    "google/gemma-3-1b-it": _llama(
        "google/gemma-3-1b-it", "gemma3_text", 26, 1152, 4, 1, 6912, 262144, True, 32768, "Gemma3ForCausalLM",
        head_dim=256, hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh", rms_norm_eps=1e-6, sliding_window=512,
        sliding_window_pattern=6, query_pre_attn_scalar=256, rope_theta=1000000.0, bos_token_id=2, eos_token_id=1,
        pad_token_id=0),
    "mistralai/Mixtral-8x7B-v0.1": _llama(
        "mistralai/Mixtral-8x7B-v0.1", "mixtral", 32, 4096, 32, 8, 14336, 32000, False, 32768, "MixtralForCausalLM",
        num_local_experts=8, num_experts_per_tok=2, rope_theta=1000000.0, sliding_window=None, bos_token_id=1,
        eos_token_id=2),
    "Qwen/Qwen3-30B-A3B": _llama(
        "Qwen/Qwen3-30B-A3B", "qwen3_moe", 48, 2048, 32, 4, 6144, 151936, False, 40960, "Qwen3MoeForCausalLM",
        head_dim=128, moe_intermediate_size=768, num_experts=128, num_experts_per_tok=8, decoder_sparse_step=1,
        mlp_only_layers=[], norm_topk_prob=True, rms_norm_eps=1e-6, rope_theta=1000000.0, attention_bias=False,
        use_sliding_window=False, bos_token_id=151643, eos_token_id=151645),
    "deepseek-ai/DeepSeek-V2-Lite": _llama(
        "deepseek-ai/DeepSeek-V2-Lite", "deepseek_v2", 27, 2048, 16, 16, 10944, 102400, False, 163840,
        "DeepseekV2ForCausalLM", moe_intermediate_size=1408, n_routed_experts=64, n_shared_experts=2,
        num_experts_per_tok=6, first_k_dense_replace=1, moe_layer_freq=1, kv_lora_rank=512, q_lora_rank=None,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, topk_method="greedy", n_group=1, topk_group=1,
        rms_norm_eps=1e-6, bos_token_id=100000, eos_token_id=100001),
    "deepseek-ai/DeepSeek-V3": _llama(
        "deepseek-ai/DeepSeek-V3", "deepseek_v3", 61, 7168, 128, 128, 18432, 129280, False, 163840,
        "DeepseekV3ForCausalLM", moe_intermediate_size=2048, n_routed_experts=256, n_shared_experts=1,
        num_experts_per_tok=8, first_k_dense_replace=3, moe_layer_freq=1, kv_lora_rank=512, q_lora_rank=1536,
        qk_nope_head_dim=128, qk_rope_head_dim=64, v_head_dim=128, n_group=8, topk_group=4,
        routed_scaling_factor=2.5, rms_norm_eps=1e-6, bos_token_id=0, eos_token_id=1),
})

CATALOG_NOTES: dict[str, str] = {
    "mistralai/Mixtral-8x7B-v0.1": "Mixture of experts: 8 experts per layer, 2 active per token (46.7B total, "
                                   "12.9B active).",
    "Qwen/Qwen3-30B-A3B": "Mixture of experts: 128 experts per layer, 8 active per token (30.5B total, 3.3B active).",
    "deepseek-ai/DeepSeek-V2-Lite": "Multi-head latent attention (a 576-value latent KV per token and layer) and "
                                    "mixture of experts (64 routed, 6 active, 2 shared).",
    "deepseek-ai/DeepSeek-V3": "Multi-head latent attention and mixture of experts (256 routed, 8 active, 1 shared); "
                               "the multi-token-prediction module is not counted (as in transformers).",
    "google/gemma-2-9b": "Local sliding-window (4096) and global attention layers alternate 1:1.",
    "google/gemma-3-1b-it": "5 local sliding-window (512) layers per global layer.",
    "gpt3-175b": "GPT-3 175B as described in the paper (Brown et al. 2020, Table 2.1); no public weights. "
                 "The paper reports 175.0B parameters.",
    "sentence-transformers/all-MiniLM-L6-v2": "The encoder bundled with LLM Lab.",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "The decoder bundled with LLM Lab.",
    "bigscience/bloom": "BLOOM 176B (ALiBi positions, no position embeddings).",
    "mistralai/Mistral-7B-v0.1": "Sliding-window attention (4096 tokens) caps the KV cache.",
    "google/flan-t5-small": "T5 v1.1 layout: gated-GELU FFN, lm_head not tied to the embedding.",
}

_DISPLAY_NAMES = {"gpt3-175b": "GPT-3 175B (paper config)"}


def catalog_ids() -> list[str]:
    """Catalog ids in catalog order (small to large within each family)."""
    return list(CATALOG)


def display_name(model_id: str) -> str:
    """Human-readable name of a catalog id."""
    return _DISPLAY_NAMES.get(model_id, model_id)


def _alias_keys(model_id: str) -> set[str]:
    short = model_id.split("/")[-1].lower()
    keys = {model_id.lower(), short}
    if short.endswith("-hf"):
        keys.add(short[: -len("-hf")])
        keys.add(model_id.lower()[: -len("-hf")])
    return keys


_ALIASES: dict[str, str] = {}
for _cid in CATALOG:
    for _key in _alias_keys(_cid):
        _ALIASES.setdefault(_key, _cid)
_ALIASES.update({
    "openai-community/gpt2": "gpt2", "openai-community/gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-large": "gpt2-large", "openai-community/gpt2-xl": "gpt2-xl",
    "google-bert/bert-base-uncased": "bert-base-uncased", "gpt3": "gpt3-175b", "gpt-3": "gpt3-175b",
    "gpt-3 175b": "gpt3-175b", "gpt-3 175b (paper config)": "gpt3-175b", "bloom": "bigscience/bloom",
    "bloom-176b": "bigscience/bloom", "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "llama-3-8b": "meta-llama/Meta-Llama-3-8B", "llama-3-70b": "meta-llama/Meta-Llama-3-70B",
    "mistral-7b": "mistralai/Mistral-7B-v0.1",
})


def resolve_id(name: str) -> str:
    """Catalog id for a catalog id or an alias (HF id, short name, case-insensitive); ArchitectureError if unknown."""
    key = str(name).strip()
    if key in CATALOG:
        return key
    found = _ALIASES.get(key.lower())
    if found is None:
        raise ArchitectureError(
            f"Unknown model {key!r}. Pick one of the catalog models ({', '.join(CATALOG)}), "
            "or paste its config.json."
        )
    return found


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
_DERIVED_KEYS = {"kind", "num_decoder_layers", "sliding_window_effective", "attention_bias", "mlp_bias",
                 "tie_word_embeddings", "type_vocab_size", "relative_attention_num_buckets", "feed_forward_proj"}
_DERIVED_KEYS |= _families.DERIVED_KEYS
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


# ---------------------------------------------------------------------------------------------------------------
# Parameter counts
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LinearLayer:
    """One kind of weight matrix: ``count`` copies of an in_features x out_features matrix in the model."""

    name: str
    in_features: int
    out_features: int
    count: int
    bias: bool
    quantizable: bool  # False for modules transformers' bitsandbytes integration leaves in 16-bit

    @property
    def weight_params(self) -> int:
        return self.in_features * self.out_features * self.count

    @property
    def bias_params(self) -> int:
        return self.out_features * self.count if self.bias else 0


def linear_layers(model) -> list[LinearLayer]:
    """Weight matrices of the model as ``LinearLayer`` groups (attention, MLP, pooler, lm_head).

    ``quantizable`` follows transformers' ``get_keys_to_not_convert`` (quantizers/base.py): the output embedding
    (lm_head), tied weights and the model's last module (BERT's pooler) stay unquantized; embeddings and norms are not
    linear layers at all. GPT-2's Conv1D layers are converted like nn.Linear (integrations/bitsandbytes.py).
    """
    c = get_config(model)
    if c["model_type"] in _families.MODEL_TYPES:
        return _families.linear_layers(c)
    mtype, L, h = c["model_type"], c["num_hidden_layers"], c["hidden_size"]
    a, kv, d, ffn, V = (c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"],
                        c["vocab_size"])
    layers: list[LinearLayer] = []
    if mtype in ("gpt2", "bloom"):
        prefix = "attn.c_attn" if mtype == "gpt2" else "self_attention.query_key_value"
        layers += [LinearLayer(prefix, h, 3 * h, L, True, True),
                   LinearLayer("attn.c_proj" if mtype == "gpt2" else "self_attention.dense", h, h, L, True, True),
                   LinearLayer("mlp.c_fc" if mtype == "gpt2" else "mlp.dense_h_to_4h", h, ffn, L, True, True),
                   LinearLayer("mlp.c_proj" if mtype == "gpt2" else "mlp.dense_4h_to_h", ffn, h, L, True, True),
                   LinearLayer("lm_head (tied to embeddings)", h, V, 0, False, False)]
    elif mtype in ("bert", "roberta"):
        layers += [LinearLayer("attention.self.query/key/value", h, h, 3 * L, True, True),
                   LinearLayer("attention.output.dense", h, h, L, True, True),
                   LinearLayer("intermediate.dense", h, ffn, L, True, True),
                   LinearLayer("output.dense", ffn, h, L, True, True),
                   LinearLayer("pooler.dense", h, h, 1, True, False)]
    elif mtype == "t5":
        inner = a * d
        n_attn = c["num_hidden_layers"] + 2 * c["num_decoder_layers"]  # decoder: self + cross attention
        n_ffn = c["num_hidden_layers"] + c["num_decoder_layers"]
        gated = c["feed_forward_proj"].startswith("gated-")
        layers += [LinearLayer("attention.q/k/v", h, inner, 3 * n_attn, False, True),
                   LinearLayer("attention.o", inner, h, n_attn, False, True),
                   LinearLayer("DenseReluDense.wi" + ("_0/wi_1" if gated else ""), h, ffn,
                               (2 if gated else 1) * n_ffn, False, True),
                   LinearLayer("DenseReluDense.wo", ffn, h, n_ffn, False, True),
                   LinearLayer("lm_head", h, V, 0 if c["tie_word_embeddings"] else 1, False, False)]
    else:  # llama, mistral, qwen2
        qkv_bias = mtype == "qwen2" or c.get("attention_bias", False)
        o_bias = mtype == "llama" and c.get("attention_bias", False)
        mlp_bias = mtype == "llama" and c.get("mlp_bias", False)
        layers += [LinearLayer("self_attn.q_proj", h, a * d, L, qkv_bias, True),
                   LinearLayer("self_attn.k_proj/v_proj", h, kv * d, 2 * L, qkv_bias, True),
                   LinearLayer("self_attn.o_proj", a * d, h, L, o_bias, True),
                   LinearLayer("mlp.gate_proj/up_proj", h, ffn, 2 * L, mlp_bias, True),
                   LinearLayer("mlp.down_proj", ffn, h, L, mlp_bias, True),
                   LinearLayer("lm_head", h, V, 0 if c["tie_word_embeddings"] else 1, False, False)]
    return layers


def _linear_params(layers: list[LinearLayer], names_start: tuple[str, ...]) -> int:
    return sum(x.weight_params + x.bias_params for x in layers if x.name.startswith(names_start))


def param_breakdown(model) -> dict[str, int]:
    """Exact parameter count per component: embeddings, attention, mlp, norms, lm_head (+ pooler for BERT).

    Layouts from transformers' modeling files (GPT2Model, BertModel with pooler, T5ForConditionalGeneration,
    LlamaForCausalLM / MistralForCausalLM / Qwen2ForCausalLM, BloomForCausalLM); tied weights counted once, so
    ``lm_head`` is 0 when tied. Llama check (docs/references/architectures.md): V·h (x2 if untied)
    + L·[h·(h + 2·kv·d) + h·h + 3·h·ffn + 2·h] + h.
    """
    c = get_config(model)
    if c["model_type"] in _families.MODEL_TYPES:
        return _families.param_breakdown(c)
    mtype, L, h, V = c["model_type"], c["num_hidden_layers"], c["hidden_size"], c["vocab_size"]
    lin = linear_layers(c)
    out = {"embeddings": 0, "attention": 0, "mlp": 0, "norms": 0, "lm_head": 0}
    lm_head = sum(x.weight_params for x in lin if x.name.startswith("lm_head"))
    if mtype in ("gpt2", "bloom"):
        out["embeddings"] = V * h + (c["max_position_embeddings"] * h if mtype == "gpt2" else 0)  # BLOOM: ALiBi
        out["attention"] = _linear_params(lin, ("attn.", "self_attention."))
        out["mlp"] = _linear_params(lin, ("mlp.",))
        # 2 LayerNorms (weight + bias) per block + final ln_f; BLOOM also normalizes the word embeddings.
        out["norms"] = L * 4 * h + 2 * h + (2 * h if mtype == "bloom" else 0)
    elif mtype in ("bert", "roberta"):
        out["embeddings"] = (V + c["max_position_embeddings"] + c["type_vocab_size"]) * h
        out["attention"] = _linear_params(lin, ("attention.",))
        out["mlp"] = _linear_params(lin, ("intermediate.", "output.dense"))
        out["norms"] = 2 * h + L * 4 * h  # embeddings LayerNorm + 2 per layer (weight + bias)
        out["pooler"] = _linear_params(lin, ("pooler.",))
    elif mtype == "t5":
        out["embeddings"] = V * h  # "shared", used by encoder and decoder
        # Relative position bias: one table (buckets x heads) in the first block of encoder and of decoder.
        rel = c["relative_attention_num_buckets"] * c["num_attention_heads"] * (1 + (c["num_decoder_layers"] > 0))
        out["attention"] = _linear_params(lin, ("attention.",)) + rel
        out["mlp"] = _linear_params(lin, ("DenseReluDense.",))
        # T5 LayerNorm has no bias: 2 per encoder block, 3 per decoder block, + 2 final norms.
        out["norms"] = h * (2 * L + 3 * c["num_decoder_layers"] + 1 + (c["num_decoder_layers"] > 0))
    else:
        out["embeddings"] = V * h
        out["attention"] = _linear_params(lin, ("self_attn.",))
        out["mlp"] = _linear_params(lin, ("mlp.",))
        out["norms"] = L * 2 * h + h  # RMSNorm weights: input + post-attention per layer, + final norm
    out["lm_head"] = lm_head
    return out


def param_count(model) -> int:
    """Exact number of parameters, tied weights counted once (= ``model.num_parameters()`` of the checkpoint)."""
    return int(sum(param_breakdown(model).values()))


def active_param_count(model) -> int:
    """Parameters used per token: ``param_count`` for dense models; for mixture-of-experts models the routed experts
    a token does not visit are left out (top-k of E; Fedus et al. 2022 "Switch Transformers" §2, Jiang et al. 2024
    "Mixtral of Experts" §2.1: 12.9B of Mixtral-8x7B's 46.7B). A bare parameter count is returned as is."""
    if isinstance(model, (int, float)) and not isinstance(model, bool):
        if not math.isfinite(model) or model < 0:
            raise ArchitectureError(f"A parameter count must be a non-negative number, got {model!r}.")
        return int(model)
    c = get_config(model)
    if c["model_type"] in _families.MODEL_TYPES:
        return int(_families.active_params(c))
    return param_count(c)


def kv_groups(model) -> list:
    """Per-token KV cache layout as ``KVGroup(layers, values_per_token, window)`` rows (K and V together).

    GQA/MQA: 2 · kv_heads · head_dim per layer (Ainslie et al. 2023); Mistral/Qwen2 sliding window caps every layer;
    Gemma 2/3 cap only their local layers; MLA caches kv_lora_rank + qk_rope_head_dim (DeepSeek-V2 §2.1.2);
    encoder-decoders: decoder self- and cross-attention (2 × decoder layers); encoders: none.
    """
    c = get_config(model)
    if c["model_type"] in _families.MODEL_TYPES:
        return _families.kv_groups(c)
    if c["kind"] == "encoder":
        return []
    layers = c["num_hidden_layers"] if c["kind"] == "decoder" else 2 * c["num_decoder_layers"]
    return [_families.KVGroup(layers, 2 * c["num_key_value_heads"] * c["head_dim"], c.get("sliding_window_effective"))]


# ---------------------------------------------------------------------------------------------------------------
# transformers interop
# ---------------------------------------------------------------------------------------------------------------
def _native_kwargs(c: dict) -> dict:
    mtype = c["model_type"]
    if mtype in _families.MODEL_TYPES:
        return _families.native_kwargs(c)
    if mtype == "gpt2":
        return {"n_layer": c["num_hidden_layers"], "n_embd": c["hidden_size"], "n_head": c["num_attention_heads"],
                "n_inner": c["intermediate_size"], "n_positions": c["max_position_embeddings"],
                "vocab_size": c["vocab_size"]}
    if mtype == "bloom":
        return {"n_layer": c["num_hidden_layers"], "hidden_size": c["hidden_size"],
                "n_head": c["num_attention_heads"], "vocab_size": c["vocab_size"]}
    if mtype == "t5":
        return {"num_layers": c["num_hidden_layers"], "num_decoder_layers": c["num_decoder_layers"],
                "d_model": c["hidden_size"], "num_heads": c["num_attention_heads"], "d_kv": c["head_dim"],
                "d_ff": c["intermediate_size"], "vocab_size": c["vocab_size"],
                "feed_forward_proj": c["feed_forward_proj"], "tie_word_embeddings": c["tie_word_embeddings"],
                "relative_attention_num_buckets": c["relative_attention_num_buckets"]}
    common = {"num_hidden_layers": c["num_hidden_layers"], "hidden_size": c["hidden_size"],
              "num_attention_heads": c["num_attention_heads"], "intermediate_size": c["intermediate_size"],
              "vocab_size": c["vocab_size"], "max_position_embeddings": c["max_position_embeddings"]}
    if mtype in ("bert", "roberta"):
        return {**common, "type_vocab_size": c["type_vocab_size"]}
    kwargs = {**common, "num_key_value_heads": c["num_key_value_heads"], "head_dim": c["head_dim"],
              "tie_word_embeddings": c["tie_word_embeddings"]}
    if mtype == "llama":
        kwargs.update(attention_bias=c["attention_bias"], mlp_bias=c["mlp_bias"])
    if mtype == "mistral":
        kwargs["sliding_window"] = c["sliding_window_effective"]
    return kwargs


_PASS_THROUGH_SKIP = {"_name_or_path", "transformers_version", "model_type", "auto_map", "quantization_config"}


def hf_config(model):
    """A ``transformers.PretrainedConfig`` for the model (``AutoConfig.for_model``), for ``AutoModelFor*.from_config``.

    Shape keys come from the normalized config; other config.json keys (rope_theta, token ids, activation, ...) pass
    through. Note (transformers 5): ``T5Config`` always sets ``tie_word_embeddings=True``, so a FLAN-T5 model built
    with ``from_config`` shares lm_head with the embedding; ``apply_checkpoint_tying`` unties it like the checkpoint.
    """
    from transformers import AutoConfig  # local import: keeps `import core.plan.architectures` light

    c = get_config(model)
    kwargs = {k: v for k, v in c.items()
              if k not in _ALL_ALIAS_KEYS and k not in _DERIVED_KEYS and k not in _PASS_THROUGH_SKIP
              and k not in ("kind",)}
    kwargs.update(_native_kwargs(c))
    try:
        config = AutoConfig.for_model(c["model_type"], **kwargs)
    except Exception as exc:  # transformers validates values (strict dataclasses)
        raise ArchitectureError(f"transformers rejected this config: {exc}") from exc
    if c.get("_name_or_path"):
        config._name_or_path = c["_name_or_path"]
    return config


def apply_checkpoint_tying(torch_model, model) -> None:
    """Give ``lm_head`` its own weights when the architecture's checkpoint has them untied (FLAN-T5 in transformers 5).

    transformers 5 ties T5's lm_head to ``shared`` in ``from_config`` (T5Config forces tie_word_embeddings=True) but
    keeps them separate when loading a T5 v1.1 checkpoint whose tensors differ (modeling_utils.tie_weights). Call
    this after ``from_config`` so ``num_parameters()`` matches ``param_count``. No-op for other models.
    """
    import torch

    c = get_config(model)
    if c["tie_word_embeddings"] or c["kind"] == "encoder":
        return
    out_emb, in_emb = torch_model.get_output_embeddings(), torch_model.get_input_embeddings()
    if out_emb is not None and in_emb is not None and out_emb.weight is in_emb.weight:
        out_emb.weight = torch.nn.Parameter(in_emb.weight.detach().clone())
        if hasattr(torch_model, "all_tied_weights_keys"):
            torch_model.all_tied_weights_keys.pop("lm_head.weight", None)
