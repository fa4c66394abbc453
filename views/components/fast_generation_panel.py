"""Fast generation on a GPU (static KV cache + torch.compile) next to the default path and the bandwidth bound.

One call: ``render_fast_generation_panel(loaded, prompt, max_new_tokens)`` with a ``core.run.models.LoadedModel``.
On a machine without a CUDA GPU it explains why and still shows the bound for a catalog GPU.
"""
from __future__ import annotations

import json

import streamlit as st

from core.run import fast_generation as fg
from core.run import fast_generation_charts
from core.plan import hardware
from core.common.units import GB
from core.common.user_text import escape_markdown


def render_fast_generation_panel(loaded, prompt: str, max_new_tokens: int, *, key: str = "fastgen") -> dict | None:
    """Render the comparison; returns the latest comparison dict of this session (or None)."""
    st.subheader("Fast generation (GPU)")
    st.caption("transformers' documented fast path: `generate(..., cache_implementation=\"static\", "
               "compile_config=CompileConfig(...))` — a fixed-size KV cache lets `torch.compile` capture the decode "
               "step once (CUDA graphs) and replay it for every token. Greedy decoding, so both paths should "
               "produce the same tokens.")
    if loaded is None or getattr(loaded, "model", None) is None:
        st.info("Load a model first.")
        return None
    if loaded.kind != "decoder":
        st.info("Fast generation applies to text-generating (decoder) models.")
        return None
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        st.error("Choose at least one new token.")
        return None

    weight_bytes, detected_gpu = fg.weight_bytes_and_bandwidth(loaded)
    names = list(hardware.GPUS)
    default_gpu = detected_gpu.name if detected_gpu else hardware.DEFAULT_GPU
    gpu_name = st.selectbox("GPU for the bandwidth bound", names, index=names.index(default_gpu),
                            key=f"{key}_gpu",
                            help="Datasheet memory bandwidth from the catalog; the detected GPU when it is listed.")
    gpu = hardware.get_gpu(gpu_name)
    try:
        prompt_tokens = len(loaded.tokenizer(prompt or " ")["input_ids"])
        bound = fg.model_generation_bound_tokens_per_s(loaded.model, weight_bytes, gpu.bandwidth_bytes_per_s,
                                                       prompt_tokens, max_new_tokens)
    except ValueError as exc:
        st.error(escape_markdown(exc))
        return None
    st.metric("Bandwidth bound at batch 1", f"{bound:,.0f} tokens/s",
              help="tokens/s ≤ bandwidth / (weight bytes + KV-cache bytes read per token): "
                   f"{gpu.bandwidth_gbs:g} GB/s "
                   f"÷ ({weight_bytes / GB:.3f} GB of weights + the growing KV cache), averaged over "
                   f"{max_new_tokens} new tokens after a {prompt_tokens}-token prompt.")

    ok, reason = fg.fast_generation_support(loaded.device)
    state_key = f"{key}_result"
    if not ok:
        st.info(reason + " The bound above shows what the chosen GPU would allow at most.")
        return st.session_state.get(state_key)
    if st.button("Compare default vs fast", key=f"{key}_run", type="primary",
                 help="Runs generate() both ways on this prompt (the first fast run compiles, ~1 minute)."):
        with st.status("Generating both ways…", expanded=True) as status:
            status.write("Default generate() with a dynamic cache, then static cache + torch.compile "
                         "(the first call compiles and is not timed)…")
            try:
                st.session_state[state_key] = fg.compare_generation(loaded, prompt, max_new_tokens, gpu_name)
                status.update(label="Done", state="complete")
            except (RuntimeError, ValueError) as exc:
                status.update(label="Not run", state="error")
                st.error(escape_markdown(exc))
            except Exception as exc:  # noqa: BLE001 - a compile failure must not take the page down
                status.update(label="Failed", state="error")
                st.error(f"Fast generation failed: {type(exc).__name__}: {escape_markdown(exc)}")
    result = st.session_state.get(state_key)
    if result:
        c1, c2, c3 = st.columns(3)
        c1.metric("Default generate()", f"{result.default_tokens_per_s:,.1f} tok/s",
                  help="Dynamic KV cache, eager PyTorch.")
        c2.metric("Static cache + compile", f"{result.fast_tokens_per_s:,.1f} tok/s",
                  delta=f"×{result.speedup:.2f}" if result.speedup else None,
                  help=f"Compile warm-up took {result.compile_warmup_seconds:.1f} s (not included).")
        if result.bound_tokens_per_s:
            c3.metric("Share of the bound", f"{100 * result.fast_fraction_of_bound:.0f} %",
                      help=f"Fast path ÷ bound ({result.bound_tokens_per_s:,.0f} tok/s on {result.gpu}).")
        st.plotly_chart(fast_generation_charts.speed_figure(result.default_tokens_per_s, result.fast_tokens_per_s,
                                        result.bound_tokens_per_s, result.gpu), key=f"{key}_chart")
        if result.same_output:
            st.success(f"Same greedy output from both paths ({result.new_tokens} tokens).")
        else:
            st.warning(f"The paths agree on the first {result.same_leading_tokens} of {result.new_tokens} "
                       "tokens; compiled kernels round 16-bit math differently, which can flip a near-tie.")
        with st.expander("Generated texts"):
            st.text_area("Default", result.default_text, key=f"{key}_default_text", disabled=True,
                         help="Output of the default path.")
            st.text_area("Fast", result.fast_text, key=f"{key}_fast_text", disabled=True,
                         help="Output of the static cache + torch.compile path.")
        st.download_button("Download JSON", json.dumps(result, indent=2), file_name="llm_lab_fast_generation.json",
                           mime="application/json", key=f"{key}_json", on_click="ignore",
                           help="Speeds, bound and texts of this comparison.")
    return result
