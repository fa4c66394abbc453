"""core.measure.modes: what "Measure on this machine" runs and predicts per mode (the page only renders it)."""
import pytest

from core import measure
from core.finetune import plan_finetune

TINY = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 176,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
        "tie_word_embeddings": True}


def test_modes_and_labels():
    assert tuple(measure.MODE_LABELS) == ("inference", "training", "lora", "qlora", "prompt-tuning")
    assert set(measure.LORA_MODES) < set(measure.FINETUNE_MODES) < set(measure.TRAINING_MODES)


@pytest.mark.parametrize("mode", ["training", "lora", "qlora", "prompt-tuning"])
def test_both_checkpointing_settings_for_modes_with_a_backward_pass(mode):
    runs = measure.plan_runs(measure.MeasureRequest(mode, TINY, 64, 2), both_checkpointing=True)
    assert [r.gradient_checkpointing for r in runs] == [False, True]
    assert "with checkpointing" in runs[1].what and "with checkpointing" not in runs[0].what


def test_inference_runs_once_and_ignores_checkpointing():
    runs = measure.plan_runs(measure.MeasureRequest("inference", TINY, 64, 2, gradient_checkpointing=True), True)
    assert len(runs) == 1 and runs[0].gradient_checkpointing is False and runs[0].what == "a prefill"


def test_prediction_per_mode_is_the_matching_core_prediction():
    inf = measure.predict_request(measure.MeasureRequest("inference", TINY, 64, 2, dtype="fp32"), "cpu")
    assert inf == measure.predict_inference(TINY, "fp32", 64, 2, device_type="cpu")
    train = measure.predict_request(measure.MeasureRequest("training", TINY, 64, 2, recipe="fp32"), "cpu")
    assert train == measure.predict_training_step(TINY, "fp32", 64, 2, False, device_type="cpu")
    lora = measure.predict_request(measure.MeasureRequest("lora", TINY, 64, 2, rank=8,
                                                          target_modules=("all-linear",)), "cpu")
    plan = plan_finetune(TINY, "lora", 8, ["all-linear"], 64, 2, device_type="cpu")
    assert lora["predicted_peak_bytes"] == plan["total_bytes"] and lora["trainable_params"] == plan["trainable_params"]
    qlora = measure.predict_request(measure.MeasureRequest("qlora", TINY, 64, 2), "cpu")
    assert qlora["base_precision"] == "nf4-dq" and qlora["predicted_peak_bytes"] < lora["predicted_peak_bytes"]
    soft = measure.predict_request(measure.MeasureRequest("prompt-tuning", TINY, 64, 2, num_virtual_tokens=16), "cpu")
    plan = plan_finetune(TINY, "prompt-tuning", None, None, 64, 2, device_type="cpu", num_virtual_tokens=16)
    assert soft["predicted_peak_bytes"] == plan["total_bytes"] and soft["trainable_params"] == 16 * 64


def test_unknown_mode_is_a_clear_error():
    with pytest.raises(ValueError, match="Unknown measurement mode"):
        measure.plan_runs(measure.MeasureRequest("pretrain", TINY, 64, 2))
