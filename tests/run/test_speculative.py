"""Speculative decoding with the real bundled SmolLM2: prompt lookup and a self-drafted assistant give exactly the
plain greedy tokens, and the counters add up."""
import pytest

from core.run.generation import GenerationInputError
from core.run.models import load_model
from core.run.speculative import PROMPTS, compare_methods, run_speculative, self_draft

TOKENS = 12


@pytest.fixture(scope="module")
def lm():
    return load_model()


@pytest.fixture(scope="module")
def copying(lm):
    return compare_methods(lm, PROMPTS["copying"], "copying", TOKENS, draft=self_draft(lm, 28), use_chat_template=True)


def test_greedy_output_is_identical_with_prompt_lookup_and_a_draft(copying):
    assert set(copying.runs) == {"plain", "prompt_lookup", "assisted"}
    assert copying.identical
    assert copying.runs["plain"].new_tokens == TOKENS
    assert all(row["same_tokens_as_plain"] for row in copying.rows())


def test_counters_explain_the_speedup(copying):
    plain, lookup, assisted = (copying.runs[m] for m in ("plain", "prompt_lookup", "assisted"))
    assert plain.target_forward_passes == TOKENS and plain.tokens_per_forward == 1.0
    assert plain.acceptance_rate is None
    # the answer copies the prompt: looked-up candidates are accepted, so the target runs fewer times than tokens
    assert lookup.accepted_tokens > 0 and lookup.target_forward_passes < TOKENS
    assert lookup.tokens_per_forward > 1.0 and 0 < lookup.acceptance_rate <= 1
    assert lookup.accepted_tokens == TOKENS - lookup.target_forward_passes
    assert assisted.proposed_tokens > 0 and 0 <= assisted.acceptance_rate <= 1


def test_self_draft_shares_the_targets_weights(lm):
    draft = self_draft(lm, 4)
    assert len(draft.model.layers) == 4 and draft.model.layers[0] is lm.model.model.layers[0]
    assert draft.lm_head is lm.model.lm_head
    assert self_draft(lm, 30) is None and self_draft(lm, 0) is None


def test_bad_method_and_missing_draft_are_explained(lm):
    with pytest.raises(GenerationInputError, match="Unknown method"):
        run_speculative(lm, "hi", "medusa")
    with pytest.raises(GenerationInputError, match="draft model"):
        run_speculative(lm, "hi", "assisted")
