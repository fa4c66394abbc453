"""core.run.pruning on the bundled SmolLM2-135M (real weights, the Quantization page's reference text):
perplexity and KL rise with sparsity, Wanda keeps more of the model than magnitude at the same sparsity, 2:4 leaves
its pattern, and removing layers really lowers the measured weight memory."""
import copy

import pytest
import torch

from core.run import pruning as P
from core.run.quantization import load_reference_text, model_weight_bytes


@pytest.fixture(scope="module")
def smollm2():
    from core.run.models import load_model

    loaded = load_model(None, dtype="fp32", device="cpu")
    ids = loaded.tokenizer(load_reference_text(), return_tensors="pt").input_ids[:, :192]
    with torch.inference_mode():
        dense = loaded.model(input_ids=ids).logits[0].float().numpy()
    return loaded.model, ids, dense


def _pruned_quality(smollm2, method, sparsity):
    model, ids, dense = smollm2
    pruned = copy.deepcopy(model)
    info = P.prune_model(pruned, method, sparsity, ids)
    with torch.inference_mode():
        logits = pruned(input_ids=ids).logits[0].float().numpy()
    return pruned, info, P.quality(dense, logits, ids[0])


@pytest.mark.long
def test_perplexity_and_kl_rise_with_sparsity(smollm2):
    results = {s: _pruned_quality(smollm2, "magnitude", s) for s in (0.1, 0.3, 0.5, 0.7)}
    for s, (_, info, _) in results.items():
        assert info["sparsity"] == pytest.approx(s, abs=1e-3)
    kl = [results[s][2]["kl_mean_nats"] for s in (0.1, 0.3, 0.5, 0.7)]
    ppl = [results[s][2]["perplexity"] for s in (0.3, 0.5, 0.7)]
    assert kl == sorted(kl) and ppl == sorted(ppl) and kl[0] > 0


@pytest.mark.long
def test_wanda_keeps_more_than_magnitude_at_half_sparsity(smollm2):
    _, _, magnitude = _pruned_quality(smollm2, "magnitude", 0.5)
    _, info, wanda = _pruned_quality(smollm2, "wanda", 0.5)
    assert info["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert wanda["perplexity"] < magnitude["perplexity"] and wanda["kl_mean_nats"] < magnitude["kl_mean_nats"]


@pytest.mark.long
@pytest.mark.parametrize("method", ["2:4-magnitude", "2:4-wanda"])
def test_two_four_pruning_follows_its_mask_and_saves_no_memory(smollm2, method):
    pruned, info, _ = _pruned_quality(smollm2, method, 0.5)
    assert info["sparsity"] == pytest.approx(0.5, abs=1e-4)  # a few weights of the checkpoint are 0 already
    assert all(P.follows_2_4(m.weight) for m in P.prunable_linears(pruned).values())
    assert not P.follows_2_4(next(iter(P.prunable_linears(smollm2[0]).values())).weight)  # dense does not
    assert model_weight_bytes(pruned) == model_weight_bytes(smollm2[0])  # zeros in dense tensors cost the same


def test_removing_layers_lowers_measured_memory(smollm2):
    model, ids, dense = smollm2
    drop = P.least_influential_layers(model, ids, 4)
    assert len(drop) == 4 and 0 not in drop and 29 not in drop  # the first and last layers matter most here
    smaller = copy.deepcopy(model)
    layer_bytes = sum(p.numel() * 4 for i in drop for p in smaller.model.layers[i].parameters())
    before = model_weight_bytes(smaller)
    P.remove_layers(smaller, drop)
    assert model_weight_bytes(smaller) == before - layer_bytes and smaller.config.num_hidden_layers == 26
    with torch.inference_mode():
        logits = smaller(input_ids=ids).logits[0].float().numpy()
        out = smaller.generate(input_ids=ids[:, :12], max_new_tokens=4, do_sample=False)
    assert out.shape[1] == 16
    quality = P.quality(dense, logits, ids[0])
    assert 0 < quality["kl_mean_nats"] < 2 and quality["perplexity"] < 200


@pytest.mark.parametrize("call,message", [
    (lambda m, ids: P.prune_model(m, "random", 0.5), "Unknown pruning method"),
    (lambda m, ids: P.prune_model(m, "magnitude", 1.5), "between 0 and 0.95"),
    (lambda m, ids: P.prune_model(m, "magnitude", "half"), "must be a number"),
    (lambda m, ids: P.prune_model(m, "wanda", 0.5), "calibration"),
    (lambda m, ids: P.remove_layers(m, [30]), "between 0 and 29"),
    (lambda m, ids: P.remove_layers(m, range(30)), "At least one layer"),
    (lambda m, ids: P.least_influential_layers(m, ids, 30), "Remove between 0 and 29"),
    (lambda m, ids: P.remove_head_groups(m, ids, 3), "Remove between 1 and 2 of the 3"),
    (lambda m, ids: P.drop_head_groups(m, [[0]] * 29), "same number of head groups"),
])
def test_bad_input_is_refused_before_touching_the_model(smollm2, call, message):
    model, ids, _ = smollm2
    before = [p.detach().clone() for p in list(model.parameters())[:3]]
    with pytest.raises(P.PruningError, match=message):
        call(model, ids)
    assert all(torch.equal(a, b) for a, b in zip(before, list(model.parameters())[:3]))
    assert len(model.model.layers) == 30


@pytest.mark.long
def test_removing_head_groups_shrinks_the_matrices_and_the_kv_cache(smollm2):
    model, ids, dense = smollm2
    smaller = copy.deepcopy(model)
    before = model_weight_bytes(smaller)
    info = P.remove_head_groups(smaller, ids, 1)
    assert info["query_heads_per_layer"] == 6 and info["kv_heads_per_layer"] == 2  # SmolLM2: 9 query, 3 KV heads
    # one group of 3 query heads and 1 KV head of 64 dims per layer: q, k, v rows and o columns, fp32
    per_layer = (3 * 64 * 576 + 64 * 576 + 64 * 576 + 576 * 3 * 64) * 4
    assert model_weight_bytes(smaller) == before - 30 * per_layer
    with torch.inference_mode():
        out = smaller.generate(input_ids=ids[:, :12], max_new_tokens=4, do_sample=False, return_dict_in_generate=True)
        logits = smaller(input_ids=ids).logits[0].float().numpy()
    assert out.sequences.shape[1] == 16
    keys = out.past_key_values.layers[0].keys
    assert keys.shape[1] == 2  # the KV cache holds 2 of 3 KV heads per layer
    chosen = P.quality(dense, logits, ids[0])
    # the importance score matters: removing each layer's most important group instead costs more
    worst = copy.deepcopy(model)
    scores = P.head_group_scores(worst, ids)
    P.drop_head_groups(worst, [[max(range(3), key=s.__getitem__)] for s in scores])
    with torch.inference_mode():
        worst_logits = worst(input_ids=ids).logits[0].float().numpy()
    assert chosen["kl_mean_nats"] < P.quality(dense, worst_logits, ids[0])["kl_mean_nats"]
    assert chosen["perplexity"] < 200
