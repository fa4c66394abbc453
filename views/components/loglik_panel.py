"""The Evaluate page's log-likelihood mode: lm-eval tasks (bundled or uploaded) on model variants, every score with
its standard error, the paired test between variants, why two runs differ, and lm-eval's results JSON / CSV."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.common.user_text import escape_markdown
from core.evaluate import (TaskFileError, UploadError, items_csv, load_tasks, paired, results_json, run_tasks,
                           task_from_items, task_from_yaml, why_differ)
from core.evaluate.runner import EvaluationInputError
from core.evaluate.variants import ENDPOINT, VARIANTS
from core.run.models import ModelLoadError
from core.serve.endpoints import EndpointError
from views.components.endpoint_panel import select_endpoint
from views.components.model_cache import cached_load_model

UPLOAD = "(upload your own items)"
LOCAL = [k for k, v in VARIANTS.items() if v.kind in ("precision", "pruned")]


def _uploaded_task():
    """The task of the uploaded file(s), or None; a bad file is explained."""
    files = st.file_uploader("Items (JSONL or CSV), or an lm-eval task YAML with its JSONL", key="ll_upload",
                             type=["jsonl", "json", "csv", "yaml", "yml"], accept_multiple_files=True,
                             help="JSONL / CSV rows: question, choices (a JSON list, or separated by | in CSV), "
                                  "answer (index from 0 or the choice's text); or text alone for perplexity. Or an "
                                  "lm-eval YAML (doc_to_text, doc_to_choice, doc_to_target, num_fewshot…) with the "
                                  "JSONL its data_files names. Up to 5 MB and 5,000 items; every bad row is named by "
                                  "its line.")
    if not files:
        return None
    try:
        yamls = [f for f in files if f.name.lower().endswith((".yaml", ".yml"))]
        if yamls:
            return task_from_yaml(yamls[0].getvalue(), {f.name: f.getvalue() for f in files if f not in yamls})
        return task_from_items(files[0].getvalue(), files[0].name, name=files[0].name.rsplit(".", 1)[0])
    except (UploadError, TaskFileError) as exc:
        st.error(escape_markdown(exc), icon=":material/error:")
        return None


def _score(value: float, stderr: float) -> str:
    return f"{value:.3f} ± {stderr:.3f}" if stderr == stderr else f"{value:.3f}"


def render() -> None:
    tasks = load_tasks()
    c1, c2, c3 = st.columns([2, 2, 1])
    choice = c1.selectbox("Task", list(tasks) + [UPLOAD], key="ll_task",
                          help="The bundled tasks are lm-eval YAML + JSONL (core/data/lm_eval_tasks, CC0): "
                               "`lm_eval --include_path` runs them unchanged and gives the same numbers. "
                               + "; ".join(f"{t.name}: {t.output_type}, {len(t.docs)} items" for t in tasks.values()))
    task = _uploaded_task() if choice == UPLOAD else tasks[choice]
    variants = c2.multiselect("Model variants", LOCAL + [ENDPOINT], default=["fp32", "layers-4"],
                              format_func=lambda k: VARIANTS[k].label, key="ll_variants",
                              help="Each variant scores the same items; the first is compared with each other one "
                                   "(McNemar on accuracy, paired bootstrap on log-likelihood). An endpoint is "
                                   "scored through its prompt log-probabilities and refused if it has none.")
    limit = c3.number_input("Items", min_value=1, max_value=max(1, len(task.docs)) if task else 1,
                            value=min(40, len(task.docs)) if task else 1, step=1, key=f"ll_limit_{choice}",
                            help="The first N items of the task (lm_eval's --limit).")
    endpoint = select_endpoint("ll_ep") if ENDPOINT in variants else None
    problem = ("Upload a task file." if task is None else "Choose at least one model variant." if not variants
               else "Choose the endpoint." if ENDPOINT in variants and endpoint is None else
               None if task.is_loglikelihood else f"{task.name} is a generation task: choose Generation above.")
    if problem:
        st.warning(problem, icon=":material/edit:")
    b1, b2, _ = st.columns([1, 1, 4])
    go = b1.button("Run log-likelihood evaluation", type="primary", key="ll_run", disabled=problem is not None,
                   help="Every item's requests scored in batches of 16, as lm-eval's HFLM scores them.")
    b2.button("Stop", key="ll_stop", help="Stop; the variants already scored are kept.")
    if go:
        st.session_state["ll_runs"] = {}
        bar = st.progress(0.0, text="Loading the model…")
        try:
            for key in variants:
                def progress(name, done, total, key=key):
                    bar.progress(done / total, text=f"{VARIANTS[key].label} · {name}: {done}/{total} requests")

                def load(**options):
                    return cached_load_model(None, device="cpu", **options)

                runs = run_tasks([task], key, limit=int(limit), load=load, on_progress=progress,
                                 endpoint=endpoint if key == ENDPOINT else None)
                st.session_state["ll_runs"][key] = runs[0]
        except (ModelLoadError, EvaluationInputError, EndpointError, ValueError) as exc:
            st.error(escape_markdown(exc), icon=":material/error:")
        finally:
            bar.empty()
    runs = st.session_state.get("ll_runs") or {}
    if not runs:
        st.info("No log-likelihood run yet: choose a task and variants and press **Run log-likelihood evaluation**.")
        return
    _results(runs)


def _results(runs: dict) -> None:
    first_key, first = next(iter(runs.items()))
    st.subheader(f"{first.task}: scores ± standard error")
    rows = [{"variant": VARIANTS[k].label, "items": len(r.items),
             **{m.name: _score(m.value, m.stderr) for m in r.metrics}} for k, r in runs.items()]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="ll_scores")
    st.caption("± is lm-eval's standard error of the mean (sample std / √n); perplexities: a bootstrap over items.")
    metric = "acc" if first.output_type in ("multiple_choice", "loglikelihood") else "loglik"
    for key, run in list(runs.items())[1:]:
        st.success(f"{VARIANTS[first_key].label} vs {VARIANTS[key].label}: {paired(first, run, metric).sentence}")
    if len(runs) > 1:
        other_key = st.selectbox("Why do these two numbers differ?", list(runs)[1:], key="ll_why",
                                 format_func=lambda k: f"{VARIANTS[first_key].label} vs {VARIANTS[k].label}",
                                 help="The settings that changed, the items whose answer flips (first) and each "
                                      "choice's log-likelihood in both runs.")
        diff = why_differ(first, runs[other_key])
        st.markdown(escape_markdown(diff.sentence))
        st.dataframe(pd.DataFrame([{"item": d.doc_id, "flips": d.flips, "gold": d.gold, "A picks": d.a_pick,
                                    "B picks": d.b_pick, "A logliks": ", ".join(f"{x:.3f}" for x in d.a_logliks),
                                    "B logliks": ", ".join(f"{x:.3f}" for x in d.b_logliks),
                                    "max |Δ| (nats)": d.max_delta} for d in diff.items]),
                     hide_index=True, key="ll_diff")
    d1, d2 = st.columns(2)
    d1.download_button("Download lm-eval results JSON", json.dumps(results_json(list(runs.values())), indent=2,
                                                                   default=str),
                       file_name=f"results_{first.task}.json", mime="application/json", key="ll_json",
                       on_click="ignore", help="lm-eval's results shape: results[task]['acc,none'], "
                                               "'acc_stderr,none', configs, n-samples.")
    d2.download_button("Download CSV", items_csv(list(runs.values())), file_name=f"llm_lab_loglik_{first.task}.csv",
                       mime="text/csv", key="ll_csv", on_click="ignore",
                       help="One row per item and choice: its log-likelihood, gold, acc, acc_norm.")
