"""The serving simulator (core.serve.sim) on the pages: 'Simulator beside this engine' on the Serving load test page
(profile the endpoint, predict every measured level, draw predicted over measured) and 'Simulated run' on the
Serving planner page (one replica on a catalog GPU: percentiles and the timeline of continuous batching)."""
from __future__ import annotations

import json
import math

import pandas as pd
import streamlit as st

from core.common.user_text import escape_markdown
from core.plan.serving import ServingInputError
from core.serve.endpoints import EndpointError
from core.serve.sim import charts
from core.serve.sim.catalog import catalog_engine
from core.serve.sim.profile import profile_from_dict, run_probe
from core.serve.sim.replay import Traffic, check_workload, replay, replicas_for_traffic
from core.serve.sim.scheduler import SimulationInputError
from core.serve.slo import SLO

ERRORS = (SimulationInputError, ServingInputError, EndpointError, ValueError)


def _levels_traffic(result) -> list[tuple[int, Traffic]]:
    """(level index, traffic) of each measured row, as the load test numbered them."""
    out = []
    for i, row in enumerate(result.rows):
        rate = row.get("request_rate")
        if rate is not None and not (isinstance(rate, float) and math.isnan(rate)):
            cap = row.get("concurrency")
            out.append((i, Traffic(request_rate=float(rate), burstiness=float(row.get("burstiness") or 1.0),
                                   max_concurrency=int(cap) if cap else None)))
        else:
            out.append((i, Traffic(concurrency=int(row["concurrency"]))))
    return out


def render_load_simulator_panel(endpoint, result, key: str = "load_sim") -> dict | None:
    """The panel of the Serving load test page; returns the predictions shown (for the JSON download), or None."""
    with st.expander("Simulator beside this engine", expanded=False):
        st.caption("A step-by-step simulation of vLLM's scheduler (continuous batching, chunked prefill, paged KV "
                   "blocks, preemption, prefix cache) over step times fitted from a short profiling probe of this "
                   "endpoint (≤ 24 requests of its own, never this run's), replaying exactly the requests this run "
                   "sent.")
        profile_key = f"{key}_profile|{endpoint.api_base}|{endpoint.model}"
        c = st.columns([1, 1.4])
        if c[0].button("Profile this endpoint", key=f"{key}_probe",
                       help="Sends 24 requests (single requests at five prompt lengths, then 2, 4 and 8 together); "
                            "about a minute here."):
            bar = st.progress(0.0, text="Profiling the endpoint: sending the probe's first requests…")
            try:
                st.session_state[profile_key] = run_probe(endpoint, on_level=lambda done, total: bar.progress(
                    done / total, text=f"Profiling the endpoint: {done} of {total} probe levels measured"))
                bar.empty()
            except ERRORS as exc:
                bar.empty()
                st.error(f"Profiling failed: {escape_markdown(exc)}", icon=":material/error:")
        upload = c[1].file_uploader("…or load a saved profile (JSON)", type=["json"], key=f"{key}_upload",
                                    help="A profile downloaded from this panel or written by python -m "
                                         "core.serve.simulate --profile-only FILE.")
        if upload is not None:
            try:
                st.session_state[profile_key] = profile_from_dict(json.loads(upload.getvalue()))
            except (ValueError, SimulationInputError) as exc:
                st.error(escape_markdown(exc), icon=":material/error:")
        profile = st.session_state.get(profile_key)
        if profile is None:
            st.info("Profile the endpoint (or load a profile) to predict this run.")
            return None
        sm = profile.step_model
        st.markdown(f"Step time = **{sm.c0_s * 1e3:.1f} ms** + **{sm.c1_s_per_prefill_token * 1e3:.3f} ms** × prefill "
                    f"tokens + **{sm.c2_s_per_prefill_key * 1e9:.1f} ns** × prefill (token, key) pairs + "
                    f"**{sm.c3_s_per_decode_seq * 1e3:.2f} ms** × decode sequences + "
                    f"**{sm.c4_s_per_context_token * 1e6:.2f} µs** × their context tokens + "
                    f"**{sm.c5_s_per_prefill_seq * 1e3:.1f} ms** × sequences whose prompt starts in the step; "
                    f"**{sm.request_overhead_s * 1e3:.0f} ms** per request outside the engine. Fit residual "
                    f"{profile.residual_rms_pct:.1f} % RMS over {len(profile.observations)} observations.")
        with st.popover("Fit residuals", help="Each probe observation: the step time measured, the fit's "
                                               "prediction and the error."):
            st.dataframe(pd.DataFrame([o.to_dict() for o in profile.observations]), hide_index=True)
        st.download_button("Download the profile (JSON)", json.dumps(profile.to_dict(), indent=1),
                           "endpoint_profile.json", "application/json", key=f"{key}_download",
                           help="The fitted step model and engine settings: load it here again, or pass it to python "
                                "-m core.serve.simulate --profile FILE (which then sends no request).")
        if result.workload is None or not result.rows:
            return None
        try:
            config = profile.engine_config()
            measured, predicted = [], []
            for level, traffic in _levels_traffic(result):
                row = result.rows[level]
                n = int(row["requests"])
                predicted.append(replay(result.workload, n, traffic, config, sm, level=level, slo=result.slo,
                                        timeline=False).row)
                measured.append(row)
        except ERRORS as exc:
            st.error(f"Cannot simulate this run: {escape_markdown(exc)}", icon=":material/error:")
            return None
        x_key = "request_rate" if measured[0].get("request_rate") is not None else "concurrency"
        st.dataframe(pd.DataFrame(charts.prediction_table(measured, predicted, x_key)), hide_index=True)
        st.plotly_chart(charts.predicted_over_measured_figure(measured, predicted, x_key), width="stretch",
                        key=f"{key}_chart")
        return {"profile": profile.to_dict(), "predicted_levels": predicted}


def render_plan_simulation(model_arg, gpu, kwargs: dict, users: int, request_rate: float | None, ttft_s: float,
                           tpot_s: float, key: str = "srv_sim") -> None:
    """Simulated run of one replica on the Serving planner page (the page's model, GPU, engine and workload)."""
    st.markdown("#### Simulated run (continuous batching, step by step)")
    st.caption("vLLM's scheduler simulated over the roofline of each step (the planner's per-step time, never "
               "faster), with the plan's KV pool in 16-token blocks: queueing, chunked prefill and preemption "
               "included. The steady-state numbers above are the quick bound.")
    c = st.columns(3)
    n = c[0].number_input("Simulated requests", min_value=10, max_value=10_000, value=500, step=100, key=f"{key}_n",
                          help="Requests of the workload the simulation runs (10,000 take a few seconds).")
    ratio = c[1].number_input("Length range ratio", min_value=0.0, max_value=0.99, value=0.0, step=0.1,
                              key=f"{key}_ratio", help="Lengths uniform in ±ratio around the prompt and output "
                                                       "tokens, as vllm bench serve --random-range-ratio.")
    per_replica = c[2].number_input("Requests/s on this replica" if request_rate else "Concurrent users",
                                    min_value=0.001 if request_rate else 1.0,
                                    value=float(request_rate or min(users, 1024)), key=f"{key}_load",
                                    help="The load of the one simulated replica: a Poisson request rate (the page's "
                                         "rate, all replicas together, by default) or users in a closed loop.")
    try:
        step_model, config = catalog_engine(model_arg, gpu, **kwargs)
        spec_kwargs = dict(prompt_tokens=int(kwargs["prompt_tokens"]), output_tokens=int(kwargs["output_tokens"]))
        spec = check_workload(spec_kwargs["prompt_tokens"], spec_kwargs["output_tokens"], float(ratio), 0, 0)
        traffic = Traffic(request_rate=float(per_replica)) if request_rate else Traffic(concurrency=int(per_replica))
        slo = SLO(ttft_s=ttft_s, tpot_s=tpot_s)
        run = replay(spec, int(n), traffic, config, step_model, slo=slo)
    except ERRORS as exc:
        st.error(f"Cannot simulate: {escape_markdown(exc)}", icon=":material/error:")
        return
    row = run.row
    m = st.columns(5)
    m[0].metric("TTFT p50 / p90", f"{row['ttft_p50_s'] * 1e3:,.0f} / {row['ttft_p90_s'] * 1e3:,.0f} ms",
                help="Time to first token of the simulated requests: queueing and prefill included.")
    m[1].metric("TPOT p50 / p90", f"{row['tpot_p50_s'] * 1e3:,.1f} / {row['tpot_p90_s'] * 1e3:,.1f} ms",
                help="Time per output token after the first, per request (vLLM bench serve's definition).")
    m[2].metric("Output tokens/s", f"{row['output_tokens_per_s']:,.0f}",
                help="Generated tokens per second of simulated time, all requests together.")
    m[3].metric("Goodput", f"{row['goodput_requests_per_s']:,.2f} req/s",
                help="Requests/s meeting both targets (DistServe's goodput).")
    m[4].metric("Preemptions", f"{run.simulation.preemptions:,}",
                help="Requests evicted when the KV pool ran out of blocks, to be recomputed later (vLLM V1).")
    st.plotly_chart(charts.timeline_figure(run.simulation.timeline), width="stretch", key=f"{key}_timeline")
    if request_rate and st.button("Replicas needed by simulation", key=f"{key}_replicas",
                                  help="Fewest replicas whose share of the rate meets p90 TTFT and TPOT targets."):
        try:
            with st.spinner("Simulating the rate's share on 1, 2, 4, … replicas…"):
                answer = replicas_for_traffic(spec, float(request_rate), config, step_model, slo,
                                              num_requests=int(n))
        except ERRORS as exc:
            st.error(f"Cannot search replicas: {escape_markdown(exc)}", icon=":material/error:")
            return
        if answer.replicas is None:
            st.warning(" ".join(answer.notes))
        else:
            st.success(f"**{answer.replicas} replica(s)** ({answer.per_replica_rate:.3g} requests/s each) meet the "
                       f"p90 targets in simulation.")
