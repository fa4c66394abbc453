"""core.run.generation with the real bundled SmolLM2: plain and instrumented streaming generation."""
import copy
import dataclasses
import math

import pytest
import torch

from core.run.generation import (
    GenerationInputError,
    decode_tokens_per_s,
    generate_kwargs,
    generate_text,
    prepare_prompt,
    run_generation,
    stream_generation,
)
from core.run.models import load_model
from core.run.sampling import DecodingSettings

PROMPT = "The capital of France is"
STORY = "Once upon a time, in a small village by the sea,"


@pytest.fixture(scope="module")
def lm():
    return load_model()


def reference_generate(lm, prompt, settings):
    ids = lm.tokenizer(prompt, return_tensors="pt").to(lm.device)
    torch.manual_seed(settings.seed)
    out = lm.model.generate(**ids, **generate_kwargs(lm, settings))
    return out[0, ids["input_ids"].shape[1]:].tolist()


def test_greedy_is_deterministic_and_equals_model_generate(lm):
    ids = lm.tokenizer(PROMPT, return_tensors="pt")
    expected = lm.model.generate(**ids, max_new_tokens=10, do_sample=False)[0, ids["input_ids"].shape[1]:]
    first = generate_text(lm, PROMPT, max_new_tokens=10)
    assert first == generate_text(lm, PROMPT, max_new_tokens=10)
    assert first == lm.tokenizer.decode(expected, skip_special_tokens=True)
    assert "Paris" in first
    streamed = run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=10))
    assert streamed.token_ids == expected.tolist()
    assert streamed.completion == first
    assert "".join(step.text for step in streamed.steps) == first


def test_streamed_sample_equals_model_generate_with_the_same_seed(lm):
    settings = DecodingSettings(do_sample=True, temperature=0.9, top_k=30, top_p=0.9, max_new_tokens=12, seed=11)
    streamed = run_generation(lm, STORY, settings)
    assert streamed.token_ids == reference_generate(lm, STORY, settings)
    assert generate_text(lm, STORY, **{k: v for k, v in dataclasses.asdict(settings).items()}) == streamed.completion


def test_same_seed_same_sample_other_seed_other_sample(lm):
    settings = DecodingSettings(do_sample=True, temperature=1.0, top_k=0, max_new_tokens=12, seed=5)
    a = run_generation(lm, STORY, settings)
    b = run_generation(lm, STORY, settings)
    c = run_generation(lm, STORY, dataclasses.replace(settings, seed=6))
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_top_k_one_equals_greedy(lm):
    greedy = run_generation(lm, STORY, DecodingSettings(max_new_tokens=10))
    top1 = run_generation(lm, STORY, DecodingSettings(do_sample=True, top_k=1, temperature=1.3, max_new_tokens=10, seed=3))
    assert top1.token_ids == greedy.token_ids
    assert all(step.kept_tokens == 1 and step.sampled_probability == pytest.approx(1.0) for step in top1.steps)


def test_filtered_distribution_sums_to_one_and_keeps_exactly_the_allowed_tokens(lm):
    temperature, top_k, top_p = 0.7, 8, 0.9
    settings = DecodingSettings(do_sample=True, temperature=temperature, top_k=top_k, top_p=top_p,
                                max_new_tokens=8, seed=2)
    result = run_generation(lm, STORY, settings, keep_logits=True, top_n=10)
    assert len(result.steps) == 8
    for step in result.steps:
        # independent computation from the raw logits: softmax(logits / T), top-k, renormalize, nucleus rule
        probs = torch.softmax(step.logits / temperature, dim=-1)
        top = torch.topk(probs, top_k)
        renorm = top.values / top.values.sum()
        mass_before = torch.cumsum(renorm, 0) - renorm
        allowed = set(top.indices[mass_before < top_p].tolist())
        shown = step.alternatives["filtered"]
        assert step.kept_tokens == len(allowed) == len(shown)
        assert {alt.token_id for alt in shown} == allowed
        assert math.isclose(sum(alt.probability for alt in shown), 1.0, rel_tol=1e-5)
        assert step.token_id in allowed
        assert step.sampled_probability == pytest.approx(next(a.probability for a in shown if a.token_id == step.token_id))
        assert step.probability == pytest.approx(float(torch.softmax(step.logits, -1)[step.token_id]), rel=1e-5)
        raw_top = step.alternatives["raw"]
        assert raw_top[0].probability >= raw_top[-1].probability


def test_beam_search_runs_and_says_it_is_not_streamed(lm):
    result = run_generation(lm, PROMPT, DecodingSettings(num_beams=3, max_new_tokens=8))
    assert result.completion == generate_text(lm, PROMPT, num_beams=3, max_new_tokens=8)
    assert result.completion.strip()
    assert not result.streamed and result.ttft_s is None
    assert any("not streamed" in note for note in result.notes)
    assert all(0 < step.probability <= 1 for step in result.steps)


def test_stop_ends_generation_early(lm):
    stream = stream_generation(lm, STORY, DecodingSettings(max_new_tokens=40))
    for step in stream:
        if step.index == 2:
            stream.stop()
    assert stream.result.stop_reason == "stopped"
    assert 3 <= stream.result.new_tokens < 40


def test_timing_fields(lm):
    result = run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=5))
    assert 0 < result.ttft_s <= result.total_s
    assert result.tokens_per_s > 0 and result.decode_tokens_per_s > 0
    steps = result.steps
    assert decode_tokens_per_s(steps) == pytest.approx((len(steps) - 1) / (steps[-1].time_s - steps[0].time_s))
    assert decode_tokens_per_s(steps[:1]) is None  # one token: no decode interval yet
    assert [s.time_s for s in result.steps] == sorted(s.time_s for s in result.steps)
    assert result.to_dict()["steps"][0]["token"] == result.steps[0].token


@pytest.mark.parametrize("prompt", ["", "   \n "])
def test_empty_prompt_is_refused(lm, prompt):
    with pytest.raises(GenerationInputError, match="empty"):
        generate_text(lm, prompt)


def test_too_long_prompt_is_truncated_from_the_left(lm):
    long_prompt = " ".join(f"word{i}" for i in range(200))
    prepared = prepare_prompt(lm, long_prompt, max_new_tokens=10, context_window=64)
    assert prepared.truncated_tokens == prepared.original_tokens - 54
    assert prepared.prompt_tokens + prepared.max_new_tokens <= 64
    assert any(f"dropped the first {prepared.truncated_tokens} tokens" in n for n in prepared.notes)
    full = lm.tokenizer(long_prompt)["input_ids"]
    assert prepared.input_ids[0].tolist() == full[-54:]  # the most recent tokens are kept
    result = run_generation(lm, long_prompt, DecodingSettings(max_new_tokens=10), context_window=64)
    assert result.new_tokens >= 1 and result.prompt.truncated_tokens > 0


def test_max_new_tokens_beyond_the_context_is_clamped(lm):
    prepared = prepare_prompt(lm, PROMPT, max_new_tokens=10_000)
    assert prepared.max_new_tokens == 8192 - prepared.prompt_tokens
    assert any("clamped" in note for note in prepared.notes)
    small = prepare_prompt(lm, PROMPT, max_new_tokens=100, context_window=32)
    assert small.max_new_tokens == 32 - small.prompt_tokens and small.truncated_tokens == 0


def test_temperature_zero_is_greedy_with_a_note(lm):
    result = run_generation(lm, PROMPT, DecodingSettings(do_sample=True, temperature=0.0, max_new_tokens=6))
    assert result.token_ids == run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=6)).token_ids
    assert any("greedy" in note for note in result.notes)


def test_chat_template_on_and_model_without_one(lm):
    chat = run_generation(lm, "What is 2+2?", DecodingSettings(max_new_tokens=6), use_chat_template=True)
    assert chat.prompt.used_chat_template and "<|im_start|>assistant" in chat.prompt.text
    no_template = dataclasses.replace(lm, tokenizer=copy.deepcopy(lm.tokenizer))
    no_template.tokenizer.chat_template = None
    plain = run_generation(no_template, "What is 2+2?", DecodingSettings(max_new_tokens=3), use_chat_template=True)
    assert not plain.prompt.used_chat_template
    assert any("no chat template" in note for note in plain.notes)


def test_encoder_models_cannot_generate():
    encoder = load_model("minilm")
    with pytest.raises(GenerationInputError, match="encoder-only"):
        stream_generation(encoder, PROMPT)


def test_charts_and_html_show_the_recorded_numbers(lm):
    from core.run.generation_charts import colored_tokens_html, compare_figure, probability_timeline_figure, \
        step_distribution_figure, step_table_rows

    settings = DecodingSettings(do_sample=True, temperature=0.8, top_k=5, max_new_tokens=4, seed=1)
    result = run_generation(lm, "<b>bold</b> prompt:", settings)
    step = result.steps[0]
    figure = step_distribution_figure(step)
    filtered = next(trace for trace in figure.data if "sampled from" in trace.name)
    assert sum(filtered.x) == pytest.approx(1.0, rel=1e-5)  # all 5 kept tokens are drawn
    assert len(figure.data) == 3 and any(label.startswith("▶") for label in filtered.y)
    rows = step_table_rows(step)
    assert [r["model p"] for r in rows] == sorted((r["model p"] for r in rows), reverse=True)
    chosen = [r for r in rows if r["token"].startswith("▶")]
    assert len(chosen) == 1 and chosen[0]["id"] == step.token_id and chosen[0]["model p"] == pytest.approx(step.probability)
    assert sum(r["sampled-from p"] for r in rows) == pytest.approx(1.0, rel=1e-5)  # top-5: every kept token is a row
    html = colored_tokens_html(result.steps, selected=1, prompt_text="<b>bold</b>")
    assert "<b>" not in html and "&lt;b&gt;" in html
    assert html.count('title="step ') == 4 and "outline" in html
    assert list(probability_timeline_figure(result.steps).data[0].y) == [s.probability for s in result.steps]
    assert len(compare_figure({"A": result, "B": result}).data) == 2


def test_snapshot_of_an_interrupted_stream(lm):
    stream = stream_generation(lm, STORY, DecodingSettings(max_new_tokens=30))
    iterator = iter(stream)
    first = next(iterator)
    partial = stream.snapshot()  # as after the page's Stop button
    assert partial.stop_reason == "stopped"
    assert partial.steps[0] is first and 1 <= partial.new_tokens < 30


def test_next_token_logits_are_generate_first_step_raw_logits(lm):
    from core.run.generation import next_token_logits

    prepared = prepare_prompt(lm, PROMPT, 1)
    logits = next_token_logits(lm, prepared)
    assert logits.shape == (lm.model.config.vocab_size,) and logits.dtype == torch.float32
    first = run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=1), keep_logits=True).steps[0]
    assert torch.allclose(logits, first.logits, atol=1e-3)
    assert first.token_id == int(torch.argmax(logits))


def test_the_three_next_token_logits_share_one_forward_pass(lm):
    """Generate's, distillation's and fine-tuning's next_token_logits keep their signatures and return types over
    core.run.generation.last_token_logits: same numbers for the same ids."""
    import numpy as np

    from core.finetune.runner import next_token_logits as finetune_logits
    from core.optimize.distillation import next_token_logits as distillation_logits
    from core.run.generation import last_token_logits, next_token_logits

    plain = next_token_logits(lm, prepare_prompt(lm, PROMPT, 1))
    distilled = distillation_logits(lm, PROMPT)
    assert isinstance(distilled, np.ndarray) and distilled.dtype == np.float32
    assert np.allclose(distilled, plain.numpy(), atol=1e-4)
    chat = next_token_logits(lm, prepare_prompt(lm, PROMPT, 1, use_chat_template=True))
    tuned = finetune_logits(lm.model, lm.tokenizer, PROMPT, lm.device)
    assert isinstance(tuned, torch.Tensor) and tuned.device.type == "cpu" and not tuned.requires_grad
    assert torch.allclose(tuned, chat, atol=1e-4)
    ids = lm.tokenizer(PROMPT, return_tensors="pt").input_ids.to(lm.device)
    assert torch.equal(last_token_logits(lm.model, ids), torch.from_numpy(distilled))


def test_mean_probability_is_the_mean_of_the_chosen_tokens_model_probability(lm):
    result = run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=4))
    assert result.mean_probability == pytest.approx(sum(s.probability for s in result.steps) / len(result.steps))
    assert 0 < result.mean_probability <= 1
