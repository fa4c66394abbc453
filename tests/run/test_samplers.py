"""The samplers beyond top-k/top-p (min-p, typical, ε, η, no-repeat n-gram, temperature placement) with the real
bundled SmolLM2: same classes and order as transformers' generate(), same tokens as generate() with the same seed."""
import pytest
import torch
from transformers import GenerationConfig

from core.run.generation import generate_text, next_token_logits, prepare_prompt, run_generation
from core.run.models import load_model
from core.run.sampling import (
    DecodingSettings,
    check_settings,
    ignored_controls,
    logits_pipeline,
    pipeline_stages,
    shape_distribution,
)

STORY = "Once upon a time, in a small village by the sea,"
ALL_ON = dict(do_sample=True, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, typical_p=0.9, epsilon_cutoff=3e-4,
              eta_cutoff=3e-4, no_repeat_ngram_size=3, repetition_penalty=1.1)


@pytest.fixture(scope="module")
def lm():
    return load_model()


def test_pipeline_order_is_the_order_generate_builds(lm):
    settings = DecodingSettings(**ALL_ON)
    config = GenerationConfig(**{k: v for k, v in ALL_ON.items()})
    theirs = lm.model._get_logits_processor(generation_config=config, input_ids_seq_length=5, device="cpu")
    assert [type(p) for p in theirs] == [type(p) for _, p in logits_pipeline(settings)]
    assert [key for key, _ in logits_pipeline(settings)] == [
        "repetition_penalty", "no_repeat_ngram", "temperature", "top_k", "top_p", "min_p", "typical_p",
        "epsilon_cutoff", "eta_cutoff"]
    placed_last = [key for key, _ in logits_pipeline(DecodingSettings(**ALL_ON, temperature_last=True))]
    assert placed_last[-1] == "temperature" and placed_last.index("top_k") == 2


def test_streamed_sample_with_every_sampler_equals_generate_with_the_same_seed(lm):
    settings = DecodingSettings(**ALL_ON, max_new_tokens=16, seed=3)
    streamed = run_generation(lm, STORY, settings)
    ids = lm.tokenizer(STORY, return_tensors="pt")
    torch.manual_seed(3)
    native = lm.model.generate(**ids, max_new_tokens=16, pad_token_id=lm.tokenizer.pad_token_id, **ALL_ON)
    assert streamed.token_ids == native[0, ids["input_ids"].shape[1]:].tolist()
    assert generate_text(lm, STORY, max_new_tokens=16, seed=3, **ALL_ON) == streamed.completion
    for step in streamed.steps:  # the recorded "sampled from" distribution respects min-p against its own max
        assert step.kept_tokens >= 1 and step.sampled_probability > 0


def test_temperature_last_streams_the_same_tokens_as_plain_generate(lm):
    settings = DecodingSettings(do_sample=True, temperature=1.8, top_k=0, min_p=0.1, max_new_tokens=12, seed=9,
                                temperature_last=True)
    streamed = run_generation(lm, STORY, settings)
    assert generate_text(lm, STORY, do_sample=True, temperature=1.8, top_k=0, min_p=0.1, max_new_tokens=12, seed=9,
                         temperature_last=True) == streamed.completion


def test_temperature_placement_changes_what_min_p_keeps(lm):
    prepared = prepare_prompt(lm, STORY, 1)
    logits = next_token_logits(lm, prepared)
    hot = dict(do_sample=True, temperature=3.0, top_k=0, min_p=0.1)
    first = pipeline_stages(logits, DecodingSettings(**hot))
    last = pipeline_stages(logits, DecodingSettings(**hot, temperature_last=True))
    plain = pipeline_stages(logits, DecodingSettings(do_sample=True, top_k=0, min_p=0.1))
    assert [s.key for s in first] == ["raw", "temperature", "min_p"]
    assert [s.key for s in last] == ["raw", "min_p", "temperature"]
    # min-p after a hot temperature keeps many more tokens; placed last it keeps exactly what T=1 keeps
    assert last[-1].kept_count == plain[-1].kept_count < first[-1].kept_count
    raw = torch.softmax(logits.float(), -1)
    assert plain[-1].kept_count == int((raw >= 0.1 * raw.max()).sum())


def test_each_stage_only_removes_tokens_and_the_last_is_what_generate_samples_from(lm):
    prepared = prepare_prompt(lm, STORY, 1)
    logits = next_token_logits(lm, prepared)
    settings = DecodingSettings(**ALL_ON)
    stages = pipeline_stages(logits, settings, prepared.input_ids)
    counts = [s.kept_count for s in stages]
    assert counts == sorted(counts, reverse=True) and counts[-1] >= 1
    for stage in stages:
        assert abs(float(stage.probs.sum()) - 1) < 1e-4
        assert torch.all(stage.probs[~stage.kept] == 0)
    shaped = shape_distribution(logits, settings, prepared.input_ids)
    assert torch.allclose(shaped.filtered, stages[-1].probs, atol=1e-6)
    greedy = pipeline_stages(logits, DecodingSettings(no_repeat_ngram_size=2), prepared.input_ids)
    assert greedy[-1].key == "argmax" and greedy[-1].kept_count == 1


def test_no_repeat_ngram_blocks_repeats_in_greedy_and_matches_generate(lm):
    prompt = "The cat sat on the mat. The cat sat on the mat. The cat"
    blocked = run_generation(lm, prompt, DecodingSettings(max_new_tokens=20, no_repeat_ngram_size=2))
    ids = lm.tokenizer(prompt)["input_ids"] + blocked.token_ids
    pairs = list(zip(ids, ids[1:]))
    start = len(ids) - len(blocked.token_ids) - 1  # first pair that ends in a generated token
    assert all(pairs[i] not in pairs[:i] for i in range(start, len(pairs)))
    plain = run_generation(lm, prompt, DecodingSettings(max_new_tokens=20))
    plain_ids = lm.tokenizer(prompt)["input_ids"] + plain.token_ids
    plain_pairs = list(zip(plain_ids, plain_ids[1:]))
    assert any(plain_pairs[i] in plain_pairs[:i] for i in range(start, len(plain_pairs)))  # without it, it repeats
    encoded = lm.tokenizer(prompt, return_tensors="pt")
    native = lm.model.generate(**encoded, max_new_tokens=20, do_sample=False, no_repeat_ngram_size=2,
                               pad_token_id=lm.tokenizer.pad_token_id)
    assert blocked.token_ids == native[0, encoded["input_ids"].shape[1]:].tolist()


@pytest.mark.parametrize("field,value,off", [("min_p", 1.5, 0.0), ("typical_p", 0.0, 1.0), ("epsilon_cutoff", -1, 0.0),
                                             ("eta_cutoff", float("nan"), 0.0), ("no_repeat_ngram_size", -2, 0)])
def test_out_of_range_values_are_turned_off_with_a_note(field, value, off):
    checked = check_settings(DecodingSettings(**{field: value}))
    assert getattr(checked.settings, field) == off and len(checked.notes) == 1


def test_ignored_controls_name_the_reason():
    assert ignored_controls("sampling") == {}
    beam = ignored_controls("beam search")
    assert "min_p" in beam and "beam search" in beam["min_p"] and "no_repeat_ngram_size" not in beam
    endpoint = ignored_controls("sampling", runtime="endpoint")
    assert set(endpoint) == {"typical_p", "epsilon_cutoff", "eta_cutoff", "no_repeat_ngram_size", "temperature_last"}
    assert "OpenAI-compatible" in endpoint["eta_cutoff"]
