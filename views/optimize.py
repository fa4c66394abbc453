"""Optimize: pruning and distillation beside quantization, measured, and every variant lined up on memory, speed,
quality and a task score."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.run.models import BUNDLED_DECODER, ModelLoadError
from core.optimize import charts, distillation, variants
from core.common import pace
from core.common.scheduler import QueueLeft
from core.common.units import format_magnitude
from core.common.user_text import escape_markdown
from views.components.columns import fitted_columns
from views.components.whole_number import whole_number_input
from views.components.clipped_text import clipped_text_input
from views.components.model_cache import cached_load_model

DISTIL_PACE = "optimize.distillation-step"

st.title("Optimize")
st.caption("Make a model smaller or faster and see what it costs: prune weights or whole layers, distil a pruned "
           "student from the full model, and line fp32, int8, NF4, pruned and distilled up on measured memory, "
           "speed, perplexity and a task score. Everything is measured here, on this machine.")

model_name = st.text_input("Model", value="", placeholder=f"{BUNDLED_DECODER} (bundled)", key="op_model",
                           help="A causal language model: empty for the bundled SmolLM2-135M-Instruct, or a Hugging "
                                "Face id / local folder this server may load. It is loaded in fp32.")


def _base():
    try:
        return cached_load_model(model_name.strip() or None, dtype="fp32", device="auto")
    except ModelLoadError as exc:
        st.error(escape_markdown(exc), icon=":material/error:")
        return None


def _failed(exc: Exception, partial_key: str, what: str) -> None:
    """A run ended in an error: drop its partial results (a stopped run keeps them) and say why, in the page."""
    st.session_state.pop(partial_key, None)
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    plain = isinstance(exc, (ValueError, QueueLeft, distillation.DistillationBusy))  # user-facing messages
    st.error(escape_markdown(text if plain else f"{what} failed: {text}"), icon=":material/error:")


def _mb(value) -> str:
    return f"{value / 1e6:,.1f} MB"


QUALITY_CONFIG = {
    # Perplexity's text comes from _readable (a pandas Styler): 8.72 × 10²⁶ when layers are gone, not 8.72e+26. A
    # text column shows it as written (a number column re-parses it and flags "8.72 × 10²⁶" as invalid).
    "Perplexity": st.column_config.TextColumn(alignment="right", help="exp(mean negative log-likelihood) of the "
                                                                     "bundled reference text; lower is better."),
    "KL to the dense model (nats)": st.column_config.NumberColumn(
        format="%.4f", help="Mean KL divergence of the next-token distributions from the dense fp32 model's."),
    "Top-1 agreement (%)": st.column_config.NumberColumn(format="%.1f %%", help="Positions where the most likely "
                                                                               "next token equals the dense model's."),
    "Weights (MB)": st.column_config.NumberColumn(format="%.1f", help="Bytes of every tensor the model holds "
                                                                     "(MB = 10⁶ bytes)."),
    "Parameters (M)": st.column_config.NumberColumn(format="%.1f", help="Distinct parameters, millions."),
    "Zeros (%)": st.column_config.NumberColumn(format="%.1f %%", help="Weights of the transformer layers' linear "
                                                                     "layers that are exactly zero."),
    "Speed (tok/s)": st.column_config.NumberColumn(format="%.1f", help="Greedy tokens per second, prompt included."),
    "Generation peak (MB)": st.column_config.NumberColumn(format="%.1f", help="Resident-memory peak of the "
                                                                             "generation above the memory in use "
                                                                             "when it started (KV cache, "
                                                                             "activations)."),
    "Review sentiment, few-shot (% correct)": st.column_config.NumberColumn(
        format="%.0f %%", help="Accuracy on the Evaluate page's review-sentiment items, few-shot prompt."),
}



def _readable(table: pd.DataFrame):
    """The table with its perplexities written for people (format_magnitude: '18.23', '8.72 × 10²⁶'); the numbers
    underneath stay numbers, so the column still sorts."""
    return table.style.format({"Perplexity": format_magnitude}, subset=["Perplexity"], na_rep="")


prune_tab, distil_tab, lineup_tab = st.tabs(["Prune", "Distil", "Line-up"])

# ---------------------------------------------------------------------------------------------------------------
with prune_tab:
    st.markdown("Unstructured pruning zeroes single weights (**magnitude**: the smallest |W|; **Wanda**: the smallest "
                "|W|·‖X‖ per output row, Sun et al. 2023); **2:4** keeps 2 of every 4 consecutive weights (the "
                "pattern sparse tensor cores run); **layer removal** takes out whole transformer layers with the "
                "lowest Block Influence (ShortGPT, Men et al. 2024); **head removal** takes out, in every layer, "
                "the key/value head group (with its query heads) that adds least to the output (Michel et al. "
                "2019; Minitron, Muralidharan et al. 2024).")
    st.info("Zeros in dense tensors save no memory and no time here: PyTorch's dense kernels multiply them like any "
            "number (on this CPU and on a GPU without sparse kernels). Only removed layers and heads shrink the "
            "weights and the time, as the table shows.", icon=":material/info:")
    p1, p2, p3 = st.columns([2, 2, 1])
    methods = p1.multiselect("Methods", list(variants.PRUNING_METHODS), default=["magnitude", "wanda",
                                                                               "remove-layers"], key="op_methods",
                             help="Each method runs on a fresh copy of the model; the dense model is measured "
                                  "first as the baseline.")
    levels = p2.multiselect("Sparsities (magnitude, Wanda)", [10, 20, 30, 40, 50, 60, 70], default=[10, 30, 50, 70],
                            key="op_sparsities", format_func=lambda v: f"{v} %",
                            help="Share of each linear layer's weights set to zero. 2:4 is always 50 %.")
    remove, bad_remove = whole_number_input(p3, "Layers to remove", lo=1, hi=60, value=4, key="op_remove",
                                            help="For layer removal: how many whole transformer layers to take out.")
    prompt = clipped_text_input(st, "Prompt for the side-by-side answers", value=variants.DEFAULT_PROMPT,
                                key="op_prompt", max_chars=2000, what="The prompt",
                                help="Each variant answers it greedily (up to 32 new tokens).")
    problem = None
    if bad_remove and "remove-layers" in methods:
        problem = bad_remove
    elif not methods:
        problem = "Choose at least one pruning method."
    elif {"magnitude", "wanda"} & set(methods) and not levels:
        problem = "Choose at least one sparsity for magnitude or Wanda."
    elif not prompt.strip():
        problem = "The prompt is empty: type a prompt for the variants to answer."
    if problem:
        st.warning(problem, icon=":material/edit:")
    else:
        st.caption(variants.study_estimate(methods, [v / 100 for v in levels])["text"])
    b1, b2, _ = st.columns([1, 1, 4])
    go_prune = b1.button("Prune and measure", type="primary", key="op_prune_run", disabled=problem is not None,
                         help="Prunes a copy for every method and sparsity, then measures each (a few seconds per "
                              "variant on a CPU).")
    b2.button("Stop", key="op_prune_stop", help="Stop after the current variant; the measured rows are kept.")
    if go_prune:
        st.session_state.pop("op_prune_rows", None)
        base = _base()
        if base is not None:
            partial: list[dict] = []
            st.session_state["op_prune_partial"] = partial
            st.session_state["op_prune_planned"] = len(variants.study_plan(methods, [v / 100 for v in levels]))
            bar = st.progress(0.0, text="Measuring the dense model…")
            started = time.perf_counter()
            try:
                def on_row(row, done, total):
                    partial.append(row)
                    pace.record(variants.PRUNE_PACE, time.perf_counter() - started, done)  # kept if Stop ends the study
                    bar.progress(done / total, text=f"{row['variant']}: measured ({done}/{total})")

                rows = variants.pruning_study(base, methods, [v / 100 for v in levels], int(remove), prompt=prompt,
                                              on_row=on_row)
                st.session_state["op_prune_rows"] = rows
                st.session_state.pop("op_prune_partial", None)
            except (ValueError, RuntimeError, MemoryError) as exc:  # VariantError, PruningError, QueueLeft, OOM
                _failed(exc, "op_prune_partial", "Pruning")
            finally:  # a refused choice must not leave "Measuring the dense model…" above its message
                bar.empty()
            # Stop reruns the page in the middle of the study: the partial rows stay in the session for that rerun
    elif st.session_state.get("op_prune_partial") is not None:  # Stop (a rerun) interrupted the study
        st.session_state["op_prune_rows"] = st.session_state.pop("op_prune_partial")
        st.session_state["op_prune_stopped"] = True
    rows = st.session_state.get("op_prune_rows")
    if rows:
        if st.session_state.pop("op_prune_stopped", False):
            planned = st.session_state.get("op_prune_planned")
            st.warning(f"Stopped after {len(rows)} of {planned if planned else '?'} variants; the measured ones are "
                       "kept.", icon=":material/stop_circle:")
        table = variants.lineup_table(rows).drop(columns=["Review sentiment, few-shot (% correct)"])
        st.dataframe(_readable(table), hide_index=True, key="op_prune_table",
                     column_config=fitted_columns(table, QUALITY_CONFIG))
        if charts.has_sparsity_spread(rows):
            c1, c2 = st.columns(2)
            c1.plotly_chart(charts.sparsity_figure(rows, "perplexity"), key="op_sparsity_ppl")
            c2.plotly_chart(charts.sparsity_figure(rows, "kl_mean_nats"), key="op_sparsity_kl")
        else:
            st.caption("No chart against sparsity: layer and head removal add no zeros (every variant here sits at "
                       "the model's natural ~0 %), so the table compares them. Add magnitude, Wanda or 2:4 for "
                       "quality against sparsity.")
        st.markdown("**Answers side by side**")
        # a wrapping table: an answer is a sentence, which a data grid cuts at its column's edge
        st.table(pd.DataFrame([{"variant": r["variant"], "answer": r["answer"]} for r in rows]), hide_index=True)
        d1, d2 = st.columns(2)
        d1.download_button("Download CSV", variants.rows_csv(rows), file_name="llm_lab_pruning.csv",
                           mime="text/csv", key="op_prune_csv", on_click="ignore",
                           help="One row per variant: bytes, parameters, zeros, speed, quality, answer.")
        d2.download_button("Download JSON", variants.rows_json(rows), file_name="llm_lab_pruning.json",
                           mime="application/json", key="op_prune_json", on_click="ignore")
    else:
        st.info("No pruning run yet: choose methods and press **Prune and measure**.")

# ---------------------------------------------------------------------------------------------------------------
with distil_tab:
    st.markdown("A student learns the teacher's **soft labels**: its next-token distribution at a temperature T > 1, "
                "which keeps what the teacher thinks is almost right (Hinton et al. 2015). Here the student is the "
                "model with its least influential layers removed, and it is trained on a bundled text with "
                "T²·KL to the teacher, then scored on a different text: prune, then distil (Minitron, "
                "Muralidharan et al. 2024).")
    t1, t2 = st.columns([3, 1])
    soft_prompt = clipped_text_input(t1, "Teacher's prompt", value="The capital of France is", key="op_soft_prompt",
                                     max_chars=2000, what="The teacher's prompt",
                                     help="Plain text (no chat template); the chart shows the teacher's "
                                          "distribution of the next token.")
    temperature = t2.slider("Temperature T", min_value=1.0, max_value=10.0, value=distillation.DEFAULT_TEMPERATURE,
                            step=0.5, key="op_temperature",
                            help="Soft labels: softmax(logits / T). T = 1 is the model's own distribution; higher T "
                                 "spreads it. The same T is used in training below.")
    if st.button("Show soft labels", key="op_soft_run", help="One forward pass of the teacher."):
        base = _base()
        if base is not None:
            try:
                logits = distillation.next_token_logits(base, soft_prompt)
                st.session_state["op_soft"] = (distillation.temperature_table(logits, base.tokenizer,
                                                                              (1.0, temperature)),
                                               [distillation.entropy_bits(distillation.soft_targets(logits, t))
                                                for t in (1.0, temperature)], temperature)
            except distillation.DistillationError as exc:
                st.error(escape_markdown(exc), icon=":material/error:")
    soft = st.session_state.get("op_soft")
    if soft:
        table, entropies, shown_t = soft
        st.plotly_chart(charts.temperature_figure(table), key="op_soft_chart")
        st.caption(f"Entropy of the whole distribution: {entropies[0]:.2f} bits at T = 1, {entropies[1]:.2f} bits at "
                   f"T = {shown_t:g}.")
        st.dataframe(pd.DataFrame(table), hide_index=True, key="op_soft_table",
                     column_config={c: st.column_config.NumberColumn(format="%.2f %%") for c in table[0]
                                    if c.startswith("p at")})

    st.markdown("**Prune, then distil**")
    s1, s2, s3, s4 = st.columns(4)
    d_remove, bad_d_remove = whole_number_input(
        s1, "Layers to remove", lo=1, hi=60, value=distillation.DEFAULT_REMOVE, key="op_d_remove",
        help="The student is the teacher without this many layers (lowest Block Influence).")
    d_steps, bad_d_steps = whole_number_input(
        s2, "Steps", lo=1, hi=distillation.MAX_STEPS, value=distillation.DEFAULT_STEPS, key="op_d_steps",
        help="Training steps of one window each (a few seconds per step for SmolLM2 on a CPU).")
    d_lr = s3.select_slider("Learning rate", options=[1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
                            value=distillation.DEFAULT_LEARNING_RATE, key="op_d_lr", format_func=lambda v: f"{v:g}",
                            help="AdamW's learning rate for every weight of the student.")
    d_seq = s4.select_slider("Tokens per step", options=[32, 64, 128, 256], value=distillation.DEFAULT_SEQ_LEN,
                             key="op_d_seq", help="Window of the training text per step.")
    distil_problem = bad_d_remove or bad_d_steps
    if distil_problem:
        st.warning(distil_problem, icon=":material/edit:")
    elif pace.measured(DISTIL_PACE) is not None:
        st.caption(pace.estimate(DISTIL_PACE, int(d_steps), "step", 0.0, "")["text"]
                   + " Then the student is scored (about as long as one pruned variant).")
    else:
        st.caption("No distillation step measured here yet: the first run shows its pace (a few seconds per step "
                   "for SmolLM2 on a CPU), and the next one is estimated from it.")
    e1, e2, _ = st.columns([1, 1, 4])
    go_distil = e1.button("Distil", type="primary", key="op_distil_run", disabled=distil_problem is not None,
                          help=f"Trains the student at T = {temperature:g}, then scores it on the reference text.")
    e2.button("Stop", key="op_distil_stop", help="Stop training; the loss so far is kept (a stopped run is not "
                                                 "scored).")
    if go_distil:
        st.session_state.pop("op_distil", None)
        base = _base()
        if base is not None:
            partial = {"losses": [], "temperature": temperature, "planned": int(d_steps)}
            st.session_state["op_distil_partial"] = partial
            bar = st.progress(0.0, text="Starting…")
            chart = st.empty()
            started = time.perf_counter()
            try:
                def on_step(p):
                    partial["losses"].append(p.loss)
                    pace.record(DISTIL_PACE, time.perf_counter() - started, len(partial["losses"]))
                    chart.plotly_chart(charts.loss_figure(partial["losses"], temperature), key=f"op_loss_{p.step}")

                result = distillation.prune_and_distil(
                    base, int(d_remove), int(d_steps), temperature, float(d_lr), int(d_seq), on_step=on_step,
                    progress=lambda fraction, message: bar.progress(min(1.0, fraction), text=message))
                st.session_state["op_distil"] = result
                st.session_state.pop("op_distil_partial", None)
                bar.empty()
                chart.empty()
            except (ValueError, RuntimeError, MemoryError) as exc:  # bad input, busy, QueueLeft, OOM
                _failed(exc, "op_distil_partial", "Distillation")
            # Stop reruns the page in the middle of training: the losses so far stay in the session for that rerun
    elif st.session_state.get("op_distil_partial") is not None:
        stopped = st.session_state.pop("op_distil_partial")
        st.warning(f"Stopped after {len(stopped['losses'])} of {stopped.get('planned', '?')} steps; the student was "
                   "not scored.",
                   icon=":material/stop_circle:")
        if stopped["losses"]:
            st.plotly_chart(charts.loss_figure(stopped["losses"], stopped["temperature"]), key="op_loss_stopped")
    result: distillation.DistilResult | None = st.session_state.get("op_distil")
    if result is not None:
        recovered = result.kl_recovered_pct
        st.success(f"Removing layers {', '.join(map(str, result.removed))} ({result.teacher_layers} → "
                   f"{result.student_layers} layers, {_mb(result.teacher_weight_bytes)} → "
                   f"{_mb(result.student_weight_bytes)}) raised the KL to the teacher to "
                   f"{result.pruned['kl_mean_nats']:.3f} nats; {len(result.losses)} distillation steps at "
                   f"T = {result.temperature:g} brought it to {result.distilled['kl_mean_nats']:.3f} nats "
                   f"({recovered:+.1f} % of it recovered) on the held-out reference text.")
        m = st.columns(3)
        m[0].metric("Teacher perplexity", f"{result.teacher['perplexity']:.2f}")
        m[1].metric("Pruned student", f"{result.pruned['perplexity']:.2f}", help="Perplexity before training.")
        m[2].metric("Distilled student", f"{result.distilled['perplexity']:.2f}",
                    delta=f"{result.distilled['perplexity'] - result.pruned['perplexity']:+.2f}", delta_color="inverse",
                    help="Perplexity after training, versus the pruned student.")
        st.dataframe(pd.DataFrame(result.score_rows()), hide_index=True, key="op_distil_table", column_config={
            "perplexity": st.column_config.NumberColumn(format="%.2f", help="On the held-out reference text."),
            "KL to teacher (nats)": st.column_config.NumberColumn(format="%.4f"),
            "top-1 agreement (%)": st.column_config.NumberColumn(format="%.1f %%")})
        st.plotly_chart(charts.loss_figure(result.losses, result.temperature), key="op_loss_final")
        st.download_button("Download JSON", variants.rows_json([], distillation=result.to_dict()),
                           file_name="llm_lab_distillation.json", mime="application/json", key="op_distil_json",
                           on_click="ignore", help="Settings, the loss of every step and the scores.")

# ---------------------------------------------------------------------------------------------------------------
with lineup_tab:
    st.markdown("The same model as fp32, int8 and NF4 (bitsandbytes), with layers removed, and the distilled "
                "student from the Distil tab, all measured by one instrument.")
    student = st.session_state.get("op_distil")
    kinds = st.multiselect("Variants", list(variants.LINEUP_KINDS),
                           default=[k for k in variants.LINEUP_KINDS if k != "distilled" or student is not None],
                           key="op_lineup_kinds",
                           help="'pruned' removes the number of layers set on the Prune tab; 'distilled' needs a "
                                "finished run on the Distil tab.")
    task_items = st.number_input("Task items", min_value=0, max_value=16, value=8, step=1, key="op_task_items",
                                 help="Review-sentiment items each variant answers few-shot (0: skip the task).")
    if "distilled" in kinds and student is None:
        st.warning("No distilled student yet: run the Distil tab first, or the row is left out.",
                   icon=":material/info:")
    if st.button("Line them up", type="primary", key="op_lineup_run", disabled=not kinds,
                 help="Loads or builds each variant in turn and measures it (about a minute for all five)."):
        base = _base()
        if base is not None:
            bar = st.progress(0.0, text="Scoring the dense model…")
            try:
                st.session_state["op_lineup"] = variants.lineup(
                    base, kinds, pruned={"layers": int(remove)},
                    distilled_model=student.student if student is not None else None,
                    task_limit=int(task_items) or None,
                    progress=lambda fraction, message: bar.progress(min(1.0, fraction), text=message))
            except (ValueError, RuntimeError, MemoryError) as exc:
                _failed(exc, "op_lineup", "The line-up")
            finally:
                bar.empty()
    rows = st.session_state.get("op_lineup")
    if rows:
        for r in rows:
            if "reason" in r:
                st.warning(f"{r['variant']}: {escape_markdown(r['reason'])}", icon=":material/block:")
        table = variants.lineup_table(rows)
        st.dataframe(_readable(table), hide_index=True, key="op_lineup_table",
                     column_config=fitted_columns(table, QUALITY_CONFIG))
        st.plotly_chart(charts.lineup_figure(table), key="op_lineup_chart")
        d1, d2 = st.columns(2)
        d1.download_button("Download CSV", variants.rows_csv(rows), file_name="llm_lab_optimize.csv",
                           mime="text/csv", key="op_lineup_csv", on_click="ignore")
        d2.download_button("Download JSON", variants.rows_json(rows), file_name="llm_lab_optimize.json",
                           mime="application/json", key="op_lineup_json", on_click="ignore")
    else:
        st.info("No line-up yet: choose the variants and press **Line them up**.")
