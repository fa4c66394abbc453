""""Measure on this machine": build the chosen architecture with random weights, measure its peak memory and show
it next to the planner's prediction, with a results table, a chart and downloads.

One call: ``render_measure_panel(architecture, seq_len, batch_size, dtype, recipe)`` — the planner page passes its
current choices; the panel keeps its results in ``st.session_state[f"{key}_results"]``.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st
import torch

from core import measure
from core.plan.architectures import ArchitectureError, get_config
from core.plan.hardware import GB, free_device_memory_bytes
from core.common.user_text import escape_markdown

MODES = tuple(measure.MODE_LABELS)  # "inference", "training", "lora", "qlora", "prompt-tuning"
TARGET_CHOICES = {"attention": "attention q/k/v/o", "all-linear": "all linear layers"}
RECIPE_LABELS = {"mixed_precision": "mixed precision (autocast 16-bit, fp32 master weights)",
                 "fp32": "fp32 (weights, gradients, AdamW states)"}
DEFAULT_MAX_CPU_SECONDS = 300.0


def _device_options() -> list[str]:
    return ["auto", "cuda", "cpu"] if torch.cuda.is_available() else ["auto", "cpu"]


def _normalize_dtype(dtype) -> str:
    try:
        return measure.normalize_dtype(dtype)
    except ValueError:
        return "bf16"


def _normalize_recipe(recipe) -> str:
    try:
        return measure.normalize_recipe(recipe)
    except ValueError:
        return "mixed_precision"


def _show_results(results: list[dict], key: str) -> None:
    st.markdown("**Results: predicted vs measured**")
    table = pd.DataFrame(measure.results_table(results))
    st.dataframe(table, hide_index=True, key=f"{key}_table", column_config={
        "error (%)": st.column_config.NumberColumn(format="%+.1f %%", help="(predicted − measured) / measured"),
        "textbook error (%)": st.column_config.NumberColumn(format="%+.1f %%"),
        "24 B/param error (%)": st.column_config.NumberColumn(format="%+.1f %%"),
    })
    st.plotly_chart(measure.comparison_figure(results), key=f"{key}_chart")
    latest = results[-1]
    with st.expander(f"Components of the latest measurement — {latest['architecture']}, {latest['setting']}",
                     expanded=True):
        st.dataframe(pd.DataFrame(measure.components_table(latest)), hide_index=True, key=f"{key}_components")
        st.plotly_chart(measure.components_figure(latest), key=f"{key}_components_chart")
        phase = latest.get("measured_peak_phase")
        st.caption(("Measured peak during the " + phase + "; " if phase else "") +
                   f"predicted peak at: {latest['predicted_phase']}. "
                   f"Method: {latest.get('measurement_method', latest['method'])}.")
    c1, c2, c3 = st.columns(3)
    c1.download_button("Download CSV", measure.results_csv(results), file_name="llm_lab_measurements.csv",
                       mime="text/csv", key=f"{key}_csv", on_click="ignore",
                       help="The results table (GB and %) as CSV.")
    c2.download_button("Download JSON", measure.results_json(results), file_name="llm_lab_measurements.json",
                       mime="application/json", key=f"{key}_json", on_click="ignore",
                       help="Every field of every measurement (bytes, components, phases, method) as JSON.")
    if c3.button("Clear results", key=f"{key}_clear", help="Forget the measurements of this session."):
        st.session_state[f"{key}_results"] = []
        st.rerun()


def render_measure_panel(architecture, seq_len, batch_size, dtype="bf16", recipe="mixed_precision", *,
                         key: str = "measure", max_cpu_seconds: float = DEFAULT_MAX_CPU_SECONDS) -> list[dict]:
    """Render "Measure on this machine" for ``architecture`` (catalog id or config dict) at ``seq_len`` tokens ×
    ``batch_size`` sequences; ``dtype`` (fp32/fp16/bf16) and ``recipe`` (fp32/mixed_precision) preselect the
    panel's controls. Returns the session's results (dicts from core.measure)."""
    results: list[dict] = st.session_state.setdefault(f"{key}_results", [])
    st.subheader("Measure on this machine")
    st.caption("Builds the architecture with **random weights** (memory and speed do not depend on the weight "
               "values, so no download is needed), runs it here and shows the measured peak next to the planner's "
               f"prediction. Method on this device: {measure.measurement_method('auto')}.")
    if isinstance(architecture, (int, float)) and not isinstance(architecture, bool):
        st.info("Measuring needs an architecture (a catalog model or a config.json), not only a parameter count: "
                "choose one to build it with random weights.")
        return results
    try:
        cfg = get_config(architecture)
    except (ArchitectureError, ValueError, KeyError) as exc:
        st.error(f"Cannot measure this architecture: {escape_markdown(exc)}")
        return results

    c1, c2, c3 = st.columns(3)
    mode = c1.segmented_control("What to measure", MODES, default=MODES[0], required=True, key=f"{key}_mode",
                                format_func=measure.MODE_LABELS.get,
                                help="Inference: one prefill of the batch into a KV cache (as generate() starts). "
                                     "Training step: forward, backward and AdamW step, after a warm-up step that "
                                     "creates the optimizer states. LoRA / QLoRA: the same with PEFT adapters on a "
                                     "frozen bf16 (LoRA) or bitsandbytes NF4 (QLoRA) base. Prompt tuning: a PEFT "
                                     "soft prompt before every sequence of a frozen bf16 base.") or MODES[0]
    device = c1.selectbox("Device", _device_options(), key=f"{key}_device",
                          help="auto = the CUDA GPU when there is one, else the CPU.")
    dtypes = list(measure.INFERENCE_DTYPES)
    dtype_sel = c2.selectbox("Inference dtype", dtypes, index=dtypes.index(_normalize_dtype(dtype)),
                             key=f"{key}_dtype", disabled=mode != "inference",
                             help="Weights, activations and KV cache in this precision (bytes per value: 4 / 2 / 2).")
    recipes = list(RECIPE_LABELS)
    recipe_sel = c2.selectbox("Training recipe", recipes, index=recipes.index(_normalize_recipe(recipe)),
                              format_func=RECIPE_LABELS.get, key=f"{key}_recipe", disabled=mode != "training",
                              help="fp32: everything in fp32. Mixed precision: torch.autocast runs matmuls in bf16 "
                                   "(fp16 + GradScaler on GPUs without bf16) over fp32 weights, gradients and "
                                   "AdamW states.")
    checkpointing = c3.toggle("Gradient checkpointing", key=f"{key}_gc", disabled=mode not in measure.TRAINING_MODES,
                              help="Keep only each layer's input and recompute the layer in backward "
                                   "(transformers' activation checkpointing, non-reentrant).")
    both = c3.toggle("Measure with and without checkpointing", key=f"{key}_both",
                     disabled=mode not in measure.TRAINING_MODES,
                     help="Runs the training step twice so the two peaks sit side by side in the table.")

    finetune = mode in measure.LORA_MODES
    rank = c2.number_input("LoRA rank r", min_value=1, max_value=4096, value=8, step=8, key=f"{key}_rank",
                           disabled=not finetune,
                           help="Rank of the adapters B·A (Hu et al. 2021): r·(d_in + d_out) trainable parameters "
                                "per adapted matrix.")
    targets = c3.selectbox("LoRA target modules", list(TARGET_CHOICES), format_func=TARGET_CHOICES.get,
                           key=f"{key}_targets", disabled=not finetune,
                           help="Which frozen matrices get adapters: the attention projections, or every linear "
                                "layer of the blocks (attention + MLP).")
    virtual = c1.number_input("Virtual tokens", min_value=1, max_value=4096, value=20, step=4, key=f"{key}_virtual",
                              disabled=mode != "prompt-tuning",
                              help="Soft-prompt length of prompt tuning (Lester et al. 2021): virtual tokens × "
                                   "hidden size trainable parameters, and that many more positions in every step.")
    request = measure.MeasureRequest(mode, cfg, int(seq_len), int(batch_size), dtype=dtype_sel, recipe=recipe_sel,
                                     gradient_checkpointing=bool(checkpointing), rank=int(rank),
                                     target_modules=(targets,), device=device, num_virtual_tokens=int(virtual))
    try:
        resolved = measure.resolve_device_type(device)
        flash = resolved != "cuda" or measure.cuda_has_flash_attention()
        prediction = measure.predict_request(request, resolved, flash)
        free = free_device_memory_bytes(device)
    except (ValueError, ArchitectureError) as exc:
        st.error(f"Cannot measure this setting: {escape_markdown(exc)}")
        return results

    m1, m2, m3 = st.columns(3)
    m1.metric("Predicted peak", f"{prediction['predicted_peak_bytes'] / GB:.3f} GB",
              help="The planner's prediction for exactly this setting on this device type: weights, KV cache / "
                   "model states and the activations the model keeps (see the ledger below).")
    m2.metric("Free memory here", f"{free / GB:.2f} GB",
              help="Free GPU memory (cudaMemGetInfo) or available RAM; a measurement needs the predicted peak "
                   f"plus {int((measure.GUARD_MARGIN - 1) * 100)} %.")
    m3.metric("Parameters of the built model", f"{prediction['n_params'] / 1e6:,.1f} M", help="Exact, tied weights counted once.")
    fits = prediction["predicted_peak_bytes"] * measure.GUARD_MARGIN <= free
    if not fits:
        st.warning(f"Predicted {prediction['predicted_peak_bytes'] / GB:.2f} GB does not fit in the "
                   f"{free / GB:.2f} GB free here: the measurement would be refused.")
    if mode == "training":
        with st.expander("What one layer keeps for backward (the ledger behind the prediction)"):
            st.caption("Bytes per token of every tensor one layer keeps, from the Hugging Face model code and "
                       "PyTorch's autocast / SDPA / dropout rules on this device type.")
            if prediction.get("ledger"):
                st.dataframe(pd.DataFrame(measure.ledger_table(prediction)), hide_index=True, key=f"{key}_ledger")
            else:
                st.info("No ledger for this model family: the prediction uses Korthikanti et al.'s formula.")

    if st.button("Measure", key=f"{key}_run", type="primary", disabled=not fits,
                 help="Build the model with random weights and measure its peak memory on this machine."):
        with st.status("Measuring…", expanded=True) as status:
            for run in measure.plan_runs(request, both):
                status.write(f"Building {measure.architecture_label(cfg)} with random weights and running "
                             f"{run.what}…")
                try:
                    result = measure.run_request(run, max_cpu_seconds)
                except measure.MeasurementRefused as exc:
                    status.update(label="Not measured", state="error")
                    st.warning(escape_markdown(exc))
                    break
                except torch.OutOfMemoryError:
                    status.update(label="Out of memory", state="error")
                    st.error("The device ran out of memory during the measurement (other programs may be using "
                             "it). Choose a smaller setting.")
                    break
                except (ValueError, ArchitectureError) as exc:
                    status.update(label="Not measured", state="error")
                    st.error(escape_markdown(exc))
                    break
                except Exception as exc:  # noqa: BLE001 - show, never crash the page
                    status.update(label="Measurement failed", state="error")
                    st.error(f"The measurement failed: {type(exc).__name__}: {escape_markdown(exc)}")
                    break
                results.append(result)
                status.write(f"Measured {result['measured_peak_bytes'] / GB:.3f} GB "
                             f"(predicted {result['predicted_peak_bytes'] / GB:.3f} GB, "
                             + (f"error {result['error_pct']:+.1f} %" if result["error_pct"] is not None
                                else "no error % for a zero measurement")
                             + f") in {result['seconds']:.1f} s.")
            else:
                status.update(label="Measured", state="complete")
    if results:
        _show_results(results, key)
    else:
        st.info("No measurement yet: press **Measure** to run this setting here.")
    return results
