"""Exact parameter counts and KV-cache layouts computed from a normalized config, following each architecture's
module layout in transformers' ``modeling_<type>.py`` (tied weights counted once)."""
from __future__ import annotations

import math

from core.plan.architectures import families as _families
from core.plan.architectures.config import get_config
from core.plan.architectures.shapes import ArchitectureError, KVGroup, LinearLayer


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
    return [KVGroup(layers, 2 * c["num_key_value_heads"] * c["head_dim"], c.get("sliding_window_effective"))]
