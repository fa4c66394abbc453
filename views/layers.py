"""Layers: the logit lens — what each layer's residual stream predicts (core.run.lens, core.run.lens_charts).

Thin page: reads widgets, calls core.run.lens.logit_lens, renders the figures from core.run.lens_charts.
"""
from __future__ import annotations

import json

import streamlit as st

from core.run import lens as L
from core.run import lens_charts as LC
from core.io.html_export import standalone_html
from core.run.models import BUNDLED_DECODER, ModelLoadError
from core.io.url_state import slug
from core.common.user_text import code, escape_markdown
from views.components.model_cache import cached_load_model

MODELS = {
    "smollm2": "SmolLM2-135M-Instruct: bundled decoder (30 layers)",
    "custom": "Another causal LM: Hugging Face id or local folder",
}
DEFAULT_TEXT = "The capital of France is Paris. The capital of Germany is"
MAX_TEXT_CHARS = 20_000


@st.cache_resource(show_spinner=False, max_entries=4, ttl=3600)
def _lens(model_name: str, text: str, top_k: int, _loaded) -> L.LensResult:
    """Cached by model, text and k (the loaded model itself is not hashed)."""
    return L.logit_lens(_loaded, text, top_k=top_k)


st.title("Layers: the logit lens")
st.caption(
    "What does the model \"think\" after each layer? The logit lens (nostalgebraist 2020, *interpreting GPT: the "
    "logit lens*, LessWrong) sends each layer's residual stream through the model's own final norm and unembedding "
    "and reads it as a next-token distribution. The last row is exactly the model's output."
)

left, right = st.columns([2, 3])
with left:
    model_key = st.radio("Model", list(MODELS), format_func=MODELS.get, key="lens_model",
                         help="Any causal language model works: the bundled SmolLM2 offline, or another decoder from "
                              "the Hugging Face Hub (when reachable) or a local folder.")
    custom_name = ""
    if model_key == "custom":
        custom_name = st.text_input("Hugging Face id or local folder", key="lens_custom_model",
                                    placeholder="openai-community/gpt2",
                                    help="A decoder (causal LM) id or the path of a local folder with config.json, "
                                         "weights and tokenizer files.").strip()
    top_k = st.slider("Top-k shown on hover", 1, 10, 5, key="lens_top_k",
                      help="How many of each layer's most likely next tokens the heatmap's hover lists.")
with right:
    text = st.text_area("Text", value=DEFAULT_TEXT, key="lens_text", height=110, max_chars=MAX_TEXT_CHARS,
                        help=f"The input the model reads. Every position shows the prediction for the token after it; "
                             f"the lens reads at most the last {L.MAX_LENS_TOKENS} tokens.")

if model_key == "custom" and not custom_name:
    st.info("Enter a Hugging Face model id or a local folder, or pick the bundled SmolLM2.")
    st.stop()
if not text or not text.strip():
    st.warning("Enter some text to look inside the model: the text box is empty.")
    st.stop()

name = BUNDLED_DECODER if model_key == "smollm2" else custom_name
result = None
try:
    loaded = cached_load_model(name)
    with st.spinner("Reading every layer through the final norm and unembedding…", show_time=True):
        result = _lens(name, text, int(top_k), loaded)
except (ModelLoadError, L.LensInputError) as error:
    st.error(str(error))
except MemoryError:
    st.error("Out of memory while reading the layers: try a shorter text or a smaller model.")
except Exception as error:  # noqa: BLE001 (a page never shows a traceback)
    st.error(f"Could not run the logit lens with {code(name)}: {escape_markdown(error)}")
if result is None:
    st.stop()

for note in result.notes:
    st.info(note)
appears = result.first_top1_layer()
metrics = st.columns(4)
metrics[0].metric("Positions", f"{len(result.tokens):,}", help="Input tokens read (one prediction each).")
metrics[1].metric("Layers", f"{result.n_layers}", help="Transformer blocks; the heatmap has one more row, the embeddings.")
last_row = appears[-1]
metrics[2].metric("Final answer fixed from", "never" if last_row is None else result.row_labels[last_row],
                  help="For the last position: the first row from which the model's final top token stays ranked "
                       "first through the last layer.")
metrics[3].metric("Last row vs model output", f"{result.max_abs_diff_vs_model:.1e}",
                  help="Largest absolute difference between the lens's last row and the model's own logits "
                       "(0 = the lens's last row is the model's output).")

heatmap = LC.lens_heatmap(result)
st.plotly_chart(heatmap, key="lens_heatmap")

position = st.select_slider(
    "Position to follow", options=list(range(len(result.tokens))), value=len(result.tokens) - 1, key="lens_position",
    format_func=lambda t: f"{t}: {result.tokens[t]}",
    help="The chart below follows the token the full model predicts after this position, layer by layer.")
rank_figure = LC.final_token_figure(result, int(position))
st.plotly_chart(rank_figure, key="lens_rank")

with st.expander("What the logit lens does not show", expanded=False):
    st.markdown(
        "- **Intermediate layers were never trained to be read this way.** The final norm and unembedding fit the "
        "last layer; an early layer can hold the answer in a different basis and still read as noise here (the "
        "*tuned lens*, Belrose et al. 2023, arXiv:2303.08112, learns a map per layer for that reason).\n"
        "- **Not which component wrote it.** Which heads or MLPs produced a prediction needs attribution or "
        "activation patching, not the lens.\n"
        "- **Not causation.** A token appearing at layer ℓ is a reading of the residual stream, not proof the model "
        "\"decided\" there.\n"
        "- Row 0 is the token embeddings read by the unembedding: with tied embeddings (SmolLM2) it mostly predicts "
        "the input token itself."
    )

downloads = st.columns(2)
base = slug(f"logit-lens-{result.model_name}")
downloads[0].download_button(
    "Logit lens as standalone HTML", standalone_html([heatmap, rank_figure], f"Logit lens: {result.model_name}"),
    file_name=f"{base}.html", mime="text/html", key="lens_html",
    help="Both charts in one HTML file with plotly.js embedded: opens offline, for slides and demos.")
downloads[1].download_button(
    "Logit lens as JSON", json.dumps(result.to_dict()), file_name=f"{base}.json", mime="application/json",
    key="lens_json", help="Top-k token ids and probabilities per layer and position, and the final token's rank.")
