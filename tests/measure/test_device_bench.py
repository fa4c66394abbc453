"""This machine as a serving device: the microbenchmark, the operator count of a real decode step, a real batched
generate of the bundled SmolLM2 and the planner's prediction of it (no timing assertions: values are checked for
shape and consistency, not speed)."""
import math

import pytest
import torch

from core.plan import architectures, serving
from core.measure import device_bench
from core.run import models


@pytest.fixture(scope="module")
def profile():
    return device_bench.measure_device("cpu", repeats=2, matrix_bytes=32 * 2**20, refresh=True)


@pytest.fixture(scope="module")
def smollm2():
    return models.load_model(None, dtype="fp32", device="cpu")


def test_profile_is_measured_and_cached(profile):
    assert profile.device == "cpu"
    assert profile.bandwidth_bytes_per_s > 1e8 and profile.matmul_flops_per_s > 1e8 and profile.dispatch_s > 0
    assert device_bench.measure_device("cpu") is profile  # cached for the process
    gpu = profile.as_gpu()
    assert gpu.bandwidth_bytes_per_s == pytest.approx(profile.bandwidth_bytes_per_s)
    assert gpu.peak_flops == pytest.approx(profile.matmul_flops_per_s)


def test_operator_count_grows_with_layers():
    def tiny(layers):
        cfg = {"model_type": "llama", "num_hidden_layers": layers, "hidden_size": 64, "num_attention_heads": 4,
               "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 100}
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(architectures.hf_config(cfg))

    one, three = device_bench.count_ops_per_step(tiny(1)), device_bench.count_ops_per_step(tiny(3))
    per_layer = (three - one) / 2
    assert per_layer > 10 and three > one  # every layer runs norms, projections, attention, MLP


def test_real_batched_generate_and_prediction(profile, smollm2):
    ops = device_bench.count_ops_per_step(smollm2.model)
    measured = [device_bench.measure_generation(smollm2, b, prompt_tokens=16, output_tokens=4) for b in (1, 2)]
    overhead = device_bench.measure_step_overhead(models.BUNDLED_DECODER, 1, steps=2, repeats=1)
    assert overhead > 0
    predicted = [device_bench.predict_generation(models.BUNDLED_DECODER, profile, b, 16, 4, overhead) for b in (1, 2)]
    for run in measured + predicted:
        assert run.ttft_s > 0 and run.tpot_s > 0 and math.isfinite(run.tokens_per_s)
    rows = device_bench.compare_rows(measured, predicted)
    assert [r["concurrency"] for r in rows] == [1, 2]
    r = rows[0]
    assert r["error_tpot_s_pct"] == pytest.approx((r["predicted_tpot_s"] - r["measured_tpot_s"])
                                                  / r["measured_tpot_s"] * 100)
    # the prediction is the roofline step of SmolLM2 in fp32 plus one dispatch per operator
    m = serving.serving_model(models.BUNDLED_DECODER)
    weights = serving.decode_weight_bytes(m, "fp32", 1)
    assert weights == architectures.param_count(models.BUNDLED_DECODER) * 4  # tied embeddings: lm_head reads them
    assert ops > 100
    assert predicted[0].tpot_s >= weights / profile.bandwidth_bytes_per_s + overhead - 1e-12


def test_tiny_twin_keeps_layers_and_shrinks_widths():
    twin = device_bench.tiny_twin_config(models.BUNDLED_DECODER)
    assert twin["num_hidden_layers"] == 30 and twin["hidden_size"] == 64 and twin["vocab_size"] == 256
    assert architectures.param_count(twin) < 0.02 * architectures.param_count(models.BUNDLED_DECODER)
    shapes = device_bench.decode_matrix_shapes(models.BUNDLED_DECODER)
    assert sum(i * o for i, o in shapes) == architectures.param_count(models.BUNDLED_DECODER) - 30 * 2 * 576 - 576


def test_knee_direction_check():
    rise = [{"predicted_tokens_per_s": 10, "measured_tokens_per_s": 9},
            {"predicted_tokens_per_s": 19, "measured_tokens_per_s": 15}]
    assert device_bench.knee_direction_ok(rise)
    wrong = [rise[0], {"predicted_tokens_per_s": 19, "measured_tokens_per_s": 8}]
    assert not device_bench.knee_direction_ok(wrong)


def test_torch_threads_untouched(profile):
    assert torch.get_num_threads() == profile.threads
