"""The memory planner's results, one function per place on the page: the *At a glance* summary and the bodies of the
Inference, Training, Multi-GPU and GPU-fit tabs. Thin: every number comes from the plan that
core.plan.memory_plan.build_plan made (tables from core.plan.memory_tables, figures from core.plan.memory_charts).

Each ``render_*`` takes the plan and what it is drawn against (the chosen model, the GPU and its capacity label) and
draws into the current container; widget keys are the page's own (``mem_*``).
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.common.units import format_count, format_whole
from core.plan.memory_plan import KV_DTYPES, ZERO_STAGE_NAMES, ZERO_STAGES, format_gb
from core.plan import architectures, memory, memory_charts, memory_tables
from views.components.columns import gb_columns


def render_summary(plan, gpu) -> None:
    """The *At a glance* numbers: serve and train on one GPU, and how many GPUs each needs."""
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


def render_inference_results(plan, choice, gpu, capacity_label: str) -> None:
    """Inference tab: serving memory of the chosen weight format, the KV-cache formula, and every format compared."""
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
    kv_text = memory.kv_cache_formula_text(shape, plan.inputs["context"], plan.kv_tokens, plan.inputs["batch"],
                                           KV_DTYPES[plan.inputs["kv_dtype"]], selected["kv_cache"],
                                           plan.kv_per_token_bytes)
    (st.caption if shape["kind"] == "encoder" else st.markdown)(kv_text)
    if shape["kind"] != "encoder" and not shape.get("mla") and len(architectures.kv_groups(shape)) == 1:
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


def render_training_results(plan, choice, gpu, capacity_label: str) -> None:
    """Training tab: the 24 bytes/param rule of thumb, then mixed-precision Adam with activations, by recipe."""
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


def render_zero_results(plan, gpu, capacity_label: str) -> None:
    """Multi-GPU tab: per-GPU memory of DDP and each ZeRO stage on N GPUs, and how it falls with more GPUs."""
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


def render_fit_tables(plan) -> None:
    """GPU-fit tab: for every catalog GPU, whether serving and training fit, and the fewest GPUs for each."""
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
