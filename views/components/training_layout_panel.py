""""Training layout" tab of the compute planner: every TP × PP × DP × ZeRO × micro-batch × interleaving × SP ×
recomputation layout of a model on a cluster, ranked by step time, with why each infeasible one fails; the per-GPU
memory stack and step-time breakdown of a chosen layout; the published runs (Narayanan et al. 2021 Table 1,
Korthikanti et al. 2022) as presets. All numbers from core.plan.parallel, rows from core.plan.parallel_tables,
figures from core.plan.parallel_charts.

One call: ``render_training_layout_panel(key="layout")``; its inputs' session-state keys (``layout_*``) are the
compute planner's URL fields (``core.io.compute_url.FIELDS``, ``l*`` keys), restored before it renders.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from core.common.units import GB
from core.plan import parallel_charts, parallel_tables
from core.plan.hardware import GPUS, get_gpu
from core.plan.parallel import (MATMUL_EFFICIENCY, RECOMPUTE_OPTIONS, LayoutError, default_cluster, evaluate_layout,
                                gpt_shape, model_shape, plan_layouts, stage_memory)
from views.components.columns import fitted_columns

YOUR_MODEL = parallel_tables.CUSTOM_PRESET
TOP_ROWS = 50


def _whole(container, label: str, key: str, lo: int, hi: int, help: str) -> tuple[int, str | None]:
    """A whole-number field whose value lives in session state (the URL's, ``core.io.compute_url``): no bounds in
    the browser, so an out-of-range entry reaches the page and is named (see ``views.components.whole_number``)."""
    value = int(container.number_input(label, step=1, key=key, help=f"{help} Allowed: {lo:,} to {hi:,}."))
    if not lo <= value <= hi:
        return value, f"{label} must be from {lo:,} to {hi:,}; {value:,} was entered."
    return value, None


@st.cache_data(show_spinner=False, max_entries=8)
def _search(model, gpu_name, gpus, per_node, seq_len, batch, tokens, price, efficiency, space):
    cluster = default_cluster(gpu_name, gpus, per_node)
    return plan_layouts(model, get_gpu(gpu_name), cluster, seq_len, batch, tokens, price, efficiency,
                        **dict(space)), cluster


def _inputs(key: str):
    """The model, GPU and run the user chose, or a published preset's; (inputs dict, preset or None, problems)."""
    choice = st.selectbox("Preset", [YOUR_MODEL, *parallel_tables.preset_names()], key=f"{key}_preset",
                          help="A published run fills in its model, GPUs, batch and sequence length, and its own "
                               "layout is evaluated beside the search (Narayanan et al. 2021 Table 1; Korthikanti "
                               "et al. 2022 Tables 3 and 5).")
    if choice != YOUR_MODEL:
        run = parallel_tables.preset(choice)
        st.caption(f"{run.name}: {run.layers} layers, hidden {run.hidden:,}, {run.heads} heads, vocabulary 51,200; "
                   f"{run.gpus:,} × {run.gpu}, global batch {run.global_batch:,}, sequence {run.seq_len:,}. "
                   f"Source: {run.source}.")
        return dict(model=gpt_shape(run.name, run.layers, run.hidden, run.heads, seq_len=run.seq_len),
                    gpu=run.gpu, gpus=run.gpus, per_node=8, seq_len=run.seq_len, batch=run.global_batch,
                    tokens=300e9), run, []
    c = st.columns(4)
    model_id = c[0].selectbox("Model", parallel_tables.layout_model_ids(), key=f"{key}_model",
                              help="Dense decoder-only catalog models (mixtures of experts need expert "
                                   "parallelism, not planned here).")
    gpu = c[0].selectbox("GPU", list(GPUS), key=f"{key}_gpu",
                         help="Catalog GPU: memory, dense bf16 peak and HBM bandwidth from NVIDIA's datasheets; its "
                              "NVLink generation sets the intra-node link, InfiniBand per DGX node the inter-node.")
    fields = [(c[1], "GPUs", "gpus", 65_536, "GPUs in the cluster: TP × PP × DP must use all of them."),
              (c[1], "GPUs per node", "per_node", 16,
               "GPUs joined by NVLink in one server (8 in a DGX); TP beyond it crosses InfiniBand."),
              (c[2], "Sequence length (tokens)", "seq", 1_048_576, "Tokens per training sequence, s."),
              (c[2], "Global batch (sequences)", "batch", 1_000_000,
               "Sequences per optimizer step, B: split into DP replicas × micro-batches.")]
    values, problems = [], []
    for column, label, name, hi, help_text in fields:
        value, problem = _whole(column, label, f"{key}_{name}", 1, hi, help=help_text)
        values.append(value)
        problems.append(problem)
    gpus, per_node, seq_len, batch = values
    tokens_b = c[3].number_input("Token budget (billions)", min_value=0.001, max_value=1e6, key=f"{key}_tokens",
                                 help="Tokens to train on: sets the days and cost columns.")
    return dict(model=model_shape(model_id), gpu=gpu, gpus=gpus, per_node=per_node, seq_len=seq_len, batch=batch,
                tokens=tokens_b * 1e9), None, [p for p in problems if p]


def _search_space(key: str) -> tuple[tuple, float, float]:
    with st.expander("Search space and assumptions"):
        c = st.columns(3)
        recompute = c[0].multiselect("Recomputation", list(RECOMPUTE_OPTIONS), default=list(RECOMPUTE_OPTIONS),
                                     key=f"{key}_recompute", help="none; selective (recompute the attention core, "
                                     "Korthikanti et al. 2022 §5); full (keep only each layer's input, one more "
                                     "forward pass).")
        zero = c[0].multiselect("ZeRO stages", [0, 1, 2, 3], default=[0, 1, 2, 3], key=f"{key}_zero",
                                help="Shard optimizer state (1), + gradients (2), + weights (3) over DP "
                                     "(Rajbhandari et al. 2020). Stages 2–3 are not combined with PP.")
        micro = c[1].multiselect("Micro-batch sizes", [1, 2, 4, 8, 16], default=[1, 2, 4, 8], key=f"{key}_micro",
                                 help="Sequences per micro-batch, b: more micro-batches shrink the bubble, larger "
                                      "ones hold more activations.")
        virtual = c[1].multiselect("Virtual stages v", [1, 2, 3, 4, 8], default=[1, 2, 4], key=f"{key}_virtual",
                                   help="Interleaved 1F1B: each GPU holds v chunks of layers; the bubble shrinks "
                                        "by v (Narayanan et al. 2021 §2.2.2).")
        sp = c[2].checkbox("Consider sequence parallelism", value=True, key=f"{key}_sp",
                           help="Split the layer norms' and dropouts' activations over the TP group too "
                                "(Korthikanti et al. 2022 §4.2.2); same communication volume.")
        flash = c[1].checkbox("FlashAttention", value=False, key=f"{key}_flash",
                              help="Attention kernels that never store the s×s scores (Dao et al. 2022): drops "
                                   "Korthikanti's 5as²b term from every layer's activations. Off reproduces the "
                                   "papers' 2021–2022 runs.")
        efficiency = c[2].number_input("Matmul efficiency", min_value=0.05, max_value=1.0,
                                       value=float(MATMUL_EFFICIENCY), step=0.05, key=f"{key}_eff",
                                       help="Fraction of the bf16 peak the matmuls reach; 0.6 reproduces Narayanan "
                                            "et al. 2021 Table 1 within 10 % (docs/references/parallel-runs.md).")
        price = c[2].number_input("Price per GPU-hour (US$)", min_value=0.0, max_value=1000.0, value=2.0,
                                  key=f"{key}_price", help="Sets the cost column; 0 leaves it out.")
    space = (("recomputes", tuple(recompute) or RECOMPUTE_OPTIONS), ("zero_stages", tuple(zero) or (0,)),
             ("micro_batches", tuple(micro) or (1,)), ("virtual_stages", tuple(virtual) or (1,)),
             ("sequence_parallel", (False, True) if sp else (False,)), ("flash_attention", flash))
    return space, efficiency, price


def render_training_layout_panel(*, key: str = "layout") -> None:
    """Render the training-layout planner."""
    st.caption("Every way to lay a training step over the cluster — tensor (TP), pipeline (PP) and data (DP) "
               "parallel sizes, ZeRO stage, micro-batch, interleaving, sequence parallelism, recomputation — ranked "
               "by step time; each infeasible layout says why. Memory: ZeRO Fig. 1 and Korthikanti et al. 2022 "
               "Table 2; time: Narayanan et al. 2021 (eq. 3 FLOPs, the 1F1B bubble (p − 1)/(v·m)).")
    inputs, run, problems = _inputs(key)
    space, efficiency, price = _search_space(key)
    for problem in problems:
        st.error(problem)
    if problems:
        return
    try:
        search, cluster = _search(inputs["model"], inputs["gpu"], inputs["gpus"], inputs["per_node"],
                                  inputs["seq_len"], inputs["batch"], inputs["tokens"], price or None, efficiency,
                                  space)
    except (LayoutError, ValueError) as err:
        st.error(str(err))
        return
    gpu = get_gpu(inputs["gpu"])
    m = st.columns(4)
    m[0].metric("Layouts evaluated", f"{len(search.feasible) + len(search.infeasible):,}")
    m[1].metric("Feasible", f"{len(search.feasible):,}")
    if run is not None:
        own = evaluate_layout(inputs["model"], gpu, cluster, run.layout(), inputs["seq_len"], inputs["batch"],
                              matmul_efficiency=efficiency)
        if own.feasible:
            published = (f"{run.published_tflops_per_gpu:g} TFLOP/s per GPU" if run.published_tflops_per_gpu
                         else f"MFU {run.published_mfu_pct:g} %")
            st.info(f"Published layout {run.layout().label()}: planner {own.step.tflops_per_gpu:.1f} TFLOP/s per "
                    f"GPU, MFU {100 * own.step.mfu:.1f} %, {own.memory.total_bytes / GB:.1f} GB per GPU; published "
                    f"{published}.")
        else:
            st.warning(f"Published layout {run.layout().label()}: " + " ".join(own.why_infeasible))
    if not search.feasible:
        st.warning("No layout fits: more GPUs, a larger GPU, recomputation or ZeRO would help; the reasons are below.")
    else:
        best = search.best
        m[2].metric("Fastest step", f"{best.step.total_s:.2f} s", help=best.layout.label())
        m[3].metric("Its MFU", f"{100 * best.step.mfu:.1f} %")
        rows = parallel_tables.layout_rows(search.feasible, TOP_ROWS)
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=f"{key}_ranked")
        labels = [r["layout"] for r in rows]
        chosen = st.selectbox("Layout to inspect", labels, key=f"{key}_chosen",
                              help="Its per-GPU memory on the first and last pipeline stages and where its step "
                                   "time goes, beside the fastest layouts.")
        plan = search.feasible[labels.index(chosen)]
        stages = [("stage 0", stage_memory(inputs["model"], plan.layout, inputs["seq_len"],
                                           plan.layout.num_microbatches(inputs["batch"]), 0))]
        if plan.layout.pp > 1:
            last = plan.layout.pp - 1
            stages.append((f"stage {last}", stage_memory(inputs["model"], plan.layout, inputs["seq_len"],
                                                         plan.layout.num_microbatches(inputs["batch"]), last)))
        c = st.columns(2)
        c[0].plotly_chart(parallel_charts.memory_stack_figure(stages, gpu.memory_bytes), key=f"{key}_memory_chart")
        compared = [(p.layout.label(), p.step) for p in search.feasible[:5] if p is not plan]
        c[1].plotly_chart(parallel_charts.step_time_figure([(chosen, plan.step), *compared]),
                          key=f"{key}_step_chart")
        d = st.columns(2)
        d[0].download_button("Download ranked layouts (CSV)",
                             pd.DataFrame(parallel_tables.layout_rows(search.feasible)).to_csv(index=False),
                             "training_layouts.csv", "text/csv", key=f"{key}_csv",
                             help="Every feasible layout, fastest first, with its step-time parts and memory.")
        d[1].download_button("Download the search (JSON)",
                             json.dumps({"inputs": {k: v for k, v in inputs.items() if k != "model"},
                                         "model": inputs["model"].to_dict(), **search.to_dict(top=TOP_ROWS),
                                         "infeasible_reasons": parallel_tables.infeasible_rows(search.infeasible)},
                                        indent=1), "training_layouts.json", "application/json", key=f"{key}_json",
                             help="The inputs, the fastest layouts in full and every infeasible layout's reasons.")
    if search.infeasible:
        st.markdown("**Infeasible layouts and why**")
        st.dataframe(pd.DataFrame(parallel_tables.reason_counts(search.infeasible)), hide_index=True,
                     key=f"{key}_reasons")
        why = pd.DataFrame(parallel_tables.infeasible_rows(search.infeasible, 500))
        st.dataframe(why, hide_index=True, width="stretch", key=f"{key}_infeasible",  # sentences: scroll, not cut
                     column_config=fitted_columns(why, max_px=None))
