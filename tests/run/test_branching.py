"""Branching from any token (core.run.generation.continue_from, core.run.branching) with the real bundled SmolLM2."""
import math

import pytest
import torch

from core.run.branching import MAX_BRANCHES, BranchError, BranchTree, step_logits
from core.run.generation import GenerationInputError, continue_from, run_generation
from core.run.models import load_model
from core.run.sampling import DecodingSettings, pipeline_stages

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def lm():
    return load_model()


@pytest.fixture(scope="module")
def greedy(lm):
    return run_generation(lm, PROMPT, DecodingSettings(max_new_tokens=10))


def test_result_starts_with_exactly_the_prefix_and_keeps_the_budget(lm, greedy):
    alternative = greedy.steps[1].alternatives["raw"][1].token_id
    prefix = greedy.token_ids[:1] + [alternative]
    branch = continue_from(lm, PROMPT, prefix, DecodingSettings(max_new_tokens=10))
    assert branch.token_ids[:2] == prefix and branch.token_ids != greedy.token_ids
    assert branch.new_tokens == 10 or branch.stop_reason == "eos"
    assert branch.completion == lm.tokenizer.decode(branch.token_ids, skip_special_tokens=True)
    assert "".join(s.text for s in branch.steps) == branch.completion
    assert [s.index for s in branch.steps] == list(range(branch.new_tokens))
    # the given token's probability is the model's own at that step (same number the original run recorded)
    recorded = {a.token_id: a.probability for a in greedy.steps[1].alternatives["raw"]}
    assert math.isclose(branch.steps[1].probability, recorded[alternative], rel_tol=1e-4)
    assert branch.steps[1].raw_rank == 2


def test_greedy_continuation_of_its_own_prefix_reproduces_the_run(lm, greedy):
    again = continue_from(lm, PROMPT, greedy.token_ids[:4], DecodingSettings(max_new_tokens=10))
    assert again.token_ids == greedy.token_ids
    for mine, theirs in zip(again.steps, greedy.steps):
        assert math.isclose(mine.probability, theirs.probability, rel_tol=1e-3, abs_tol=1e-6)


def test_sampled_branch_is_reproducible_with_the_same_seed_and_scores_cut_tokens_zero(lm):
    settings = DecodingSettings(do_sample=True, top_k=3, max_new_tokens=8, seed=7)
    first = run_generation(lm, PROMPT, settings)
    outside_top_k = first.steps[0].alternatives["raw"][5].token_id
    a = continue_from(lm, PROMPT, [outside_top_k], settings)
    b = continue_from(lm, PROMPT, [outside_top_k], settings)
    assert a.token_ids == b.token_ids and a.token_ids[0] == outside_top_k
    assert a.steps[0].sampled_probability == 0.0 and a.steps[0].probability > 0  # top-k=3 would never pick it
    assert all(s.sampled_probability > 0 for s in a.steps[1:])


def test_bad_prefixes_and_beam_search_are_refused(lm):
    with pytest.raises(GenerationInputError, match="vocabulary"):
        continue_from(lm, PROMPT, [10**9], DecodingSettings())
    with pytest.raises(GenerationInputError, match="max new tokens"):
        continue_from(lm, PROMPT, [5, 6, 7], DecodingSettings(max_new_tokens=2))
    with pytest.raises(GenerationInputError, match="Beam search"):
        continue_from(lm, PROMPT, [5], DecodingSettings(num_beams=2, max_new_tokens=3))


def test_tree_keeps_branches_with_their_sequence_probability(lm, greedy):
    tree = BranchTree.start(greedy, limit=3)
    root = tree.get(0)
    assert math.isclose(root.probability, math.prod(s.probability for s in greedy.steps), rel_tol=1e-6)
    with pytest.raises(BranchError, match="already has"):
        tree.fork_prefix(0, 1, greedy.token_ids[1])
    prefix = tree.fork_prefix(0, 1, greedy.steps[1].alternatives["raw"][1].token_id)
    first = tree.add(0, 1, continue_from(lm, PROMPT, prefix, greedy.settings))
    prefix2 = tree.fork_prefix(first.branch_id, 3, first.result.steps[3].alternatives["raw"][1].token_id)
    assert prefix2[:3] == first.result.token_ids[:3]
    second = tree.add(first.branch_id, 3, continue_from(lm, PROMPT, prefix2, greedy.settings))
    assert tree.full and [r["parent"] for r in tree.rows()] == [None, 0, first.branch_id]
    assert math.isclose(second.probability_at(0), greedy.steps[0].probability, rel_tol=1e-3)
    with pytest.raises(BranchError, match="at most 3"):
        tree.fork_prefix(0, 0, 5)
    tree.remove(first.branch_id)  # its child goes too
    assert [b.branch_id for b in tree.branches] == [0]
    assert MAX_BRANCHES >= 4


def test_step_logits_give_the_recorded_distribution_of_that_step(lm, greedy):
    logits, context = step_logits(lm, greedy, 3)
    assert context.shape[1] == greedy.prompt.prompt_tokens + 3
    stages = pipeline_stages(logits, greedy.settings, context)
    raw = stages[0].probs
    top = greedy.steps[3].alternatives["raw"][0]
    assert int(torch.argmax(raw)) == top.token_id and math.isclose(float(raw.max()), top.probability, rel_tol=1e-3)
    assert stages[-1].key == "argmax" and int(torch.argmax(stages[-1].probs)) == greedy.token_ids[3]
