"""Current decoder families: mixture-of-experts, multi-head latent attention and sliding-window/global hybrids.

The rest of ``core.plan.architectures`` owns the catalog and the public API (``get_config``, ``param_count``, ``active_param_count``,
...); it hands the families below to this module. Layouts follow transformers' modeling files (v5):
- ``mixtral`` (modeling_mixtral.py): Llama attention + a router (E × h) and E SwiGLU experts per layer, top-k of E
  active per token (Jiang et al. 2024, "Mixtral of Experts", §2.1).
- ``qwen3_moe`` (modeling_qwen3_moe.py): Llama-style attention with per-head q/k RMSNorm, E experts of
  ``moe_intermediate_size`` per sparse layer (``decoder_sparse_step``, ``mlp_only_layers``), top-k routing.
- ``deepseek_v2`` / ``deepseek_v3`` (modeling_deepseek_v3.py): multi-head latent attention (MLA) — the cache holds one
  compressed latent of ``kv_lora_rank`` values plus one shared RoPE key of ``qk_rope_head_dim`` values per token and
  layer (DeepSeek-AI 2024, "DeepSeek-V2", §2.1.2 and Table 1); the first ``first_k_dense_replace`` layers are dense,
  the rest have ``n_routed_experts`` routed (top ``num_experts_per_tok``) plus ``n_shared_experts`` always-on experts.
- ``gemma2`` / ``gemma3_text`` (modeling_gemma2.py / modeling_gemma3.py): local sliding-window layers interleaved with
  global layers (Gemma Team 2024, "Gemma 2", §2: 1:1, window 4096; Gemma Team 2025, "Gemma 3", §2: 5 local : 1
  global, window 1024 — 512 for the 1B model's config), so the local layers' cache is bounded by the window.

Shapes and errors come from ``core.plan.architectures.shapes``; this module imports nothing else of the package.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from core.plan.architectures.shapes import ArchitectureError, KVGroup, LinearLayer

MODEL_TYPES = ("mixtral", "qwen3_moe", "deepseek_v2", "deepseek_v3", "gemma2", "gemma3_text")
ARCH_PREFIXES = {"Mixtral": "mixtral", "Qwen3Moe": "qwen3_moe", "DeepseekV2": "deepseek_v2",
                 "DeepseekV3": "deepseek_v3", "Gemma2": "gemma2", "Gemma3ForCausalLM": "gemma3_text"}
_MLA = ("deepseek_v2", "deepseek_v3")
_GEMMA = ("gemma2", "gemma3_text")
# Keys get_config adds for these families; hf_config must not pass them to transformers.
DERIVED_KEYS = {"num_experts_total", "experts_per_token", "expert_intermediate_size", "shared_experts",
                "moe_layer_ids", "attention_layer_kinds", "mla"}


def _int_list(value, what: str) -> list[int]:
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ArchitectureError(f"config.json: {what!r} must be a list of layer numbers.")
    return list(value)


def normalize(cfg: Mapping, model_type: str, out: dict, as_int: Callable[..., int]) -> dict:
    """Family keys added to a normalized config (``out`` holds the common keys); ``as_int(value, field)`` validates.

    Adds ``num_experts_total`` (0 when dense), ``experts_per_token``, ``expert_intermediate_size``, ``shared_experts``,
    ``moe_layer_ids``, ``attention_layer_kinds`` ("full" | "sliding" per layer), ``sliding_window_effective`` and for
    MLA ``mla`` = {q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim}.
    """
    L = out["num_hidden_layers"]
    extra: dict[str, Any] = {"num_experts_total": 0, "experts_per_token": 0, "expert_intermediate_size": 0,
                             "shared_experts": 0, "moe_layer_ids": [], "mla": None}
    extra["tie_word_embeddings"] = bool(cfg.get("tie_word_embeddings", model_type in _GEMMA))
    kinds = ["full"] * L
    window = None
    if model_type == "mixtral":
        extra.update(num_experts_total=as_int(cfg.get("num_local_experts", 8), "num_local_experts"),
                     experts_per_token=as_int(cfg.get("num_experts_per_tok", 2), "num_experts_per_tok"),
                     expert_intermediate_size=out["intermediate_size"], moe_layer_ids=list(range(L)))
        if cfg.get("sliding_window") is not None:
            window = as_int(cfg["sliding_window"], "sliding_window")
            kinds = ["sliding"] * L
    elif model_type == "qwen3_moe":
        step = as_int(cfg.get("decoder_sparse_step", 1), "decoder_sparse_step")
        dense_only = set(_int_list(cfg.get("mlp_only_layers"), "mlp_only_layers"))
        experts = as_int(cfg.get("num_experts", 128), "num_experts")
        moe = [i for i in range(L) if i not in dense_only and experts > 0 and (i + 1) % step == 0]
        extra.update(num_experts_total=experts,
                     experts_per_token=as_int(cfg.get("num_experts_per_tok", 8), "num_experts_per_tok"),
                     expert_intermediate_size=as_int(cfg.get("moe_intermediate_size", 768), "moe_intermediate_size"),
                     moe_layer_ids=moe)
    elif model_type in _MLA:
        first_dense = as_int(cfg.get("first_k_dense_replace", 0), "first_k_dense_replace", allow_zero=True)
        freq = as_int(cfg.get("moe_layer_freq", 1), "moe_layer_freq")
        q_rank = cfg.get("q_lora_rank")
        extra["mla"] = {"q_lora_rank": None if q_rank is None else as_int(q_rank, "q_lora_rank"),
                        "kv_lora_rank": as_int(cfg.get("kv_lora_rank", 512), "kv_lora_rank"),
                        "qk_nope_head_dim": as_int(cfg.get("qk_nope_head_dim", 128), "qk_nope_head_dim"),
                        "qk_rope_head_dim": as_int(cfg.get("qk_rope_head_dim", 64), "qk_rope_head_dim"),
                        "v_head_dim": as_int(cfg.get("v_head_dim", 128), "v_head_dim")}
        routed = as_int(cfg.get("n_routed_experts", 0) or 0, "n_routed_experts", allow_zero=True)
        extra.update(num_experts_total=routed,
                     experts_per_token=as_int(cfg.get("num_experts_per_tok", 0) or 0, "num_experts_per_tok",
                                              allow_zero=True),
                     expert_intermediate_size=as_int(cfg.get("moe_intermediate_size", 1407), "moe_intermediate_size"),
                     shared_experts=as_int(cfg.get("n_shared_experts", 0) or 0, "n_shared_experts", allow_zero=True),
                     moe_layer_ids=[i for i in range(L) if routed and i >= first_dense and i % freq == 0])
    else:  # gemma2 / gemma3_text
        window = as_int(cfg.get("sliding_window", 4096 if model_type == "gemma2" else 512), "sliding_window")
        layer_types = cfg.get("layer_types")
        if layer_types is not None:
            if not isinstance(layer_types, (list, tuple)) or len(layer_types) != L:
                raise ArchitectureError(f"config.json: 'layer_types' must list one type per layer ({L}).")
            kinds = ["sliding" if t == "sliding_attention" else "full" for t in layer_types]
        elif model_type == "gemma2":  # transformers' Gemma2Config: even layers (0, 2, ...) are local
            kinds = ["sliding" if (i + 1) % 2 else "full" for i in range(L)]
        else:  # Gemma3TextConfig: sliding_window_pattern 6 → every 6th layer is global
            pattern = as_int(cfg.get("sliding_window_pattern", 6), "sliding_window_pattern")
            kinds = ["sliding" if (i + 1) % pattern else "full" for i in range(L)]
    if extra["experts_per_token"] > extra["num_experts_total"]:
        raise ArchitectureError("config.json: num_experts_per_tok exceeds the number of experts.")
    extra["attention_layer_kinds"] = kinds
    extra["sliding_window_effective"] = window if "sliding" in kinds else None
    return extra


def native_kwargs(c: dict) -> dict:
    """Shape kwargs for transformers' config class of the family (the rest passes through from config.json)."""
    kw = {"num_hidden_layers": c["num_hidden_layers"], "hidden_size": c["hidden_size"],
          "num_attention_heads": c["num_attention_heads"], "num_key_value_heads": c["num_key_value_heads"],
          "intermediate_size": c["intermediate_size"], "vocab_size": c["vocab_size"],
          "max_position_embeddings": c["max_position_embeddings"], "tie_word_embeddings": c["tie_word_embeddings"]}
    if c["model_type"] not in _MLA:
        kw["head_dim"] = c["head_dim"]
    if c["model_type"] in _GEMMA:
        kw["sliding_window"] = c["sliding_window_effective"]
    return kw


# ---------------------------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------------------------
def _attention(c: dict) -> tuple[int, int]:
    """(attention matrix parameters per layer, attention norm parameters per layer)."""
    h, a, kv, d = c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    bias = bool(c.get("attention_bias", False))
    mla = c.get("mla")
    if mla:
        qk = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        if mla["q_lora_rank"] is None:
            q, q_norm = h * a * qk, 0
        else:
            q = h * mla["q_lora_rank"] + (mla["q_lora_rank"] if bias else 0) + mla["q_lora_rank"] * a * qk
            q_norm = mla["q_lora_rank"]
        kv_a = h * (mla["kv_lora_rank"] + mla["qk_rope_head_dim"]) + (
            (mla["kv_lora_rank"] + mla["qk_rope_head_dim"]) if bias else 0)
        kv_b = mla["kv_lora_rank"] * a * (mla["qk_nope_head_dim"] + mla["v_head_dim"])
        o = a * mla["v_head_dim"] * h + (h if bias else 0)
        return q + kv_a + kv_b + o, q_norm + mla["kv_lora_rank"]
    mats = h * a * d + 2 * h * kv * d + a * d * h
    if bias:
        mats += a * d + 2 * kv * d + h
    qk_norm = 2 * d if c["model_type"] in ("qwen3_moe", "gemma3_text") else 0
    return mats, qk_norm


def _ffn_params(h: int, ffn: int) -> int:
    return 3 * h * ffn  # SwiGLU / GeGLU: gate, up, down


def expert_params_per_layer(c: dict) -> int:
    """Routed-expert parameters of one MoE layer (all experts)."""
    return c["num_experts_total"] * _ffn_params(c["hidden_size"], c["expert_intermediate_size"])


def param_breakdown(c: dict) -> dict[str, int]:
    """Exact parameters per component (embeddings, attention, mlp, router, experts, norms, lm_head)."""
    L, h, V = c["num_hidden_layers"], c["hidden_size"], c["vocab_size"]
    attn, attn_norms = _attention(c)
    moe = set(c["moe_layer_ids"])
    n_moe = len(moe)
    dense_ffn = c["intermediate_size"]
    out = {"embeddings": V * h, "attention": L * attn, "mlp": 0, "router": 0, "experts": 0, "norms": 0,
           "lm_head": 0 if c["tie_word_embeddings"] else V * h}
    out["mlp"] = (L - n_moe) * _ffn_params(h, dense_ffn)
    if n_moe:
        out["router"] = n_moe * c["num_experts_total"] * h
        out["experts"] = n_moe * expert_params_per_layer(c)
        out["mlp"] += n_moe * c["shared_experts"] * _ffn_params(h, c["expert_intermediate_size"])
    per_layer_norms = 4 if c["model_type"] in _GEMMA else 2
    out["norms"] = L * (per_layer_norms * h + attn_norms) + h
    return out


def active_params(c: dict) -> int:
    """Parameters used for one token: all but the routed experts a token does not visit (top-k of E)."""
    total = sum(param_breakdown(c).values())
    if not c["moe_layer_ids"] or not c["num_experts_total"]:
        return total
    idle = c["num_experts_total"] - c["experts_per_token"]
    per_expert = _ffn_params(c["hidden_size"], c["expert_intermediate_size"])
    return total - len(c["moe_layer_ids"]) * idle * per_expert


def linear_layers(c: dict) -> list:
    """Weight matrices as ````LinearLayer```` groups (fused 3-D expert tensors as one group per layer
    kind; ``quantizable`` as transformers' bitsandbytes integration treats them)."""
    L, h, V = c["num_hidden_layers"], c["hidden_size"], c["vocab_size"]
    a, kv, d = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"]
    bias = bool(c.get("attention_bias", False))
    mla = c.get("mla")
    rows: list = []
    if mla:
        qk = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
        if mla["q_lora_rank"] is None:
            rows.append(LinearLayer("self_attn.q_proj", h, a * qk, L, False, True))
        else:
            rows += [LinearLayer("self_attn.q_a_proj", h, mla["q_lora_rank"], L, bias, True),
                     LinearLayer("self_attn.q_b_proj", mla["q_lora_rank"], a * qk, L, False, True)]
        rows += [LinearLayer("self_attn.kv_a_proj_with_mqa", h, mla["kv_lora_rank"] + mla["qk_rope_head_dim"], L,
                             bias, True),
                 LinearLayer("self_attn.kv_b_proj", mla["kv_lora_rank"],
                             a * (mla["qk_nope_head_dim"] + mla["v_head_dim"]), L, False, True),
                 LinearLayer("self_attn.o_proj", a * mla["v_head_dim"], h, L, bias, True)]
    else:
        rows += [LinearLayer("self_attn.q_proj", h, a * d, L, bias, True),
                 LinearLayer("self_attn.k_proj/v_proj", h, kv * d, 2 * L, bias, True),
                 LinearLayer("self_attn.o_proj", a * d, h, L, bias, True)]
    n_moe = len(c["moe_layer_ids"])
    dense = L - n_moe
    if dense:
        rows += [LinearLayer("mlp.gate_proj/up_proj", h, c["intermediate_size"], 2 * dense, False, True),
                 LinearLayer("mlp.down_proj", c["intermediate_size"], h, dense, False, True)]
    if n_moe:
        e, f = c["num_experts_total"], c["expert_intermediate_size"]
        # transformers' replace_with_bnb_linear (integrations/bitsandbytes.py) converts nn.Linear / Conv1D only: the
        # router and the fused 3-D expert tensors (nn.Parameter in transformers 5) stay in 16-bit.
        rows += [LinearLayer("mlp.gate (router)", h, e, n_moe, False, False),
                 LinearLayer("mlp.experts.gate_up_proj", h, 2 * f, e * n_moe, False, False),
                 LinearLayer("mlp.experts.down_proj", f, h, e * n_moe, False, False)]
        if c["shared_experts"]:
            fs = f * c["shared_experts"]
            rows += [LinearLayer("mlp.shared_experts.gate_proj/up_proj", h, fs, 2 * n_moe, False, True),
                     LinearLayer("mlp.shared_experts.down_proj", fs, h, n_moe, False, True)]
    rows.append(LinearLayer("lm_head", h, V, 0 if c["tie_word_embeddings"] else 1, False, False))
    return rows


# ---------------------------------------------------------------------------------------------------------------
# KV cache layout
# ---------------------------------------------------------------------------------------------------------------
def kv_groups(c: dict) -> list[KVGroup]:
    """What each attention layer caches per token.

    MLA: the latent ``kv_lora_rank`` + the shared RoPE key ``qk_rope_head_dim`` (one "head"), per layer — what
    transformers' DeepseekV3Attention stores (``past_key_values.update(kv_nope, k_rot)``) and what vLLM's MLA backend
    pages. Others: K and V of ``num_key_value_heads`` heads; sliding layers hold at most ``window`` tokens.
    """
    mla = c.get("mla")
    if mla:
        return [KVGroup(c["num_hidden_layers"], mla["kv_lora_rank"] + mla["qk_rope_head_dim"], None)]
    per = 2 * c["num_key_value_heads"] * c["head_dim"]
    kinds = c["attention_layer_kinds"]
    groups = []
    n_full, n_slide = kinds.count("full"), kinds.count("sliding")
    if n_full:
        groups.append(KVGroup(n_full, per, None))
    if n_slide:
        groups.append(KVGroup(n_slide, per, c["sliding_window_effective"]))
    return groups


def attention_dims(c: dict) -> tuple[int, int]:
    """(query·key dimension, value dimension) per head, for attention FLOPs."""
    mla = c.get("mla")
    if mla:
        return mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"], mla["v_head_dim"]
    return c["head_dim"], c["head_dim"]
