"""Evaluate: a bundled task run over prompt techniques and model variants, scored (accuracy / ROUGE), best first."""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from core.common import pace
from core.common.user_text import escape_markdown
from core.evaluate import charts, report, runner
from core.evaluate.tasks import TASKS
from core.evaluate.variants import ADAPTER, ENDPOINT, VARIANTS, adapter_files_from_zip, setups as build_setups
from core.run.models import ModelLoadError
from core.serve.endpoints import EndpointError
from views.components.columns import fitted_columns
from views.components import loglik_panel
from views.components.endpoint_panel import select_endpoint
from views.components.model_cache import cached_load_model


st.title("Evaluate")
st.caption("Which setup is best on a task? Runs a small bundled task set (CC0, written for LLM Lab; test items never "
           "appear in a prompt) through each prompt technique and model variant with greedy decoding, and scores "
           "every answer: accuracy for classification, ROUGE-1/2/L F1 (Google's rouge-score, stemmed) for "
           "summaries.")

mode = st.radio("Scoring", ["Generation", "Log-likelihood (lm-eval)"], horizontal=True, key="ev_mode",
                help="Generation: greedy answers over prompt techniques, scored by accuracy / ROUGE. Log-likelihood: "
                     "multiple choice and perplexity scored as lm-evaluation-harness scores them (the same numbers "
                     "`lm_eval` gives from the same task files), with standard errors and paired tests.")
if mode != "Generation":
    loglik_panel.render()
    st.stop()
# The task box has a row of its own: at 1,024 px a third of the width cut its label ("Review sentiment (classifica…").
task_key = st.selectbox("Task", list(TASKS), format_func=lambda k: TASKS[k].title, key="ev_task",
                        help="Review sentiment: one word, scored by accuracy. Dialogue summarization: one sentence, "
                             "scored by ROUGE against a reference summary.")
task = TASKS[task_key]
c2, c3 = st.columns([4, 1])
techniques = c2.multiselect("Prompt techniques", list(runner.TECHNIQUES),
                            default=[t for t in runner.TECHNIQUES if t != runner.COT], key="ev_techniques",
                            help="Zero-shot: the instruction and the question. One-shot / few-shot: 1 or 3 solved "
                                 "examples first (Brown et al. 2020). Zero-shot CoT: \"Let's think step by step.\" "
                                 f"draws up to {runner.COT_REASONING_TOKENS} tokens of reasoning, then an answer cue "
                                 "draws the answer (Kojima et al. 2022; slower).")
limit = c3.number_input("Items", min_value=1, max_value=len(task.items), value=min(8, len(task.items)), step=1,
                        key=f"ev_limit_{task_key}",
                        help=f"How many of the task's {len(task.items)} items to run (the first N).")
variants = st.multiselect("Model variants", list(VARIANTS), default=["fp32"], format_func=lambda k: VARIANTS[k].label,
                          key="ev_variants",
                          help="The bundled SmolLM2-135M-Instruct at each precision (int8 / NF4: bitsandbytes, see "
                               "the Quantization page), pruned copies of it (made when the run starts, see the "
                               "Optimize page), SmolLM2 with a fine-tuned adapter, or an endpoint: "
                               + " ".join(f"{v.label}: {v.help}" for v in VARIANTS.values()))
endpoint = None
if ENDPOINT in variants:
    endpoint = select_endpoint("ev_ep")
adapter = None
if ADAPTER in variants:
    finetune_run = st.session_state.get("ft_run")  # the Fine-tune page's run, in this browser session
    trained = getattr(finetune_run, "result", None)
    trained = trained if trained is not None and trained.adapter_files else None
    sources = (["Trained on the Fine-tune page"] if trained else []) + ["Upload an adapter zip"]
    source = st.radio("Adapter", sources, key="ev_adapter_source", horizontal=True,
                      help="The adapter (LoRA or prompt tuning) trained on the Fine-tune page in this session, or a "
                           "zip of PEFT's adapter_model.safetensors and adapter_config.json for SmolLM2-135M.")
    if trained is not None and source == sources[0]:
        adapter = dict(trained.adapter_files)
        loss = f", final loss {trained.last_loss:.3f} nats/token" if trained.last_loss is not None else ""
        st.caption(f"{trained.settings.method} adapter, {len(trained.steps)} steps{loss}.")
    else:
        upload = st.file_uploader("Adapter zip", type=["zip"], key="ev_adapter_zip",
                                  help="The zip the Fine-tune page gives under \"Download adapter (PEFT safetensors, "
                                       "zip)\".")
        if upload is not None:
            try:
                adapter = adapter_files_from_zip(upload.getvalue())
            except runner.EvaluationInputError as exc:
                st.error(escape_markdown(exc), icon=":material/error:")
with st.expander(f"The task's items ({len(task.items)}) and a prompt"):
    st.dataframe(pd.DataFrame([{"input": i.input, "reference": i.reference} for i in task.items]), hide_index=True)
    if techniques:
        from core.run.prompts import ZERO_SHOT_COT_TRIGGER, build_icl_prompt

        shown = techniques[-1] if techniques[-1] != runner.COT else "zero-shot"
        st.code(build_icl_prompt(task.prompts, shown, query=task.items[0].input)
                + (f" {ZERO_SHOT_COT_TRIGGER}" if techniques[-1] == runner.COT else ""), language=None)

problem = None
if not techniques:
    problem = "Choose at least one prompt technique."
elif not variants:
    problem = "Choose at least one model variant."
elif ENDPOINT in variants and endpoint is None:
    problem = "Choose the endpoint to evaluate, or take it out of the variants."
elif ADAPTER in variants and adapter is None:
    problem = "Train an adapter on the Fine-tune page or upload its zip, or take the adapter out of the variants."
planned = len(techniques) * len(variants) * int(limit)
if problem:
    st.warning(problem, icon=":material/edit:")
else:
    st.caption(runner.run_estimate(task_key, planned)["text"]
               + (" Zero-shot CoT draws two completions per item (reasoning, then the answer)."
                  if runner.COT in techniques else ""))
b1, b2, _ = st.columns([1, 1, 4])
go = b1.button("Run evaluation", type="primary", key="ev_run", disabled=problem is not None,
               help=f"{len(techniques) * len(variants) * int(limit)} greedy completions of up to "
                    f"{task.max_new_tokens} tokens each.")
b2.button("Stop", key="ev_stop", help="Stop after the current completion; the finished rows are kept.")

if go:
    st.session_state.pop("ev_result", None)
    partial = runner.EvalRun(task_key)
    st.session_state["ev_partial"] = partial
    st.session_state["ev_planned"] = planned
    clock: dict = {}  # the first completion's time and count: model loading is not a completion
    bar = st.progress(0.0, text="Loading the model…")
    try:
        def load(**options):
            return cached_load_model(None, device="cpu" if options.get("quantization") else "auto", **options)

        if any(VARIANTS[k].kind in ("pruned", "adapter") for k in variants):
            bar.progress(0.0, text="Loading the model and making the pruned / adapted copies…")
        setups = build_setups(variants, techniques, load, endpoint=endpoint, adapter=adapter)

        def on_row(row, done, total):
            partial.rows.append(row)
            if not clock:
                clock.update(t=time.perf_counter(), done=done)
            elif done > clock["done"]:
                pace.record(f"{runner.EVAL_PACE}.{task_key}", time.perf_counter() - clock["t"], done - clock["done"])
            bar.progress(done / total, text=f"{row['setup']}: item {row['item'] + 1} — {done}/{total} completions")

        result = runner.run_evaluation(task_key, setups, int(limit), on_row=on_row)
        st.session_state["ev_result"] = result
    except (ModelLoadError, runner.EvaluationInputError, EndpointError, ValueError) as exc:
        st.error(escape_markdown(exc), icon=":material/error:")
    finally:
        if "ev_result" in st.session_state:  # a finished run; a failed one leaves its rows for the next rerun
            st.session_state.pop("ev_partial", None)
        bar.empty()
elif st.session_state.get("ev_partial") is not None:
    partial = st.session_state.pop("ev_partial")  # Stop (a rerun) interrupted the run: keep its rows
    partial.stopped = True
    st.session_state["ev_result"] = partial

result: runner.EvalRun | None = st.session_state.get("ev_result")
if result is None or not result.rows:
    st.info("No evaluation yet: choose the setups and press **Run evaluation**.")
    st.stop()
if result.stopped:
    planned_shown = st.session_state.get("ev_planned")
    st.warning(f"Stopped after {len(result.rows)} of {planned_shown if planned_shown else '?'} completions; the "
               "finished ones are scored below.", icon=":material/stop_circle:")
st.subheader("Which setup is best")
st.success(runner.verdict(result))
frame = report.summary_frame(result)
score = runner.score_key(result.task)
st.dataframe(frame, hide_index=True, key="ev_summary", column_config=fitted_columns(frame, {
    "accuracy (%)": st.column_config.NumberColumn(format="%.1f %%", help="Share of items whose answer names the "
                                                                         "reference label."),
    "rouge1 F1": st.column_config.NumberColumn(format="%.3f", help="Unigram overlap F1 with the reference (0–1)."),
    "rouge2 F1": st.column_config.NumberColumn(format="%.3f", help="Bigram overlap F1 (0–1)."),
    "rougeL F1": st.column_config.NumberColumn(format="%.3f", help="Longest common subsequence F1 (0–1)."),
    "exact match (%)": st.column_config.NumberColumn(format="%.0f %%"),
    "seconds per item": st.column_config.NumberColumn(format="%.2f s", help="Wall time per completion here."),
}))
st.plotly_chart(charts.summary_figure(frame, score), key="ev_chart")
st.markdown("**Every answer, side by side**")
st.table(report.examples_frame(result), hide_index=True)  # wraps: a summary is a sentence a data grid would cut
reasoned = [r for r in result.rows if r.get("reasoning")]
if reasoned:
    with st.expander(f"Chain-of-thought reasoning ({len(reasoned)} answers)"):
        st.table(pd.DataFrame([{"setup": r["setup"], "item": r["item"], "reasoning": r["reasoning"],
                                "answer": r["answer"]} for r in reasoned]), hide_index=True)
d1, d2 = st.columns(2)
d1.download_button("Download CSV", report.run_csv(result), file_name=f"llm_lab_eval_{result.task}.csv",
                   mime="text/csv", key="ev_csv", on_click="ignore",
                   help="One row per completion: setup, input, reference, completion, answer and scores.")
d2.download_button("Download JSON", report.run_json(result), file_name=f"llm_lab_eval_{result.task}.json",
                   mime="application/json", key="ev_json", on_click="ignore",
                   help="The verdict, the summary and every completion.")
