"""Compute planner: training FLOPs, petaFLOP/s-days, GPU time and cost, Chinchilla-optimal sizing.

Thin page: reads widgets (whose values live in the URL), calls core.plan.compute (formulas) /
core.plan.compute_plan (plans) / core.plan.compute_text (parsing, formatting) / core.plan.training_runs /
core.plan.compute_charts, renders.
"""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from core.plan import compute, compute_charts, compute_plan, compute_tables, compute_text
from core.plan.compute_tables import percent_or_dash
from core.plan.compute import ComputeInputError
from core.plan.hardware import GPUS, get_gpu
from core.io import compute_url
from core.io.compute_url import FIELDS, MODES, UNITS
from core.plan.training_runs import reference_table
from core.common.user_text import escape_markdown
from views.components.columns import fitted_columns
from views.components.query_params import restore_inputs_from_url, write_inputs_to_url
from views.components.training_layout_panel import render_training_layout_panel

MEMORY_PAGE = "views/memory_planner.py"


def md(text: str) -> str:
    """Escape dollar signs so Streamlit markdown shows amounts instead of starting LaTeX."""
    return text.replace("$", "\\$")


URL_WRITTEN = "compute_url_written"  # the inputs live in the URL: core.io.compute_url.FIELDS


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------

st.title("Compute planner")
st.caption(
    "How much compute a training run takes, how long it runs on your GPUs, what it costs, and whether it is "
    "compute-optimal. Training compute C ≈ 6·N·D (Kaplan et al. 2020); compute-optimal data ≈ 20 tokens per "
    "parameter (Hoffmann et al. 2022, *Chinchilla*); 1 petaFLOP/s-day = 10¹⁵ FLOP/s × 86,400 s = 8.64 × 10¹⁹ FLOPs."
)

for problem in restore_inputs_from_url(compute_url, URL_WRITTEN):
    st.warning(f"Ignored an invalid value in the link: {problem}")

left, right = st.columns([1.1, 1], gap="large")

with right:
    st.subheader("Hardware and assumptions")
    h1, h2 = st.columns(2)
    gpu_name = h1.selectbox(
        "GPU type", list(GPUS), key="compute_gpu",
        help="Catalog GPU (NVIDIA datasheets; sources: docs/references/gpus.md in the repository); its dense "
             "bf16/fp16 tensor peak sets the FLOP/s per GPU.")
    n_gpus = h2.number_input(
        "Number of GPUs", min_value=1, max_value=1_000_000, step=8, key="compute_n_gpus",
        help="GPUs training in parallel. Sets the wall-clock time (GPU-hours ÷ GPUs) and, for a "
             "'GPUs × days' budget, the compute.")
    mfu_percent = h1.number_input(
        "MFU (%)", min_value=1.0, max_value=100.0, step=1.0, format="%.1f", key="compute_mfu_percent",
        help="Model FLOPs utilisation: the share of the GPUs' peak that does model math (PaLM paper, App. B). "
             "Published GPU-hours imply LLaMA ≈ 43–51%, Llama 2 ≈ 38–43%, BloombergGPT ≈ 24% (33% counting its "
             "recompute FLOPs); see Reference runs. 40% is a sound default.")
    price = h2.number_input(
        "Price ($ per GPU-hour)", min_value=0.0, max_value=1000.0, step=0.25, format="%.2f", key="compute_price",
        help="Your cloud or internal price per GPU per hour, in US dollars. The default $2.00 is an assumption: "
             "replace it with your quote.")
    k1, k2 = st.columns(2)
    base_k = k1.number_input(
        "FLOPs per parameter per token", min_value=1.0, max_value=100.0, step=1.0, format="%.1f",
        key="compute_flops_per_param_token",
        help="The k in C = k·N·D: 6 = 2 (forward) + 4 (backward), Kaplan et al. 2020. Edit to match your own "
             "FLOP count (e.g. with attention FLOPs).")
    ratio = k2.number_input(
        "Compute-optimal tokens per parameter", min_value=1.0, max_value=10_000.0, step=1.0, format="%.1f",
        key="compute_tokens_per_param",
        help="Chinchilla's rule: about 20 training tokens per parameter is compute-optimal (Hoffmann et al. 2022). "
             "LLaMA-style models deliberately go far beyond it to be cheaper to serve.")
    recompute = st.checkbox(
        "Full activation recompute (+1 forward pass: 8·N·D)", key="compute_recompute",
        help="Activation checkpointing recomputes the forward pass during backward: +2·N·D FLOPs "
             "(Korthikanti et al. 2022). The MFU you enter then counts those FLOPs too (hardware FLOPs utilisation).")
    k = base_k + (compute.RECOMPUTE_EXTRA_FLOPS_PER_PARAM_TOKEN if recompute else 0.0)
    gpu = get_gpu(gpu_name)
    mfu = mfu_percent / 100
    cluster = compute_plan.Cluster(gpu.name, gpu.peak_flops, int(n_gpus), mfu, float(price))
    st.caption(
        f"{n_gpus:,} × {gpu.name} at {gpu.bf16_tflops:g} TFLOP/s peak × {mfu_percent:g}% MFU = "
        f"**{cluster.sustained_flops / 1e15:,.3g} PF/s** sustained, i.e. "
        f"**{cluster.sustained_flops / 1e15:,.3g} PF/s-days per day**. Compute formula: C = {k:g}·N·D.")

plan = None
error = None
with left:
    st.subheader("Start from")
    mode = st.radio(
        "What you know", list(MODES), format_func=MODES.get, horizontal=True, key="compute_mode",
        help="A compute budget → the compute-optimal model and data; a model size → the data and compute it "
             "needs; a data limit → the largest compute-optimal model for that data.")
    try:
        if mode == "budget":
            unit = st.radio(
                "Budget given as", list(UNITS), format_func=UNITS.get, horizontal=True, key="compute_budget_unit",
                help="FLOPs, petaFLOP/s-days (8.64e19 FLOPs each), or what your cluster delivers in a number of days.")
            if unit == "flops":
                text = st.text_input(
                    "Compute budget (FLOPs)", key="compute_budget_flops", max_chars=40,
                    help="Total training FLOPs, e.g. 5.76e23 (Gopher's and Chinchilla's budget) or 3.14e23 (GPT-3).")
                budget = compute_text.parse_in_range(text, compute_text.MIN_FLOPS, compute_text.MAX_FLOPS, "Compute budget", "FLOPs")
            elif unit == "pfsd":
                text = st.text_input(
                    "Compute budget (PF/s-days)", key="compute_budget_pfsd", max_chars=40,
                    help="petaFLOP/s-days: 1e15 FLOP/s for one day = 8.64e19 FLOPs. GPT-3 used ~3,640.")
                budget = compute.flops_from_pflop_s_days(compute_text.parse_in_range(
                    text, compute_text.MIN_PFLOP_S_DAYS, compute_text.MAX_PFLOP_S_DAYS, "Compute budget", "PF/s-days"))
            else:
                days = st.number_input(
                    "Days of training", min_value=0.01, max_value=3650.0, step=1.0, format="%.2f",
                    key="compute_budget_days",
                    help="Wall-clock days the cluster on the right trains for. Compute = GPUs × days × 86,400 s × "
                         "peak × MFU.")
                budget = compute.cluster_flops(n_gpus, days, gpu.peak_flops, mfu)
            st.caption(f"Budget = **{compute_text.format_number(budget)} FLOPs** = "
                       f"**{compute_text.format_number(compute.pflop_s_days(budget))} PF/s-days**.")
            plan = compute_plan.plan_from_budget(budget, cluster, k, ratio)
        elif mode == "params":
            text = st.text_input(
                "Model size (parameters)", key="compute_params", max_chars=40,
                help="Parameter count, e.g. 7B, 70B, 175000000000. Shared with the memory planner via the URL "
                     "(?params=).")
            plan = compute_plan.plan_from_params(
                compute_text.parse_in_range(text, compute_text.MIN_PARAMS, compute_text.MAX_PARAMS, "Model size", "parameters"),
                cluster, k, ratio)
        else:
            text = st.text_input(
                "Data limit (training tokens)", key="compute_tokens", max_chars=40,
                help="Tokens you have, e.g. 700B (BloombergGPT's ~700B-token corpus) or 1.4T.")
            plan = compute_plan.plan_from_data_limit(
                compute_text.parse_in_range(text, compute_text.MIN_TOKENS, compute_text.MAX_TOKENS, "Data limit", "tokens"),
                cluster, k, ratio)
    except ComputeInputError as err:
        error = str(err)
        st.error(f"{escape_markdown(error)} The rest of the page uses the other inputs as they are.")

write_inputs_to_url(compute_url, URL_WRITTEN)

# ----------------------------------------------------------------------------------------------
# The plan
# ----------------------------------------------------------------------------------------------
st.divider()
if plan is not None:
    st.subheader("The plan")
    m = st.columns(4)
    m[0].metric("Model size N (parameters)", compute_text.format_count(plan.n_params),
                help="Parameters of the model (compute-optimal unless you entered it).")
    m[1].metric("Training tokens D", compute_text.format_count(plan.n_tokens),
                delta=f"{plan.tokens_per_param:.1f} tokens/param", delta_color="off", delta_arrow="off",
                help="Training tokens and the tokens-per-parameter ratio D/N.")
    m[2].metric("Training compute (FLOPs)", compute_text.format_number(plan.flops),
                help=f"C = {k:g}·N·D floating-point operations.")
    m[3].metric("Training compute (PF/s-days)", compute_text.format_number(plan.pflop_s_days),
                help="C ÷ 8.64e19 FLOPs per petaFLOP/s-day.")
    m = st.columns(4)
    m[0].metric("GPU-hours", compute_text.format_number(plan.gpu_hours),
                help=f"C ÷ ({gpu.bf16_tflops:g} TFLOP/s × {mfu_percent:g}% MFU) ÷ 3,600 s.")
    m[1].metric("Wall-clock time", compute_text.format_duration_days(plan.days),
                delta=f"on {plan.n_gpus:,} GPUs", delta_color="off", delta_arrow="off",
                help="GPU-hours ÷ number of GPUs ÷ 24; assumes perfect scaling across GPUs.")
    m[2].metric("Cost (US$)", compute_text.format_dollars(plan.cost_dollars),
                delta=f"at ${plan.price_per_gpu_hour:,.2f}/GPU-h", delta_color="off", delta_arrow="off",
                help="GPU-hours × price per GPU-hour (compute only: no storage, network, staff or failed runs).")
    m[3].metric("Inference (FLOPs per token)", compute_text.format_number(plan.inference_flops_per_token),
                help="≈ 2·N FLOPs per generated token (forward pass only).")

    st.markdown(md(
        f"Train a **{compute_text.format_count(plan.n_params)}-parameter** model on **{compute_text.format_count(plan.n_tokens)} "
        f"tokens** ({plan.tokens_per_param:.1f} tokens/parameter): **{compute_text.format_number(plan.flops)} FLOPs** = "
        f"**{compute_text.format_number(plan.pflop_s_days)} PF/s-days** ≈ **{compute_text.format_number(plan.gpu_hours)} GPU-hours** "
        f"on {gpu.name} at {mfu_percent:g}% MFU → **{compute_text.format_duration_days(plan.days)}** on {plan.n_gpus:,} GPUs, "
        f"**{compute_text.format_dollars(plan.cost_dollars)}** at ${plan.price_per_gpu_hour:,.2f} per GPU-hour. "
        f"Serving {compute_text.format_count(plan.flops / plan.inference_flops_per_token)} generated tokens would cost as "
        f"much compute as training did (C ÷ 2N)."))

    with st.expander("Show the arithmetic"):
        st.markdown(md(
            f"- Compute: C = k·N·D = {k:g} × {plan.n_params:.4g} × {plan.n_tokens:.4g} = **{plan.flops:.4g} FLOPs** "
            f"(k = 2 forward + 4 backward{' + 2 recompute' if recompute else ''}{'' if base_k == 6 else ', edited'}).\n"
            f"- PF/s-days: {plan.flops:.4g} ÷ 8.64e19 = **{plan.pflop_s_days:,.4g}**.\n"
            f"- GPU-hours: C ÷ (peak × MFU) ÷ 3,600 = {plan.flops:.4g} ÷ ({gpu.peak_flops:.4g} × {mfu:.3g}) ÷ 3,600 = "
            f"**{plan.gpu_hours:,.0f}**.\n"
            f"- Days: {plan.gpu_hours:,.0f} ÷ {plan.n_gpus:,} GPUs ÷ 24 = **{plan.days:,.2f}**.\n"
            f"- Cost: {plan.gpu_hours:,.0f} × ${plan.price_per_gpu_hour:,.2f} = **{compute_text.format_dollars(plan.cost_dollars)}**.\n"
            f"- Chinchilla: D = {ratio:g}·N; from a budget, N_opt = √(C ÷ (k·{ratio:g})) = "
            f"√({plan.flops:.4g} ÷ {k * ratio:g}) (Hoffmann et al. 2022).\n"
            f"- Inference: 2·N = {plan.inference_flops_per_token:.4g} FLOPs per generated token (Kaplan et al. 2020).\n"
            f"- Fitted loss: L(N, D) = 1.69 + 406.4/N^0.34 + 410.7/D^0.28 = **{plan.predicted_loss:.4f} nats/token** "
            "(Hoffmann et al. 2022, approach 3)."))

    if mode == "budget":
        n_fit, d_fit = compute.loss_optimal_allocation(plan.flops, k)
        st.info(
            f"The {ratio:g}-tokens-per-parameter rule sizes this budget at {compute_text.format_count(plan.n_params)} "
            f"parameters. The Chinchilla approach-3 loss fit (rounded constants, N_opt ∝ C^0.45) puts its own "
            f"minimum at {compute_text.format_count(n_fit)} parameters on {compute_text.format_count(d_fit)} tokens "
            f"({d_fit / n_fit:.0f} tokens/param) — the paper's approaches disagree at large budgets; the rule follows "
            "its approaches 1 and 2.")
    if mode == "data":
        rows = compute_plan.data_limited_alternatives(plan.n_tokens, cluster, k, ratio)
        st.markdown(
            f"**With {compute_text.format_count(plan.n_tokens)} tokens, the largest compute-optimal model has "
            f"{compute_text.format_count(plan.n_params)} parameters.** A bigger model on the same data costs "
            "proportionally more compute for a shrinking gain in fitted loss; a smaller one is cheaper to train "
            "and to serve but leaves loss on the table.")
        table = pd.DataFrame(rows)
        show = pd.DataFrame(compute_tables.data_limit_rows(rows))
        st.dataframe(show, hide_index=True, width="stretch", key="compute_data_limit_table", column_config={
            "GPU-hours": st.column_config.NumberColumn(format="localized"),
            "cost ($)": st.column_config.NumberColumn(format="dollar"),
            "compute (PF/s-days)": st.column_config.NumberColumn(format="localized")})
        st.plotly_chart(compute_charts.data_limit_figure(rows), key="compute_data_limit_chart")
        st.download_button(
            "Download these alternatives (CSV)", table.to_csv(index=False), "compute_data_limit.csv", "text/csv",
            key="compute_download_data_limit", help="Every model size on your data limit, in all units.")

    link_cols = st.columns([1.4, 1, 1])
    with link_cols[0]:
        try:
            st.page_link(
                MEMORY_PAGE, label=f"Memory needed for this {compute_text.format_count(plan.n_params)}-parameter model →",
                icon=":material/memory:", query_params={"params": str(int(round(plan.n_params)))},
                help="Opens the memory planner with this parameter count (URL ?params=).")
        except StreamlitPageNotFoundError:  # outside the multipage app (a lone script, AppTest) the page is unknown
            st.markdown(f"[Memory needed for this model →](/memory?params={int(round(plan.n_params))})")
    inputs = {url_key: st.session_state[f.state_key] for url_key, f in FIELDS.items()}
    link_cols[1].download_button(
        "Download the plan (CSV)", pd.DataFrame(plan.as_rows()).to_csv(index=False), "compute_plan.csv", "text/csv",
        key="compute_download_csv", help="Every number of the plan with its unit.")
    link_cols[2].download_button(
        "Download the plan (JSON)", json.dumps({"inputs": inputs, "plan": plan.as_dict()}, indent=2),
        "compute_plan.json", "application/json", key="compute_download_json",
        help="The inputs (as in the URL) and every result, machine-readable.")
else:
    st.info("Fix the input above to see the plan; the reference runs and charts below still use your hardware "
            "assumptions.")

# ----------------------------------------------------------------------------------------------
# Scaling-law view, reference runs, rule of thumb
# ----------------------------------------------------------------------------------------------
tab_loss, tab_runs, tab_rule, tab_layout = st.tabs(["Scaling-law view", "Reference runs", "1 PF/s-day in GPUs",
                                                    "Training layout"])

with tab_loss:
    center = plan.flops if plan is not None else 5.76e23
    budgets = [center * f for f in (0.01, 0.1, 1.0, 10.0, 100.0)]
    st.plotly_chart(
        compute_charts.iso_flop_figure(budgets, k, ratio, plan=(plan.n_params, plan.n_tokens) if plan else None),
        key="compute_iso_flop_chart")
    st.caption(
        "Loss against model size at fixed compute (D = C ÷ (k·N)) for five budgets around yours, from the Chinchilla "
        "approach-3 fit L(N, D) = E + A/N^α + B/D^β with E = 1.69, A = 406.4, B = 410.7, α = 0.34, β = 0.28 "
        "(Hoffmann et al. 2022, Eq. 2). Diamonds: each curve's minimum (Eq. 4). Open circles: the "
        f"{ratio:g}-tokens-per-parameter rule. Star: your plan. Loss is in nats per token on the paper's MassiveText data; "
        "compare shapes, not absolute values, with other datasets.")

with tab_runs:
    rows = reference_table(k, ratio)
    st.plotly_chart(
        compute_charts.reference_runs_figure(rows, ratio, plan=(plan.n_params, plan.n_tokens) if plan else None),
        key="compute_runs_chart")
    table = compute_tables.reference_run_rows(rows, cluster)
    runs = pd.DataFrame(table)
    st.dataframe(runs, hide_index=True, width="stretch", key="compute_runs_table", column_config=fitted_columns(runs))
    mfu_by_run = {r["run"]: r["implied MFU (k·N·D)"] for r in rows if r["implied MFU (k·N·D)"]}

    def mfu_range(prefix: str) -> str:
        values = [100 * v for name, v in mfu_by_run.items() if name.startswith(prefix)]
        return f"{min(values):.0f}–{max(values):.0f}%"

    bloomberg = next(r for r in rows if r["run"] == "BloombergGPT")
    st.caption(
        f"Compute = {k:g}·N·D from the papers' parameter and token counts. Implied MFU = {k:g}·N·D ÷ (published "
        "GPU-hours × 3,600 s × the GPU's peak; A100: 312 TFLOP/s dense bf16): what the planner must assume to match "
        f"the published time. LLaMA: {mfu_range('LLaMA-')}, Llama 2: {mfu_range('Llama 2')}. BloombergGPT used "
        f"activation checkpointing: its published 2.36e23 FLOPs ≈ 8·N·D, and that count gives "
        f"{percent_or_dash(bloomberg['implied utilisation (published FLOPs)'])}% — the paper's 102 TFLOP/s per GPU "
        f"(33% of 312) — against {percent_or_dash(bloomberg['implied MFU (k·N·D)'])}% from {k:g}·N·D. "
        f"BLOOM ({percent_or_dash(mfu_by_run.get('BLOOM'))}%, while ~156 TFLOP/s = 50% was reported during training) "
        f"and OPT-175B ({percent_or_dash(mfu_by_run.get('OPT-175B'))}%) publish whole-run GPU-hours: restarts, failures "
        "and recompute FLOPs that 6·N·D does not count pull their implied MFU down. The last two columns run each "
        "model on your cluster at your MFU and price.")
    st.download_button(
        "Download reference runs (CSV)", pd.DataFrame(rows).to_csv(index=False), "compute_reference_runs.csv",
        "text/csv", key="compute_download_runs", help="Published runs with the planner's compute and implied MFU.")

with tab_rule:
    st.markdown(
        "The course notes' rule of thumb: **1 petaFLOP/s-day ≈ 8 V100s or 2 A100s running for a day at full "
        "efficiency.** The datasheet peaks say: 8 × 125 TFLOP/s = **1,000 TFLOP/s** (the V100 half holds), but "
        "2 × 312 TFLOP/s = **624 TFLOP/s** — it takes ≈ 3.2 A100s. At a realistic MFU, several times more.")
    st.dataframe(pd.DataFrame(compute_tables.one_pflop_s_rows(mfu_percent)), hide_index=True, width="stretch",
                 key="compute_rule_table")
    st.caption("GPUs for 1 PF/s = 10¹⁵ ÷ (peak × MFU) = GPU-days per PF/s-day. Peaks: shared GPU catalog "
               "(NVIDIA datasheets; dense, no sparsity).")

with tab_layout:
    render_training_layout_panel(key="layout")
