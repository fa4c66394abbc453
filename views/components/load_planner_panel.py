"""'Planner beside this engine' panel of the Serving load test page: the serving planner's prediction for each
measured level and its KV capacity beside the one vLLM reports (core.serve.planner_check)."""
from __future__ import annotations

import threading

import pandas as pd
import streamlit as st

from core.plan import architectures, serving
from core.serve.endpoints import EndpointError
from core.plan.hardware import GPUS
from core.serve.load_test_charts import planner_vs_measured_figure
from core.serve import planner_check as P
from core.common.user_text import escape_markdown

_MEASURE_LOCK = threading.Lock()  # one device microbenchmark at a time on this machine


def _served_model(endpoint):
    key = f"load_planner_model|{endpoint.api_base}|{endpoint.model}"
    if key not in st.session_state:
        try:
            st.session_state[key] = P.served_model(endpoint)
        except EndpointError:
            st.session_state[key] = None
    return st.session_state[key]


def _table(comparison: P.PlannerComparison) -> pd.DataFrame:
    return pd.DataFrame([{
        "level": p.level, "planned users": p.planned_concurrency,
        "TTFT p50 measured (ms)": p.measured_ttft_s * 1e3, "TTFT predicted (ms)": p.predicted_ttft_s * 1e3,
        "TTFT error (%)": p.ttft_error_pct,
        "TPOT p50 measured (ms)": p.measured_tpot_s * 1e3, "TPOT predicted (ms)": p.predicted_tpot_s * 1e3,
        "TPOT error (%)": p.tpot_error_pct,
        "output tok/s measured": p.measured_output_tokens_per_s,
        "output tok/s predicted": p.predicted_output_tokens_per_s,
        "output tok/s error (%)": p.output_tokens_per_s_error_pct} for p in comparison.predictions])


def render_planner_panel(endpoint, result, key: str = "load_planner") -> P.PlannerComparison | None:
    """The panel; returns the comparison shown (for the JSON download), or None."""
    with st.expander("Planner beside this engine", expanded=False):
        st.caption("The serving planner's prediction for the deployment just measured, with the error, and its KV "
                   "capacity for the engine's KV pool beside the capacity the engine reports.")
        model = _served_model(endpoint)
        c = st.columns(4)
        if model is None:
            model = c[0].selectbox("Served model's architecture", architectures.catalog_ids(), key=f"{key}_model",
                                   help="The server did not name a config this machine can read: pick the catalog "
                                        "model it serves.")
        else:
            name = model.get("_name_or_path") if isinstance(model, dict) else model
            c[0].text_input("Served model's architecture", str(name), disabled=True, key=f"{key}_model_shown",
                            help="Read from the config.json of the folder the server reports (/v1/models root), "
                                 "or matched to the catalog by name.")
        device = c[1].selectbox("Server's device", [P.THIS_MACHINE, *GPUS], key=f"{key}_device",
                                help="This machine: its measured bandwidth, FLOP/s and per-step overhead (a server "
                                     "started here, like scripts/vllm_server.sh). A catalog GPU: the planner's "
                                     "datasheet numbers at its default efficiencies.")
        weight_format = c[2].selectbox("Weight format", list(serving.WEIGHT_FORMATS),
                                       index=list(serving.WEIGHT_FORMATS).index("fp32"), key=f"{key}_weights",
                                       help="The precision the server runs the weights in (vLLM --dtype).")
        kv_dtype = c[3].selectbox("KV-cache dtype", list(serving.KV_DTYPES),
                                  index=list(serving.KV_DTYPES).index("fp32"), key=f"{key}_kv",
                                  help="vLLM --kv-cache-dtype (auto: the model's dtype).")
        run = st.button("Compare with the planner", key=f"{key}_run",
                        help="Plans every measured level (a few seconds; on 'This machine' it first measures the "
                             "device).")
        stored = st.session_state.get(key)
        if stored is not None and stored[0] is not result:
            stored = None
        if run:
            if not _MEASURE_LOCK.acquire(blocking=False):
                st.warning("Another comparison is measuring this machine; try again in a moment.")
            else:
                try:
                    with st.spinner("Measuring this machine and planning every level…"):
                        comparison = P.compare_with_planner(result.rows, model, device, weight_format=weight_format,
                                                            kv_dtype=kv_dtype, engine_counters=result.engine)
                    stored = (result, comparison)
                    st.session_state[key] = stored
                except (serving.ServingInputError, architectures.ArchitectureError, ValueError) as exc:
                    st.error(escape_markdown(exc), icon=":material/error:")
                finally:
                    _MEASURE_LOCK.release()
        if stored is None:
            st.caption("Press **Compare with the planner**.")
            return None
        comparison = stored[1]
        frame = _table(comparison)
        fmt = {col: st.column_config.NumberColumn(format="%.1f ms") for col in frame.columns if "(ms)" in col}
        fmt.update({col: st.column_config.NumberColumn(format="%+.0f %%") for col in frame.columns if "(%)" in col})
        fmt.update({col: st.column_config.NumberColumn(format="%.1f tok/s") for col in frame.columns
                    if "tok/s" in col and "(%)" not in col})
        st.dataframe(frame, hide_index=True, width="stretch", column_config=fmt, key=f"{key}_table")
        st.plotly_chart(planner_vs_measured_figure([p.to_dict() for p in comparison.predictions]), width="stretch",
                        key=f"{key}_chart")
        st.caption(f"Planned on {escape_markdown(comparison.device)}, {comparison.weight_format} weights, "
                   f"{comparison.kv_dtype} KV cache" + (f", {comparison.step_overhead_s * 1e3:.1f} ms framework "
                                                        "overhead per step" if comparison.step_overhead_s else "")
                   + ". Open-loop levels are planned at the users their rate keeps in flight (Little's law).")
        kv = comparison.kv
        if kv is None:
            st.info("The server did not report its KV-cache pool (vLLM's cache_config_info on /metrics, with "
                    "--kv-cache-memory-bytes): no capacity to compare.", icon=":material/info:")
        else:
            k = st.columns(3)
            k[0].metric("KV capacity, engine", f"{kv.engine_tokens:,} tokens",
                        help=f"What vLLM reports for its {kv.kv_pool_bytes / 2**30:.2f} GiB KV pool in blocks of "
                             f"{kv.block_size_tokens} tokens.")
            k[1].metric("KV capacity, planner", f"{kv.planner_tokens:,} tokens", f"{kv.error_pct:+.2f} %",
                        delta_color="off",
                        help=f"Pool ÷ {kv.kv_bytes_per_token:,.0f} bytes per token = {kv.planner_tokens_unblocked:,} "
                             f"tokens, in whole blocks of {kv.block_size_tokens}.")
            k[2].metric("KV bytes per token", f"{kv.kv_bytes_per_token / 1024:,.1f} KiB",
                        help="2 (K and V) × layers × KV heads × head dim × bytes per value.")
        return comparison
