"""core.finetune: LoRA trainable parameters equal PEFT's own count on real models of several architectures, the
plan's checks give clear messages, and the plan agrees with real PEFT training steps measured on this CPU."""
import pytest
import torch

from core.plan import architectures
from core.finetune import (FinetuneError, lora_trainable_params, optimizer_state_bytes, peft_target_modules,
                           plan_finetune, prompt_tuning_trainable_params)
from core.measure import measure_finetune_step

TINY = {
    "llama": {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 176,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
              "tie_word_embeddings": True},
    "qwen2": {"model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 1, "vocab_size": 512, "max_position_embeddings": 512},
    "gpt2": {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 512, "n_positions": 256},
    "t5": {"model_type": "t5", "num_layers": 2, "num_decoder_layers": 2, "d_model": 64, "d_ff": 128, "d_kv": 16,
           "num_heads": 4, "vocab_size": 512, "feed_forward_proj": "gated-gelu", "decoder_start_token_id": 0,
           "pad_token_id": 0},
    "bert": {"model_type": "bert", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
             "intermediate_size": 256, "vocab_size": 512, "max_position_embeddings": 256},
}
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"


def _peft_count(cfg, rank, targets) -> int:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    c = architectures.get_config(cfg)
    auto = {"decoder": AutoModelForCausalLM, "encoder-decoder": AutoModelForSeq2SeqLM}.get(c["kind"], AutoModel)
    with torch.device("meta"):
        model = auto.from_config(architectures.hf_config(c))
    peft_model = get_peft_model(model, LoraConfig(r=rank, target_modules=peft_target_modules(c, targets),
                                                  bias="none"))
    return peft_model.get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("name", list(TINY))
@pytest.mark.parametrize("targets", [["attention"], ["all-linear"], ["q", "v"]])
def test_trainable_params_equal_peft_on_tiny_models(name, targets):
    expected = _peft_count(TINY[name], 4, targets)
    assert lora_trainable_params(TINY[name], 4, targets) == expected > 0


@pytest.mark.parametrize("rank,targets", [(8, ["attention"]), (64, ["all-linear"]), (16, ["q_proj", "v_proj"])])
def test_trainable_params_equal_peft_on_the_bundled_smollm2(rank, targets):
    assert lora_trainable_params(SMOLLM2, rank, targets) == _peft_count(SMOLLM2, rank, targets)


def _peft_prompt_tuning_count(cfg, tokens) -> int:
    from peft import PromptTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    c = architectures.get_config(cfg)
    seq2seq = c["kind"] == "encoder-decoder"
    with torch.device("meta"):
        model = (AutoModelForSeq2SeqLM if seq2seq else AutoModelForCausalLM).from_config(architectures.hf_config(c))
    task = TaskType.SEQ_2_SEQ_LM if seq2seq else TaskType.CAUSAL_LM
    return get_peft_model(model, PromptTuningConfig(task_type=task, num_virtual_tokens=tokens)).get_nb_trainable_parameters()[0]


@pytest.mark.parametrize("cfg", [TINY["llama"], TINY["qwen2"], TINY["gpt2"], TINY["t5"], SMOLLM2])
@pytest.mark.parametrize("tokens", [1, 20])
def test_prompt_tuning_trainable_params_equal_peft(cfg, tokens):
    expected = _peft_prompt_tuning_count(cfg, tokens)
    assert prompt_tuning_trainable_params(cfg, tokens) == expected > 0
    if cfg == SMOLLM2:
        assert expected == tokens * 576  # virtual tokens × hidden size
    with pytest.raises(ValueError, match="Virtual tokens"):
        prompt_tuning_trainable_params(cfg, 0)


def test_trainable_params_formula_by_hand():
    # SmolLM2-135M: 30 layers, h 576, 9 heads × 64, 3 KV heads: q 576→576, k/v 576→192, o 576→576.
    per_layer = 8 * ((576 + 576) + 2 * (576 + 192) + (576 + 576))
    assert lora_trainable_params(SMOLLM2, 8, "attention") == 30 * per_layer == 921_600


@pytest.mark.parametrize("call,message", [
    (lambda: lora_trainable_params(TINY["llama"], 0, ["attention"]), "at least 1"),
    (lambda: lora_trainable_params(TINY["llama"], 33, ["k"]), "larger than the smallest adapted layer"),
    (lambda: lora_trainable_params(TINY["llama"], 2.5, ["q"]), "whole number"),
    (lambda: lora_trainable_params(TINY["llama"], 8, ["c_attn_nope"]), "None of the target modules"),
    (lambda: lora_trainable_params(TINY["gpt2"], 8, ["gate"]), "None of the target modules"),
    (lambda: lora_trainable_params(TINY["llama"], 8, []), "at least one target module"),
    (lambda: plan_finetune(TINY["llama"], "qlora", 8, ["q"], 64, 1, base_precision="bf16"), "QLoRA keeps"),
    (lambda: plan_finetune(TINY["llama"], "lora", 8, ["q"], 64, 1, device_type="cuda", bf16_supported=False),
     "no bf16 support"),
    (lambda: plan_finetune(TINY["llama"], "dora", 8, ["q"], 64, 1), "Unknown method"),
    (lambda: plan_finetune(TINY["llama"], "lora", 8, ["q"], 0, 1), "Sequence length"),
    (lambda: plan_finetune(TINY["llama"], "lora", 8, ["q"], 64, 1, optimizer="lion"), "Unknown optimizer"),
    (lambda: plan_finetune(TINY["llama"], "prompt-tuning", None, None, 64, 1, num_virtual_tokens=0),
     "Virtual tokens"),
    (lambda: plan_finetune(TINY["llama"], "prompt-tuning", None, None, 64, 1, base_precision="nf4"), "16-bit base"),
])
def test_bad_input_gives_clear_messages(call, message):
    with pytest.raises(FinetuneError if "Sequence" not in message else ValueError, match=message):
        call()


def test_plan_components_and_the_saving_over_full_fine_tuning():
    lora = plan_finetune(SMOLLM2, "lora", 8, ["attention"], 512, 4)
    qlora = plan_finetune(SMOLLM2, "qlora", 8, ["attention"], 512, 4)
    full = plan_finetune(SMOLLM2, "full", None, None, 512, 4)
    assert lora["trainable_params"] == 921_600 and full["trainable_params"] >= architectures.param_count(SMOLLM2)
    assert 0.5 < lora["trainable_pct"] < 0.8
    for plan in (lora, qlora, full):
        assert abs(sum(plan["components"].values()) - plan["total_bytes"]) < 1
    # QLoRA's base is smaller than LoRA's (the gpu_poor complaint: never more), full FT the largest.
    assert qlora["components"]["frozen base weights"] < lora["components"]["frozen base weights"]
    assert qlora["total_bytes"] < lora["total_bytes"] < full["total_bytes"]
    assert "dequantized weight buffer" in qlora["components"]
    assert lora["components"]["adapter optimizer states"] == 8 * 921_600
    # FLOPs: 4·N + 6·N_adapter per token for LoRA (frozen base: no weight gradients), 6·N for full.
    n = architectures.param_count(SMOLLM2)
    assert lora["flops_per_token"] == 4 * n + 6 * 921_600 and full["flops_per_token"] == 6 * n


def test_prompt_tuning_plan_runs_the_virtual_positions_and_trains_only_the_soft_prompt():
    soft = plan_finetune(SMOLLM2, "prompt-tuning", None, None, 512, 4, num_virtual_tokens=20)
    lora = plan_finetune(SMOLLM2, "lora", 8, ["attention"], 512, 4)
    assert soft["trainable_params"] == 20 * 576 == prompt_tuning_trainable_params(SMOLLM2, 20)
    assert soft["seq_len"] == 512 and soft["target_modules"] == ["20 virtual tokens"]
    assert soft["components"]["adapter optimizer states"] == 8 * 11_520
    assert abs(sum(soft["components"].values()) - soft["total_bytes"]) < 1
    assert soft["components"]["frozen base weights"] == lora["components"]["frozen base weights"]
    # No adapted matrix keeps an input, but 532 positions run instead of 512: the soft prompt's extra activations.
    longer = plan_finetune(SMOLLM2, "prompt-tuning", None, None, 512, 4, num_virtual_tokens=200)
    assert soft["total_bytes"] < longer["total_bytes"]
    n = architectures.param_count(SMOLLM2)
    assert soft["flops_per_token"] == pytest.approx((4 * n + 6 * 11_520) * 532 / 512)


def test_optimizer_states_per_optimizer():
    assert optimizer_state_bytes("adamw", [1000, 10_000]) == 8 * 11_000
    assert optimizer_state_bytes("sgd", [10_000]) == 40_000
    # 8-bit AdamW: small tensors stay 32-bit; large ones 2 B/value + an fp32 absmax per 256 values per state.
    assert optimizer_state_bytes("adamw8bit", [1000]) == 8000
    assert optimizer_state_bytes("adamw8bit", [65_536]) == 2 * 65_536 + 2 * 4 * 256


@pytest.mark.parametrize("method,targets,ckpt", [("lora", ["q", "v"], False), ("lora", ["all-linear"], True),
                                                 ("qlora", ["all-linear"], False), ("prompt-tuning", None, False),
                                                 ("prompt-tuning", None, True)])
def test_real_peft_step_agrees_with_the_plan_on_cpu(method, targets, ckpt):
    r = measure_finetune_step(TINY["llama"], method, 8, targets, 64, 2, ckpt, device="cpu", num_virtual_tokens=16)
    assert r["method"] == method and r["device"].startswith("cpu") and "profiler" in r["measurement_method"]
    expected = (prompt_tuning_trainable_params(TINY["llama"], 16) if method == "prompt-tuning"
                else lora_trainable_params(TINY["llama"], 8, targets))
    assert r["trainable_params"] == expected
    assert abs(r["error_pct"]) < 10, (r["measured_peak_bytes"], r["predicted_peak_bytes"])


def test_a_prompt_tuning_step_on_smollm2_agrees_with_the_plan():
    """The bundled architecture (random weights), 20 virtual tokens before 128-token sequences: 148 positions."""
    r = measure_finetune_step(SMOLLM2, "prompt-tuning", None, None, 128, 2, device="cpu", num_virtual_tokens=20)
    assert r["trainable_params"] == 11_520 and "20 virtual tokens" in r["setting"]
    assert abs(r["error_pct"]) < 5, (r["measured_peak_bytes"], r["predicted_peak_bytes"])


def test_compute_and_chart_of_a_plan():
    from core.plan import compute
    from core.finetune import charts as finetune_charts
    from core.finetune import finetune_compute

    lora = plan_finetune(SMOLLM2, "lora", 8, ["attention"], 512, 4)
    full = plan_finetune(SMOLLM2, "full", None, None, 512, 4)
    mine = finetune_compute(lora, 1e7, 2, 989e12, 0.4, 2.0)
    assert mine["flops"] == lora["flops_per_token"] * 2e7
    assert mine["gpu_hours"] == compute.gpu_hours(mine["flops"], 989e12, 0.4) and mine["cost"] == 2 * mine["gpu_hours"]
    assert mine["gpu_hours"] < finetune_compute(full, 1e7, 2, 989e12, 0.4, 2.0)["gpu_hours"]
    with pytest.raises(FinetuneError, match="positive"):
        finetune_compute(lora, 0, 1, 989e12, 0.4, 2.0)
    fig = finetune_charts.plans_figure({"LoRA": lora, "full": full}, capacity_gb=80)
    names = {trace.name for trace in fig.data}
    assert {"frozen base weights", "adapter optimizer states", "weights", "optimizer states"} <= names
    assert all(list(trace.x) == ["LoRA", "full"] for trace in fig.data)
