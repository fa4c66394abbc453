"""Memory planner: what a model needs to serve, to fine-tune, to pre-train, and on which GPUs.

Thin page: reads widgets (whose values live in the URL via core.io.plan_io.FIELDS), calls core.io.plan_io.build_plan
(formulas in core.plan.memory, shapes in core.plan.architectures), renders tables and core.plan.memory_charts figures.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.errors import StreamlitPageNotFoundError

from core.plan import architectures, memory, memory_charts, memory_tables
from core import measure
from core.io import plan_io
from core.common.safe_json import MAX_CONFIG_CHARS
from core.common.user_text import escape_markdown
from core.plan.architectures import ArchitectureError
from views.components.finetune_plan_panel import render_finetune_plan_panel
from views.components.distributed_panel import render_distributed_panel
from views.components.measure_panel import render_measure_panel
from core.plan.hardware import GPUS
from core.io.plan_io import FIELDS
from core.plan.memory_plan import KV_DTYPES, SOURCES, ZERO_STAGE_NAMES, ZERO_STAGES, PlanInputError, format_gb
from core.common.units import format_count, format_whole
from views.components.columns import gb_columns
from views.components.query_params import sync_query_params

COMPUTE_PAGE = "views/compute_planner.py"
URL_WRITTEN = "mem_url_written"
UPLOAD_SEEN = "mem_config_upload_seen"


# ----------------------------------------------------------------------------------------------
# Inputs ↔ URL
# ----------------------------------------------------------------------------------------------
def restore_inputs_from_url() -> list[str]:
    """Keep every input across reruns and, when the URL differs from what this page last wrote (a shared link, or
    the compute planner's /memory?params=...), load the inputs from it. Returns messages about invalid values."""
    for key, default in plan_io.defaults().items():
        # Re-assigning keeps values of widgets that are not drawn in this run (e.g. the catalog model while a
        # parameter count is being planned), so switching back restores them.
        st.session_state[key] = st.session_state.get(key, default)
    ours = {k: v for k, v in st.query_params.to_dict().items() if k in FIELDS}
    if not ours or ours == st.session_state.get(URL_WRITTEN):
        return []
    values, problems = plan_io.parse_query_params(ours)
    for key, value in values.items():
        st.session_state[key] = value
    return problems


def write_inputs_to_url() -> None:
    wanted = plan_io.to_query_params({k: st.session_state[k] for k in plan_io.defaults()})
    sync_query_params(wanted, FIELDS)
    st.session_state[URL_WRITTEN] = wanted


# ----------------------------------------------------------------------------------------------
# Page
# ----------------------------------------------------------------------------------------------
st.title("Memory planner")
st.caption(
    "What a model needs to **serve**, to **fine-tune** and to **pre-train**, and on which GPUs. Parameter counts come "
    "from the architecture (tied weights once); formulas from the ZeRO paper (Rajbhandari et al. 2019) and "
    "Korthikanti et al. 2022 (all sources: docs/references/formulas.md in the repository). GB = 10⁹ bytes. Every input is in the page URL: copy it to share this plan."
)
for problem in restore_inputs_from_url():
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
        choice = plan_io.choose_model(source, st.session_state["mem_model"], st.session_state["mem_params"],
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
        "GPU", [*GPUS, plan_io.CUSTOM_GPU], key="mem_gpu",
        help="Catalog GPUs from NVIDIA datasheets (sources: docs/references/gpus.md in the repository), or "
             "'Custom GPU' to enter its memory.")
    g[1].number_input(
        "Custom GPU memory (GB)", min_value=1.0, max_value=100_000.0, step=8.0, format="%.1f",
        key="mem_custom_gpu_gb", disabled=gpu_name != plan_io.CUSTOM_GPU,
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
gpu = plan_io.selected_gpu(gpu_name, st.session_state["mem_custom_gpu_gb"])
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
        plan = plan_io.build_plan(
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
        usable = plan.usable_bytes
        serve = sum(plan.selected_inference.values())
        single_train = sum(plan.mixed_precision.values())
        stage = plan.inputs["stage"]
        stage_name = ZERO_STAGE_NAMES[stage]
        fit_row = next(r for r in plan.fit_rows if r["GPU"] == gpu.name)
        n_serve = fit_row["min GPUs to serve"]
        n_train = fit_row[f"min GPUs, {stage_name}"]
        m = st.columns(4)
        m[0].metric("Serve on 1 GPU", format_gb(serve),
                    help=f"{plan.inputs['weight_format']} weights + KV cache ({plan.inputs['context']:,} tokens × "
                         f"{plan.inputs['batch']} sequences) + activation workspace + CUDA context (Inference tab).")
        m[1].metric("Train on 1 GPU", format_gb(single_train),
                    help="16 B/param of model states (K = 12) + activations of one micro-batch + CUDA context "
                         "(Training tab).")
        m[2].metric(f"{gpu.name} GPUs to serve", "never" if n_serve is None else format_whole(n_serve),
                    help=f"Fewest {gpu.name} GPUs holding the serving plan split evenly, each keeping "
                         f"{plan.inputs['headroom_pct']:g}% free and its own CUDA context.")
        m[3].metric(f"GPUs to train ({stage_name})", "never" if n_train is None else format_whole(n_train),
                    help=f"Fewest data-parallel {gpu.name} GPUs for the chosen sharding strategy (Multi-GPU tab); "
                         "'never' when the unsharded part alone does not fit.")
        verdict = "fits" if serve <= usable else "does not fit"
        st.caption(f"Serving on one {gpu.name} {verdict} ({format_gb(serve)} of {format_gb(usable)} usable). "
                   f"Rule of thumb for training: 24 B/param → {format_gb(sum(plan.rule_of_thumb.values()))}.")

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
        fmt = plan.inputs["weight_format"]
        selected = plan.selected_inference
        shape = choice.shape_config
        weights_total = memory_tables.inference_weights_bytes(selected)
        m = st.columns(4)
        m[0].metric(f"Weights ({fmt})", format_gb(weights_total), help="Including quantization constants and "
                    "16-bit layers for bitsandbytes formats.")
        m[1].metric("KV cache", format_gb(selected["kv_cache"]),
                    help="2 · layers · KV heads · head dim · tokens · batch · bytes per value.")
        m[2].metric("Total on one GPU", format_gb(sum(selected.values())),
                    help="Weights + KV cache + activation workspace + CUDA context.")
        free = gpu.memory_bytes - sum(selected.values())
        m[3].metric(f"Left on {gpu.name}", format_gb(free) if free >= 0 else f"−{format_gb(-free)}",
                    help="GPU memory minus the total; negative means it does not fit on one GPU.")
        if shape["kind"] == "encoder":
            st.caption("Encoders do not generate text, so there is no KV cache.")
        elif shape.get("mla") or len(architectures.kv_groups(shape)) > 1:
            # MLA (compressed latent) or local/global hybrids: one term per group of layers (architectures.kv_groups)
            terms = [f"{g.layers}{' local (≤ ' + format(g.window, ',') + ' tokens)' if g.window else ''} layers × "
                     f"{g.values_per_token:,} values" for g in architectures.kv_groups(shape)]
            st.markdown(f"**KV cache** = ({' + '.join(terms)}) per token × {plan.inputs['context']:,} tokens × "
                        f"{plan.inputs['batch']} "
                        f"sequences × {KV_DTYPES[plan.inputs['kv_dtype']]:g} bytes = "
                        f"**{format_gb(selected['kv_cache'])}**"
                        + (" — MLA caches a compressed latent (kv_lora_rank + qk_rope_head_dim) per layer "
                           "(DeepSeek-V2 §2.1.2)." if shape.get("mla") else
                           " — sliding-window layers stop growing at the window."))
        else:
            layers = shape["num_hidden_layers"] if shape["kind"] == "decoder" else 2 * shape["num_decoder_layers"]
            st.markdown(
                f"**KV cache** = 2 × {layers} layers × {shape['num_key_value_heads']} KV heads × "
                f"{shape['head_dim']} head dim × {plan.kv_tokens:,} tokens × {plan.inputs['batch']} sequences × "
                f"{KV_DTYPES[plan.inputs['kv_dtype']]:g} bytes = **{format_gb(selected['kv_cache'])}** "
                f"({plan.kv_per_token_bytes / 1e6:.3g} MB per token per sequence)."
                + (" Encoder-decoder: decoder self-attention + cross-attention caches." if shape["kind"] ==
                   "encoder-decoder" else ""))
            window = shape.get("sliding_window_effective")
            if window and plan.inputs["context"] > window:
                st.info(f"Sliding-window attention: each layer caches at most {window:,} tokens, so the cache "
                        f"stops growing beyond that (Mistral 7B's rolling buffer).")
            max_ctx = shape.get("max_position_embeddings")
            if max_ctx and plan.inputs["context"] > max_ctx and choice.exact:
                st.warning(f"{plan.inputs['context']:,} tokens is beyond this model's trained context "
                           f"({max_ctx:,} tokens); the memory is computed anyway.")
        st.plotly_chart(memory_charts.stacked_memory_figure(
            memory_tables.inference_bars(plan), "Serving memory per weight format (one GPU)", gpu.memory_bytes,
            capacity_label, highlight=memory_tables.inference_bar_highlight(fmt)), key="mem_inference_chart")
        frame = pd.DataFrame(memory_tables.inference_format_rows(plan))
        st.dataframe(frame, hide_index=True, width="stretch", key="mem_inference_table",
                     column_config=gb_columns(frame.columns))
        st.caption("int8 = bitsandbytes LLM.int8 (int8 weights + one fp32 scale per output row); nf4 = bitsandbytes "
                   "4-bit NF4 (one fp32 absmax per 64 weights, 0.5 bit/param); nf4-dq = with double quantization "
                   "(8-bit absmax, ≈0.127 bit/param). Embeddings, norms, biases and lm_head stay in fp16.")
        if not choice.exact and fmt in ("int8", "nf4", "nf4-dq"):
            st.caption("With a bare parameter count every parameter is treated as quantized; a config.json adds the "
                       "16-bit embeddings and lm_head.")

# ---- Training --------------------------------------------------------------------------------------
with tab_train:
    if plan is None:
        pass  # the summary above says why
    else:
        n = choice.n_params
        rot = memory.training_bytes_per_param("rule_of_thumb")
        st.markdown("##### 1 · The rule of thumb: 24 bytes per parameter")
        st.markdown(
            f"weights **{rot['weights']:g}** + Adam optimizer, 2 states **{rot['optimizer']:g}** + gradients "
            f"**{rot['gradients']:g}** + activations and temporary memory **{rot['activations']:g}** = "
            f"**{sum(rot.values()):g} bytes/param** × {format_count(n)} params = "
            f"**{format_gb(sum(plan.rule_of_thumb.values()))}** to train, versus 4 bytes/param × {format_count(n)} = "
            f"**{format_gb(plan.store_fp32_bytes)}** to store the fp32 weights "
            f"({sum(rot.values()) / 4:g}× more). Course example: 1B parameters → 24 GB to train, 4 GB to store.")
        c1, c2 = st.columns(2)
        c1.plotly_chart(memory_charts.stacked_memory_figure(
            memory_tables.store_vs_train_bars(plan), "Store vs train, rule of thumb", gpu.memory_bytes, capacity_label), key="mem_store_vs_train_chart")

        st.markdown("##### 2 · Mixed-precision Adam (ZeRO paper) + activations (Korthikanti et al. 2022)")
        k = plan.inputs["optimizer_bytes"]
        mp = plan.mixed_precision
        s, b = plan.inputs["train_seq"], plan.inputs["micro_batch"]
        shape = choice.shape_config
        layers = shape["num_hidden_layers"] + shape.get("num_decoder_layers", 0)
        h, a = shape["hidden_size"], shape["num_attention_heads"]
        per_layer_formula = {"none": f"s·b·h·(34 + 5·a·s/h) = {s:,}·{b}·{h:,}·(34 + 5·{a}·{s:,}/{h:,})",
                             "selective": f"34·s·b·h = 34·{s:,}·{b}·{h:,}",
                             "full": f"2·s·b·h = 2·{s:,}·{b}·{h:,}"}[plan.inputs["recompute"]]
        st.markdown(
            f"Model states: fp16 weights **2** + fp16 gradients **2** + optimizer K = **{k:g}** (fp32 master "
            f"weights, momentum, variance) = **{4 + k:g} bytes/param** → **{format_gb(memory_tables.model_states_bytes(mp))}**. "
            f"Activations ({plan.inputs['recompute']} recompute): {layers} layers × {per_layer_formula} bytes = "
            f"**{format_gb(mp['activations'])}** per micro-batch. Plus {format_gb(mp['cuda_context'])} "
            f"CUDA context → **{format_gb(sum(mp.values()))}** on a single GPU.")
        c2.plotly_chart(memory_charts.stacked_memory_figure(
            memory_tables.recipe_bars(plan), "Training memory on one GPU by recipe", gpu.memory_bytes, capacity_label,
            highlight=memory_tables.recipe_bar_highlight(plan.inputs["recompute"])), key="mem_recipes_chart")
        st.caption("Korthikanti et al. count the activations of the transformer layers with 16-bit values; "
                   "embedding/logit activations are not included. Hugging Face's anatomy guide counts 18 B/param of "
                   "model states (fp32 + fp16 weights 6, fp32 gradients 4, AdamW 8).")

# ---- Multi-GPU -----------------------------------------------------------------------------------
with tab_multi:
    if plan is None:
        pass  # the summary above says why
    else:
        n_gpus = plan.inputs["n_gpus"]
        frame = pd.DataFrame(memory_tables.zero_rows(plan, ZERO_STAGES))
        st.markdown(f"Per-GPU memory with **{n_gpus} data-parallel GPUs** (mixed-precision Adam, K = "
                    f"{plan.inputs['optimizer_bytes']:g}; activations of one micro-batch are not sharded).")
        st.dataframe(frame, hide_index=True, width="stretch", key="mem_zero_table",
                     column_config=gb_columns(frame.columns))
        c1, c2 = st.columns(2)
        c1.plotly_chart(memory_charts.stacked_memory_figure(
            memory_tables.zero_bars(plan, ZERO_STAGE_NAMES), f"Per GPU on {n_gpus} GPUs", gpu.memory_bytes, capacity_label,
            highlight=ZERO_STAGE_NAMES[plan.inputs["stage"]]), key="mem_zero_chart")
        c2.plotly_chart(memory_charts.per_gpu_vs_gpus_figure(
            {ZERO_STAGE_NAMES[s_]: pts for s_, pts in plan.zero_curves.items()},
            gpu.memory_bytes, capacity_label, chosen_n=n_gpus if n_gpus <= 1024 else None),
            key="mem_gpus_curve_chart")
        st.caption("ZeRO paper, Figure 1: DDP (2 + 2 + K)Ψ; ZeRO-1 2Ψ + 2Ψ + KΨ/N; ZeRO-2 2Ψ + (2 + K)Ψ/N; "
                   "ZeRO-3 (2 + 2 + K)Ψ/N. Not included: communication buffers and, for ZeRO-3, the largest layer "
                   "gathered at a time (DeepSpeed's estimator adds it). Data parallelism only: when one micro-batch's "
                   "activations alone exceed a GPU (e.g. BLOOM or GPT-3 at 2,048 tokens), use full recompute or add "
                   "tensor parallelism, which divides activations by t (Korthikanti et al., Table 2).")
        st.divider()
        render_distributed_panel(choice.catalog_id or choice.config, key="dist")

# ---- GPU fit -------------------------------------------------------------------------------------------
with tab_fit:
    if plan is None:
        pass  # the summary above says why
    else:
        frame = pd.DataFrame(memory_tables.fit_display_rows(plan))
        headroom = plan.inputs["headroom_pct"]
        usable_help = f"GPU memory minus the {headroom:g}% headroom kept free."
        colcfg = gb_columns(frame.columns, formats={"memory (GB)": "%.0f GB"}, helps={"usable (GB)": usable_help})
        height = 38 + 35 * len(frame)
        st.markdown(
            f"**Serving** {memory.WEIGHT_FORMATS[plan.inputs['weight_format']]}, {plan.inputs['context']:,} tokens × "
            f"{plan.inputs['batch']} sequences. A plan fits when it needs at most {100 - headroom:g}% of the GPU; "
            "several GPUs split weights, KV cache and workspace evenly (tensor/pipeline parallel), each with its own "
            "CUDA context.")
        serve_cols = ["GPU", "memory (GB)", "usable (GB)", "serve: needs on 1 GPU (GB)", "serve: left on 1 GPU (GB)",
                      "serve: fits 1 GPU", "min GPUs to serve"]
        st.dataframe(frame[serve_cols], hide_index=True, width="stretch", key="mem_fit_serve_table",
                     column_config=colcfg, height=height)
        stage_name = ZERO_STAGE_NAMES[plan.inputs["stage"]]
        st.markdown(
            f"**Training** with mixed-precision Adam (K = {plan.inputs['optimizer_bytes']:g}), "
            f"{plan.inputs['recompute']} recompute, {plan.inputs['train_seq']:,} tokens × "
            f"{plan.inputs['micro_batch']} per GPU: per-GPU memory of {stage_name} on {plan.inputs['n_gpus']} GPUs, "
            "and the fewest GPUs for each strategy. 'never': the unsharded part alone is too big for the GPU "
            "(DDP and low ZeRO stages keep full copies).")
        train_cols = ["GPU", "memory (GB)", "usable (GB)", "train: needs per GPU (GB)", "train: fits",
                      *[c for c in frame.columns if c.startswith("min GPUs, ")]]
        # Nine columns in the page's width: short headers (full names in the help) and fixed widths, no side scroll.
        train_cfg = {**colcfg,
                     "GPU": st.column_config.TextColumn("GPU", width=125),
                     "memory (GB)": st.column_config.NumberColumn("memory", format="%.0f GB", width=70,
                                                                  help="GPU memory (GB = 10⁹ bytes)."),
                     "usable (GB)": st.column_config.NumberColumn("usable", format="%.1f GB", width=80,
                                                                  help=usable_help),
                     "train: needs per GPU (GB)": st.column_config.NumberColumn(
                         "needs/GPU", format="%.1f GB", width=85,
                         help=f"Training memory per GPU with {stage_name} on {plan.inputs['n_gpus']} GPUs."),
                     "train: fits": st.column_config.TextColumn("fits", width=65, help="Fits the usable memory."),
                     **{c: st.column_config.TextColumn(c.removeprefix("min GPUs, "), width=110,
                                                       help=f"Fewest GPUs to train with {c.removeprefix('min GPUs, ')}.")
                        for c in train_cols if c.startswith("min GPUs, ")}}
        st.dataframe(frame[train_cols], hide_index=True, width="stretch", key="mem_fit_train_table",
                     column_config=train_cfg, height=height)
        st.caption("DDP … ZeRO-3 / FSDP columns: the fewest GPUs that train the model with that strategy.")

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
        st.dataframe(pd.DataFrame(plan_io.plan_rows(plan)).astype({"value": str}), hide_index=True,
                     width="stretch", key="mem_summary_table", height=320)

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

write_inputs_to_url()
