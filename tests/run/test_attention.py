"""core.run.attention and core.run.attention_charts: hand-computed statistics on small cases, and the real models
(bundled SmolLM2 decoder, bundled MiniLM encoder, a tiny T5 with random weights)."""
import io
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core.run import attention as A
from core.run import attention_charts as C

# A hand-made causal head: 1 layer, 1 head, 3 tokens (rows sum to 1, nothing above the diagonal).
HAND = np.array([[[[1.0, 0.0, 0.0],
                   [0.25, 0.75, 0.0],
                   [0.5, 0.25, 0.25]]]])
HAND_TOKENS = ["The", "cat", "sat"]


def _h(*p):
    return -sum(x * math.log2(x) for x in p if x > 0)


def hand_maps(causal=True):
    return A.AttentionMaps(HAND, HAND_TOKENS, HAND_TOKENS, "self", causal)


# ---------------------------------------------------------------------------------------------
# Statistics, by hand
# ---------------------------------------------------------------------------------------------

def test_statistics_agree_with_a_hand_computation():
    stats = A.head_statistics(hand_maps())
    assert list(stats[["layer", "head"]].iloc[0]) == [0, 0]
    row = stats.iloc[0]
    # Entropy of each row: 0, H(.25, .75), H(.5, .25, .25) = 1.5 bits.
    assert row.entropy_bits == pytest.approx((0 + _h(0.25, 0.75) + 1.5) / 3)
    # Normalised by log2 of the keys each query can see (2 and 3); the first query sees one key only.
    assert row.normalized_entropy == pytest.approx((_h(0.25, 0.75) / 1 + 1.5 / math.log2(3)) / 2)
    assert row.sink_share == pytest.approx((0.25 + 0.5) / 2)          # queries 1 and 2 on token 0
    assert row.previous_token_share == pytest.approx((0.25 + 0.25) / 2)
    assert row.self_share == pytest.approx((1 + 0.75 + 0.25) / 3)
    assert row.mean_distance_tokens == pytest.approx((0 + 0.25 * 1 + (0.5 * 2 + 0.25 * 1)) / 3)
    assert row.max_weight == pytest.approx((1 + 0.75 + 0.5) / 3)
    assert row.pattern == "itself"


def test_statistics_one_row_per_layer_and_head_and_patterns_are_named():
    n = 6
    sink = np.zeros((n, n)); sink[:, 0] = 1.0
    previous = np.eye(n, k=-1); previous[0, 0] = 1.0
    uniform = np.ones((n, n)) / n
    weights = np.stack([np.stack([sink, previous, uniform])] * 2)  # 2 layers × 3 heads
    maps = A.AttentionMaps(weights, list("abcdef"), list("abcdef"), "self", causal=False)
    stats = A.head_statistics(maps)
    assert len(stats) == 6
    assert list(zip(stats["layer"], stats["head"])) == [(l, h) for l in range(2) for h in range(3)]
    assert list(stats.pattern[:3]) == ["first token (sink)", "previous token", "broad (near uniform)"]
    assert stats.sink_share[0] == pytest.approx(1.0)
    assert stats.previous_token_share[1] == pytest.approx(1.0)
    assert stats.entropy_bits[2] == pytest.approx(math.log2(n))
    assert stats.normalized_entropy[2] == pytest.approx(1.0)
    assert stats.mean_distance_tokens[1] == pytest.approx((n - 1) / n)


def test_cross_attention_statistics_leave_same_sequence_columns_empty():
    weights = np.full((1, 2, 3, 4), 0.25)
    maps = A.AttentionMaps(weights, ["<s>", "x", "y"], list("abcd"), "cross")
    stats = A.head_statistics(maps)
    assert stats.previous_token_share.isna().all() and stats.self_share.isna().all()
    assert stats.entropy_bits.tolist() == pytest.approx([2.0, 2.0])
    assert stats.sink_share.tolist() == pytest.approx([0.25, 0.25])


def test_statistics_reject_wrong_shapes():
    with pytest.raises(ValueError):
        A.head_statistics(A.AttentionMaps(HAND[0], HAND_TOKENS, HAND_TOKENS))


# ---------------------------------------------------------------------------------------------
# Aggregations, token focus, windows
# ---------------------------------------------------------------------------------------------

def test_means_over_heads_and_layers():
    w = np.arange(2 * 3 * 2 * 2, dtype=float).reshape(2, 3, 2, 2)
    assert A.mean_over_heads(w).shape == (2, 2, 2)
    assert A.mean_over_heads(w)[1, 0, 1] == pytest.approx(w[1, :, 0, 1].mean())
    assert A.mean_over_layers(w)[1, 1] == pytest.approx(w[:, :, 1, 1].mean())


def test_rollout_matches_abnar_and_zuidema_by_hand():
    a1 = np.array([[1.0, 0.0], [0.5, 0.5]])
    a2 = np.array([[1.0, 0.0], [1.0, 0.0]])
    weights = np.stack([a1[None], a2[None]])  # 2 layers × 1 head
    rolled = A.attention_rollout(weights)
    mixed1 = 0.5 * a1 + 0.5 * np.eye(2)       # rows already sum to 1
    mixed2 = 0.5 * a2 + 0.5 * np.eye(2)
    np.testing.assert_allclose(rolled[0], mixed1)
    np.testing.assert_allclose(rolled[1], mixed2 @ mixed1)
    np.testing.assert_allclose(rolled[1], [[1.0, 0.0], [0.625, 0.375]])
    np.testing.assert_allclose(rolled.sum(axis=-1), 1.0)
    with pytest.raises(ValueError):
        A.attention_rollout(np.ones((1, 1, 2, 3)) / 3)


def test_token_focus_reads_the_row_and_the_column():
    w = np.stack([HAND[0], HAND[0] * 0 + np.eye(3)[None]])  # layer 0 = hand head, layer 1 = identity
    focus = A.token_focus(A.AttentionMaps(w, HAND_TOKENS, HAND_TOKENS), 1)
    assert focus.token == "cat"
    np.testing.assert_allclose(focus.attends_to, [[0.25, 0.75, 0.0], [0.0, 1.0, 0.0]])
    np.testing.assert_allclose(focus.attended_by, [[0.0, 0.75, 0.25], [0.0, 1.0, 0.0]])


def test_token_focus_of_cross_attention_names_each_side():
    w = np.ones((1, 1, 2, 3)) / 3
    maps = A.AttentionMaps(w, [A.START_LABEL, "der"], ["the", "cat", "sat"], "cross")
    focus = A.token_focus(maps, 2)  # query 2 does not exist: only the key side
    assert focus.key_token == "sat" and focus.query_token is None and focus.token == "sat"
    np.testing.assert_allclose(focus.attended_by, [[1 / 3, 1 / 3]])
    assert not focus.attends_to.any()
    assert A.token_focus(maps, 0).query_token == A.START_LABEL and A.token_focus(maps, 0).key_token == "the"


def test_window_cuts_both_axes_of_self_attention_and_keeps_positions():
    n = 300
    w = np.random.default_rng(1).random((2, 2, n, n))
    tokens = [f"t{i}" for i in range(n)]
    maps = A.AttentionMaps(w, tokens, tokens, "self", causal=True)
    assert A.needs_window(maps)
    part = A.window(maps, 250, 128)  # clamped so the window stays inside the text
    assert (part.offset_queries, part.offset_keys) == (172, 172)
    assert part.weights.shape == (2, 2, 128, 128)
    assert part.query_tokens[0] == "t172" and part.key_tokens[-1] == "t299"
    np.testing.assert_array_equal(part.weights, w[:, :, 172:300, 172:300])
    assert not A.needs_window(part)
    assert A.clamp_window(10, -5, 50) == (0, 10)
    rolled = A.attention_rollout(w)  # computed on all tokens, then cut to the window's tokens
    np.testing.assert_array_equal(A.crop_to_window(rolled, part), rolled[:, 172:300, 172:300])
    np.testing.assert_array_equal(A.crop_to_window(rolled[1], maps), rolled[1])  # the full maps: unchanged


def test_window_of_cross_attention_cuts_the_source_only():
    w = np.ones((1, 1, 5, 400)) / 400
    maps = A.AttentionMaps(w, list("abcde"), [str(i) for i in range(400)], "cross")
    part = A.window(maps, 100, 50)
    assert part.weights.shape == (1, 1, 5, 50) and part.offset_keys == 100 and part.offset_queries == 0
    np.testing.assert_array_equal(A.crop_to_window(w[0, 0], part), w[0, 0, :, 100:150])


def test_memory_budget_limits_the_analysed_tokens():
    n = A.max_analysable_tokens(30, 9)
    assert 2 * 30 * 9 * n * n * 4 <= A.ATTENTION_MEMORY_BUDGET_BYTES < 2 * 30 * 9 * (n + 1) ** 2 * 4
    with pytest.raises(ValueError):
        A.max_analysable_tokens(0, 9)


def test_upper_triangle_share():
    assert A.upper_triangle_share(HAND[0, 0]) == 0.0
    assert A.upper_triangle_share(np.ones((2, 2))) == pytest.approx(0.25)


# ---------------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------------

def test_csv_export_has_unique_position_labels():
    tokens = ["the", "cat", "the"]
    text = A.view_to_csv(HAND[0, 0], tokens, tokens, 5, 5)
    frame = pd.read_csv(io.StringIO(text), index_col=0)
    assert list(frame.columns) == ["5: the", "6: cat", "7: the"]
    assert list(frame.index) == ["5: the", "6: cat", "7: the"]
    np.testing.assert_allclose(frame.to_numpy(), HAND[0, 0])


def test_npz_export_round_trips_all_layers():
    result = A.AttentionResult(
        tokens=["a", "b"], weights=np.ones((2, 1, 2, 2)) / 2, kind="encoder-decoder", model_name="tiny",
        target_tokens=[A.START_LABEL, "x", "y"], decoder_weights=np.ones((2, 1, 3, 3)) / 3,
        cross_weights=np.ones((2, 1, 3, 2)) / 2, random_weights=True)
    data = np.load(io.BytesIO(A.result_to_npz(result)))
    assert data["weights"].shape == (2, 1, 2, 2) and data["weights"].dtype == np.float32
    assert data["cross_weights"].shape == (2, 1, 3, 2)
    assert data["decoder_weights"].shape == (2, 1, 3, 3)
    assert list(data["tokens"]) == ["a", "b"] and list(data["target_tokens"]) == [A.START_LABEL, "x", "y"]
    assert str(data["model"]) == "tiny" and bool(data["random_weights"])


def test_result_components():
    result = A.AttentionResult(tokens=HAND_TOKENS, weights=HAND, kind="decoder")
    assert list(result.components()) == ["self"]
    assert result.component().causal and result.component("self").weights is HAND
    with pytest.raises(KeyError):
        result.component("cross")
    assert not result.truncated


# ---------------------------------------------------------------------------------------------
# Figures
# ---------------------------------------------------------------------------------------------

def test_head_heatmap_labels_tokens_and_masks_the_future():
    tokens = ["the", "cat", "the"]
    fig = C.head_heatmap(HAND[0, 0], tokens, tokens, "layer 0, head 0", masked=C.causal_mask(3, 3))
    assert isinstance(fig, go.Figure)
    trace = fig.data[0]
    assert list(fig.layout.xaxis.ticktext) == tokens and list(fig.layout.yaxis.ticktext) == tokens
    assert np.isnan(trace.z[0][1]) and trace.z[1][0] == 0.25
    assert trace.customdata[2][1][0] == "2: the" and trace.customdata[2][1][1] == "1: cat"
    assert "weight" in trace.hovertemplate


def test_token_labels_are_escaped_for_plotly():
    """Plotly reads a subset of HTML in labels: a token like "<b>" must show as itself."""
    tokens = ["<b>", "a&b", "<|im_start|>"]
    fig = C.head_heatmap(np.eye(3), tokens, tokens)
    assert list(fig.layout.xaxis.ticktext) == ["&lt;b&gt;", "a&amp;b", "&lt;|im_start|&gt;"]
    assert fig.data[0].customdata[0][0][0] == "0: &lt;b&gt;"


def test_block_max_pool_keeps_a_thin_diagonal():
    n = 100
    previous = np.eye(n, k=-1)
    pooled = C.block_max_pool(previous, 20)
    assert pooled.shape == (20, 20)
    assert np.all(np.diag(pooled) == 1.0)  # the diagonal survives max pooling


def test_model_view_has_one_tile_per_layer_and_head():
    w = np.random.default_rng(0).random((3, 4, 50, 50))
    fig = C.model_view_figure(w, selected=(2, 1))
    assert len(fig.data) == 1  # one trace: fast to build and draw
    z = np.asarray(fig.data[0].z, dtype=float)
    # 50 tokens pooled into blocks of ceil(50 / 24) = 3 tokens: 17 × 17 cells per tile
    assert np.isfinite(z).sum() == 3 * 4 * 17 * 17
    assert list(fig.layout.yaxis.ticktext) == ["layer 0", "layer 1", "layer 2"]
    assert len(fig.layout.xaxis.ticktext) == 4
    assert len(fig.layout.shapes) == 1  # frame around the chosen head


def test_statistics_and_focus_and_side_by_side_figures():
    stats = A.head_statistics(hand_maps())
    fig = C.statistics_heatmap(stats, "self_share")
    assert fig.data[0].z[0][0] == pytest.approx(2 / 3)
    focus = A.token_focus(hand_maps(), 2)
    bars = C.token_focus_figure(focus.attends_to, focus.key_tokens, 2, "what 'sat' attends to")
    assert len(bars.data) == 1 and list(bars.data[0].y) == [0.5, 0.25, 0.25]
    assert bars.data[0].marker.color[2] == C.FOCUS_COLOR
    pair = C.side_by_side_figure(np.ones((3, 3)) / 3, HAND_TOKENS, "encoder", HAND[0, 0], HAND_TOKENS, "decoder",
                                 right_masked=C.causal_mask(3, 3))
    assert len(pair.data) == 2 and np.isnan(pair.data[1].z[0][2]) and not np.isnan(pair.data[0].z[0][2])


def test_layer_grid_figure():
    fig = C.layer_grid_figure(np.random.default_rng(0).random((7, 10, 10)), n_cols=3)
    assert len(fig.data) == 1 and len(fig.layout.yaxis.ticktext) == 3


# ---------------------------------------------------------------------------------------------
# Real models: bundled SmolLM2 (decoder), bundled MiniLM (encoder), a tiny T5 with random weights
# ---------------------------------------------------------------------------------------------

SENTENCE = "The teacher gave the student a book because she wanted him to learn."


@pytest.fixture(scope="module")
def smollm2():
    from core.run.models import BUNDLED_DECODER, load_model

    return load_model(BUNDLED_DECODER, attn_implementation="eager")


@pytest.fixture(scope="module")
def minilm():
    from core.run.models import BUNDLED_ENCODER, load_model

    return load_model(BUNDLED_ENCODER, attn_implementation="eager")


@pytest.fixture(scope="module")
def tiny_t5():
    from core.run.models import random_model

    return random_model(A.TINY_T5_CONFIG, kind="encoder-decoder", attn_implementation="eager")


@pytest.fixture(scope="module")
def decoder_result(smollm2):
    return A.attention_maps(smollm2, SENTENCE)


@pytest.fixture(scope="module")
def encoder_result(minilm):
    return A.attention_maps(minilm, SENTENCE)


def _assert_rows_sum_to_one(weights):
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, atol=1e-4)


def test_smollm2_shapes_match_its_config(decoder_result, smollm2):
    config = smollm2.model.config
    n = len(smollm2.tokenizer(SENTENCE)["input_ids"])
    assert (config.num_hidden_layers, config.num_attention_heads) == (30, 9)
    assert decoder_result.weights.shape == (30, 9, n, n)
    assert decoder_result.kind == "decoder" and not decoder_result.random_weights
    assert decoder_result.tokens[:3] == ["The", "teacher", "gave"]
    assert not decoder_result.truncated


def test_decoder_rows_sum_to_one_and_nothing_is_above_the_diagonal(decoder_result):
    w = decoder_result.weights
    _assert_rows_sum_to_one(w)
    assert np.all(np.triu(w, k=1) == 0.0)
    assert decoder_result.component().causal


def test_encoder_rows_sum_to_one_and_it_attends_to_later_tokens(encoder_result, minilm):
    w = encoder_result.weights
    config = minilm.model.config
    assert w.shape[:2] == (config.num_hidden_layers, config.num_attention_heads) == (6, 12)
    assert encoder_result.tokens[0] == "[CLS]" and encoder_result.tokens[-1] == "[SEP]"
    _assert_rows_sum_to_one(w)
    above = np.triu(w, k=1)
    assert above.max() > 0.05 and A.upper_triangle_share(A.mean_over_layers(w)) > 0.2
    assert not encoder_result.component().causal


def test_real_statistics_agree_with_a_loop_over_one_head(decoder_result):
    stats = A.head_statistics(decoder_result)
    assert len(stats) == 30 * 9
    layer, head = 7, 4
    w = decoder_result.weights[layer, head].astype(np.float64)
    n = w.shape[0]
    entropy = [-sum(p * math.log2(p) for p in row if p > 0) for row in w]
    expected = {
        "entropy_bits": sum(entropy) / n,
        "normalized_entropy": sum(entropy[i] / math.log2(i + 1) for i in range(1, n)) / (n - 1),
        "sink_share": sum(w[i, 0] for i in range(1, n)) / (n - 1),
        "previous_token_share": sum(w[i, i - 1] for i in range(1, n)) / (n - 1),
        "self_share": sum(w[i, i] for i in range(n)) / n,
        "mean_distance_tokens": sum(w[i, j] * abs(i - j) for i in range(n) for j in range(n)) / n,
        "max_weight": sum(max(row) for row in w) / n,
    }
    row = stats[(stats["layer"] == layer) & (stats["head"] == head)].iloc[0]
    for column, value in expected.items():
        assert row[column] == pytest.approx(value, rel=1e-4, abs=1e-6), column


def test_real_heads_differ(decoder_result):
    """Heads 'learn different aspects': their statistics spread out instead of all being alike."""
    stats = A.head_statistics(decoder_result)
    assert stats["sink_share"].max() - stats["sink_share"].min() > 0.5
    assert stats["pattern"].nunique() >= 2


def test_t5_returns_encoder_decoder_and_cross_attention(tiny_t5):
    result = A.attention_maps(tiny_t5, SENTENCE, max_new_tokens=6)
    layers, heads = A.TINY_T5_CONFIG["num_layers"], A.TINY_T5_CONFIG["num_heads"]
    source, target = result.n_tokens, len(result.target_tokens)
    assert result.is_encoder_decoder and result.random_weights and result.target_generated
    assert target == 7 and result.target_tokens[0] == A.START_LABEL
    assert result.weights.shape == (layers, heads, source, source)
    assert result.decoder_weights.shape == (layers, heads, target, target)
    assert result.cross_weights.shape == (layers, heads, target, source)
    for w in (result.weights, result.decoder_weights, result.cross_weights):
        _assert_rows_sum_to_one(w)
    assert np.all(np.triu(result.decoder_weights, k=1) == 0.0)  # the decoder is causal
    assert np.triu(result.weights, k=1).max() > 0                # the encoder is not
    assert set(result.components()) == {"encoder", "decoder", "cross"}
    assert len(A.head_statistics(result, "cross")) == layers * heads


def test_t5_with_a_given_output_text(tiny_t5):
    result = A.attention_maps(tiny_t5, SENTENCE, target_text="Der Lehrer gab ihm ein Buch.")
    assert not result.target_generated
    ids = tiny_t5.tokenizer("Der Lehrer gab ihm ein Buch.", add_special_tokens=False)["input_ids"]
    assert len(result.target_tokens) == len(ids) + 1
    assert result.cross_weights.shape[2:] == (len(ids) + 1, result.n_tokens)


def test_sdpa_model_is_switched_to_eager_and_back():
    from core.run.models import BUNDLED_ENCODER, load_model

    loaded = load_model(BUNDLED_ENCODER, attn_implementation="sdpa")
    result = A.attention_maps(loaded, SENTENCE)
    assert loaded.model.config._attn_implementation == "sdpa"
    _assert_rows_sum_to_one(result.weights)
    assert result.weights.shape[:2] == (6, 12)


def test_long_text_is_cut_at_the_context_window(minilm):
    result = A.attention_maps(minilm, "word " * 600)
    assert result.input_token_count == 602 and result.n_tokens == 512
    assert result.truncated and result.limit_reason == "context window"
    assert result.weights.shape == (6, 12, 512, 512)
    assert A.needs_window(result.component())
    short = A.attention_maps(minilm, "word " * 600, max_tokens=40)
    assert short.n_tokens == 40 and short.limit_reason == "requested"


def test_decoder_token_limit_comes_from_the_memory_budget(smollm2):
    assert A.context_window(smollm2) == 8192
    assert A.token_limit(smollm2) == A.max_analysable_tokens(30, 9) < 8192


def test_empty_text_is_a_clear_error(minilm):
    for text in ("", "   \n"):
        with pytest.raises(A.AttentionInputError, match="empty"):
            A.attention_maps(minilm, text)


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_attention_on_cuda_in_fp16_comes_back_as_float32_numpy():
    from core.run.models import BUNDLED_DECODER, load_model

    loaded = load_model(BUNDLED_DECODER, dtype="fp16", device="cuda", attn_implementation="eager")
    result = A.attention_maps(loaded, SENTENCE)
    assert result.weights.dtype == np.float32 and result.weights.shape[:2] == (30, 9)
    np.testing.assert_allclose(result.weights.sum(axis=-1), 1.0, atol=2e-2)
    assert np.all(np.triu(result.weights, k=1) == 0.0)
