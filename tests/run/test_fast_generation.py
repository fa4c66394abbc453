"""core.run.fast_generation: the bandwidth bound (hand-computed), the default path on CPU, the fast path's clean refusal
without CUDA, its panel, and (on a GPU) identical greedy output. Speed-ups are benchmarks, not tests."""
import pytest
import torch

from core.run import fast_generation as fg
from core.run import fast_generation_charts
from core.run import models
from core.plan.hardware import get_gpu

TINY_LLAMA = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
              "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512}


@pytest.fixture(scope="module")
def tiny():
    return models.random_model(TINY_LLAMA, tokenizer="smollm2", dtype="fp32", device="cpu")


def test_bound_is_bandwidth_over_bytes_per_step():
    # 1 GB of weights on an H100 SXM (3350 GB/s): at most 3350 steps per second.
    h100 = get_gpu("H100 SXM")
    assert fg.bandwidth_bound_tokens_per_s(1e9, h100.bandwidth_bytes_per_s) == pytest.approx(3350)
    # Reading 0.5 GB of KV cache as well: 3350 / 1.5.
    assert fg.bandwidth_bound_tokens_per_s(1e9, 3.35e12, kv_cache_bytes=5e8) == pytest.approx(3350 / 1.5)
    # A batch of 8 shares one read of the weights.
    assert fg.bandwidth_bound_tokens_per_s(1e9, 3.35e12, batch_size=8) == pytest.approx(8 * 3350)


@pytest.mark.parametrize("args", [(1e9, 0), (1e9, -5), (0, 1e12, 0.0, 1), (1e9, 1e12, 0.0, 0), (-1, 1e12)])
def test_bound_rejects_bad_input(args):
    with pytest.raises(ValueError):
        fg.bandwidth_bound_tokens_per_s(*args)


def test_generation_bound_sums_the_growing_cache():
    # Weights 100 bytes, 10 bytes of KV per token, 1 byte/s: steps read 100+10·(p+i) bytes.
    bound = fg.generation_bound_tokens_per_s(100, 1.0, prompt_tokens=2, new_tokens=3, kv_per_token=10)
    assert bound == pytest.approx(3 / (120 + 130 + 140))
    no_kv = fg.generation_bound_tokens_per_s(1e9, 3.35e12, 5, 50, 0.0)
    assert no_kv == pytest.approx(fg.bandwidth_bound_tokens_per_s(1e9, 3.35e12))


def test_kv_bytes_per_token_of_smollm2():
    from core.plan.architectures import hf_config
    cfg = hf_config("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert fg.kv_bytes_per_token(cfg, 2) == 2 * 30 * 3 * 64 * 2  # 23,040 bytes per token in bf16


def test_weight_bytes_count_tied_embeddings_once(tiny):
    model = tiny.model
    n = model.num_parameters()
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert fg.model_weight_bytes(model) == 4 * n + buffers


def test_model_bound_uses_the_models_kv_bytes_per_token(tiny):
    kv = fg.kv_bytes_per_token(tiny.model.config, 4)  # fp32: 2 · 2 layers · 2 kv heads · 16 dims · 4 bytes
    assert kv == 2 * 2 * 2 * 16 * 4
    bound = fg.model_generation_bound_tokens_per_s(tiny.model, 1e6, 1e9, prompt_tokens=5, new_tokens=4)
    assert bound == pytest.approx(fg.generation_bound_tokens_per_s(1e6, 1e9, 5, 4, kv))


def test_default_path_generates_exactly_the_requested_tokens_on_cpu(tiny):
    run = fg.generate_default(tiny, "Hello there", 6)
    assert run.new_tokens == 6 and len(run.token_ids) == 6
    assert run.seconds > 0 and run.tokens_per_s > 0
    again = fg.generate_default(tiny, "Hello there", 6)
    assert again.token_ids == run.token_ids  # greedy is deterministic


@pytest.mark.parametrize("prompt, n", [("", 4), ("   ", 4), ("Hi", 0), ("Hi", 10_000)])
def test_default_path_rejects_bad_input(tiny, prompt, n):
    with pytest.raises(ValueError):
        fg.generate_default(tiny, prompt, n)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_fast_path_refuses_cleanly_without_cuda(tiny):
    ok, reason = fg.fast_generation_support(tiny.device)
    assert not ok and "CUDA" in reason
    with pytest.raises(RuntimeError, match="CUDA"):
        fg.generate_fast(tiny, "Hello", 4)


def test_speed_figure_has_the_three_bars():
    fig = fast_generation_charts.speed_figure(40.0, 120.0, 900.0, "H100 SXM")
    assert list(fig.data[0].x) == [40.0, 120.0, 900.0]
    assert "H100 SXM" in fig.data[0].y[2]
    assert len(fast_generation_charts.speed_figure(40.0, None, 900.0).data[0].x) == 2


def _panel_script():
    import streamlit as st

    from core.run import models
    from views.components.fast_generation_panel import render_fast_generation_panel

    @st.cache_resource
    def load():
        return models.random_model({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64,
                                    "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2,
                                    "vocab_size": 512, "max_position_embeddings": 512},
                                   tokenizer="smollm2", dtype="fp32", device="cpu")

    render_fast_generation_panel(load(), "Hello there", 16)


def test_fast_generation_panel_shows_the_bound_and_explains_the_gpu_need():
    from streamlit.testing.v1 import AppTest  # local: the GPU-only tests below must run where Streamlit is absent

    at = AppTest.from_function(_panel_script, default_timeout=180)
    at.run()
    assert not at.exception
    bound_h100 = at.metric[0].value
    assert bound_h100.endswith("tokens/s")
    if not torch.cuda.is_available():
        assert any("CUDA GPU" in i.value for i in at.info)
    # A slower GPU lowers the bound.
    at.selectbox(key="fastgen_gpu").set_value("T4").run()
    assert not at.exception
    to_num = lambda v: float(v.split()[0].replace(",", ""))  # noqa: E731
    assert to_num(at.metric[0].value) < to_num(bound_h100)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_fast_path_gives_the_same_greedy_output_on_gpu():
    # SmolLM2-135M's architecture in bf16 with random weights (no tokenizer or weight files needed on a bare GPU
    # machine): greedy decoding is deterministic either way.
    from transformers import AutoModelForCausalLM

    from core.plan.architectures import hf_config
    from core.plan.hardware import detect_hardware

    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(hf_config("HuggingFaceTB/SmolLM2-135M-Instruct"),
                                                 dtype=torch.bfloat16, attn_implementation="sdpa").eval()
    ids = torch.randint(0, model.config.vocab_size, (1, 12), generator=torch.Generator().manual_seed(0)).cuda()
    name = detect_hardware("cuda")["catalog_gpu_name"]
    result = fg.compare_runs(model, ids, 32, get_gpu(name) if name else None)
    assert result.same_leading_tokens >= 16, result
    assert len(result.fast_token_ids) == 32
    if result.bound_tokens_per_s:
        assert result.fast_tokens_per_s < result.bound_tokens_per_s
    assert result.to_dict()["fast_token_ids"] == result.fast_token_ids


def test_speed_comparison_is_frozen_and_exports_the_old_keys():
    import dataclasses

    result = fg.SpeedComparison(
        default_tokens_per_s=20.0, fast_tokens_per_s=50.0, speedup=2.5, same_output=True, same_leading_tokens=4,
        new_tokens=4, prompt_tokens=3, bound_tokens_per_s=100.0, gpu="H100 SXM", bandwidth_gbs=3350,
        weight_bytes=1000, default_fraction_of_bound=0.2, fast_fraction_of_bound=0.5, compile_warmup_seconds=12.0,
        default_token_ids=[1, 2, 3, 4], fast_token_ids=[1, 2, 3, 4])
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.speedup = 1.0
    assert list(result.to_dict()) == [
        "default_tokens_per_s", "fast_tokens_per_s", "speedup", "same_output", "same_leading_tokens", "new_tokens",
        "prompt_tokens", "bound_tokens_per_s", "gpu", "bandwidth_gbs", "weight_bytes", "default_fraction_of_bound",
        "fast_fraction_of_bound", "compile_warmup_seconds", "default_token_ids", "fast_token_ids"]
    texts = dataclasses.replace(result, default_text="a", fast_text="b").to_dict()
    assert texts["default_text"] == "a" and texts["fast_text"] == "b"
