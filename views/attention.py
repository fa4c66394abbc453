"""Attention: heatmaps per layer and head for decoder, encoder and encoder-decoder models.

Thin page: reads widgets, calls core.run.attention (weights, statistics, aggregations, exports) and
core.run.attention_charts (figures), renders.
"""
from __future__ import annotations

import functools

import numpy as np
import streamlit as st

from core.run import attention as A
from core.run import attention_charts as C
from core.run.models import BUNDLED_DECODER, BUNDLED_ENCODER, ModelLoadError, random_model
from core.common.user_text import code, escape_markdown
from views.components.attention_focus_view import render_token_focus
from views.components.attention_stats_view import render_head_statistics
from views.components.model_cache import cached_load_model
from core.io.html_export import standalone_html
from core.io.url_state import slug

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct: bundled decoder (causal, like GPT and LLaMA)",
    "minilm": "all-MiniLM-L6-v2: bundled encoder (bidirectional, like BERT)",
    "tiny-t5": "Tiny T5 with RANDOM weights: encoder-decoder wiring, offline demo",
    "custom": "Another model: Hugging Face id or local folder",
}
BUNDLED_NAMES = {"smollm2": BUNDLED_DECODER, "minilm": BUNDLED_ENCODER}
VIEWS = {
    "head": "Single head",
    "model": "Model view",
    "layers": "Layer averages",
    "stats": "Head statistics",
    "focus": "Token focus",
    "compare": "Encoder vs decoder",
}
ACROSS_LAYERS = {"rollout": "Attention rollout", "mean": "Mean over all layers"}
COMPARE_DEPTHS = {"all": "Mean over all layers and heads", "first": "First layer", "last": "Last layer"}
DEFAULT_TEXT = "The teacher gave the student a book because she wanted him to learn."
MAX_TEXT_CHARS = 50_000


def _percent(value: float) -> str:
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:.0f}%"


# ----------------------------------------------------------------------------------------------
# Loading and running (cached: the same text through the same model is computed once)
# ----------------------------------------------------------------------------------------------

@st.cache_resource(show_spinner=False, max_entries=1)
def _tiny_t5():
    return random_model(A.TINY_T5_CONFIG, kind="encoder-decoder", attn_implementation="eager")


def _load(model_key: str, custom_name: str):
    if model_key == "tiny-t5":
        return _tiny_t5()
    return cached_load_model(BUNDLED_NAMES.get(model_key, custom_name), attn_implementation="eager")


@st.cache_resource(show_spinner=False, max_entries=4, ttl=3600)
def _analyse(model_key: str, custom_name: str, text: str, target_text: str, max_new_tokens: int,
             _loaded) -> A.AttentionResult:
    """Cached by model, text and options (the loaded model itself is not hashed)."""
    return A.attention_maps(_loaded, text, target_text=target_text or None, max_new_tokens=max_new_tokens)


@st.cache_resource(show_spinner=False, max_entries=8, ttl=3600)
def _statistics(_result: A.AttentionResult, cache_key: tuple, component: str):
    return A.head_statistics(_result, component)


@st.cache_resource(show_spinner=False, max_entries=4, ttl=3600)
def _rollout(_weights: np.ndarray, cache_key: tuple):
    return A.attention_rollout(_weights).astype(np.float32)  # half the memory of float64 in the cache


def _run(model_key: str, custom_name: str, text: str, target_text: str, max_new_tokens: int):
    """The analysis, or None after showing the error on the page."""
    label = code(custom_name) if model_key == "custom" else MODELS[model_key].split(":")[0]
    try:
        loaded = _load(model_key, custom_name)  # shows its own progress while loading
        with st.spinner(f"Running the text through {label} with attention weights returned…", show_time=True):
            return _analyse(model_key, custom_name, text, target_text, max_new_tokens, loaded)
    except (ModelLoadError, A.AttentionInputError) as error:
        st.error(str(error))
    except MemoryError:
        st.error("Out of memory while computing attention: try a shorter text or a smaller model.")
    except Exception as error:  # noqa: BLE001 (a page never shows a traceback)
        st.error(f"Could not compute attention with {label}: {escape_markdown(error)}")
    return None


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------

st.title("Attention")
st.caption(
    "Self-attention lets every token mix in information from other tokens; each head learns its own pattern. "
    "Pick a model, type a sentence, and look at the real attention weights of every layer and head."
)

left, right = st.columns([2, 3])
with left:
    model_key = st.radio(
        "Model", list(MODELS), format_func=MODELS.get, key="model",
        help="Both bundled models work offline. The tiny T5 has the real encoder-decoder wiring but random "
             "weights, so its patterns are NOT learned. Another model loads from the Hugging Face Hub (when it is "
             "reachable) or from a folder with config.json, weights and tokenizer files.")
    custom_name = ""
    if model_key == "custom":
        custom_name = st.text_input(
            "Hugging Face id or local folder", key="custom_model", placeholder="google/flan-t5-small",
            help="A model id such as google/flan-t5-small (needs the Hub or a local Hugging Face cache) or the path "
                 "of a local folder. Decoder, encoder and encoder-decoder models all work.").strip()
with right:
    text = st.text_area(
        "Text", value=DEFAULT_TEXT, key="text", height=110, max_chars=MAX_TEXT_CHARS,
        help="The input the model reads. Up to the model's context window (or as many tokens as fit in "
             f"{A.ATTENTION_MEMORY_BUDGET_BYTES / 1e9:.0f} GB of attention weights); heatmaps show at most "
             f"{A.RENDER_LIMIT} tokens at a time through a window.")
    target_text, max_new_tokens = "", A.DEFAULT_MAX_NEW_TOKENS
    if model_key in ("tiny-t5", "custom"):
        target_cols = st.columns([3, 1])
        target_text = target_cols[0].text_input(
            "Output text for the decoder (encoder-decoder models)", key="target_text",
            placeholder="empty: the model generates its own output",
            help="The decoder's side of an encoder-decoder model: its self-attention and its cross-attention to "
                 "the input are shown for this text. Leave empty to let the model generate greedily. Ignored by "
                 "decoder-only and encoder-only models.")
        max_new_tokens = target_cols[1].number_input(
            "Tokens to generate", min_value=1, max_value=A.MAX_TARGET_TOKENS - 1, value=A.DEFAULT_MAX_NEW_TOKENS,
            step=1, key="max_new_tokens",
            help="How many output tokens an encoder-decoder model generates when no output text is given.")

if model_key == "custom" and not custom_name:
    st.info("Enter a Hugging Face model id or a local folder to load another model, or pick a bundled one.")
    st.stop()
if not text or not text.strip():
    st.warning("Enter some text to analyse: the text box is empty.")
    st.stop()

result = _run(model_key, custom_name, text, target_text.strip(), int(max_new_tokens))
if result is None:
    st.stop()
result_key = (model_key, custom_name, text, target_text.strip(), int(max_new_tokens))

# ----------------------------------------------------------------------------------------------
# Summary
# ----------------------------------------------------------------------------------------------

metrics = st.columns([1, 1, 1, 1.6])
metrics[0].metric("Tokens analysed", f"{result.n_tokens:,}",
                  help="Tokens of the input after the tokenizer (special tokens such as [CLS] included).")
metrics[1].metric("Layers × heads", f"{result.n_layers} × {result.n_heads}",
                  help="Transformer layers and attention heads per layer (of the encoder for T5-like models).")
metrics[2].metric("Forward pass", f"{result.seconds:.2f} s",
                  help="Time to run the text through the model with attention weights returned (eager attention).")
metrics[3].metric("Architecture", result.kind,
                  help="decoder: causal, a token sees only earlier tokens. encoder: bidirectional, every token sees "
                       "every token. encoder-decoder: both, joined by cross-attention.")
if result.random_weights:
    st.warning("This model has RANDOM weights: it shows the real wiring (shapes, masks, cross-attention) but its "
               "attention patterns and output are not learned.")
if result.truncated:
    why = (f"the model's context window is {result.token_limit:,} tokens"
           if result.limit_reason == "context window" else
           f"attention weights grow with tokens² (layers × heads × tokens² values) and more tokens would not fit "
           f"in {A.ATTENTION_MEMORY_BUDGET_BYTES / 1e9:.0f} GB")
    st.warning(f"The text has {result.input_token_count:,} tokens; the first {result.n_tokens:,} were analysed: "
               f"{why}.")

component = None
if result.is_encoder_decoder:
    io_cols = st.columns(2)
    source = "generated by the model" if result.target_generated else "given"
    io_cols[0].markdown("**Input (encoder)**")
    io_cols[0].text(text)  # st.text: the person's text is shown as typed, never as markdown
    io_cols[1].markdown(f"**Output (decoder, {source})**")
    io_cols[1].text(result.target_text or "(empty)")
    component = st.radio(
        "Attention", ["encoder", "decoder", "cross"], format_func=A.COMPONENT_LABELS.get, key="component",
        horizontal=True,
        help="Encoder self-attention: the input reads itself, both directions. Decoder self-attention: the output "
             "reads its earlier tokens only. Cross-attention: each output token reads the encoded input.")
maps = result.component(component)
stats = _statistics(result, result_key, maps.component)

view = st.radio("View", list(VIEWS), format_func=VIEWS.get, key="view", horizontal=True,
                help="Single head: one heatmap. Model view: every layer and head at a glance. Layer averages: mean "
                     "over heads, attention rollout. Head statistics: numbers per head. Token focus: one token in "
                     "every layer. Encoder vs decoder: the two bundled models on the same sentence.")

# ----------------------------------------------------------------------------------------------
# Layer / head and token window (shared by the views that use them)
# ----------------------------------------------------------------------------------------------

for key, top in (("layer", maps.n_layers - 1), ("head", maps.n_heads - 1)):
    if st.session_state.get(key, 0) > top:
        st.session_state[key] = top

layer = head = 0
if view in ("head", "model", "layers", "focus"):
    pick = st.columns(2)
    layer = pick[0].slider("Layer", 0, maps.n_layers - 1, 0, key="layer", persist_state="page",
                           help=f"Layer index, 0 = closest to the input, {maps.n_layers - 1} = last.")
    if view != "layers":
        head = pick[1].slider("Head", 0, maps.n_heads - 1, 0, key="head", persist_state="page",
                              help="Attention head within the layer. Heads of one layer run in parallel on the "
                                   "same input, each with its own query/key projections.")

shown = maps
if A.needs_window(maps) and view != "stats" and view != "compare":
    longest = max(len(maps.query_tokens), len(maps.key_tokens))
    st.info(f"{longest:,} tokens are more than the {A.RENDER_LIMIT} a heatmap can show legibly. Pick a window of "
            f"{A.RENDER_LIMIT} tokens; weights to tokens outside it are not drawn, so rows no longer sum to 1.")
    start = st.slider("Window start (token position)", 0, longest - A.RENDER_LIMIT, 0, key="window_start",
                      help="First token of the window. Statistics and exports always use all tokens.")
    shown = A.window(maps, start, A.RENDER_LIMIT)

def _mask(view_maps: A.AttentionMaps):
    if not view_maps.causal:
        return None
    return C.causal_mask(len(view_maps.query_tokens), len(view_maps.key_tokens),
                         view_maps.offset_queries, view_maps.offset_keys)


def _head_summary(layer_index: int, head_index: int) -> str:
    row = stats[(stats["layer"] == layer_index) & (stats["head"] == head_index)].iloc[0]
    parts = [f"entropy {row.entropy_bits:.2f} bits", f"first token {_percent(row.sink_share)}"]
    if not np.isnan(row.previous_token_share):
        parts += [f"previous token {_percent(row.previous_token_share)}", f"itself {_percent(row.self_share)}",
                  f"mean distance {row.mean_distance_tokens:.1f} tokens"]
    return f"Layer {layer_index}, head {head_index} over all tokens: " + ", ".join(parts) + f" → **{row.pattern}**."


def _view_csv(matrix: np.ndarray, file_name: str) -> tuple[str, str]:
    """(CSV text, file name) of a [queries, keys] matrix of the shown window, with its token labels."""
    return (A.view_to_csv(matrix, shown.query_tokens, shown.key_tokens, shown.offset_queries, shown.offset_keys),
            file_name)


def _open_head():
    st.session_state["view"] = "head"


csv_export = None  # (csv text, file name) of what the current view shows
fig = None  # the view's last figure, also offered as standalone HTML

# ----------------------------------------------------------------------------------------------
# Views
# ----------------------------------------------------------------------------------------------

if view == "head":
    matrix = shown.weights[layer, head]
    fig = C.head_heatmap(matrix, shown.query_tokens, shown.key_tokens,
                         f"{maps.label}: layer {layer}, head {head}", shown.offset_queries, shown.offset_keys,
                         masked=_mask(shown))
    st.plotly_chart(fig, key="head_chart")
    st.markdown(_head_summary(layer, head))
    st.caption("Each row is a query token; its colours show how it splits its attention (the row sums to 1) over "
               "the key tokens. Hover a cell for the exact weight." +
               (" Grey cells are future tokens, masked in a causal model." if maps.causal else ""))
    csv_export = _view_csv(matrix, f"attention-layer{layer}-head{head}.csv")

elif view == "model":
    with st.spinner("Drawing every layer and head…"):
        fig = C.model_view_figure(shown.weights, selected=(layer, head),
                                  title=f"{maps.label}: {maps.n_layers} layers × {maps.n_heads} heads")
    st.plotly_chart(fig, key="model_chart")
    st.button(f"Open layer {layer}, head {head} in the single-head view", key="open_head", on_click=_open_head,
              icon=":material/zoom_in:",
              help="Choose a layer and head with the sliders above (framed in red), then open it full size.")
    st.caption("One thumbnail per head (rows: layers, columns: heads) on one colour scale from 0 to 1. A vertical "
               "line at the left is attention to the first token; a line just below the diagonal is "
               "previous-token attention; the diagonal is a token attending to itself. "
               f"Inputs longer than {C.THUMBNAIL_CELLS} tokens show the strongest weight of each block of tokens.")
    csv_export = _view_csv(shown.weights[layer, head], f"attention-layer{layer}-head{head}.csv")

elif view == "layers":
    options = list(ACROSS_LAYERS) if maps.is_self_attention else ["mean"]
    across = st.radio("Across layers", options, format_func=ACROSS_LAYERS.get, key="across_layers",
                      horizontal=True,
                      help="Attention rollout (Abnar & Zuidema 2020) multiplies the head-averaged maps of layers 0…L, "
                           "counting the residual connection as half the weight, to estimate how much each input "
                           "token flows into each position after layer L. The mean over layers simply averages.")
    per_layer = A.mean_over_heads(shown.weights)
    cols = st.columns(2)
    with cols[0]:
        fig = C.head_heatmap(per_layer[layer], shown.query_tokens, shown.key_tokens,
                             f"Layer {layer}: mean over {maps.n_heads} heads", shown.offset_queries,
                             shown.offset_keys, masked=_mask(shown))
        st.plotly_chart(fig, key="layer_mean_chart")
    with cols[1]:
        if across == "rollout":
            rolled = _rollout(maps.weights, result_key + (maps.component,))  # on all tokens, then windowed
            aggregate = A.crop_to_window(rolled[layer], shown)
            title = f"Attention rollout through layer {layer}"
        else:
            aggregate = per_layer.mean(axis=0)
            title = f"Mean over all {maps.n_layers} layers and heads"
        fig = C.head_heatmap(aggregate, shown.query_tokens, shown.key_tokens, title, shown.offset_queries,
                             shown.offset_keys, masked=_mask(shown))
        st.plotly_chart(fig, key="across_chart")
    fig = C.layer_grid_figure(per_layer, title="Mean over heads, every layer (the chosen layer is framed)",
                              selected=layer)
    st.plotly_chart(fig, key="layer_grid_chart")
    csv_export = _view_csv(per_layer[layer], f"attention-layer{layer}-mean-over-heads.csv")

elif view == "stats":
    csv_export = render_head_statistics(stats)

elif view == "focus":
    fig, csv_export = render_token_focus(maps, shown, head)

elif view == "compare":
    st.markdown(
        "An **encoder** such as BERT reads the whole sentence at once, so every token attends to tokens on both "
        "sides; a **decoder** such as GPT or LLaMA predicts the next token, so a causal mask hides every later token "
        "and its maps are lower-triangular.")
    depth = st.radio("Show", list(COMPARE_DEPTHS), format_func=COMPARE_DEPTHS.get, key="compare_depth",
                     horizontal=True,
                     help="Which attention to compare: averaged over the whole model, or the mean over heads of the "
                          "first or last layer. The two models have different depths (6 and 30 layers).")
    sides = {}
    for key in ("minilm", "smollm2"):
        side = _run(key, "", text, "", A.DEFAULT_MAX_NEW_TOKENS)
        if side is None:
            st.stop()
        side_maps = side.component()
        if A.needs_window(side_maps):
            side_maps = A.window(side_maps, 0, A.RENDER_LIMIT)
        per_layer = A.mean_over_heads(side_maps.weights)
        matrix = per_layer.mean(axis=0) if depth == "all" else per_layer[0 if depth == "first" else -1]
        sides[key] = (matrix, side_maps)
    (enc, enc_maps), (dec, dec_maps) = sides["minilm"], sides["smollm2"]
    fig = C.side_by_side_figure(
        enc, enc_maps.key_tokens, "all-MiniLM-L6-v2 (encoder, bidirectional)",
        dec, dec_maps.key_tokens, "SmolLM2-135M (decoder, causal)", right_masked=_mask(dec_maps))
    st.plotly_chart(fig, key="compare_chart")
    shares = st.columns(2)
    shares[0].metric("Encoder: weight on later tokens", _percent(A.upper_triangle_share(enc)),
                     help="Share of all attention weight above the diagonal, i.e. on tokens after the query.")
    shares[1].metric("Decoder: weight on later tokens", _percent(A.upper_triangle_share(dec)),
                     help="Always 0 for a causal decoder: the mask removes future tokens before the softmax.")
    st.caption("The tokenizers differ: MiniLM (WordPiece, lower-case) adds [CLS] and [SEP]; SmolLM2 (byte-level "
               "BPE) adds nothing. Long texts are compared on their first "
               f"{A.RENDER_LIMIT} tokens.")
    csv_export = (A.view_to_csv(dec, dec_maps.query_tokens, dec_maps.key_tokens), "attention-decoder-smollm2.csv")
    st.download_button("Encoder map as CSV", A.view_to_csv(enc, enc_maps.query_tokens, enc_maps.key_tokens),
                       file_name="attention-encoder-minilm.csv", mime="text/csv", key="download_encoder_csv",
                       on_click="ignore", icon=":material/download:",
                       help="The MiniLM map shown on the left: one row per query token, one column per key token.")

# ----------------------------------------------------------------------------------------------
# Exports
# ----------------------------------------------------------------------------------------------

st.divider()
exports = st.columns([1, 1, 1.4])
if csv_export is not None:
    exports[0].download_button(
        "Current view as CSV", csv_export[0], file_name=csv_export[1], mime="text/csv", key="download_view_csv",
        on_click="ignore", icon=":material/download:",
        help="The weights (or statistics) this view shows, with 'position: token' labels on rows and columns.")
exports[1].download_button(
    "All layers as .npz", functools.partial(A.result_to_npz, result),
    file_name=f"attention-{slug(result.model_name)}.npz", mime="application/octet-stream",
    key="download_npz", on_click="ignore", icon=":material/download:",
    help="Every layer and head as numpy arrays [layers, heads, queries, keys] (numpy.load): weights and tokens; "
         "for encoder-decoder models also decoder_weights, cross_weights and target_tokens.")
if fig is not None:
    exports[2].download_button(
        "Current chart as standalone HTML", functools.partial(standalone_html, [fig], f"Attention: {result.model_name}"),
        file_name=f"attention-{slug(result.model_name)}.html", mime="text/html", key="download_view_html",
        on_click="ignore", icon=":material/download:",
        help="This chart in one HTML file with plotly.js embedded: opens offline (slides, demos without the server).")
exports[2].caption(f"Model: {result.model_name}. Attention weights come from transformers' eager attention "
                   "(the softmax probabilities of each head), computed on this machine.")
for note in result.notes:
    st.caption(note)
