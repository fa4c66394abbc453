"""Reasoning-technique prompts (core.run.prompts): chain-of-thought, ReAct, PAL, and their token costs."""
import pytest

from core.run.models import load_tokenizer
from core.run.prompts import (
    DEFAULT_QUESTION,
    TECHNIQUES,
    WORKED_EXAMPLES,
    ZERO_SHOT_COT_TRIGGER,
    build_technique_prompt,
    pal_program,
    technique_costs,
)


def test_zero_shot_cot_ends_with_kojimas_trigger():
    prompt = build_technique_prompt("zero-shot-cot", "What is 2 + 3?")
    assert prompt == f"Q: What is 2 + 3?\nA: {ZERO_SHOT_COT_TRIGGER}"
    assert ZERO_SHOT_COT_TRIGGER == "Let's think step by step."


def test_few_shot_cot_has_worked_reasoning_and_few_shot_does_not():
    cot = build_technique_prompt("few-shot-cot", shots=2)
    plain = build_technique_prompt("few-shot", shots=2)
    for example in WORKED_EXAMPLES[:2]:
        assert example.reasoning in cot and example.reasoning not in plain
        assert example.question in cot and example.question in plain
    assert WORKED_EXAMPLES[2].question not in cot
    assert cot.endswith(f"Q: {DEFAULT_QUESTION}\nA:")


def test_react_and_pal_formats():
    react = build_technique_prompt("react", "Q?", shots=1)
    assert "Action: Calculate[" in react and "Observation:" in react and react.endswith("Question: Q?\nThought:")
    pal = build_technique_prompt("pal", "Q?", shots=3)
    assert pal.count("answer =") == 3 and pal.endswith("# Q: Q?\n")
    assert pal_program("x = 1\nanswer = x + 1\n\n# Q: next question\ny = 2") == "x = 1\nanswer = x + 1"


def test_token_costs_grow_with_worked_examples():
    tokenizer = load_tokenizer()
    costs = {row["technique"]: row["prompt_tokens"] for row in technique_costs(tokenizer, shots=2)}
    assert set(costs) == set(TECHNIQUES)
    assert costs["zero-shot"] < costs["zero-shot-cot"] < costs["few-shot"] < costs["few-shot-cot"]
    more = {row["technique"]: row["prompt_tokens"] for row in technique_costs(tokenizer, shots=3)}
    assert more["few-shot-cot"] > costs["few-shot-cot"] and more["zero-shot"] == costs["zero-shot"]
    assert costs["zero-shot"] == len(tokenizer(build_technique_prompt("zero-shot"))["input_ids"])


def test_bad_technique_or_shots():
    with pytest.raises(ValueError, match="Unknown technique"):
        build_technique_prompt("tree-of-thought")
    with pytest.raises(ValueError, match="at least one"):
        build_technique_prompt("few-shot", shots=0)
