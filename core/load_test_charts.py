"""Figures of a serving load test: the throughput–latency curve per concurrency (where it bends is the "knee") and
the per-request latency distributions. Take the frames core.load_test builds; return plotly figures."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def knee_figure(levels: pd.DataFrame) -> go.Figure:
    """Output tokens/s (left) and p50/p99 end-to-end latency and TTFT (right) against concurrency. Throughput that
    stops rising while latency keeps climbing marks the knee: more concurrency only queues requests."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Throughput vs concurrency", "Latency vs throughput"),
                        specs=[[{"secondary_y": True}, {}]])
    if levels.empty:
        return fig
    x = levels["concurrency"]
    fig.add_trace(go.Scatter(x=x, y=levels["output_tokens_per_s"], mode="lines+markers", name="output tokens/s",
                             hovertemplate="concurrency %{x}<br>%{y:.1f} output tokens/s<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=levels["requests_per_s"], mode="lines+markers", name="requests/s (right axis)",
                             line=dict(dash="dash"),
                             hovertemplate="concurrency %{x}<br>%{y:.2f} requests/s<extra></extra>"),
                  row=1, col=1, secondary_y=True)
    labels = [f"c={c}" for c in x]
    for column, name, dash in (("e2e_p50_s", "e2e p50", None), ("e2e_p99_s", "e2e p99", "dot"),
                               ("ttft_p50_s", "TTFT p50", None), ("ttft_p99_s", "TTFT p99", "dot")):
        fig.add_trace(go.Scatter(
            x=levels["output_tokens_per_s"], y=levels[column], mode="lines+markers+text", text=labels,
            textposition="top center", name=name, line=dict(dash=dash),
            hovertemplate="%{text}<br>%{x:.1f} output tokens/s<br>" + name + " %{y:.3f} s<extra></extra>",
        ), row=1, col=2)
    fig.update_xaxes(title_text="concurrent requests", type="log", dtick=0.30103, row=1, col=1)
    fig.update_yaxes(title_text="output tokens/s (all requests)", rangemode="tozero", row=1, col=1, secondary_y=False)
    fig.update_yaxes(title_text="requests/s", rangemode="tozero", row=1, col=1, secondary_y=True)
    fig.update_xaxes(title_text="output tokens/s (all requests)", rangemode="tozero", row=1, col=2)
    fig.update_yaxes(title_text="latency (s)", rangemode="tozero", row=1, col=2)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
    return fig


def latency_distribution_figure(records: pd.DataFrame, metric: str = "e2el_s") -> go.Figure:
    """Box plot (with every request as a point) of one per-request latency — ``ttft_s``, ``tpot_s`` or ``e2el_s`` —
    per concurrency level; failed requests are left out (they are counted in the table)."""
    titles = {"ttft_s": "Time to first token (s)", "tpot_s": "Time per output token (s)", "e2el_s": "End-to-end latency (s)"}
    fig = go.Figure()
    if not records.empty and metric in records:
        ok = records[records["ok"]]
        for concurrency, group in ok.groupby("concurrency"):
            fig.add_trace(go.Box(y=group[metric], name=f"c={concurrency}", boxpoints="all", jitter=0.4, pointpos=0,
                                 hovertemplate="%{y:.3f} s<extra>concurrency " + str(concurrency) + "</extra>"))
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=50, b=40), showlegend=False,
                      title=titles.get(metric, metric) + " per request, by concurrency",
                      yaxis_title=titles.get(metric, metric), xaxis_title="concurrency level")
    return fig
