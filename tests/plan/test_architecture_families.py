"""MoE, MLA and sliding-window/global hybrid families: exact parameter counts and KV cache bytes, checked against
transformers (meta-device ``from_config`` for the published shapes, a real forward pass for tiny random configs)."""
import pytest
import torch

from core.plan import architectures as A
from core.plan.memory import model_kv_cache_bytes

# Published totals (the model cards / transformers' num_parameters() of the checkpoints).
PUBLISHED = {
    "mistralai/Mixtral-8x7B-v0.1": 46_702_792_704,
    "Qwen/Qwen3-30B-A3B": 30_532_122_624,
    "deepseek-ai/DeepSeek-V3": 671_026_404_352,  # 671B without the MTP module (DeepSeek-V3 report §1)
    "deepseek-ai/DeepSeek-V2-Lite": 15_706_484_224,
    "google/gemma-2-9b": 9_241_705_984,
    "google/gemma-2-2b": 2_614_341_888,
    "google/gemma-3-1b-it": 999_885_952,
}

TINY = {
    "mixtral": {"model_type": "mixtral", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": 100, "num_local_experts": 4,
                "num_experts_per_tok": 2},
    "qwen3_moe": {"model_type": "qwen3_moe", "num_hidden_layers": 3, "hidden_size": 64, "num_attention_heads": 4,
                  "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 128, "moe_intermediate_size": 48,
                  "num_experts": 4, "num_experts_per_tok": 2, "vocab_size": 100, "mlp_only_layers": [1]},
    "deepseek_v3": {"model_type": "deepseek_v3", "num_hidden_layers": 3, "hidden_size": 64,
                    "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
                    "moe_intermediate_size": 32, "n_routed_experts": 4, "n_shared_experts": 1,
                    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "kv_lora_rank": 16, "q_lora_rank": 24,
                    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "n_group": 1, "topk_group": 1,
                    "vocab_size": 100},
    "deepseek_v2": {"model_type": "deepseek_v2", "num_hidden_layers": 2, "hidden_size": 64,
                    "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 128,
                    "moe_intermediate_size": 32, "n_routed_experts": 4, "n_shared_experts": 2,
                    "num_experts_per_tok": 2, "first_k_dense_replace": 1, "kv_lora_rank": 16, "q_lora_rank": None,
                    "qk_nope_head_dim": 8, "qk_rope_head_dim": 4, "v_head_dim": 8, "n_group": 1, "topk_group": 1,
                    "topk_method": "greedy", "vocab_size": 100},
    "gemma2": {"model_type": "gemma2", "num_hidden_layers": 4, "hidden_size": 64, "num_attention_heads": 4,
               "num_key_value_heads": 2, "head_dim": 16, "intermediate_size": 128, "vocab_size": 100,
               "sliding_window": 8},
    "gemma3_text": {"model_type": "gemma3_text", "num_hidden_layers": 7, "hidden_size": 64, "num_attention_heads": 4,
                    "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 128, "vocab_size": 100,
                    "sliding_window": 8},
}


def _from_config(model, device=None):
    from transformers import AutoModelForCausalLM

    if device == "meta":
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(A.hf_config(model))
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(A.hf_config(model), dtype=torch.float32)


@pytest.mark.parametrize("model_id", list(PUBLISHED))
def test_published_parameter_counts_exact(model_id):
    assert A.param_count(model_id) == PUBLISHED[model_id]
    assert _from_config(model_id, "meta").num_parameters() == PUBLISHED[model_id]


@pytest.mark.parametrize("family", list(TINY))
def test_tiny_family_counts_equal_transformers(family):
    model = _from_config(TINY[family])
    assert model.num_parameters() == A.param_count(TINY[family])
    lin = A.linear_layers(TINY[family])
    # every weight matrix group is accounted in the breakdown (matrices ≤ total)
    assert sum(x.weight_params for x in lin) <= A.param_count(TINY[family])


def _cache_bytes(model, batch, seq):
    with torch.no_grad():
        out = model(torch.randint(0, 100, (batch, seq)), use_cache=True)
    return sum(layer.keys.nbytes + layer.values.nbytes for layer in out.past_key_values.layers)


@pytest.mark.parametrize("family", list(TINY))
def test_kv_bytes_equal_transformers_cache(family):
    """What transformers' cache allocates for a tiny random model equals the planner's KV bytes (fp32: 4 B/value).

    Below the window every layer holds all tokens; past it, transformers keeps window − 1 tokens on local layers
    between steps (the incoming token makes it window during attention), the planner reserves the window."""
    cfg = TINY[family]
    model = _from_config(cfg)
    assert _cache_bytes(model, 2, 6) == model_kv_cache_bytes(cfg, 6, 2, 4)
    if family.startswith("gemma"):
        stored = _cache_bytes(model, 2, 20)
        groups = A.kv_groups(cfg)
        local = sum(g.layers * g.values_per_token for g in groups if g.window)
        assert local > 0
        assert stored == model_kv_cache_bytes(cfg, 20, 2, 4) - 2 * local * 4  # one token less per local layer
        assert model_kv_cache_bytes(cfg, 20, 2, 4) < model_kv_cache_bytes({**cfg, "model_type": "gemma2",
                                                                            "sliding_window": 1000}, 20, 2, 4)


def test_active_parameters():
    assert A.active_param_count("meta-llama/Meta-Llama-3-8B") == A.param_count("meta-llama/Meta-Llama-3-8B")
    mixtral = A.active_param_count("mistralai/Mixtral-8x7B-v0.1")
    assert round(mixtral / 1e9, 1) == 12.9  # Mixtral of Experts §2.1: 13B active of 47B
    assert round(A.active_param_count("Qwen/Qwen3-30B-A3B") / 1e9, 1) == 3.4  # "A3B": 3.3B non-embedding + ...
    assert 36e9 < A.active_param_count("deepseek-ai/DeepSeek-V3") < 38e9  # DeepSeek-V3 report: 37B activated
    assert A.active_param_count(7e9) == 7_000_000_000


def test_mla_and_hybrid_kv_layout():
    # DeepSeek-V3: 61 layers × (512 + 64) values, 2 bytes: 70,272 B per token (DeepSeek-V2 Table 1: (d_c + d_h^R)·l)
    assert model_kv_cache_bytes("deepseek-ai/DeepSeek-V3", 1, 1, 2) == 61 * 576 * 2
    # Gemma 2 9B: 21 global layers grow with the context, 21 local layers stop at 4096 tokens
    per_layer_token = 2 * 8 * 256 * 2
    assert model_kv_cache_bytes("google/gemma-2-9b", 8192, 1, 2) == per_layer_token * (21 * 8192 + 21 * 4096)
    assert A.kv_groups("bert-base-uncased") == []


def test_bad_family_configs_are_clear_errors():
    with pytest.raises(A.ArchitectureError, match="num_experts_per_tok"):
        A.get_config({**TINY["mixtral"], "num_experts_per_tok": 9})
    with pytest.raises(A.ArchitectureError, match="layer_types"):
        A.get_config({**TINY["gemma2"], "layer_types": ["full_attention"]})
    with pytest.raises(A.ArchitectureError):
        A.get_config({**TINY["deepseek_v3"], "kv_lora_rank": -1})


def test_bitsandbytes_leaves_fused_experts_in_16_bit():
    """transformers converts nn.Linear only; Mixtral's experts are fused nn.Parameter tensors in transformers 5."""
    model = _from_config(TINY["mixtral"])
    linear_names = {n for n, m in model.named_modules() if type(m) is torch.nn.Linear}
    assert not any("experts" in n for n in linear_names)
    assert any(n.endswith("self_attn.q_proj") for n in linear_names)
    rows = {x.name: x for x in A.linear_layers(TINY["mixtral"])}
    assert not rows["mlp.experts.gate_up_proj"].quantizable and rows["self_attn.q_proj"].quantizable
