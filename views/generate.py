"""Generate: live generation with every sampling control, and the probability behind every token."""
from __future__ import annotations

import threading

import streamlit as st

from core.run.generation import GenerationError, GenerationInputError, next_token_logits, prepare_prompt, stream_generation
from core.run.generation_charts import colored_tokens_html, display_token, shape_figure
from core.common.units import format_duration_s
from core.run.models import BUNDLED_DECODER, BUNDLED_ENCODER
from core.run.prompts import EXAMPLE_SETS, SHOT_COUNTS, build_icl_prompt
from views.components.fast_generation_panel import render_fast_generation_panel
from core.run.sampling import DECODING_MODES, DecodingSettings, generation_config_defaults, shape_distribution, shape_table
from core.common.user_text import code, escape_markdown
from views.components.compare_panel import render_compare_panel
from views.components.generation_result import render_generation_result, render_metric_row
from views.components.model_cache import load_model_or_error
from views.components.sampler_controls import MODE_HELP, more_sampler_controls, render_pipeline
from views.components.speculative_panel import render_speculative_panel
from views.components.technique_builder import technique_prompt_builder
from views.components.token_tools import render_token_tools
from views.components.queue_panel import render_limits_caption, wait_for_turn
from views.components.endpoint_panel import RUNTIME_HELP, RUNTIMES, render_endpoint_runtime

DEFAULTS = generation_config_defaults()  # transformers' GenerationConfig defaults

st.title("Generate")
st.caption(
    "Run a real language model token by token and see, for every token, how likely it was and what else the model "
    "considered — before and after temperature, top-k and top-p. The distributions are recorded inside "
    "transformers' own `generate()`, so what you see is exactly what was sampled from."
)

# ---------------------------------------------------------------------------------------------------------------------
# Model
if st.radio("Runtime", RUNTIMES, horizontal=True, key="gen_runtime", help=RUNTIME_HELP) != RUNTIMES[0]:
    render_endpoint_runtime("gen_ep")
    st.stop()
with st.expander("Model", expanded=False):
    model_cols = st.columns([3, 1, 1])
    model_name = model_cols[0].text_input(
        "Model (Hugging Face id or local folder)", value=BUNDLED_DECODER, key="gen_model",
        help=f"A causal language model. `{BUNDLED_DECODER}` is bundled and works offline; other ids must already be "
             "in the local Hugging Face cache (the Hub may be unreachable).",
    )
    dtype = model_cols[1].selectbox(
        "Precision", ["auto", "fp32", "bf16", "fp16"], key="gen_dtype",
        help="Number format of the weights: auto = fp32 on CPU, bf16 (or fp16) on a GPU. Lower precision halves "
             "memory; fp16 on a CPU runs but is slow because CPUs emulate it.",
    )
    device = model_cols[2].selectbox(
        "Device", ["auto", "cpu", "cuda", "mps"], key="gen_device",
        help="Where the model runs: auto picks a CUDA GPU, then an Apple GPU (MPS), then the CPU.",
    )

loaded = load_model_or_error(model_name, dtype=dtype, device=device)
if loaded is None:
    st.stop()
if loaded.kind != "decoder":
    st.error(
        f"{code(loaded.name)} is an {loaded.kind} model; this page generates with decoder (causal LM) models such as the "
        f"bundled `{BUNDLED_DECODER}`. (`{BUNDLED_ENCODER}` is an encoder: try it on the Attention page.)", icon=":material/block:",
    )
    st.stop()
st.caption(
    f"**{escape_markdown(loaded.name)}** · {loaded.num_parameters / 1e6:,.1f} M parameters · context window {loaded.context_window:,} "
    f"tokens · {loaded.dtype_name} on {loaded.device} · loaded in {format_duration_s(loaded.load_seconds)}"
    + (" · random weights" if loaded.random_weights else "")
)
for note in loaded.notes:
    st.info(note, icon=":material/info:")


# ---------------------------------------------------------------------------------------------------------------------
# Prompt
st.subheader("Prompt")
source = st.radio(
    "Prompt source", ["Write a prompt", "In-context learning builder", "Reasoning techniques"], horizontal=True,
    key="gen_prompt_source",
    help="Write any text, or build a zero-, one- or few-shot prompt: solved examples in the prompt teach the model "
         "a task without changing its weights (in-context learning, Brown et al. 2020). Reasoning techniques: "
         "chain-of-thought, ReAct and PAL prompts, with what each costs in tokens.",
)
if source == "Write a prompt":
    prompt = st.text_area(
        "Prompt", value="The capital of France is", key="gen_prompt", height=100,
        help="The text the model continues. With the chat template on, it is sent as a user message instead.",
    )
elif source == "In-context learning builder":
    icl_cols = st.columns([2, 2, 1])
    task_key = icl_cols[0].selectbox(
        "Task", list(EXAMPLE_SETS), format_func=lambda k: EXAMPLE_SETS[k].title, key="gen_icl_task",
        help="Which example set to draw solved examples from.",
    )
    shots_name = icl_cols[1].radio(
        "Examples in the prompt", list(SHOT_COUNTS), horizontal=True, key="gen_icl_shots", index=2,
        help="Zero-shot: only the instruction and your input; one-shot: one solved example first; few-shot: several.",
    )
    task = EXAMPLE_SETS[task_key]
    few_count = icl_cols[2].number_input(
        "Few-shot count", min_value=2, max_value=len(task.examples), value=min(3, len(task.examples)), step=1,
        key="gen_icl_k", disabled=shots_name != "few-shot",
        help="How many solved examples a few-shot prompt contains (more examples use more of the context window).",
    )
    query = st.text_area(
        "Your input", value=task.default_query, key=f"gen_icl_query_{task_key}", height=90,
        help="The new case the model should solve; the prompt ends right after its answer prefix.",
    )
    shots = SHOT_COUNTS[shots_name] if shots_name != "few-shot" else int(few_count)
    prompt = build_icl_prompt(task, shots, query)
if source == "Reasoning techniques":
    prompt = technique_prompt_builder(loaded)  # chain-of-thought, ReAct, PAL, with token costs

chat_possible = loaded.has_chat_template
use_chat = st.toggle(
    "Use the chat template", value=False, key="gen_chat", disabled=not chat_possible,
    help="Instruct models were fine-tuned on conversations in a fixed format; the template wraps your prompt as a "
         "user turn and opens the assistant's reply. Off: the raw text is continued as is.",
)
if not chat_possible:
    st.caption("This model has no chat template, so prompts are sent as plain text.")

prompt_problem = None
try:
    preview = prepare_prompt(loaded, prompt, 1, use_chat)
except GenerationInputError as exc:
    preview, prompt_problem = None, str(exc)
if preview is not None:
    share = min(preview.original_tokens / preview.context_window, 1.0)
    with st.expander(f"Exact prompt the model reads — {preview.original_tokens:,} tokens of "
                     f"{preview.context_window:,} ({share:.1%} of the context window)", expanded=source != "Write a prompt"):
        st.code(preview.text, language=None, wrap_lines=True)
        st.progress(share, text=f"{preview.original_tokens:,} / {preview.context_window:,} tokens")
else:
    st.warning(prompt_problem, icon=":material/edit:")


# ---------------------------------------------------------------------------------------------------------------------
generate_tab, shape_tab, compare_tab, fast_tab = st.tabs(
    [":material/edit_note: Generate", ":material/tune: Shape the distribution", ":material/compare: Compare settings",
     ":material/bolt: Fast generation (GPU)"])

with generate_tab:
    mode = st.radio("Decoding", list(DECODING_MODES), horizontal=True, key="gen_mode", help=MODE_HELP,
                    index=1 if DEFAULTS["do_sample"] else 0)
    sampling = mode == "sampling"
    c1, c2, c3, c4 = st.columns(4)
    temperature = c1.slider(
        "Temperature", 0.0, 2.0, float(DEFAULTS["temperature"]), 0.05, key="gen_temperature", disabled=not sampling,
        help="Divides the logits before softmax: below 1 sharpens the distribution (safer), above 1 flattens it "
             "(more surprising); 0 means greedy.",
    )
    top_k = c2.number_input(
        "Top-k", 0, 1000, int(DEFAULTS["top_k"]), 1, key="gen_top_k", disabled=not sampling,
        help="Sample only among the k most likely tokens (0 = no limit).",
    )
    top_p = c3.slider(
        "Top-p (nucleus)", 0.0, 1.0, float(DEFAULTS["top_p"]), 0.01, key="gen_top_p", disabled=not sampling,
        help="Sample only among the smallest set of most likely tokens whose probabilities add up to p (1 = no limit).",
    )
    penalty = c4.slider(
        "Repetition penalty", 0.5, 2.0, float(DEFAULTS["repetition_penalty"]), 0.05, key="gen_penalty",
        help="Above 1 makes tokens already in the text less likely (CTRL, Keskar et al. 2019); 1 = off.",
    )
    c5, c6, c7 = st.columns(3)
    max_new = c5.number_input(
        "Max new tokens", 1, int(loaded.context_window), int(DEFAULTS["max_length"]), 1, key="gen_max_new",
        help="Upper limit on generated tokens; generation also ends at the model's end-of-text token.",
    )
    beams = c6.number_input(
        "Beams", 2, 8, 4, 1, key="gen_beams", disabled=mode != "beam search",
        help="How many partial sequences beam search keeps at each step (GenerationConfig default 1 = no beam search).",
    )
    seed = c7.number_input(
        "Seed", 0, 2**31 - 1, 0, 1, key="gen_seed",
        help="Seeds the random number generator: the same seed and settings give the same sample.",
    )
    settings = DecodingSettings.for_mode(
        mode, temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), repetition_penalty=float(penalty),
        max_new_tokens=int(max_new), num_beams=int(beams), seed=int(seed), **more_sampler_controls(mode, "gen"),
    )

    button_cols = st.columns([1, 1, 4])
    run = button_cols[0].button("Generate", type="primary", key="gen_run", disabled=preview is None,
                                help="Generate from the prompt with these settings, streaming token by token.")
    stop = button_cols[1].button("Stop", key="gen_stop", help="Stop the running generation and keep what it produced.")
    with button_cols[2]:
        render_limits_caption()

    live_text = st.empty()
    live_metrics = st.empty()
    # The finished result lives in one placeholder drawn before any streaming: a new run replaces it at once,
    # instead of leaving the previous result greyed out under the new tokens until the run ends.
    result_area = st.empty()

    # With Streamlit's fast reruns, pressing Stop (or changing any control) starts this new run while the previous
    # one is still streaming in its own thread. Stop that generation, wait for its run to let go, keep its tokens.
    running = st.session_state.get("gen_running")
    if running is not None:
        previous_stream, previous_done = running
        previous_stream.stop()
        previous_done.wait(timeout=60)
        st.session_state["gen_result"] = previous_stream.snapshot()
        st.session_state["gen_running"] = None

    if run:
        try:
            stream = stream_generation(loaded, prompt, settings, use_chat_template=use_chat)
        except GenerationInputError as exc:
            st.error(str(exc), icon=":material/edit:")
        else:
            st.session_state.pop("gen_result", None)
            st.session_state["gen_run_id"] = st.session_state.get("gen_run_id", 0) + 1
            handoff = (stream, threading.Event())
            st.session_state["gen_running"] = handoff
            try:
                wait_for_turn(stream, live_text)  # live place in line while other sessions' runs go first
                if stream.streamed:
                    for _ in stream:
                        live_text.markdown(colored_tokens_html(stream.steps), unsafe_allow_html=True)
                        with live_metrics.container():
                            render_metric_row(st, None, stream.steps, stream.queue_wait_s)
                else:
                    with st.spinner(f"Beam search with {settings.num_beams} beams (not streamed)…", show_time=True):
                        for _ in stream:
                            pass
            except GenerationError as exc:
                st.error(f"{exc}", icon=":material/error:")
            finally:
                # Also runs when Stop (or any other control) interrupts this script mid-stream: the tokens produced
                # so far are kept and shown on the rerun as a "stopped" result.
                try:
                    stream.close()
                    finished = stream.snapshot()
                finally:
                    handoff[1].set()  # lets the newer run (see above) take this run's tokens over
                # In a stopped run this write raises StopException (Streamlit's), which is fine: the newer run
                # stores the same snapshot.
                st.session_state["gen_result"] = finished
                if st.session_state.get("gen_running") is handoff:
                    st.session_state["gen_running"] = None
            live_text.empty()
            live_metrics.empty()
    elif stop and st.session_state.get("gen_result") is None:
        st.caption("Nothing is running.")

    result = st.session_state.get("gen_result")
    with result_area.container():
        if result is not None:
            if result.stop_reason == "stopped":
                st.warning(f"Stopped after {result.new_tokens} tokens (Stop, or a control changed while generating).",
                           icon=":material/stop_circle:")
            render_generation_result(result, key_prefix=f"gen_{st.session_state.get('gen_run_id', 0)}")
            render_token_tools(loaded, prompt, use_chat, result,
                               key_prefix=f"gen_{st.session_state.get('gen_run_id', 0)}")
        elif not run:
            st.caption("Press **Generate** to stream a completion.")
    render_speculative_panel(loaded, prompt, use_chat)


# ---------------------------------------------------------------------------------------------------------------------
with shape_tab:
    st.write(
        "One next-token distribution — the model's prediction right after your prompt — redrawn as you move the "
        "controls. The model runs once; temperature, top-k and top-p are applied by the same transformers "
        "warpers `generate()` uses."
    )
    if preview is None:
        st.warning(prompt_problem, icon=":material/edit:")
    else:
        # One forward pass over the whole prompt: run only when asked (a long prompt takes a while), and kept per
        # (model, precision, device, prompt tokens) so the controls below redraw without running the model again.
        cache_key = (loaded.name, loaded.dtype_name, str(loaded.device), tuple(preview.input_ids[0].tolist()))
        stored = st.session_state.get("shape_logits")
        logits = stored[1] if stored is not None and stored[0] == cache_key else None
        if logits is None:
            if st.button("Compute the next-token distribution", key="shape_run", type="primary",
                         help=f"Runs the model once on the prompt ({preview.original_tokens:,} tokens)."):
                with st.spinner(f"Running the model once on the prompt ({preview.original_tokens:,} tokens)…",
                                show_time=True):
                    logits = next_token_logits(loaded, preview)
                st.session_state["shape_logits"] = (cache_key, logits)
            else:
                st.caption("Computed on demand: the prompt " + ("changed since the last computation." if stored
                                                                 else "has not been run yet."))
    if preview is not None and logits is not None:
        s1, s2, s3, s4 = st.columns(4)
        shape_temperature = s1.slider(
            "Temperature", 0.0, 3.0, 1.0, 0.05, key="shape_temperature",
            help="Divides the logits: low values concentrate probability on the top token, high values spread it out; "
                 "0 = greedy (one-hot).",
        )
        shape_top_k = s2.slider("Top-k", 0, 200, int(DEFAULTS["top_k"]), 1, key="shape_top_k",
                                help="Keep only the k most likely tokens (0 = keep all).")
        shape_top_p = s3.slider("Top-p", 0.0, 1.0, 1.0, 0.01, key="shape_top_p",
                                help="Keep the smallest set of top tokens whose probabilities sum to p (1 = keep all).")
        shape_n = s4.slider("Tokens shown", 5, 40, 15, 1, key="shape_n",
                            help="How many of the model's most likely tokens to draw.")
        shape_settings = DecodingSettings(do_sample=shape_temperature > 0, temperature=shape_temperature or 1.0,
                                          top_k=shape_top_k, top_p=shape_top_p,
                                          **more_sampler_controls("sampling" if shape_temperature > 0 else "greedy", "shape"))
        shaped = shape_distribution(logits, shape_settings)
        if shape_temperature == 0:
            st.info("Temperature 0 means greedy decoding: all probability goes to the single most likely token.", icon=":material/info:")
        m = st.columns(4)
        m[0].metric("Candidate tokens", f"{shaped.kept_count:,}", help="Tokens that can still be drawn after top-k/top-p.")
        m[1].metric("Top token probability", f"{float(shaped.filtered.max()):.1%}",
                    help="Probability of the most likely token in the distribution sampled from.")
        m[2].metric("Entropy (model)", f"{shaped.entropy_bits('raw'):.2f} bits",
                    help="Uncertainty of the model's raw distribution, H = −Σ p log₂ p.")
        m[3].metric("Entropy (sampled from)", f"{shaped.entropy_bits('filtered'):.2f} bits",
                    help="Uncertainty left after temperature and filtering; 0 bits = deterministic.")
        decode = lambda token_id: loaded.tokenizer.decode([token_id])  # noqa: E731
        rows = shape_table(shaped, decode, n=shape_n)
        st.plotly_chart(shape_figure(rows, title=f"Next token after: …{display_token(preview.text[-40:])}"),
                        width="stretch", key="shape_chart")
        st.caption("Hollow bars: tokens removed by top-k / top-p (probability 0 in the distribution sampled from).")
        render_pipeline(logits, shape_settings, preview.input_ids, decode, key="shape_pipeline", n=shape_n)


# ---------------------------------------------------------------------------------------------------------------------
with compare_tab:
    render_compare_panel(loaded, prompt, use_chat, ready=preview is not None)

with fast_tab:
    render_fast_generation_panel(loaded, prompt, int(max_new), key="fastgen")
