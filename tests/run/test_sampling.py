"""core.run.sampling: the distribution shown is the one transformers' warpers produce, checked against hand math."""
import math

import pytest
import torch
from transformers import GenerationConfig

from core.run.sampling import (
    DecodingSettings,
    check_settings,
    generation_config_defaults,
    shape_distribution,
    shape_table,
    top_tokens,
)

PROBS = [0.5, 0.3, 0.15, 0.05]
LOGITS = torch.log(torch.tensor(PROBS))


def sampling(**values):
    return DecodingSettings(do_sample=True, **({"top_k": 0} | values))


def test_defaults_are_generation_config_defaults():
    defaults = generation_config_defaults()
    assert defaults == {"do_sample": False, "num_beams": 1, "temperature": 1.0, "top_k": 50, "top_p": 1.0,
                        "repetition_penalty": 1.0, "max_length": 20}
    assert GenerationConfig._get_default_generation_params()["top_k"] == DecodingSettings().top_k
    assert DecodingSettings().mode == "greedy"


def test_temperature_zero_becomes_greedy_with_a_note():
    checked = check_settings(sampling(temperature=0.0))
    assert checked.settings.do_sample is False
    assert any("greedy" in note for note in checked.notes)


@pytest.mark.parametrize(
    "values, field, expected",
    [({"top_k": -3}, "top_k", 0), ({"top_p": 1.7}, "top_p", 1.0), ({"top_p": -0.2}, "top_p", 0.0),
     ({"repetition_penalty": 0.0}, "repetition_penalty", 1.0), ({"num_beams": 0}, "num_beams", 1),
     ({"max_new_tokens": 0}, "max_new_tokens", 1), ({"temperature": -1.0}, "temperature", 1.0),
     ({"temperature": float("nan")}, "temperature", 1.0)],
)
def test_invalid_settings_are_fixed_and_explained(values, field, expected):
    checked = check_settings(sampling(**values))
    assert getattr(checked.settings, field) == expected
    assert len(checked.notes) == 1


def test_valid_settings_pass_unchanged():
    settings = sampling(temperature=0.7, top_k=40, top_p=0.9, repetition_penalty=1.2)
    checked = check_settings(settings)
    assert checked.settings == settings and checked.notes == []


def test_raw_stage_is_the_softmax():
    shaped = shape_distribution(LOGITS, sampling())
    assert torch.allclose(shaped.raw, torch.tensor(PROBS), atol=1e-6)
    assert shaped.kept_count == 4


def test_temperature_follows_p_to_the_power_one_over_t():
    shaped = shape_distribution(LOGITS, sampling(temperature=2.0))
    powered = torch.tensor(PROBS) ** 0.5
    assert torch.allclose(shaped.temperature, powered / powered.sum(), atol=1e-6)
    # higher temperature flattens: entropy grows
    assert shaped.entropy_bits("temperature") > shaped.entropy_bits("raw")


def test_top_p_keeps_the_smallest_nucleus_and_renormalizes():
    # cumulative mass before each token: 0, 0.5, 0.8, 0.95 → with p = 0.7 the first two tokens are kept.
    shaped = shape_distribution(LOGITS, sampling(top_p=0.7))
    assert shaped.kept.tolist() == [True, True, False, False]
    assert torch.allclose(shaped.filtered, torch.tensor([0.625, 0.375, 0.0, 0.0]), atol=1e-6)


def test_top_k_then_top_p():
    shaped = shape_distribution(LOGITS, sampling(top_k=3, top_p=0.99))
    # top-3 renormalized: 0.5/0.95, 0.3/0.95, 0.15/0.95 → nucleus 0.99 keeps all three
    assert shaped.kept.tolist() == [True, True, True, False]
    assert math.isclose(float(shaped.filtered.sum()), 1.0, rel_tol=1e-6)


def test_greedy_filtered_stage_is_one_hot_on_the_argmax():
    shaped = shape_distribution(LOGITS, DecodingSettings())
    assert shaped.filtered.tolist() == [1.0, 0.0, 0.0, 0.0]
    assert shaped.kept_count == 1


def test_repetition_penalty_lowers_seen_tokens():
    context = torch.tensor([0])
    shaped = shape_distribution(LOGITS, sampling(repetition_penalty=1.5), input_ids=context)
    assert shaped.temperature[0] < shaped.raw[0]  # token 0 was seen: its logit is divided/multiplied by 1.5
    assert shaped.temperature[1] > shaped.raw[1]


def test_real_vocabulary_filter_keeps_exactly_the_allowed_tokens():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(49152, generator=generator) * 3
    settings = sampling(temperature=0.8, top_k=40, top_p=0.6)
    shaped = shape_distribution(logits, settings)
    probs = torch.softmax(logits / 0.8, dim=-1)
    top = torch.topk(probs, 40)
    renorm = top.values / top.values.sum()
    before = torch.cumsum(renorm, 0) - renorm
    expected = set(top.indices[before < 0.6].tolist())
    assert set(torch.nonzero(shaped.kept).flatten().tolist()) == expected
    assert math.isclose(float(shaped.filtered.sum()), 1.0, rel_tol=1e-5)
    assert float(shaped.filtered[~shaped.kept].sum()) == 0.0


def test_top_tokens_and_table():
    assert top_tokens(torch.tensor(PROBS), 2) == [(0, pytest.approx(0.5)), (1, pytest.approx(0.3))]
    rows = shape_table(shape_distribution(LOGITS, sampling(top_k=1)), decode=lambda i: f"t{i}", n=3)
    assert [r["token"] for r in rows] == ["t0", "t1", "t2"]
    assert [r["kept"] for r in rows] == [True, False, False]


def test_for_mode():
    assert DecodingSettings.for_mode("beam search").num_beams == 4
    assert DecodingSettings.for_mode("sampling", temperature=0.5).do_sample
    with pytest.raises(ValueError):
        DecodingSettings.for_mode("nucleus")
