"""Figures of the serving simulator: predicted latency curves drawn over the measured ones (with the error at each
point), and the timeline of one simulated run — per engine step, the prefill tokens and decode sequences in the batch,
the KV blocks in use and the requests waiting: the picture of continuous batching. Take data, return plotly figures."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.serve.sim.simulation import Timeline

METRICS = (("ttft_p50_s", "TTFT p50"), ("ttft_p90_s", "TTFT p90"), ("tpot_p50_s", "TPOT p50"),
           ("tpot_p90_s", "TPOT p90"))


def prediction_rows(measured: list[dict], predicted: list[dict], x_key: str) -> list[dict]:
    """Rows of (x, metric, measured, predicted, error %) for the levels of a run and their simulated twins."""
    rows = []
    for m, p in zip(measured, predicted):
        for key, label in METRICS:
            mv, pv = m.get(key), p.get(key)
            err = (pv - mv) / mv * 100 if mv and pv is not None and np.isfinite(mv) and np.isfinite(pv) else None
            rows.append({"x": m.get(x_key), "metric": label, "key": key, "measured_s": mv, "predicted_s": pv,
                         "error_pct": err})
    return rows


def prediction_table(measured: list[dict], predicted: list[dict], x_key: str) -> list[dict]:
    """One row per level, the page's table: the level (``x_key``), then per metric measured and predicted (ms) and the
    error (%)."""
    table: dict = {}
    for r in prediction_rows(measured, predicted, x_key):
        row = table.setdefault(r["x"], {x_key: r["x"]})
        ms = (lambda v: None if v is None else v * 1e3)
        row[f"{r['metric']} measured (ms)"] = ms(r["measured_s"])
        row[f"{r['metric']} predicted (ms)"] = ms(r["predicted_s"])
        row[f"{r['metric']} error (%)"] = r["error_pct"]
    return list(table.values())


def predicted_over_measured_figure(measured: list[dict], predicted: list[dict], x_key: str = "concurrency"
                                   ) -> go.Figure:
    """TTFT (left) and TPOT (right), p50 and p90, against ``x_key`` (``concurrency`` or ``request_rate``):
    measured as solid lines, the simulator's prediction dashed, the error in % on hover and as labels."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Time to first token", "Time per output token"))
    x = [m.get(x_key) for m in measured]
    for i, (key, label) in enumerate(METRICS):
        col = 1 if key.startswith("ttft") else 2
        dash = None if key.endswith("p50_s") else "dot"
        mv = np.array([m.get(key, np.nan) for m in measured], dtype=float)
        pv = np.array([p.get(key, np.nan) for p in predicted], dtype=float)
        err = np.where(mv > 0, (pv - mv) / np.where(mv > 0, mv, 1) * 100, np.nan)
        fig.add_trace(go.Scatter(x=x, y=mv, mode="lines+markers", name=f"{label} measured", line=dict(dash=dash),
                                 legendgroup=label, hovertemplate=f"{label} measured %{{y:.3f}} s<extra></extra>"),
                      row=1, col=col)
        fig.add_trace(go.Scatter(
            x=x, y=pv, mode="lines+markers+text", name=f"{label} predicted", legendgroup=label,
            line=dict(dash="dash"), marker=dict(symbol="x"), text=[f"{e:+.0f}%" if np.isfinite(e) else "" for e in err],
            textposition="top center", customdata=err,
            hovertemplate=f"{label} predicted %{{y:.3f}} s<br>error %{{customdata:+.1f}} %<extra></extra>"),
            row=1, col=col)
    title = "concurrent requests" if x_key == "concurrency" else "request rate (requests/s)"
    for col in (1, 2):
        fig.update_xaxes(title_text=title, type="log", row=1, col=col)
        fig.update_yaxes(title_text="seconds", rangemode="tozero", row=1, col=col)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def timeline_figure(timeline: Timeline, max_steps: int = 5000) -> go.Figure:
    """Per step of one simulated run (x: the step's start in seconds): prefill tokens and decode sequences in the
    batch (top), KV blocks in use (middle), requests waiting and running (bottom). Long runs show their first
    ``max_steps`` steps."""
    n = min(len(timeline), max_steps)
    t = timeline.start_s[:n]
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06, specs=[[{"secondary_y": True}],
                        [{}], [{}]], subplot_titles=("Batch of each step", "KV cache", "Queue"))
    fig.add_trace(go.Bar(x=t, y=timeline.prefill_tokens[:n], name="prefill tokens", width=timeline.step_s[:n],
                         offset=0, marker_color="#636efa",
                         hovertemplate="t %{x:.3f} s<br>%{y} prefill tokens<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=t, y=timeline.decode_seqs[:n], name="decode sequences (right)", mode="lines",
                             line=dict(shape="hv", color="#ef553b"),
                             hovertemplate="t %{x:.3f} s<br>%{y} decoding<extra></extra>"),
                  row=1, col=1, secondary_y=True)
    fig.add_trace(go.Scatter(x=t, y=timeline.kv_blocks_used[:n], name="KV blocks in use", mode="lines",
                             line=dict(shape="hv"), fill="tozeroy"), row=2, col=1)
    fig.add_trace(go.Scatter(x=t, y=timeline.waiting[:n], name="waiting", mode="lines", line=dict(shape="hv")),
                  row=3, col=1)
    fig.add_trace(go.Scatter(x=t, y=timeline.running[:n], name="running", mode="lines",
                             line=dict(shape="hv", dash="dot")), row=3, col=1)
    fig.update_xaxes(title_text="simulated time (s)", row=3, col=1)
    fig.update_yaxes(title_text="tokens", rangemode="tozero", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="sequences", rangemode="tozero", row=1, col=1, secondary_y=True)
    fig.update_yaxes(title_text="blocks", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title_text="requests", rangemode="tozero", row=3, col=1)
    fig.update_layout(height=620, margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.12),
                      bargap=0)
    return fig
