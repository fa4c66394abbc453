"""Serving load test: many concurrent requests against a configured endpoint, measured like `vllm bench serve`."""
from __future__ import annotations

import json
import os

import pandas as pd
import streamlit as st

from core import load_test as L
from core.endpoints import EndpointError
from core.load_test_charts import knee_figure, latency_distribution_figure
from views.components.endpoint_panel import probe_or_error, select_endpoint

MAX_CONCURRENCY = int(os.environ.get("LLM_LAB_LOAD_TEST_MAX_CONCURRENCY", L.DEFAULT_MAX_CONCURRENCY))
LEVELS = [c for c in (1, 2, 4, 8, 16, 32, 64, 128, 256) if c <= MAX_CONCURRENCY]

st.title("Serving load test")
st.caption(
    "Fire requests at a served model at rising concurrency and measure what vLLM's own `vllm bench serve` reports: "
    "time to first token (TTFT), time per output token (TPOT), end-to-end latency (p50/p90/p99), output tokens/s "
    "and requests/s. Where throughput stops rising while latency keeps climbing is the knee: past it, more "
    "concurrent users only wait longer."
)

endpoint = select_endpoint("load")
if endpoint is None:
    st.stop()
capabilities = probe_or_error(endpoint)
if capabilities is None:
    st.button("Try again", key="load_retry", help="Ask the server again.")
    st.stop()
if not capabilities.is_vllm:
    st.info("This server did not identify as vLLM, so `ignore_eos` is not sent: requests may end early at the "
            "end-of-text token, and output lengths then vary.", icon=":material/info:")

cols = st.columns(4)
levels = cols[0].multiselect("Concurrency levels", LEVELS, default=[c for c in (1, 2, 4, 8) if c in LEVELS],
                             key="load_levels",
                             help=f"Requests kept in flight at once, one level after another (this deployment's "
                                  f"cap: {MAX_CONCURRENCY}, set by LLM_LAB_LOAD_TEST_MAX_CONCURRENCY).")
requests = cols[1].number_input("Requests per level", 1, L.MAX_REQUESTS_PER_LEVEL, 16, 1, key="load_requests",
                                help="How many requests each level sends in total (more = steadier percentiles).")
prompt_tokens = cols[2].number_input("Prompt length (tokens)", 1, 8192, 64, 8, key="load_prompt_tokens",
                                     help="About this many tokens of filler text per request; the table shows the "
                                          "length the server actually counted.")
output_tokens = cols[3].number_input("Output length (tokens)", 1, 4096, 32, 8, key="load_output_tokens",
                                     help="max_tokens per request (with ignore_eos on vLLM, exactly this many).")

buttons = st.columns([1, 1, 4])
run = buttons[0].button("Run load test", type="primary", key="load_run", disabled=not levels,
                        help="Send the requests now; progress is shown per request.")
buttons[1].button("Stop", key="load_stop",
                  help="Stop the test: in-flight requests are cancelled (the server aborts them) and the finished "
                       "levels are kept.")
if not levels:
    st.warning("Choose at least one concurrency level.", icon=":material/edit:")

if run:
    st.session_state.pop("load_run_result", None)
    total = len(levels) * int(requests)
    done = {"n": 0, "errors": 0}
    bar = st.progress(0.0, text="Starting…")
    table = st.empty()
    rows: list[dict] = []
    partial = L.LoadTestRun()
    st.session_state["load_partial"] = partial

    def on_record(record: L.RequestRecord) -> None:
        done["n"] += 1
        done["errors"] += 0 if record.ok else 1
        partial.records.append(record)
        bar.progress(min(done["n"] / total, 1.0),
                     text=f"Concurrency {record.concurrency}: {done['n']}/{total} requests, {done['errors']} errors")

    def on_level(row: dict) -> None:
        rows.append(row)
        partial.rows.append(row)
        table.dataframe(pd.DataFrame(rows)[["concurrency", "requests", "errors", "ttft_p50_s", "tpot_p50_s",
                                            "e2e_p50_s", "output_tokens_per_s", "requests_per_s"]], hide_index=True)

    try:
        result = L.run_load_test_detailed(endpoint, levels, int(requests), int(prompt_tokens), int(output_tokens),
                                          max_concurrency=MAX_CONCURRENCY, on_record=on_record, on_level=on_level,
                                          capabilities=capabilities)
        st.session_state["load_run_result"] = result
        st.session_state.pop("load_partial", None)
    except (L.LoadTestInputError, EndpointError) as exc:
        st.session_state.pop("load_partial", None)
        st.error(str(exc), icon=":material/error:")
    finally:
        # Stop (a rerun) interrupts the run inside on_record: "load_partial" stays for the next run to show.
        bar.empty()
        table.empty()
elif st.session_state.get("load_partial") is not None:
    # Stop (or any control) rerun the page mid-test: the old run was cancelled; keep its finished levels.
    partial = st.session_state.pop("load_partial")
    partial.stopped = True
    st.session_state["load_run_result"] = partial

result: L.LoadTestRun | None = st.session_state.get("load_run_result")
if result is None:
    st.caption("Press **Run load test** to start.")
    st.stop()
if result.stopped:
    st.warning(f"Stopped: {len(result.rows)} level(s) finished, {len(result.records)} request(s) recorded.",
               icon=":material/stop_circle:")
frame = result.frame()
records = result.records_frame()
errors = int(frame["errors"].sum()) if not frame.empty else 0
if errors:
    first = next((r.error for r in result.records if not r.ok), "")
    st.error(f"{errors} request(s) failed. First error: {first}", icon=":material/error:")
if frame.empty:
    st.info("No level finished.")
    st.stop()

Number = st.column_config.NumberColumn
st.dataframe(
    frame, hide_index=True,
    column_config={
        "concurrency": Number("concurrency", help="Requests in flight at once."),
        "requests": Number("requests", help="Requests sent at this level."),
        "errors": Number("errors", help="Requests that failed (HTTP error, timeout, broken stream)."),
        "duration_s": Number("duration (s)", format="%.2f", help="First send to last answer at this level."),
        "prompt_tokens_mean": Number("prompt tokens", format="%.0f", help="Mean prompt length the server counted."),
        "output_tokens_total": Number("output tokens", help="Tokens generated by all successful requests."),
        **{c: Number(c.replace("_s", " (s)"), format="%.4f") for c in frame.columns if c.endswith("_s") and c != "duration_s"},
        "output_tokens_per_s": Number("output tokens/s", format="%.1f", help="All requests' output tokens / duration."),
        "requests_per_s": Number("requests/s", format="%.2f", help="Successful requests / duration."),
    },
)
st.plotly_chart(knee_figure(frame), width="stretch", key="load_knee")
metric = st.radio("Latency distribution", ["e2el_s", "ttft_s", "tpot_s"], horizontal=True, key="load_metric",
                  format_func={"e2el_s": "End-to-end", "ttft_s": "Time to first token", "tpot_s": "Time per output token"}.get,
                  help="Per-request values, one box per concurrency level.")
st.plotly_chart(latency_distribution_figure(records, metric), width="stretch", key="load_dist")
st.caption("Definitions as in vLLM's `vllm bench serve`: TPOT = (e2e − TTFT)/(output tokens − 1) per request; "
           "throughputs are totals over the level's wall time.")
dl = st.columns(2)
dl[0].download_button("Download levels (CSV)", frame.to_csv(index=False), "load_test_levels.csv", "text/csv",
                      key="load_csv", help="One row per concurrency level.")
dl[1].download_button("Download everything (JSON)",
                      json.dumps({"endpoint": {"name": endpoint.name, "model": endpoint.model}} | result.to_dict(),
                                 indent=2, default=str),
                      "load_test.json", "application/json", key="load_json",
                      help="Levels and every request's timings (no API key).")
