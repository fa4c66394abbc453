"""core.finetune.runner on the real bundled SmolLM2 with PEFT: a few real LoRA steps (CPU-cheap settings)."""
import tempfile
import time
from pathlib import Path

import pytest
import torch

from core.finetune import FinetuneError
from core.finetune.data import encode_examples, load_dataset
from core.finetune.runner import FinetuneBusy, next_token_logits, start_finetune
from core.finetune.settings import FinetuneSettings, check_settings
from core.run.models import load_model, load_tokenizer

# Small steps so the module stays cheap on 2 shared cores; lr 3e-3 lowers the loss within 4 steps.
FAST = FinetuneSettings(rank=8, alpha=16.0, target_modules=("attention",), learning_rate=3e-3, steps=4, seq_len=48,
                        batch_size=2, seed=0, compare_max_new_tokens=6)


@pytest.fixture(scope="module")
def finished():
    run = start_finetune(FAST, device="cpu")
    result = run.wait(timeout=1800)
    assert run.error is None, run.error
    return run, result


def test_loss_decreases_over_a_handful_of_steps(finished):
    run, result = finished
    assert [s.step for s in result.steps] == [1, 2, 3, 4]
    assert not result.stopped and run.progress().phase == "done"
    losses = [s.loss for s in result.steps]
    assert all(torch.isfinite(torch.tensor(losses)))
    # lr 3e-3, rank 8 on q/k/v/o: the template's fixed words are learned within a few steps.
    assert sum(losses[-2:]) / 2 < losses[0], losses
    assert all(s.tokens > 0 and s.tokens_per_s > 0 for s in result.steps)


def test_trainable_params_match_the_plan_and_peft(finished):
    run, result = finished
    assert result.trainable_params == run.plan["trainable_params"]


def test_adapter_loads_back_with_peft_and_reproduces_the_trained_logits(finished):
    from peft import PeftModel

    _, result = finished
    assert set(result.adapter_files) == {"adapter_model.safetensors", "adapter_config.json"}
    base = load_model(None, dtype="fp32", device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in result.adapter_files.items():
            (Path(folder) / name).write_bytes(data)
        model = PeftModel.from_pretrained(base.model, folder).eval()
    prompt = load_dataset().comparison_prompts[0]
    reloaded = next_token_logits(model, base.tokenizer, prompt)
    assert torch.allclose(reloaded, result.probe_logits, atol=1e-4, rtol=1e-4)
    with model.disable_adapter():
        plain = next_token_logits(model, base.tokenizer, prompt)
    assert not torch.allclose(plain, result.probe_logits, atol=1e-3)  # the adapter changed the model


def test_comparisons_and_zip(finished):
    import io
    import zipfile

    _, result = finished
    assert len(result.comparisons) == len(load_dataset().comparison_prompts)
    assert all(c.base and c.adapted for c in result.comparisons)
    names = zipfile.ZipFile(io.BytesIO(result.adapter_zip())).namelist()
    assert sorted(names) == ["adapter_config.json", "adapter_model.safetensors"]


def test_model_is_released_after_the_run(finished):
    run, _ = finished
    assert run.model_released


def test_second_run_is_refused_with_progress_and_stop_stops(finished):
    run = start_finetune(FinetuneSettings(steps=1000, seq_len=48, batch_size=1, compare_max_new_tokens=2),
                         device="cpu")
    try:
        with pytest.raises(FinetuneBusy) as busy:
            start_finetune(FAST, device="cpu")
        assert busy.value.progress.total_steps == 1000
        assert "running" in str(busy.value) and "step" in str(busy.value)
        deadline = time.monotonic() + 900
        while run.progress().step < 1 and not run.progress().finished and time.monotonic() < deadline:
            time.sleep(0.5)
        assert run.progress().step >= 1, run.progress()
    finally:
        run.stop()
    result = run.wait(timeout=900)
    assert run.error is None, run.error
    assert run.progress().phase == "stopped"
    assert result.stopped and 1 <= len(result.steps) < 1000
    assert run.model_released


def test_encoded_examples_learn_only_the_answers():
    tokenizer = load_tokenizer("smollm2")
    encoded = encode_examples(tokenizer, load_dataset().examples[:3], seq_len=512)
    for ids, labels in encoded:
        assert len(ids) == len(labels)
        learned = [t for t in labels if t != -100]
        assert tokenizer.decode(learned).startswith("Arr, matey!")
        assert labels[0] == -100


@pytest.mark.parametrize("change, words", [
    ({"rank": 0}, "at least 1"),
    ({"rank": 5000}, "larger than the smallest adapted layer"),
    ({"target_modules": ("not_a_layer",)}, "exists in this model"),
    ({"target_modules": ()}, "at least one target module"),
    ({"learning_rate": 0.0}, "Learning rate"),
    ({"steps": 0}, "Steps"),
    ({"seq_len": 16}, "too short"),
])
def test_bad_input_is_a_clear_message(change, words):
    from dataclasses import replace

    with pytest.raises(FinetuneError, match=words):
        check_settings(replace(FAST, **change))


def test_a_run_that_does_not_fit_says_so_with_the_prediction():
    plan = check_settings(FAST)
    assert plan["required_bytes"] > plan["total_bytes"] > 0
    with pytest.raises(FinetuneError, match="would not fit") as exc:
        start_finetune(FAST, device="cpu", free_bytes=plan["total_bytes"] / 2)
    assert f"{plan['total_bytes'] / 1e9:,.2f} GB" in str(exc.value)


def test_prompt_tuning_trains_only_the_soft_prompt_and_reloads_with_peft():
    """PEFT's PromptTuningConfig through the same runner: 16 virtual tokens × 576 = 9,216 trainable parameters (the
    plan's count), the loss falls, and the saved soft prompt reproduces the trained logits when PEFT loads it."""
    from peft import PeftModel

    settings = FinetuneSettings(method="prompt-tuning", num_virtual_tokens=16, learning_rate=3e-2, steps=8,
                                seq_len=80, batch_size=2, seed=0, compare_max_new_tokens=6)
    run = start_finetune(settings, device="cpu")
    result = run.wait(timeout=1800)
    assert run.error is None, run.error
    assert result.trainable_params == run.plan["trainable_params"] == 16 * 576
    losses = [s.loss for s in result.steps]
    assert len(losses) == 8 and sum(losses[-2:]) / 2 < losses[0], losses
    base = load_model(None, dtype="fp32", device="cpu")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in result.adapter_files.items():
            (Path(folder) / name).write_bytes(data)
        model = PeftModel.from_pretrained(base.model, folder).eval()
    assert model.peft_config["default"].peft_type.value == "PROMPT_TUNING"
    prompt = load_dataset().comparison_prompts[0]
    assert torch.allclose(next_token_logits(model, base.tokenizer, prompt), result.probe_logits, atol=1e-4, rtol=1e-4)
    with model.disable_adapter():
        assert not torch.allclose(next_token_logits(model, base.tokenizer, prompt), result.probe_logits, atol=1e-3)
    with pytest.raises(FinetuneError, match="Virtual tokens"):
        check_settings(FinetuneSettings(method="prompt-tuning", num_virtual_tokens=0))
    with pytest.raises(FinetuneError, match="Unknown method"):
        check_settings(FinetuneSettings(method="ia3"))
