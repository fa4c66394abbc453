"""core.run.prompts: zero/one/few-shot prompts and chat-template rendering with the real bundled tokenizers."""
import pytest

from core.run.models import load_tokenizer
from core.run.prompts import EXAMPLE_SETS, build_icl_prompt, chat_ids, chat_text, render_prompt


@pytest.fixture(scope="module")
def smollm_tokenizer():
    return load_tokenizer("smollm2")


def test_zero_shot_sentiment_is_instruction_plus_query():
    prompt = build_icl_prompt("review-sentiment", "zero-shot", "Great coffee.")
    assert prompt.count("Classify this review:") == 1
    assert prompt.endswith("Classify this review: Great coffee.\nSentiment:")
    assert prompt.startswith(EXAMPLE_SETS["review-sentiment"].instruction)


@pytest.mark.parametrize("shots, examples", [("one-shot", 1), ("few-shot", 3), (5, 5), (99, 6)])
def test_shots_add_solved_examples(shots, examples):
    prompt = build_icl_prompt("review-sentiment", shots, "Great coffee.")
    assert prompt.count("Classify this review:") == examples + 1
    assert prompt.count("Sentiment: positive") + prompt.count("Sentiment: negative") == examples


def test_dialogue_summarization_few_shot():
    prompt = build_icl_prompt("dialogue-summarization", "few-shot")
    assert prompt.count("Dialogue:\n") == 4 and prompt.count("Summary: ") == 3
    assert prompt.endswith("Omar: Fine, I'll book it tonight.\nSummary:")


def test_empty_query_uses_the_default_and_bad_input_is_refused():
    assert EXAMPLE_SETS["english-french"].default_query in build_icl_prompt("english-french", 1, "  ")
    with pytest.raises(ValueError):
        build_icl_prompt("review-sentiment", -1)
    with pytest.raises(ValueError, match="Unknown example set"):
        build_icl_prompt("poetry", 1)


def test_chat_template_wraps_a_user_turn(smollm_tokenizer):
    rendered = render_prompt(smollm_tokenizer, "Hello there", use_chat_template=True)
    assert rendered.used_chat_template
    assert "<|im_start|>user\nHello there<|im_end|>" in rendered.text
    assert rendered.text.endswith("<|im_start|>assistant\n")
    assert rendered.token_count == len(smollm_tokenizer(rendered.text, add_special_tokens=False)["input_ids"])
    plain = render_prompt(smollm_tokenizer, "Hello there", use_chat_template=False)
    assert plain.text == "Hello there" and plain.token_count < rendered.token_count


def test_model_without_chat_template_falls_back_with_a_note():
    minilm = load_tokenizer("minilm")
    rendered = render_prompt(minilm, "Hello there", use_chat_template=True)
    assert not rendered.used_chat_template and rendered.text == "Hello there"
    assert "no chat template" in rendered.notes[0]


# The chat-template tokenisation has one home (chat_text / chat_ids); the formulas its four former copies used are
# written out below, so a change to the shared one that would move their token ids fails here.
EQUIVALENCE_PROMPTS = ["hi", "Explain in two sentences why a lighthouse is useful to ships.", "  spaces  \n newline",
                       "<|im_start|>x", "émoji 🚀 ünïcode"]


@pytest.mark.parametrize("prompt", EQUIVALENCE_PROMPTS)
def test_chat_ids_match_the_former_call_sites(smollm_tokenizer, prompt):
    tok = smollm_tokenizer
    turn = [{"role": "user", "content": prompt}]
    text = tok.apply_chat_template(turn, tokenize=False, add_generation_prompt=True)
    assert chat_text(tok, prompt) == text
    encoded = tok(text, add_special_tokens=False)["input_ids"]  # render_prompt, quantization compare, optimize variants
    applied = tok.apply_chat_template(turn, tokenize=True, add_generation_prompt=True)  # finetune data
    applied = list(applied["input_ids"] if hasattr(applied, "keys") else applied)
    assert chat_ids(tok, prompt) == list(encoded) == applied
    assert chat_ids(tok, prompt) == render_prompt(tok, prompt, use_chat_template=True).input_ids
    system = tok.apply_chat_template([{"role": "system", "content": "Be terse."}] + turn, tokenize=False,
                                     add_generation_prompt=True)
    assert chat_text(tok, prompt, "Be terse.") == system == render_prompt(tok, prompt, True, "Be terse.").text


def test_chat_ids_without_a_template_are_the_plain_prompt():
    minilm = load_tokenizer("minilm")
    assert chat_text(minilm, "Hello there") == "Hello there"
    assert chat_ids(minilm, "Hello there") == list(minilm("Hello there")["input_ids"])
