""""Fine-tune" tab of the memory planner (LoRA, QLoRA, prompt tuning): trainable parameters, memory per component
side by side with full fine-tuning, and FLOPs → GPU-hours and cost. All numbers from core.finetune; the figure from
core.finetune.charts.

One call: ``render_finetune_plan_panel(model, gpu, key="ft")`` with a catalog id / config dict and the planner's GPU.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.plan import finetune
from core.finetune import charts as finetune_charts
from core.plan.architectures import ArchitectureError
from core.common.units import GB
from core.common.units import format_count

METHOD_LABELS = {"lora": "LoRA (16-bit frozen base)", "qlora": "QLoRA (4/8-bit frozen base)",
                 "prompt-tuning": "Prompt tuning (soft prompt, 16-bit frozen base)"}
PRECISION_LABELS = {"bf16": "bf16", "fp16": "fp16", "int8": "int8 (bitsandbytes LLM.int8)",
                    "nf4": "NF4 (bitsandbytes 4-bit)", "nf4-dq": "NF4 + double quantization"}
PROJECTION_LABELS = {"q": "attention q", "k": "attention k", "v": "attention v", "o": "attention o (output)",
                     "gate": "MLP gate", "up": "MLP up", "down": "MLP down"}
TARGET_PRESETS = {"attention q/k/v/o": ["q", "k", "v", "o"], "MLP gate/up/down": ["gate", "up", "down"],
                  "all linear layers": list(finetune.PROJECTIONS), "custom": None}


def render_finetune_plan_panel(model, gpu, *, key: str = "ft") -> dict | None:
    """Render the fine-tuning planner for ``model`` on ``gpu`` (core.plan.hardware.GPU); returns the plan dict or None."""
    st.subheader("Fine-tune with LoRA / QLoRA / prompt tuning")
    st.caption("LoRA (Hu et al. 2021) freezes the model and trains low-rank adapters B·A on chosen matrices; QLoRA "
               "(Dettmers et al. 2023) also stores the frozen base in 4 bits; prompt tuning (Lester et al. 2021) "
               "trains only a soft prompt of virtual tokens before every sequence. Memory per component at the "
               "predicted peak, next to full fine-tuning of the same model.")
    c = st.columns(4)
    method = c[0].radio("Method", list(METHOD_LABELS), format_func=METHOD_LABELS.get, key=f"{key}_method",
                        help="LoRA keeps the base in 16 bits; QLoRA quantizes it (bitsandbytes NF4 or int8) and "
                             "dequantizes one layer at a time to compute; prompt tuning keeps a 16-bit base and "
                             "trains virtual tokens × hidden size parameters.")
    lora = method != finetune.PROMPT_TUNING
    precisions = ["nf4-dq", "nf4", "int8"] if method == "qlora" else ["bf16", "fp16"]
    base = c[0].selectbox("Base precision", precisions, format_func=PRECISION_LABELS.get, key=f"{key}_base_{method}",
                          help="Storage of the frozen base weights. NF4: 0.5 B/param + an fp32 absmax per 64 values;"
                               " double quantization stores those in 8 bits (QLoRA §3).")
    rank, dropout, projections, virtual = None, 0.0, None, 20
    if lora:
        rank = c[1].number_input("Rank r", min_value=1, max_value=finetune.MAX_RANK, value=16, step=8,
                                 key=f"{key}_rank", help="Adapter rank: r·(d_in + d_out) trainable parameters per "
                                                         "adapted matrix. Must not exceed the smallest adapted layer.")
        c[1].number_input("Alpha α", min_value=1.0, max_value=4096.0, value=32.0, step=8.0, key=f"{key}_alpha",
                          help="Scaling α/r of the adapter's output (Hu et al. §4.1). Changes the learning "
                               "dynamics, not memory or FLOPs.")
        dropout = c[1].number_input("Dropout", min_value=0.0, max_value=0.9, value=0.05, step=0.05, format="%.2f",
                                    key=f"{key}_dropout",
                                    help="Dropout on each adapter's input; it keeps a mask per adapted input for "
                                         "backward (1 byte/value on GPUs).")
        preset = c[2].selectbox("Target modules", list(TARGET_PRESETS), key=f"{key}_preset",
                                help="Which frozen matrices get adapters. 'custom' lets you pick projections.")
        projections = TARGET_PRESETS[preset] or c[2].multiselect(
            "Projections", list(PROJECTION_LABELS), default=["q", "v"], format_func=PROJECTION_LABELS.get,
            key=f"{key}_custom", help="Projections adapted in every layer (GPT-2's fused c_attn counts as q/k/v).")
    else:
        virtual = c[1].number_input("Virtual tokens", min_value=1, max_value=finetune.MAX_VIRTUAL_TOKENS, value=20,
                                    step=4, key=f"{key}_virtual",
                                    help="Length of the soft prompt: virtual tokens × hidden size trainable "
                                         "parameters (× 2 for encoder-decoder models), and that many more "
                                         "positions in every training step (Lester et al. 2021 use 5–150).")
    optimizer = c[2].selectbox("Optimizer", list(finetune.OPTIMIZER_LABELS), format_func=finetune.OPTIMIZER_LABELS.get,
                               key=f"{key}_optimizer", help="States kept per trainable parameter.")
    checkpointing = c[3].toggle("Gradient checkpointing", key=f"{key}_gc",
                                help="Keep only each layer's input and recompute it in backward: less activation "
                                     "memory for one extra forward (2·N FLOPs/token).")
    seq_len = c[3].number_input("Sequence length (tokens)", min_value=1, max_value=131_072, value=1024, step=256,
                                key=f"{key}_seq", help="Tokens per training sequence.")
    micro = c[3].number_input("Micro-batch (sequences)", min_value=1, max_value=4096, value=4, step=1,
                              key=f"{key}_micro", help="Sequences per forward/backward on one GPU; sets the "
                                                       "activation memory.")
    accum = c[3].number_input("Gradient accumulation (steps)", min_value=1, max_value=4096, value=8, step=1,
                              key=f"{key}_accum", help="Micro-batches per optimizer step: a larger effective "
                                                       "batch with no more memory (adapter gradients are kept).")
    try:
        plan = finetune.plan_finetune(model, method, rank, projections, seq_len, micro, checkpointing, optimizer,
                                      base_precision=base, dropout=dropout, num_virtual_tokens=virtual)
        full = finetune.plan_finetune(model, "full", None, None, seq_len, micro, checkpointing, optimizer)
    except (ValueError, ArchitectureError) as exc:
        st.error(f"Cannot plan this fine-tune: {exc}")
        return None

    m = st.columns(4)
    exact = ("r·(d_in + d_out) per adapted matrix" if lora
             else f"{int(virtual):,} virtual tokens × hidden size, PEFT's count")
    m[0].metric("Trainable parameters", format_count(plan["trainable_params"]),
                help=f"{plan['trainable_params']:,} trainable parameters, {plan['trainable_pct']:.3f} % of the "
                     f"model's {plan['n_params']:,} (exact: {exact}).")
    m[1].metric("Trainable share", f"{plan['trainable_pct']:.4f} %",
                help="Trainable parameters ÷ model parameters.")
    short = {"lora": "LoRA", "qlora": "QLoRA", finetune.PROMPT_TUNING: "Prompt tuning"}[method]
    m[2].metric(f"{short} peak memory", f"{plan['total_bytes'] / GB:.2f} GB",
                delta=f"{(plan['total_bytes'] - full['total_bytes']) / GB:+.2f} GB vs full",
                delta_color="inverse", help=f"Predicted peak per GPU ({plan['peak_phase']}), incl. the CUDA context.")
    m[3].metric("Full fine-tuning peak", f"{full['total_bytes'] / GB:.2f} GB",
                help="Every weight trained with mixed precision: fp32 weights + gradients + optimizer states + "
                     "activations, same sequence length and micro-batch.")
    fits = plan["total_bytes"] <= gpu.memory_bytes
    (st.success if fits else st.warning)(
        f"{short} {'fits' if fits else 'does not fit'} on one {gpu.name} "
        f"({gpu.memory_gb:g} GB): "
        f"{plan['total_bytes'] / GB:.2f} GB predicted. Effective batch: {micro * accum:,} sequences "
        f"({micro:,} × {accum:,} accumulation steps). Adapters are small, so ZeRO/FSDP sharding matters only for "
        "the frozen base (or for the activations of long sequences); data parallelism replicates the base.")
    left, right = st.columns([2, 3])
    frame = pd.DataFrame(finetune.comparison_rows(plan, full))
    left.dataframe(frame, hide_index=True, key=f"{key}_table", column_config={
        c: st.column_config.NumberColumn(c, format="%.3f", help="GB (10⁹ bytes)") for c in frame.columns[1:]})
    right.plotly_chart(finetune_charts.plans_figure({METHOD_LABELS[method]: plan, "full fine-tuning": full},
                                                    gpu.memory_gb), key=f"{key}_chart")

    st.markdown("**Compute: FLOPs → GPU-hours and cost**")
    k = st.columns(4)
    tokens = k[0].number_input("Dataset size (million tokens)", min_value=0.001, max_value=1e7, value=10.0,
                               step=10.0, key=f"{key}_tokens", help="Training tokens in one epoch, in millions.")
    epochs = k[1].number_input("Epochs", min_value=0.1, max_value=1000.0, value=3.0, step=1.0, key=f"{key}_epochs",
                               help="Passes over the data set.")
    mfu = k[2].number_input("MFU (%)", min_value=1.0, max_value=100.0, value=40.0, step=5.0, key=f"{key}_mfu",
                            help="Share of the GPU's peak bf16 FLOP/s the run achieves.")
    price = k[3].number_input("Price per GPU-hour ($)", min_value=0.0, max_value=1000.0, value=2.0, step=0.5,
                              key=f"{key}_price", help="Your price for one GPU-hour, in dollars.")
    try:
        mine = finetune.finetune_compute(plan, tokens * 1e6, epochs, gpu.peak_flops, mfu / 100, price)
        theirs = finetune.finetune_compute(full, tokens * 1e6, epochs, gpu.peak_flops, mfu / 100, price)
    except ValueError as exc:
        st.error(f"Cannot estimate compute: {exc}")
        return plan
    st.dataframe(pd.DataFrame([
        {"plan": METHOD_LABELS[method], "FLOPs per token": plan["flops_per_token"], "GPU-hours": mine["gpu_hours"],
         "cost ($)": mine["cost"]},
        {"plan": "full fine-tuning", "FLOPs per token": full["flops_per_token"], "GPU-hours": theirs["gpu_hours"],
         "cost ($)": theirs["cost"]}]), hide_index=True, key=f"{key}_compute", column_config={
        "FLOPs per token": st.column_config.NumberColumn(format="%.3e", help="≈ 4·N + 6·N_adapter (LoRA: no "
                                                                            "weight gradients for the frozen base) "
                                                                            "vs 6·N; +2·N with checkpointing; "
                                                                            "prompt tuning × (sequence + virtual "
                                                                            "tokens) ÷ sequence."),
        "GPU-hours": st.column_config.NumberColumn(format="%.2f", help=f"On {gpu.name} at the chosen MFU."),
        "cost ($)": st.column_config.NumberColumn(format="$%.2f", help="GPU-hours × price per GPU-hour.")})
    return plan
