"""Memory planner: what a model needs to serve, to fine-tune, to pre-train, and on which GPUs.

Thin page: reads widgets (whose values live in the URL via core.io.plan_io.FIELDS), calls core.plan.memory_plan.build_plan
(formulas in core.plan.memory, shapes in core.plan.architectures), renders tables and core.plan.memory_charts figures.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from core.plan import architectures, memory, memory_charts, memory_plan, memory_tables
from core import measure
from core.io import plan_io
from core.common.safe_json import MAX_CONFIG_CHARS
from core.common.user_text import escape_markdown
from core.plan.architectures import ArchitectureError
from views.components.finetune_plan_panel import render_finetune_plan_panel
from views.components.distributed_panel import render_distributed_panel
from views.components.measure_panel import render_measure_panel
from core.plan.hardware import GPUS
from core.plan.memory_plan import KV_DTYPES, SOURCES, ZERO_STAGES, PlanInputError, format_gb
from core.common.units import format_count
from views.components.columns import fitted_columns, gb_columns
from views.components.query_params import restore_inputs_from_url, write_inputs_to_url
from views.components.memory_plan_results import (render_fit_tables, render_inference_results, render_summary,
                                                  render_training_results, render_zero_results)

COMPUTE_PAGE = "views/compute_planner.py"
URL_WRITTEN = "mem_url_written"
UPLOAD_SEEN = "mem_config_upload_seen"


# ----------------------------------------------------------------------------------------------
# Inputs ↔ URL
# ----------------------------------------------------------------------------------------------


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------
st.title("Memory planner")
st.caption(
    "What a model needs to **serve**, to **fine-tune** and to **pre-train**, and on which GPUs. Parameter counts come "
    "from the architecture (tied weights once); formulas from the ZeRO paper (Rajbhandari et al. 2019) and "
    "Korthikanti et al. 2022 (all sources: docs/references/formulas.md in the repository). GB = 10⁹ bytes. Every input is in the page URL: copy it to share this plan."
)
for problem in restore_inputs_from_url(plan_io, URL_WRITTEN):
    st.warning(f"Ignored an invalid value in the link: {problem}")

# ---- Model ------------------------------------------------------------------------------------
model_col, gpu_col = st.columns([1.6, 1], gap="medium")
with model_col.container(border=True):
    st.subheader("Model")
    source = st.radio(
        "Plan from", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="mem_source",
        help="A catalog model (exact architecture), a bare parameter count (e.g. from the compute planner), or a "
             "Hugging Face config.json that you paste or upload.")
    if source == "catalog":
        st.selectbox(
            "Catalog model", architectures.catalog_ids(), key="mem_model",
            format_func=lambda cid: f"{architectures.display_name(cid)} · {format_count(architectures.param_count(cid))} params",
            help="Architectures with their real config.json values from the Hugging Face hub (sources: "
                 "docs/references/architectures.md in the repository). The "
                 "parameter count is computed from the shapes and matches the published checkpoint exactly.")
    elif source == "params":
        st.text_input(
            "Parameter count", key="mem_params",
            help="Total parameters, e.g. 7B, 350M, 6.74e9 or 124439808 (between 1 thousand and 10¹⁵). Without an "
                 "architecture the KV cache and activations use the shape of the closest catalog model.")
    else:
        upload = st.file_uploader(
            "Upload config.json", type=["json"], key="mem_config_file",
            help="A Hugging Face config.json (a few KB). Supported model types: "
                 f"{', '.join(architectures.SUPPORTED_MODEL_TYPES)}.")
        if upload is not None and st.session_state.get(UPLOAD_SEEN) != upload.file_id:
            st.session_state[UPLOAD_SEEN] = upload.file_id
            try:
                uploaded_text = upload.getvalue().decode("utf-8")
            except UnicodeDecodeError:
                st.error("The uploaded file is not UTF-8 text; upload the model's config.json.")
            else:
                if len(uploaded_text) > MAX_CONFIG_CHARS:  # kept out of the text box, which holds at most that
                    st.error(f"The uploaded file has {len(uploaded_text):,} characters; a config.json has a few "
                             f"thousand and the limit is {MAX_CONFIG_CHARS:,}. The text box keeps what it had.")
                else:
                    st.session_state["mem_config_text"] = uploaded_text
        st.text_area(
            "…or paste config.json", key="mem_config_text", height=180,
            max_chars=MAX_CONFIG_CHARS + 1,  # one over the limit, so a longer paste gets the "too long" message
            placeholder='{"model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096, ...}',
            help="The JSON of a Hugging Face config.json. Keys in GPT-2 style (n_layer, n_embd, n_head), T5 style "
                 "(num_layers, d_model, d_ff) or Llama style (num_hidden_layers, hidden_size) are all understood. At most "
                 f"{MAX_CONFIG_CHARS:,} characters.")

    choice = None
    try:
        choice = memory_plan.choose_model(source, st.session_state["mem_model"], st.session_state["mem_params"],
                                      st.session_state["mem_config_text"])
    except (PlanInputError, ArchitectureError) as err:  # messages quote the config's values: shown as text
        st.error(escape_markdown(err))

    if choice is not None:
        shape = choice.shape_config
        m = st.columns(3) + st.columns(2)
        m[0].metric("Parameters", f"{format_count(choice.n_params)}",
                    help=f"{choice.n_params:,} parameters" + (" (exact, tied weights counted once)" if choice.exact
                                                              else " (as entered)"))
        m[1].metric("fp16/bf16 weights", format_gb(memory.weights_bytes(choice.n_params, "bf16")),
                    help="2 bytes per parameter." + (
                        f" Mixture of experts: {format_count(architectures.active_param_count(choice.config))} "
                        "parameters active per token." if choice.config and choice.config.get("num_experts_total")
                        else ""))
        m[2].metric("Layers", f"{shape['num_hidden_layers']}" + (
            f" + {shape['num_decoder_layers']}" if shape.get("num_decoder_layers") else ""),
            help="Transformer blocks (encoder + decoder for T5).")
        m[3].metric("Hidden size · heads", f"{shape['hidden_size']:,} · {shape['num_attention_heads']}",
                    help="Model width and attention heads.")
        m[4].metric("KV heads · head dim", f"{shape['num_key_value_heads']} · {shape['head_dim']}",
                    help="Fewer KV heads than heads = grouped-query (GQA) or multi-query (MQA) attention: a smaller "
                         "KV cache.")
        if not choice.exact:
            st.info(f"Only the parameter count is known, so the KV cache and activations use the shape of the "
                    f"closest catalog model, **{architectures.display_name(choice.shape_source)}** "
                    f"({format_count(architectures.param_count(choice.shape_source))} params). Pick a catalog model "
                    "or paste a config.json for exact numbers.")
        note = architectures.CATALOG_NOTES.get(choice.catalog_id or "")
        if note:
            st.caption(note)

# ---- GPU and shared assumptions ---------------------------------------------------------------------
with gpu_col.container(border=True):
    st.subheader("GPU and assumptions")
    g = st.columns(2) + st.columns(2)
    gpu_name = g[0].selectbox(
        "GPU", [*GPUS, memory_plan.CUSTOM_GPU], key="mem_gpu",
        help="Catalog GPUs from NVIDIA datasheets (sources: docs/references/gpus.md in the repository), or "
             "'Custom GPU' to enter its memory.")
    g[1].number_input(
        "Custom GPU memory (GB)", min_value=1.0, max_value=100_000.0, step=8.0, format="%.1f",
        key="mem_custom_gpu_gb", disabled=gpu_name != memory_plan.CUSTOM_GPU,
        help="Memory of your own GPU in GB (10⁹ bytes); used when 'Custom GPU' is selected.")
    g[2].number_input(
        "Headroom kept free (%)", min_value=0.0, max_value=90.0, step=5.0, format="%.0f", key="mem_headroom_pct",
        help="Share of GPU memory a plan must leave unused (allocator fragmentation, spikes). A plan fits when it "
             "needs at most (100 − headroom)% of the GPU.")
    g[3].number_input(
        "CUDA context per GPU (GB)", min_value=0.0, max_value=100.0, step=0.1, format="%.2f",
        key="mem_overhead_gb",
        help="Fixed memory every GPU process takes before any model: CUDA context and PyTorch kernels. Default "
             f"{memory.DEFAULT_CUDA_OVERHEAD_GB} GB, as measured in Hugging Face's 'Model training anatomy' guide. "
             "Edit to your own measurement (nvidia-smi after torch initialises).")
gpu = memory_plan.selected_gpu(gpu_name, st.session_state["mem_custom_gpu_gb"])
capacity_label = f"{gpu.name}: {gpu.memory_gb:g} GB"

summary = st.container(border=True)
tab_infer, tab_train, tab_multi, tab_fit, tab_params, tab_export, tab_finetune, tab_measure = st.tabs(
    ["Inference", "Training", "Multi-GPU (DDP vs ZeRO)", "GPU fit", "Parameters", "Export & links",
     "Fine-tune (LoRA / QLoRA / prompt tuning)", "Measure on this machine"])

# Controls are drawn in every run (inside their tabs) so their values are never lost; results need a model.
with tab_infer:
    c = st.columns(5)
    c[0].selectbox(
        "Weight format", list(memory.WEIGHT_FORMATS), format_func=memory.WEIGHT_FORMATS.get, key="mem_weight_format",
        help="How the weights are stored for serving. int8 and 4-bit are bitsandbytes formats: their scales/absmax "
             "constants and the layers transformers leaves unquantized (embeddings, lm_head, norms) are included. "
             "This format is used in the GPU-fit table.")
    c[1].selectbox(
        "KV-cache dtype", list(KV_DTYPES), key="mem_kv_dtype",
        format_func=lambda k: f"{k} ({KV_DTYPES[k]:g} B/value)",
        help="Bytes per cached key/value number: 2 for fp16/bf16 (default in transformers), 1 for an fp8 cache.")
    c[2].number_input(
        "Context length (tokens)", min_value=1, max_value=10_000_000, step=1024, key="mem_context",
        help="Prompt + generated tokens per sequence that the KV cache holds.")
    c[3].number_input(
        "Batch size (sequences)", min_value=1, max_value=100_000, step=1, key="mem_batch",
        help="Sequences served at the same time; the KV cache grows linearly with it.")
    c[4].number_input(
        "Activation workspace (% of weights)", min_value=0.0, max_value=1000.0, step=5.0, format="%.0f",
        key="mem_workspace_pct",
        help="Temporary activations and buffers during a forward pass, as % of the weight memory. Default 20%: "
             "EleutherAI's 'Transformer Math 101' puts total inference memory at ≈1.2 × the weights.")

with tab_train:
    c = st.columns(4)
    c[0].number_input(
        "Training sequence length (tokens)", min_value=1, max_value=10_000_000, step=512, key="mem_train_seq",
        help="Tokens per training sequence (s in Korthikanti et al.). Activations grow with s (and with s² "
             "without recompute).")
    c[1].number_input(
        "Micro-batch per GPU (sequences)", min_value=1, max_value=100_000, step=1, key="mem_micro_batch",
        help="Sequences each GPU processes per forward/backward (b). Activations grow linearly with it; data "
             "parallelism does not shard them.")
    c[2].selectbox(
        "Activation recompute", list(memory.RECOMPUTE_OPTIONS), key="mem_recompute",
        format_func={"none": "none: sbh(34 + 5as/h) per layer", "selective": "selective: 34·sbh per layer",
                     "full": "full: 2·sbh per layer"}.get,
        help="Korthikanti et al. 2022, Table 2. 'none' stores everything (attention scores grow with s²); "
             "'selective' recomputes the attention core — what FlashAttention-style kernels effectively do; 'full' "
             "keeps only each layer's input (gradient checkpointing, +1 forward pass of compute).")
    c[3].number_input(
        "Optimizer bytes per parameter (K)", min_value=0.0, max_value=100.0, step=1.0, format="%.0f",
        key="mem_optimizer_bytes",
        help="K in the ZeRO paper: 12 for mixed-precision Adam (fp32 master weights 4 + momentum 4 + variance 4). "
             "Use 4 for SGD with momentum plus master weights, 6 for 8-bit Adam with fp32 master weights.")

with tab_multi:
    c = st.columns([1, 2])
    c[0].number_input(
        "Data-parallel GPUs (N)", min_value=1, max_value=100_000, step=8, key="mem_n_gpus",
        help="GPUs that share the model states under ZeRO/FSDP (Nd in the ZeRO paper).")
    c[1].radio(
        "Sharding strategy", list(ZERO_STAGES), format_func=ZERO_STAGES.get, horizontal=True, key="mem_stage",
        help="DDP replicates everything; ZeRO-1 shards optimizer states, ZeRO-2 also gradients, ZeRO-3 (FSDP "
             "FULL_SHARD) also the weights. The chosen strategy is used in the GPU-fit table.")

plan = None
if choice is not None:
    try:
        plan = memory_plan.build_plan(
            choice, gpu, weight_format=st.session_state["mem_weight_format"],
            kv_dtype=st.session_state["mem_kv_dtype"], context=st.session_state["mem_context"],
            batch=st.session_state["mem_batch"], workspace_pct=st.session_state["mem_workspace_pct"],
            overhead_gb=st.session_state["mem_overhead_gb"], train_seq=st.session_state["mem_train_seq"],
            micro_batch=st.session_state["mem_micro_batch"], recompute=st.session_state["mem_recompute"],
            optimizer_bytes=st.session_state["mem_optimizer_bytes"], n_gpus=st.session_state["mem_n_gpus"],
            stage=st.session_state["mem_stage"], headroom_pct=st.session_state["mem_headroom_pct"])
    except (PlanInputError, ArchitectureError, ValueError) as err:
        st.error(f"Cannot compute this plan: {escape_markdown(err)}")

NO_PLAN = "Choose a valid model above to see the plan; your other inputs are kept."  # shown once, in the summary

# ---- At a glance -------------------------------------------------------------------------------------
with summary:
    st.subheader("At a glance")
    if plan is None:
        st.info(NO_PLAN)
    else:
        render_summary(plan, gpu)

# ---- Parameters ------------------------------------------------------------------------------------
with tab_params:
    if plan is None:
        pass  # the summary above says why
    elif not plan.breakdown:
        st.info("A bare parameter count has no per-component breakdown. Pick a catalog model or paste a "
                "config.json to see embeddings, attention, MLP, norms and lm_head.")
    else:
        total = sum(plan.breakdown.values())
        frame = pd.DataFrame(memory_tables.parameter_rows(plan))
        left, right = st.columns([1, 1.3])
        left.dataframe(frame, hide_index=True, width="stretch", key="mem_breakdown_table",
                       column_config={"parameters": st.column_config.NumberColumn("parameters", format="localized"),
                                      "share (%)": st.column_config.NumberColumn("share (%)", format="%.2f %%"),
                                      **gb_columns(frame.columns)})
        left.caption(f"Total **{total:,} parameters**. lm_head is 0 when it is tied to the token embedding "
                     "(stored once).")
        right.plotly_chart(memory_charts.parameter_breakdown_figure(plan.breakdown), key="mem_breakdown_chart")

# ---- Inference -----------------------------------------------------------------------------------
with tab_infer:
    if plan is None:
        pass  # the summary above says why
    else:
        render_inference_results(plan, choice, gpu, capacity_label)

# ---- Training --------------------------------------------------------------------------------------
with tab_train:
    if plan is None:
        pass  # the summary above says why
    else:
        render_training_results(plan, choice, gpu, capacity_label)

# ---- Multi-GPU -----------------------------------------------------------------------------------
with tab_multi:
    if plan is None:
        pass  # the summary above says why
    else:
        render_zero_results(plan, gpu, capacity_label)
        st.divider()
        render_distributed_panel(choice.catalog_id or choice.config, key="dist")

# ---- GPU fit -------------------------------------------------------------------------------------------
with tab_fit:
    if plan is None:
        pass  # the summary above says why
    else:
        render_fit_tables(plan)

# ---- Export and links --------------------------------------------------------------------------------
with tab_export:
    if plan is None:
        pass  # the summary above says why
    else:
        st.markdown("The page URL holds every input: copy it from the address bar to reopen or share this plan.")
        query = plan_io.to_query_params({k2: st.session_state[k2] for k2 in plan_io.defaults()})
        c = st.columns([1, 1, 1.3])
        c[0].download_button(
            "Download the plan (CSV)", plan_io.plan_csv(plan), "memory_plan.csv", "text/csv", key="mem_download_csv",
            help="Every number of the plan as rows: section, item, value, unit (GB = 10⁹ bytes).")
        c[1].download_button(
            "Download the plan (JSON)", plan_io.plan_json(plan, query), "memory_plan.json", "application/json",
            key="mem_download_json", help="The inputs (as in the URL) and every result in bytes, machine-readable.")
        with c[2]:
            count = str(int(choice.n_params))
            try:
                st.page_link(COMPUTE_PAGE, label=f"Compute planner for {format_count(choice.n_params)} params →",
                             icon=":material/timer:", query_params={"params": count},
                             help="Opens the compute planner with this parameter count (URL ?params=).")
            except StreamlitPageNotFoundError:  # a lone script (AppTest) has no page registry
                st.markdown(f"[Compute to train this model →](/compute?params={count})")
        summary = pd.DataFrame(memory_tables.plan_rows(plan)).astype({"value": str})
        st.dataframe(summary, hide_index=True, width="stretch", key="mem_summary_table", height=320,
                     column_config=fitted_columns(summary))

# ---- Fine-tuning with LoRA / QLoRA / prompt tuning (core.finetune) -----------------------------------------------
with tab_finetune:
    if choice is None:
        pass  # the summary above says why
    elif not (choice.catalog_id or choice.config):
        st.info("Fine-tuning plans need an architecture (a catalog model or a config.json): the adapters' size "
                "depends on every matrix's shape, not only the parameter count.")
    else:
        render_finetune_plan_panel(choice.catalog_id or choice.config, gpu, key="ft")

# ---- Measured against predicted (core.measure) -------------------------------------------------------------------
with tab_measure:
    if choice is None:
        pass  # the summary above says why
    else:
        weight_format = st.session_state["mem_weight_format"]
        seq_len = int(st.session_state["mem_train_seq"])
        learned_positions = measure.learned_position_limit(choice.config) if choice.config else None
        if learned_positions and seq_len > learned_positions:
            st.caption(f"This model has learned position embeddings for {learned_positions:,} tokens: measured at "
                       f"{learned_positions:,} tokens instead of the plan's {seq_len:,}.")
            seq_len = learned_positions
        render_measure_panel(
            choice.catalog_id or choice.config or choice.n_params,
            seq_len, int(st.session_state["mem_micro_batch"]),
            dtype=weight_format if weight_format in ("fp32", "fp16", "bf16") else "bf16",
            recipe="mixed_precision", key="measure")

write_inputs_to_url(plan_io, URL_WRITTEN)
