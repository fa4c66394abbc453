"""Serving planner: how many GPUs serve this model to N users at these latency targets, and what it costs.

Thin page: reads widgets (their values live in the URL via core.io.serving_url.FIELDS; model and GPU are shared with the
Memory planner), calls core.plan.serving / core.plan.serving_capacity, renders tables and core.plan.serving_charts figures.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.plan import architectures, serving, serving_capacity, serving_charts
from core.io import plan_io, serving_url
from core.plan.architectures import ArchitectureError
from core.plan.hardware import GPUS
from core.plan.memory_plan import CUSTOM_GPU, SOURCES, PlanInputError
from core.common.units import GB, format_count
from core.common.user_text import escape_markdown
from views.components.columns import fitted_columns
from views.components.query_params import restore_inputs_from_url, write_inputs_to_url
from views.components.serving_measure_panel import render_serving_measure_panel
from views.components.sim_panels import render_plan_simulation

URL_WRITTEN = "srv_url_written"


@st.cache_data(max_entries=64, show_spinner=False)
def cached_compare(model, kwargs: dict, users: int, ttft_s: float, tpot_s: float, prices: tuple):
    rows = serving_capacity.compare_gpus(model, target_users=users, ttft_target_s=ttft_s, tpot_target_s=tpot_s,
                                         prices=dict(prices), **kwargs)
    return rows


@st.cache_data(max_entries=64, show_spinner=False)
def cached_curve(model, gpu, kwargs: dict):
    return serving_capacity.latency_curve(model, gpu, **kwargs)


st.title("Serving planner")
st.caption(
    "How many GPUs serve this model to your users within your latency targets, and what it costs. Memory per GPU "
    "follows vLLM's accounting (PagedAttention, Kwon et al. 2023); speed is a roofline (Williams et al. 2009) of "
    "prefill and decode as in Pope et al. 2022, \"Efficiently Scaling Transformer Inference\". GB = 10⁹ bytes, "
    "GiB = 2³⁰ bytes. The model and GPU are shared with the Memory planner; every input is in the page URL."
)
for problem in restore_inputs_from_url(serving_url, URL_WRITTEN, keep=plan_io.defaults()):
    st.warning(f"Ignored an invalid value in the link: {problem}")

ss = st.session_state
model_col, gpu_col = st.columns([1.4, 1], gap="medium")
with model_col.container(border=True):
    st.subheader("Model")
    source = st.radio("Plan from", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="mem_source",
                      help="A catalog model (exact architecture, incl. mixture-of-experts, MLA and sliding-window "
                           "models), a bare parameter count (treated as dense), or a pasted Hugging Face config.json.")
    if source == "catalog":
        st.selectbox("Catalog model", architectures.catalog_ids(), key="mem_model",
                     format_func=lambda cid: f"{architectures.display_name(cid)} · "
                                             f"{format_count(architectures.param_count(cid))} params",
                     help="Architectures with their real config.json values; parameter counts are exact.")
    elif source == "params":
        st.text_input("Parameter count", key="mem_params",
                      help="Total parameters, e.g. 7B or 6.74e9. The attention/KV shape is borrowed from the "
                           "closest catalog model.")
    else:
        st.text_area("config.json", key="mem_config_text", height=150,
                     help="The JSON of a Hugging Face config.json (llama, mistral, qwen2, mixtral, qwen3_moe, "
                          "deepseek_v2/v3, gemma2, gemma3_text, gpt2, bloom).")
    choice = None
    try:
        choice = serving_url.check_model_choice(ss)
    except (PlanInputError, ArchitectureError) as err:
        st.error(escape_markdown(err))
    if choice is not None:
        note = architectures.CATALOG_NOTES.get(choice.catalog_id or "")
        if note:
            st.caption(note)

with gpu_col.container(border=True):
    st.subheader("GPU and replica")
    g = st.columns(2)
    gpu_name = g[0].selectbox("GPU", [*GPUS, CUSTOM_GPU], key="mem_gpu",
                              help="Catalog GPUs (NVIDIA datasheets: memory, dense bf16 TFLOP/s, bandwidth, "
                                   "NVLink/PCIe), or 'Custom GPU' to enter your own.")
    g[1].number_input("GPUs per replica (tensor parallel)", min_value=1, max_value=64, step=1, key="srv_tp",
                      help="Tensor parallelism splits weights and KV heads over this many GPUs; each layer then "
                           "all-reduces its activations twice over the GPU link (Megatron-LM §3).")
    if gpu_name == CUSTOM_GPU:
        c = st.columns(4)
        c[0].number_input("Memory (GB)", min_value=1.0, max_value=100_000.0, step=8.0, key="mem_custom_gpu_gb",
                          help="GPU memory in GB (10⁹ bytes).")
        c[1].number_input("Bandwidth (GB/s)", min_value=1.0, max_value=100_000.0, step=100.0,
                          key="srv_custom_bandwidth_gbs", help="Peak memory bandwidth from the datasheet, GB/s.")
        c[2].number_input("bf16 TFLOP/s", min_value=0.001, max_value=100_000.0, step=10.0, key="srv_custom_tflops",
                          help="Dense 16-bit tensor throughput from the datasheet (no sparsity), TFLOP/s.")
        c[3].number_input("Link (GB/s)", min_value=0.0, max_value=100_000.0, step=16.0, key="srv_custom_link_gbs",
                          help="GPU-to-GPU bandwidth, both directions together (NVLink or PCIe), GB/s.")
    g2 = st.columns(2)
    g2[0].selectbox("Weight format", list(serving.WEIGHT_FORMATS), key="srv_weight_format",
                    format_func=lambda f: f"{f} ({serving.WEIGHT_FORMATS[f]:.3g} B/weight)",
                    help="fp8/int8/int4 as vLLM stores them (embeddings and lm_head stay 16-bit); q4_0/q4_1/q8_0 "
                         "are llama.cpp's block formats (ggml-common.h).")
    g2[1].selectbox("KV-cache dtype", list(serving.KV_DTYPES), key="srv_kv_dtype",
                    format_func=lambda k: f"{k} ({serving.KV_DTYPES[k]:g} B/value)",
                    help="Bytes per cached key/value number; fp8 halves the cache (vLLM --kv-cache-dtype fp8).")

with st.container(border=True):
    st.subheader("Workload and targets")
    w = st.columns(5)
    w[0].number_input("Prompt tokens per request", min_value=1, max_value=10_000_000, step=256,
                      key="srv_prompt_tokens", help="Input tokens of one request (prefill).")
    w[1].number_input("Output tokens per request", min_value=1, max_value=10_000_000, step=64,
                      key="srv_output_tokens", help="Generated tokens of one request (decode).")
    load_kind = w[2].radio("Target load as", list(serving_url.LOAD_KINDS), format_func=serving_url.LOAD_KINDS.get,
                           key="srv_load_kind", horizontal=True,
                           help="Concurrent users in flight, or a request rate turned into concurrent users by "
                                "Little's law (users = rate × (TTFT + output tokens × TPOT) at the targets).")
    if load_kind == "rate":
        w[2].number_input("Requests per second (all replicas)", min_value=0.001, max_value=1_000_000.0, step=1.0,
                          key="srv_requests_per_s", help="Arrival rate of requests, all replicas together, 1/s.")
    else:
        w[2].number_input("Concurrent users (target load)", min_value=1, max_value=1_000_000_000, step=10,
                          key="srv_users", help="Users with a request in flight at any moment, all replicas "
                                                "together.")
    w[3].number_input("TTFT target (ms)", min_value=1.0, max_value=3_600_000.0, step=100.0, key="srv_ttft_ms",
                      help="Time to first token a user should see at most, milliseconds.")
    w[4].number_input("TPOT target (ms)", min_value=0.01, max_value=60_000.0, step=5.0, key="srv_tpot_ms",
                      help="Time per output token after the first, milliseconds (50 ms = 20 tokens/s per user).")

with st.expander("Engine settings (vLLM defaults) and efficiency assumptions"):
    e = st.columns(4)
    e[0].number_input("GPU memory utilization", min_value=0.05, max_value=1.0, step=0.05, key="srv_util",
                      help="vLLM --gpu-memory-utilization (default 0.9): share of GPU memory the engine may use.")
    e[1].number_input("Max concurrent sequences", min_value=1, max_value=100_000, step=16, key="srv_max_seqs",
                      help="vLLM --max-num-seqs (default 256): sequences one replica decodes together at most.")
    e[2].number_input("Max batched tokens", min_value=16, max_value=10_000_000, step=512,
                      key="srv_max_batched_tokens",
                      help="vLLM --max-num-batched-tokens: the per-step token budget of chunked prefill; it sizes "
                           "the activation reserve and the prefill chunks (2048 by default for online serving).")
    e[3].number_input("CUDA graphs per GPU (GiB)", min_value=0.0, max_value=1000.0, step=0.2,
                      key="srv_cuda_graph_gib",
                      help="Memory CUDA graph capture takes, inside the utilization budget since vLLM 0.21: vLLM logs "
                           "show 0.2–0.4 GiB for ~1B models (vllm PR #11349); users report 1.4–6.6 GiB per GPU for "
                           f"large ones. The CUDA context adds {serving.CUDA_CONTEXT_BYTES / GB:g} GB.")
    f = st.columns(3)
    f[0].number_input("Achieved share of memory bandwidth (%)", min_value=1.0, max_value=100.0, step=5.0,
                      key="srv_bandwidth_pct",
                      help="Decode reaches this share of peak bandwidth. Default 75 %: published batch-1 runs of vLLM "
                           "(A100) and MLC (RTX 4090) imply 72–79 %; llama.cpp runs of small models less (README "
                           "table).")
    f[1].number_input("Prefill MFU (%)", min_value=1.0, max_value=100.0, step=5.0, key="srv_mfu_pct",
                      help="Share of peak bf16 FLOP/s that prefill's large matrix multiplies reach (an assumption; "
                           "measured 8192³ bf16 matmuls reach ~78 % on H100).")
    f[2].number_input("Price per GPU-hour ($)", min_value=0.0, max_value=10_000.0, step=0.1, key="srv_price",
                      help="What one GPU of the chosen type costs per hour; the GPU comparison uses the catalog "
                           "prices listed there.")

NO_PLAN = "Choose a valid model above to see this part of the plan; your other inputs are kept."
plan = None
kwargs = serving_url.plan_kwargs(ss)
gpu = None
model_arg = None
if choice is not None:
    try:
        gpu = serving_url.selected_gpu(ss)
        model_arg = serving_url.model_input(choice)
        plan = serving.serving_plan(model_arg, gpu, concurrency=serving_url.target_users(ss), **kwargs)
    except (ValueError, ArchitectureError) as err:
        st.error(f"Cannot compute this plan: {escape_markdown(err)}")

ttft_s, tpot_s = ss["srv_ttft_ms"] / 1e3, ss["srv_tpot_ms"] / 1e3
users = serving_url.target_users(ss)
if load_kind == "rate":
    st.caption(f"{ss['srv_requests_per_s']:g} requests/s ≈ **{users:,} concurrent users** at the latency targets "
               "(Little's law).")
answer = None
if plan is not None:
    try:
        answer = serving_capacity.capacity_answer(model_arg, gpu, target_users=users,
                                                  ttft_target_s=ttft_s, tpot_target_s=tpot_s,
                                                  price_per_gpu_hour=float(ss["srv_price"]), **kwargs)
    except ValueError as err:
        st.error(f"Cannot size this load: {escape_markdown(err)}")

with st.container(border=True):
    st.subheader("At a glance")
    if plan is None or answer is None:
        st.info(NO_PLAN)
    else:
        m = st.columns(5)
        m[0].metric("Users per replica", f"{answer.users_per_replica:,}",
                    help=f"Most concurrent users one replica of {plan.tensor_parallel} × {plan.gpu} serves with TTFT "
                         f"≤ {ss['srv_ttft_ms']:g} ms and TPOT ≤ {ss['srv_tpot_ms']:g} ms.")
        m[1].metric("GPUs for the load", "—" if answer.gpus is None else f"{answer.gpus:,}",
                    help=f"{answer.replicas or '—'} replica(s) × {plan.tensor_parallel} GPU(s) for "
                         f"{users:,} concurrent users.")
        m[2].metric("Cost per hour", "—" if answer.cost_per_hour is None else f"${answer.cost_per_hour:,.2f}",
                    help="All replicas at the price per GPU-hour.")
        m[3].metric("$ per 1M output tokens", "—" if answer.cost_per_million_output_tokens is None
                    else f"${answer.cost_per_million_output_tokens:,.3f}",
                    help="Replica $/hour ÷ its aggregate output tokens per hour at the users per replica.")
        m[4].metric("$ per 1M input tokens", "—" if answer.cost_per_million_input_tokens is None
                    else f"${answer.cost_per_million_input_tokens:,.4f}",
                    help="Replica $/hour ÷ its prefill tokens per hour (compute-bound prefill).")
        n = st.columns(5)
        n[0].metric("TTFT at the target load", f"{plan.ttft_s * 1e3:,.1f} ms",
                    help="Prefill of one prompt in chunks beside the other users' decoding, plus waiting for a "
                         "free slot when more users than fit are on one replica.")
        n[1].metric("TPOT at the target load", f"{plan.tpot_s * 1e3:,.2f} ms",
                    help=f"One decode step of {plan.running_batch} sequences, incl. the others' prefill chunks; "
                         f"{plan.decode_tokens_per_s:,.1f} tokens/s per user.")
        single = serving_capacity.single_user_tokens_per_s(model_arg, gpu, **kwargs)
        n[2].metric("Batch-1 decode", f"{single:,.0f} tok/s",
                    help=f"One user alone; the bandwidth ceiling (100 % of peak) is "
                         f"{plan.decode_ceiling_tokens_per_s:,.0f} tokens/s.")
        n[3].metric("KV capacity", f"{plan.kv_capacity_tokens:,} tokens",
                    help=f"{plan.max_concurrent_sequences} sequences of {plan.prompt_tokens + plan.output_tokens:,} "
                         f"tokens fit at once; {plan.kv_bytes_per_token / 1e3:,.1f} kB per token.")
        n[4].metric("Decode is", f"{plan.bound}-bound",
                    help="Whether memory traffic or arithmetic limits the step at the target load; knee (decode "
                         f"turns compute-bound) at batch ≈ {plan.knee_batch or '> 10⁶'}.")
        if not plan.fits:
            st.error("This model does not fit one replica: " + " ".join(plan.notes))
        elif answer.users_per_replica == 0:
            st.warning("Even one user misses a latency target on this GPU; see 'Compare GPUs' for one that meets it.")
        for note in plan.notes:
            if plan.fits:
                st.caption(note)

tab_mem, tab_speed, tab_compare, tab_measure, tab_formulas, tab_export = st.tabs(
    ["Memory per GPU", "Speed vs load", "Compare GPUs", "Check against a measurement", "Formulas", "Export & links"])

with tab_mem:
    if plan is None:
        st.info(NO_PLAN)
    else:
        rows = serving_url.memory_rows(plan)
        st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="srv_memory_table",
                     column_config={"Per GPU (GB)": st.column_config.NumberColumn("Per GPU (GB)", format="%.2f GB")})
        st.plotly_chart(serving_charts.memory_figure(rows), key="srv_memory_chart")

curve = None
with tab_speed:
    if plan is None:
        st.info(NO_PLAN)
    else:
        curve = cached_curve(model_arg, gpu, kwargs)
        left, right = st.columns(2)
        left.plotly_chart(serving_charts.per_user_figure(curve, plan.knee_batch), key="srv_user_chart")
        right.plotly_chart(serving_charts.throughput_latency_figure({plan.gpu: curve}, ss["srv_tpot_ms"]),
                           key="srv_tpot_chart")
        st.dataframe(pd.DataFrame(serving_url.curve_rows(curve)), hide_index=True, width="stretch",
                     key="srv_curve_table", column_config={
                         "TTFT (ms)": st.column_config.NumberColumn("TTFT (ms)", format="%.1f ms"),
                         "TPOT (ms)": st.column_config.NumberColumn("TPOT (ms)", format="%.2f ms"),
                         "Per-user tokens/s": st.column_config.NumberColumn(format="%.1f tok/s"),
                         "Aggregate tokens/s": st.column_config.NumberColumn(format="%.0f tok/s")})
        render_plan_simulation(model_arg, gpu, kwargs, users, float(ss["srv_requests_per_s"])
                               if load_kind == "rate" else None, ttft_s, tpot_s)

with tab_compare:
    if plan is None:
        st.info(NO_PLAN)
    else:
        prices = dict(serving_capacity.DEFAULT_PRICES_PER_GPU_HOUR)
        if gpu.name in prices:
            prices[gpu.name] = float(ss["srv_price"])
        base = {k: v for k, v in kwargs.items() if k != "tensor_parallel"}
        with st.spinner("Sizing every catalog GPU…"):
            rows = cached_compare(model_arg, base, users, ttft_s, tpot_s, tuple(sorted(prices.items())))
        best = serving_capacity.cheapest(rows)
        if best is None:
            st.warning("No catalog GPU (1–8 per replica) meets both latency targets for this model and workload.")
        else:
            st.success(f"Cheapest: **{best.gpus} × {best.gpu}** ({best.tensor_parallel} per replica, {best.replicas} "
                       f"replica(s)) at **${best.cost_per_hour:,.2f}/hour**, "
                       f"${best.cost_per_million_output_tokens:,.3f} per 1M output tokens.")
        frame = pd.DataFrame(serving_url.compare_rows(rows))
        st.dataframe(frame, hide_index=True, width="stretch", key="srv_compare_table",
                     column_config=fitted_columns(frame, {
            "$/GPU-hour": st.column_config.NumberColumn(format="$%.2f"),
            "$/hour": st.column_config.NumberColumn(format="$%.2f"),
            "$ per 1M output tokens": st.column_config.NumberColumn(format="$%.3f"),
            "$ per 1M input tokens": st.column_config.NumberColumn(format="$%.4f"),
            "TTFT (ms)": st.column_config.NumberColumn(format="%.1f ms"),
            "TPOT (ms)": st.column_config.NumberColumn(format="%.2f ms")}))
        cited = ", ".join(serving_capacity.CITED_PRICES)
        st.caption(f"Prices: {cited} from Mercatus' cloud GPU pricing guide (May 2026, specialty-cloud midpoints); "
                   "the others are LLM Lab estimates — enter your own price above for the chosen GPU.")
        curves, cost_points = serving_capacity.cost_latency_curves(
            rows, lambda name, tp: cached_curve(model_arg, name, {**base, "tensor_parallel": tp}))
        if curves:
            left, right = st.columns(2)
            left.plotly_chart(serving_charts.throughput_latency_figure(curves, ss["srv_tpot_ms"]),
                              key="srv_compare_chart")
            right.plotly_chart(serving_charts.cost_latency_figure(cost_points), key="srv_cost_chart")

with tab_measure:
    render_serving_measure_panel(key="srv_measure")

with tab_formulas:
    st.markdown(
        "- **KV per token** = Σ over attention layers of (K + V values per token) × bytes; grouped-query attention "
        "caches `2 · kv_heads · head_dim` per layer (Ainslie et al. 2023); **MLA** (DeepSeek-V2 §2.1.2) caches "
        "`kv_lora_rank + qk_rope_head_dim` (576 values for DeepSeek-V2/V3); **Gemma 2/3** local layers hold at most "
        "the sliding window. Paged in whole blocks of 16 tokens (Kwon et al. 2023, §4.1).\n"
        "- **Memory per GPU** = utilization × memory − weights ÷ TP − activation reserve − CUDA context − CUDA "
        "graphs; the rest is the KV pool.\n"
        "- **Decode step** (Pope et al. 2022, §2): max( (weights read + KV read) ÷ (bandwidth × efficiency), "
        "(2 · N_active · tokens + attention FLOPs) ÷ (peak × MFU) ) + TP all-reduce. Mixture-of-experts weights "
        "read per step: the experts a batch touches, `E · (1 − (1 − k/E)^b)` per layer.\n"
        "- **All-reduce** (Megatron-LM §3; ring: Patarasuk & Yuan 2009): 2 per layer × (2(t−1)/t × tokens × hidden "
        "× 2 bytes ÷ one-direction link bandwidth + latency).\n"
        "- **Prefill** ≈ (2 · N_active · prompt + 2 · heads · (d_qk + d_v) · Σ keys) ÷ (peak × MFU).\n"
        "- **Roofline**: Williams, Waterman & Patterson 2009.")

with tab_export:
    if plan is None:
        st.info(NO_PLAN)
    else:
        query = serving_url.to_query_params({k: ss[k] for k in serving_url.defaults()})
        st.markdown("The page URL holds every input: copy it from the address bar to reopen or share this plan.")
        c = st.columns(3)
        c[0].download_button("Download the plan (CSV)", serving_url.plan_csv(plan), "serving_plan.csv", "text/csv",
                             key="srv_download_csv", help="Every field of the plan: bytes, seconds, tokens/s.")
        c[1].download_button("Download the plan (JSON)",
                             serving_capacity.plan_json(plan.to_dict(), answer, curve or [], query),
                             "serving_plan.json", "application/json", key="srv_download_json",
                             help="Inputs (as in the URL), the plan, the capacity answer and the latency curve.")
        if curve:
            c[2].download_button("Download the latency curve (CSV)", serving_url.rows_csv(serving_url.curve_rows(curve)),
                                 "serving_latency_curve.csv", "text/csv", key="srv_download_curve",
                                 help="TTFT, TPOT and tokens/s for 1–256 concurrent users.")

write_inputs_to_url(serving_url, URL_WRITTEN)
