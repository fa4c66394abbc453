"""'Check against a measurement' panel of the Serving planner: measures this machine (core.measure.device_bench), runs the
bundled SmolLM2 with batched generate at concurrency 1, 2, 4, 8, and shows the planner's prediction for this machine
next to it with the error. It ends with a link to the Serving load test page (views/serving_load.py), which measures
a real served endpoint (vLLM or any OpenAI-compatible server) at rising concurrency."""
from __future__ import annotations

import threading

import pandas as pd
import streamlit as st

from streamlit.errors import StreamlitPageNotFoundError

from core.measure import device_bench
from core.run import models
from core.plan import serving_charts
from core.common.units import GB
from core.common.user_text import escape_markdown
from views.components.model_cache import load_model_or_error

LEVELS = (1, 2, 4, 8)
_RUN_LOCK = threading.Lock()  # one measurement at a time on this machine (they would disturb each other)

@st.cache_resource(max_entries=1, show_spinner=False)
def _shared_results() -> dict:
    """Last measurement on this machine, shared by all sessions (the machine is the same)."""
    return {}


def _run(prompt_tokens: int, output_tokens: int, progress) -> dict:
    loaded = load_model_or_error(None, dtype="fp32", device="auto")
    if loaded is None:
        return {}
    return device_bench.measure_and_predict(loaded, models.BUNDLED_DECODER, LEVELS, prompt_tokens, output_tokens,
                                            progress)


def render_serving_measure_panel(key: str = "srv_measure") -> None:
    st.markdown(
        "Measures **this machine** as a serving device — its achieved memory bandwidth, matmul FLOP/s and the "
        "framework's time per operator (a short microbenchmark) — then runs the bundled **SmolLM2-135M** with "
        "batched `generate` at 1, 2, 4 and 8 concurrent sequences, and puts the measured TTFT, TPOT and tokens/s "
        "next to what the planner predicts for this machine (eager PyTorch: the planner adds the framework's "
        "overhead per step, measured on a tiny twin of the model).")
    c = st.columns(3)
    prompt = c[0].number_input("Prompt tokens", min_value=8, max_value=1024, value=64, step=16, key=f"{key}_prompt",
                               help="Tokens per prompt (random token ids), the same for every sequence.")
    output = c[1].number_input("Output tokens", min_value=4, max_value=256, value=16, step=4, key=f"{key}_output",
                               help="Tokens generated per sequence (greedy, exactly this many).")
    run = c[2].button("Measure this machine", key=f"{key}_run", type="primary",
                      help="Takes ~10 s to a few minutes on a CPU, depending on load; the result is shared with "
                           "everyone using this server.")
    results = _shared_results()
    if run:
        if not _RUN_LOCK.acquire(blocking=False):
            st.warning("Another measurement is running on this machine; its result will appear here when done.")
        else:
            try:
                bar = st.progress(0.0, text="Starting…")
                out = _run(int(prompt), int(output), lambda f, t: bar.progress(min(max(f, 0.0), 1.0), text=t))
                bar.empty()
                if out:
                    results.clear()
                    results.update(out)
            except Exception as exc:  # OOM, a broken model: a message, not a traceback
                st.error(f"The measurement failed: {escape_markdown(exc)}")
            finally:
                _RUN_LOCK.release()
    if not results:
        st.info("No measurement yet: press **Measure this machine**.")
    else:
        p = results["profile"]
        m = st.columns(4)
        m[0].metric("Memory bandwidth", f"{p.bandwidth_bytes_per_s / GB:,.1f} GB/s",
                    help="Achieved by matrix-vector products over random matrices of SmolLM2's own shapes (median of 5).")
        m[1].metric("Matmul", f"{p.matmul_flops_per_s / 1e9:,.1f} GFLOP/s",
                    help=f"Achieved by a large {p.dtype} matmul (median of several).")
        m[2].metric("Step overhead", f"{results['overhead_s'] * 1e3:,.1f} ms",
                    help="Decode-step time of SmolLM2's tiny twin (same layers and operators, widths of 64): the "
                         "framework's overhead per step, added to the roofline time.")
        m[3].metric("Operators per decode step", f"{results['ops']:,}",
                    help="Counted with TorchDispatchMode during one decode step of SmolLM2.")
        rows = results["rows"]
        frame = pd.DataFrame(device_bench.display_rows(rows))
        fmt = {c: st.column_config.NumberColumn(format="%.1f ms") for c in frame.columns if "(ms)" in c}
        fmt.update({c: st.column_config.NumberColumn(format="%+.0f %%") for c in frame.columns if "(%)" in c})
        fmt.update({c: st.column_config.NumberColumn(format="%.1f tok/s") for c in frame.columns if "tokens/s" in c
                    and "(%)" not in c})
        st.dataframe(frame, hide_index=True, width="stretch", key=f"{key}_table", column_config=fmt)
        st.plotly_chart(serving_charts.measured_vs_predicted_figure(rows), key=f"{key}_chart")
        ok = device_bench.knee_direction_ok(rows)
        st.caption(f"{p.device.upper()}: {p.name}, {p.threads} thread(s); prompts of {results['prompt_tokens']} "
                   f"tokens, {results['output_tokens']} output tokens. Knee direction "
                   f"{'matches' if ok else 'does not match'} the measurement. A busy machine (other users, other "
                   "programs) slows the measurement but not the microbenchmark taken a moment before it.")
    try:
        st.page_link("views/serving_load.py", label="Load-test a served endpoint (vLLM or OpenAI-compatible) →",
                     icon=":material/stacked_line_chart:",
                     help="Opens the Serving load test page: TTFT, TPOT and throughput of a real server at rising "
                          "concurrency.")
    except StreamlitPageNotFoundError:  # a lone script (AppTest) has no page registry
        st.markdown("[Load-test a served endpoint (vLLM or OpenAI-compatible) →](/serving-load)")
