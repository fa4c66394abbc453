"""Logit lens (core.run.lens) on the real bundled SmolLM2 and a random-weight GPT-2 (another family's final norm)."""
import numpy as np
import pytest
import torch
from transformers import GPT2Config

from core.run import lens as L
from core.run import lens_charts as LC
from core.io.html_export import standalone_html
from core.run.models import load_model, random_model

TEXT = "The capital of France is Paris. The capital of Germany is"


@pytest.fixture(scope="module")
def lm():
    return load_model()


@pytest.fixture(scope="module")
def result(lm):
    return L.logit_lens(lm, TEXT, top_k=5)


def test_shapes_follow_the_contract(lm, result):
    n_layers = lm.config.num_hidden_layers
    positions = len(lm.tokenizer(TEXT)["input_ids"])
    assert len(result.tokens) == positions
    assert result.top_token_ids.shape == (n_layers + 1, positions, 5)
    assert result.top_probs.shape == (n_layers + 1, positions, 5)
    assert result.final_rank.shape == (n_layers + 1, positions)
    assert result.row_labels[0] == "embeddings" and result.row_labels[-1] == f"layer {n_layers}"
    assert np.all(np.diff(result.top_probs, axis=2) <= 1e-7)  # most likely first


def test_last_row_is_the_models_own_next_token_distribution(lm, result):
    ids = torch.tensor([result.token_ids])
    with torch.no_grad():
        probs = torch.softmax(lm.model(ids).logits[0].float(), dim=-1)
    values, indices = torch.topk(probs, 5, dim=-1)
    np.testing.assert_array_equal(result.top_token_ids[-1], indices.numpy())
    np.testing.assert_allclose(result.top_probs[-1], values.numpy(), atol=1e-6)
    assert result.matches_model and result.max_abs_diff_vs_model < 1e-4
    assert np.all(result.final_rank[-1] == 1)
    assert result.final_token_ids == indices[:, 0].tolist()
    assert result.token_texts[result.final_token_ids[-1]] == "Berlin"  # the real model's answer


def test_intermediate_rows_are_the_final_norm_and_unembedding_of_each_hidden_state(lm, result):
    ids = torch.tensor([result.token_ids])
    with torch.no_grad():
        hidden = lm.model(ids, output_hidden_states=True).hidden_states
        layer = 12
        probs = torch.softmax(lm.model.lm_head(lm.model.model.norm(hidden[layer]))[0].float(), dim=-1)
    np.testing.assert_allclose(result.top_probs[layer], torch.topk(probs, 5, dim=-1).values.numpy(), atol=1e-5)
    rank = int((probs[-1] > probs[-1, result.final_token_ids[-1]]).sum()) + 1
    assert result.final_rank[layer, -1] == rank
    # the answer is not there at the embeddings: the lens shows it appearing with depth
    assert result.final_rank[0, -1] > 1
    assert result.first_top1_layer()[-1] is not None and result.first_top1_layer()[-1] > 0


def test_any_causal_lm_family_works(lm):
    config = GPT2Config(n_layer=2, n_embd=64, n_head=2, n_positions=64)
    gpt2 = random_model(config, kind="decoder", tokenizer=lm.tokenizer)
    out = L.logit_lens(gpt2, "hello world again", top_k=3)
    assert out.top_probs.shape[0] == 3 and out.matches_model  # ln_f found, last row = GPT-2's output


def test_bad_input_gets_a_clear_message(lm):
    with pytest.raises(L.LensInputError, match="empty"):
        L.logit_lens(lm, "   ")
    with pytest.raises(L.LensInputError, match="top_k"):
        L.logit_lens(lm, "hi", top_k=0)
    long = L.logit_lens(lm, "word " * 40, top_k=2, max_tokens=16)
    assert len(long.tokens) == 16 and "last 16" in long.notes[0]


def test_charts_and_standalone_html(result):
    heat = LC.lens_heatmap(result)
    assert heat.data[0].type == "heatmap" and np.asarray(heat.data[0].z).shape == result.top_probs.shape[:2]
    assert "Berlin" in heat.data[0].text[-1][-1]
    assert "5. " in heat.data[0].customdata[3][2]
    rank = LC.final_token_figure(result, -1)
    assert list(rank.data[0].y) == result.final_rank[:, -1].tolist()
    page = standalone_html([heat, rank], "Logit lens")
    assert page.startswith("<!DOCTYPE html>") and page.count("<script") >= 2
    assert len(page) > 3_000_000  # plotly.js itself (~4.6 MB) is embedded
    assert 'src="https://cdn.plot.ly' not in page  # nothing loaded from the network


def test_concurrent_calls_on_a_shared_model_do_not_mix(lm, result):
    from concurrent.futures import ThreadPoolExecutor

    other_text = "One, two, three, four,"
    alone = L.logit_lens(lm, other_text, top_k=5)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [pool.submit(L.logit_lens, lm, text, 5) for text in (TEXT, other_text, TEXT, other_text)]
        outs = [f.result() for f in futures]
    for out, expected in zip(outs, (result, alone, result, alone)):
        np.testing.assert_array_equal(out.top_token_ids, expected.top_token_ids)
        assert out.matches_model
