"""Quantization: one model at fp32 / fp16 / bf16 / int8 / nf4 / fp4, compared on measured memory, speed and quality.

Thin page: reads the form, calls core.run.quantization.compare_variants (which loads one variant at a time and releases
it), renders tables, token diffs and core.run.quantization_charts figures. Results are cached (st.cache_data and
st.session_state), never models.
"""
from __future__ import annotations

import html
import threading
import time

import pandas as pd
import streamlit as st

from core.run import models
from core.run import quantization as Q
from core.run import quantization_charts as C
from core.io.url_state import slug
from core.common.user_text import code, escape_markdown
from views.components.model_access import model_name_problem
from views.components.endpoint_quality import render_served_perplexity

RESULTS_KEY = "q_results"
OUTPUT_KINDS = {"greedy": "Greedy (deterministic)", "sampled": "Sampled (same seed for every variant)"}
QUALITY_CHOICES = {key: label for key, (label, _) in C.QUALITY_METRICS.items()}
COLUMNS_PER_ROW = 3


@st.cache_resource(show_spinner=False)
def _comparison_lock() -> threading.Lock:
    """One comparison at a time in this server process: two at once would double memory and disturb each other's
    memory and speed measurements."""
    return threading.Lock()


@st.cache_data(show_spinner=False, max_entries=16, ttl=3600)
def _run_comparison(name: str, variants: tuple[str, ...], prompt: str, reference_text: str, max_new_tokens: int,
                    reference_tokens: int, double_quant: bool, compute_dtype: str, unquantized_dtype: str, seed: int,
                    use_chat_template: bool, _progress=None) -> tuple[pd.DataFrame, str]:
    frame = Q.compare_variants(
        name or None, list(variants), prompt, reference_text, max_new_tokens=max_new_tokens,
        max_reference_tokens=reference_tokens, double_quant=double_quant, compute_dtype=compute_dtype,
        unquantized_dtype=unquantized_dtype, seed=seed, use_chat_template=use_chat_template, progress=_progress)
    return frame, time.strftime("%Y-%m-%d %H:%M:%S")


def _variant_help() -> str:
    return "  \n".join(f"**{spec.name}**: {spec.description}" for spec in Q.VARIANT_SPECS.values())


# ----------------------------------------------------------------------------------------------
# Form
# ----------------------------------------------------------------------------------------------
st.title("Quantization")
st.caption(
    "One model stored at 32, 16, 8 and 4 bits, **measured** on this machine: weight memory next to the memory "
    "planner's prediction, peak memory while generating, speed, and quality the way llama.cpp's perplexity tool "
    "reports it (perplexity, KL divergence of the next-token distributions and top-1 agreement versus fp32). "
    "Quantization stores each weight in fewer bits plus scaling factors: fp16/bf16 use 2 bytes, int8 1 byte, "
    "nf4/fp4 half a byte. MB = 10⁶ bytes."
)

with st.form("q_form", border=True):
    top = st.columns([1.3, 2])
    top[0].text_input(
        "Model", value=models.BUNDLED_DECODER, key="q_model", max_chars=300,
        help="A decoder (causal language model): the bundled SmolLM2-135M-Instruct (default, works offline), a "
             "Hugging Face id already in the local cache, or a local folder with config.json and safetensors. "
             "Leave empty for the bundled model.")
    top[1].multiselect(
        "Variants", list(Q.VARIANTS), default=list(Q.DEFAULT_VARIANTS), key="q_variants",
        help="Which storage formats to load and measure, one after the other (each is released before the next). "
             "The first one (fp32 when chosen) is the baseline for ΔPPL, KL and the token diffs. On a CPU, int8 and "
             "fp4 are slow: bitsandbytes' fast kernels are written for CUDA.  \n" + _variant_help())
    st.text_area(
        "Prompt", value=Q.DEFAULT_PROMPT, key="q_prompt", height=80, max_chars=Q.MAX_PROMPT_CHARS,
        help="Every variant continues this prompt twice: greedily and by sampling with the same seed. The outputs "
             "are shown side by side with a token diff against the baseline.")
    row = st.columns(3)
    row[0].slider(
        "Max new tokens", min_value=1, max_value=128, value=Q.DEFAULT_MAX_NEW_TOKENS, key="q_max_new_tokens",
        help="Tokens each variant generates per output (it may stop earlier at its end-of-text token). The speed "
             "in tokens/s is measured on the greedy output.")
    row[1].slider(
        "Reference tokens", min_value=Q.MIN_REFERENCE_TOKENS, max_value=512, value=Q.DEFAULT_REFERENCE_TOKENS,
        step=8, key="q_reference_tokens",
        help="How many tokens of the reference text are scored for perplexity and KL divergence (the bundled text "
             "has about 400). More tokens: steadier numbers, slower run.")
    row[2].number_input(
        "Sampling seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="q_seed",
        help="Random seed of the sampled outputs; the same for every variant, so differences come from the "
             "weights, not from the dice.")
    with st.expander("4-bit options, dtypes and reference text"):
        opt = st.columns(5)
        opt[0].checkbox(
            "Double quantization", value=False, key="q_double_quant",
            help="nf4/fp4 only: also quantize the per-block absmax scales to 8 bits (QLoRA §3), saving about "
                 "0.37 bit per weight (0.5 → 0.127 bit of constants).")
        opt[1].selectbox(
            "4-bit compute dtype", list(Q.COMPUTE_DTYPES), index=0, key="q_compute_dtype",
            help="dtype the nf4/fp4 weights are de-quantized to for each matmul. fp32 is the fast path on CPU here; "
                 "bf16 or fp16 is usual on GPUs.")
        opt[2].selectbox(
            "Unquantized layers' dtype", list(Q.UNQUANTIZED_DTYPES), index=0, key="q_unquantized_dtype",
            help="dtype of what bitsandbytes leaves unquantized in int8/nf4/fp4 variants (embeddings, norms, "
                 "lm_head). auto = fp32 on CPU, bf16 (or fp16) on a CUDA GPU.")
        opt[3].checkbox(
            "Chat template", value=True, key="q_chat_template",
            help="Wrap the prompt in the model's chat template (SmolLM2-Instruct is a chat model). Off: the model "
                 "continues the raw prompt text.")
        st.text_area(
            "Reference text", value=Q.load_reference_text(), key="q_reference_text", height=140,
            max_chars=50_000,
            help="Text scored for perplexity and KL divergence. Default: a passage written for LLM Lab and "
                 "dedicated to the public domain (core/data/reference_text.txt). Paste your own to test other "
                 "domains.")
        opt[4].checkbox(
            "Measure again", value=False, key="q_fresh",
            help="Results are cached for an hour per setting (shared by everyone using this app); tick to drop the "
                 "cache and measure again, e.g. after the machine got less busy.")
    submitted = st.form_submit_button(
        "Run comparison", type="primary", key="q_run",
        help="Loads each chosen variant in turn, measures it, and releases it before the next.")

# ----------------------------------------------------------------------------------------------
# Run
# ----------------------------------------------------------------------------------------------
if submitted:
    state = st.session_state
    variants = tuple(state["q_variants"])
    problem = None
    if not variants:
        problem = "Choose at least one variant to compare (fp32 is the usual baseline)."
    elif not state["q_prompt"].strip():
        problem = "The prompt is empty: type a prompt for the models to continue."
    elif not state["q_reference_text"].strip():
        problem = "The reference text is empty: perplexity and KL need a text to score."
    else:
        problem = model_name_problem(state["q_model"])  # the server's model policy, before anything loads
    if problem:
        st.error(problem, icon=":material/warning:")
    else:
        lock = _comparison_lock()
        with st.status(f"Comparing {len(variants)} variant(s)…", expanded=True) as status:
            bar = st.progress(0.0, text="Starting…")
            if not lock.acquire(blocking=False):
                bar.progress(0.0, text="Another comparison is running in this app; waiting for it to finish…")
                lock.acquire()
            try:
                if state["q_fresh"]:
                    _run_comparison.clear()
                frame, measured_at = _run_comparison(
                    state["q_model"].strip(), variants, state["q_prompt"], state["q_reference_text"],
                    int(state["q_max_new_tokens"]), int(state["q_reference_tokens"]), bool(state["q_double_quant"]),
                    state["q_compute_dtype"], state["q_unquantized_dtype"], int(state["q_seed"]),
                    bool(state["q_chat_template"]),
                    _progress=lambda fraction, message: bar.progress(min(max(fraction, 0.0), 1.0), text=message))
                state[RESULTS_KEY] = {"frame": frame, "measured_at": measured_at,
                                      "model": state["q_model"].strip() or models.BUNDLED_DECODER}
                status.update(label=f"Compared {len(variants)} variant(s).", state="complete", expanded=False)
            except (Q.QuantizationInputError, models.ModelLoadError) as exc:
                status.update(label="The comparison could not run.", state="error", expanded=False)
                st.error(str(exc), icon=":material/block:")
            except Exception as exc:  # noqa: BLE001 - never show a traceback; say what failed
                status.update(label="The comparison failed.", state="error", expanded=False)
                st.error(f"The comparison failed unexpectedly: {type(exc).__name__}: {escape_markdown(exc)}", icon=":material/block:")
            finally:
                lock.release()

render_served_perplexity(st.session_state.get("q_reference_text") or Q.load_reference_text(),
                         int(st.session_state.get("q_reference_tokens") or Q.DEFAULT_REFERENCE_TOKENS), st.session_state.get(RESULTS_KEY))

# ----------------------------------------------------------------------------------------------
# Results
# ----------------------------------------------------------------------------------------------
stored = st.session_state.get(RESULTS_KEY)
if stored is None:
    st.info("Choose the variants and press **Run comparison**. With the default settings on a 2-core CPU it takes "
            "about a minute: fp32, bf16 and nf4 take seconds each, int8 most of the time.", icon=":material/info:")
    st.stop()

results: pd.DataFrame = stored["frame"]
available = results[results["available"]]
st.subheader("Results")
first = results.iloc[0]
baseline = available["baseline"].iloc[0] if len(available) else None
st.caption(
    f"Model {code(stored['model'])} on **{first['device']}**, measured {stored['measured_at']}; "
    f"{first['reference_tokens']} reference tokens; baseline **{baseline or 'none'}**. "
    "Timings share this machine with everything else running on it.")

for label, reason in Q.unavailable_variants(results):
    st.warning(f"**{label}** is unavailable here: {reason}", icon=":material/block:")
if available.empty:
    st.stop()

base_row = available[available["variant"] == baseline].iloc[0]
metric_cols = st.columns(len(available))
for col, (_, row) in zip(metric_cols, available.iterrows()):
    ratio = base_row["weight_bytes"] / row["weight_bytes"]
    col.metric(
        row["variant"], f"{row['weight_bytes'] / 1e6:,.1f} MB",
        delta=f"{ratio:.2f}× smaller than {baseline}" if row["variant"] != baseline else "baseline",
        delta_color="off", delta_arrow="off",
        help=f"{row['label']}: measured weight memory (parameters, buffers and quantization constants). "
             f"{ratio:.2f}× smaller than {baseline}; KL {row['kl_mean']:.4f} nats, ΔPPL {row['delta_ppl']:+.3f}.")

Number = st.column_config.NumberColumn
COLUMN_FORMATS = {
    "Weights (MB)": Number(format="%.1f MB", help="Measured: every tensor the model holds, incl. bitsandbytes' "
                                                  "absmax and row scales."),
    "Predicted (MB)": Number(format="%.1f MB", help="The Memory planner's formula (core.plan.memory.weight_memory) "
                                                    "for this storage format."),
    "Error (%)": Number(format="%+.3f %%", help="(measured − predicted) / predicted."),
    "HF footprint (MB)": Number(format="%.1f MB", help="transformers' get_memory_footprint(): parameters and "
                                                       "buffers only, so it misses the 4-bit absmax constants."),
    "Peak (MB)": Number(format="%.1f MB", help="Peak memory while generating greedily, minus memory in use before "
                                               "the variant was loaded (CPU: process resident memory; CUDA: "
                                               "allocated tensors)."),
    "Load (s)": Number(format="%.1f s", help="Wall time of load_model, quantization included."),
    "Speed (tok/s)": Number(format="%.2f tok/s", help="Greedy generation on this machine, prompt prefill included."),
    "Perplexity": Number(format="%.3f", help="exp(mean negative log-likelihood) on the reference text."),
    "ΔPPL vs baseline": Number(format="%+.3f", help="Perplexity minus the baseline's perplexity."),
    "ΔPPL vs baseline (%)": Number(format="%+.2f %%", help="ΔPPL as a share of the baseline's perplexity."),
    "KL mean (nats)": Number(format="%.5f nats", help="Mean KL(P_baseline ‖ P_variant) over the reference positions."),
    "KL p99 (nats)": Number(format="%.5f nats", help="99th percentile of the per-position KL divergence."),
    "Top-1 agreement (%)": Number(format="%.1f %%", help="Positions where the most likely next token equals the "
                                                         "baseline's."),
    "Greedy diverges at": st.column_config.TextColumn(
        help="First generated token (counting from 0) that differs from the baseline's greedy output."),
}
st.markdown("**Memory and speed**")
st.dataframe(Q.summary_table(results, Q.MEMORY_SPEED_COLUMNS), hide_index=True, key="q_table_memory",
             column_config=COLUMN_FORMATS)
st.markdown(f"**Quality versus {baseline}** (reference text, {first['reference_tokens']} tokens)")
st.dataframe(Q.summary_table(results, Q.QUALITY_COLUMNS), hide_index=True, key="q_table_quality",
             column_config=COLUMN_FORMATS)
st.download_button(
    "Download results (CSV)", Q.results_csv(results), file_name=f"quantization-{slug(stored['model'])}.csv",
    mime="text/csv", key="q_download",
    help="Every measured column (bytes, seconds, tokens/s, PPL, KL in nats) for all variants, incl. unavailable "
         "ones with their reason.")

# ---- Charts ----------------------------------------------------------------------------------
tab_tradeoff, tab_memory, tab_speed, tab_kl = st.tabs(
    ["Memory vs quality", "Memory", "Speed", "KL per position"])
with tab_tradeoff:
    quality = st.radio(
        "Quality measure", list(QUALITY_CHOICES), format_func=QUALITY_CHOICES.get, horizontal=True,
        key="q_quality_metric",
        help="What the vertical axis shows: KL divergence (nats) or perplexity change versus the baseline, or top-1 "
             "agreement (%).")
    st.plotly_chart(C.memory_quality_figure(results, quality), key="q_chart_tradeoff")
with tab_memory:
    st.plotly_chart(C.memory_bars_figure(results), key="q_chart_memory")
with tab_speed:
    st.plotly_chart(C.speed_figure(results), key="q_chart_speed")
with tab_kl:
    st.plotly_chart(C.kl_by_position_figure(results), key="q_chart_kl")

# ---- Outputs side by side ----------------------------------------------------------------------
st.subheader("Outputs side by side")
kind = st.radio(
    "Output", list(OUTPUT_KINDS), format_func=OUTPUT_KINDS.get, horizontal=True, key="q_output_kind",
    help="Greedy: always the most likely token. Sampled: random draws with the same seed for every variant. Tokens "
         "highlighted in red differ from the baseline's at that position; from the first divergence on, the "
         "contexts differ.")


def _diff_html(row) -> str:
    base_ids = base_row[f"{kind}_ids"]
    parts = []
    for entry in Q.token_diff(base_ids, row[f"{kind}_ids"], row[f"{kind}_tokens"]):
        token = html.escape(entry["token"]).replace("\n", "↵<br>")
        if row["variant"] == baseline or entry["same"]:
            parts.append(f"<span>{token}</span>")
        else:
            parts.append(f'<span style="background:#FECACA;border-radius:3px" title="differs from {baseline}">'
                         f"{token}</span>")
    return "".join(parts) or "<em>(no tokens)</em>"


rows = list(available.iterrows())
for start in range(0, len(rows), COLUMNS_PER_ROW):
    cols = st.columns(COLUMNS_PER_ROW)
    for col, (_, row) in zip(cols, rows[start:start + COLUMNS_PER_ROW]):
        with col.container(border=True):
            st.markdown(f"**{row['label']}**")
            divergence = row[f"{kind}_first_divergence"]
            if row["variant"] == baseline:
                st.caption("baseline")
            elif pd.isna(divergence):
                st.caption(f"identical to {baseline}")
            else:
                st.caption(f"diverges from {baseline} at token {int(divergence)}")
            st.markdown(f'<div style="font-family:monospace;font-size:0.9em;line-height:1.6">{_diff_html(row)}</div>',
                        unsafe_allow_html=True)

with st.expander("How these numbers are measured"):
    st.markdown(
        "- **Weight memory**: bytes of every tensor the loaded model holds, tied weights once, plus bitsandbytes' "
        "quantization state (4-bit absmax per 64 weights and code books; int8 row scales) that transformers' "
        "`get_memory_footprint()` leaves out. On CUDA the allocated-bytes growth is recorded too (CSV).\n"
        "- **Prediction**: the Memory planner's `core.plan.memory.weight_memory` for the same format: bitsandbytes "
        "quantizes the linear layers; embeddings, norms and lm_head stay in the unquantized dtype.\n"
        "- **Peak during generation**: CUDA: `torch.cuda.max_memory_allocated`. CPU: the process's peak resident "
        "memory (Linux VmHWM, reset just before generating; RSS sampled every 2 ms where the kernel does not keep "
        "that mark) minus the resident memory before the variant was "
        "loaded, so it includes the weights, the KV cache and the activations. It can read a little low when the "
        "allocator reuses memory the previous variant freed, and it counts everything else this server process "
        "does meanwhile. For int8/nf4/fp4 on CPU, the layers bitsandbytes keeps are copied out of the memory-mapped "
        "fp32 checkpoint first; otherwise the whole checkpoint would stay resident next to the 4-bit weights.\n"
        "- **Speed**: new tokens / wall time of the greedy generation, prompt prefill included.\n"
        "- **Quality** (as llama.cpp's `perplexity --kl-divergence`): perplexity = exp(mean negative log-likelihood) "
        "of the reference text; KL(P_baseline ‖ P_variant) of the next-token distributions at every position, "
        "mean and 99th percentile, in nats; top-1 agreement = share of positions where both pick the same most "
        "likely token.\n"
        "- Sources: LLM.int8() (Dettmers et al. 2022), QLoRA's NF4 and double quantization (Dettmers et al. 2023), "
        "transformers' bitsandbytes integration.")
