"""The catalog: published configs of real models (keys of their Hugging Face ``config.json``), display names and the
aliases that resolve to them (facts from each model's config.json on the Hugging Face hub:
docs/references/architectures.md)."""
from __future__ import annotations

from typing import Any

from core.plan.architectures.shapes import ArchitectureError


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
