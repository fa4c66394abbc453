"""Figures of a serving load test: the throughput–latency curve per concurrency (where it bends is the "knee"), the
latency percentiles against the offered request rate with the SLOs and the saturation point, the planner beside the
measurement, and the per-request latency distributions. Take the frames core.serve.load_test builds; return plotly
figures."""
from __future__ import annotations

import math

import numpy as np
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
    by_rate = "request_rate" in records and records["request_rate"].notna().any()
    if not records.empty and metric in records:
        ok = records[records["ok"]]
        key = "request_rate" if by_rate else "concurrency"
        for level, group in ok.groupby(key, dropna=False):
            name = f"{level:g} req/s" if by_rate else f"c={level}"
            fig.add_trace(go.Box(y=group[metric], name=name, boxpoints="all", jitter=0.4, pointpos=0,
                                 hovertemplate="%{y:.3f} s<extra>" + name + "</extra>"))
    what = "request rate" if by_rate else "concurrency"
    fig.update_layout(height=360, margin=dict(l=10, r=10, t=50, b=40), showlegend=False,
                      title=titles.get(metric, metric) + f" per request, by {what}",
                      yaxis_title=titles.get(metric, metric), xaxis_title=f"{what} level")
    return fig


def rate_latency_figure(levels: pd.DataFrame, slo=None, saturation_rate: float | None = None) -> go.Figure:
    """p50 and p90 TTFT (left) and TPOT (right) in ms against the offered request rate, with the SLO limits as
    horizontal lines (``slo``: core.serve.slo.SLO) and the saturation rate as a vertical line; output and goodput
    request rates in the hover."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Time to first token vs request rate",
                                                        "Time per output token vs request rate"))
    rows = levels[levels["request_rate"].notna()].sort_values("request_rate") if not levels.empty else levels
    if rows.empty:
        return fig
    x = rows["request_rate"].astype(float)
    finite = x[np.isfinite(x)]
    x_range = ([math.log10(finite.min() / 1.5), math.log10(finite.max() * 1.5)] if not finite.empty else None)
    for col, metric, limit in ((1, "ttft", getattr(slo, "ttft_s", None)), (2, "tpot", getattr(slo, "tpot_s", None))):
        top_ms = float(np.nanmax(rows[[f"{metric}_p50_s", f"{metric}_p90_s"]].to_numpy(dtype=float))) * 1e3
        for p, dash in ((50, None), (90, "dot")):
            name = f"{metric.upper()} p{p}"
            fig.add_trace(go.Scatter(
                x=x, y=rows[f"{metric}_p{p}_s"] * 1e3, mode="lines+markers", name=name, line=dict(dash=dash),
                customdata=rows[["requests_per_s", "goodput_requests_per_s"]].to_numpy(),
                hovertemplate="%{x:.3g} req/s offered<br>" + name + " %{y:.1f} ms<br>served %{customdata[0]:.2f} "
                              "req/s, goodput %{customdata[1]:.2f} req/s<extra></extra>"), row=1, col=col)
        if limit and (not math.isfinite(top_ms) or limit * 1e3 <= 3 * top_ms):
            fig.add_hline(y=limit * 1e3, line=dict(color="firebrick", dash="dash"), row=1, col=col,
                          annotation_text=f"SLO {limit * 1e3:g} ms", annotation_position="top left")
        elif limit:  # far above the data: a note instead of a line that would flatten the curves
            fig.add_annotation(text=f"SLO {limit * 1e3:,.0f} ms (above the chart)", xref=f"x{col if col > 1 else ''} domain",
                               yref=f"y{col if col > 1 else ''} domain", x=0.02, y=0.98, showarrow=False,
                               font=dict(color="firebrick"))
        if saturation_rate:
            fig.add_vline(x=saturation_rate, line=dict(color="seagreen", dash="dash"), row=1, col=col,
                          annotation_text=f"saturation {saturation_rate:.3g} req/s", annotation_position="top right")
        fig.update_xaxes(title_text="offered request rate (requests/s)", type="log", range=x_range, row=1, col=col)
        fig.update_yaxes(title_text=f"{metric.upper()} (ms)", rangemode="tozero", row=1, col=col)
    fig.update_layout(height=420, margin=dict(l=10, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.25))
    return fig


def planner_vs_measured_figure(predictions: list[dict]) -> go.Figure:
    """Measured and predicted p50 TTFT, p50 TPOT (ms) and output tokens/s per level, side by side
    (``predictions``: core.serve.planner_check.LevelPrediction.to_dict() rows)."""
    fig = make_subplots(rows=1, cols=3, subplot_titles=("TTFT p50 (ms)", "TPOT p50 (ms)", "output tokens/s"))
    if not predictions:
        return fig
    labels = [p["level"] for p in predictions]
    for col, (key, scale) in enumerate((("ttft_s", 1e3), ("tpot_s", 1e3), ("output_tokens_per_s", 1.0)), start=1):
        for kind, color in (("measured", "#1f77b4"), ("predicted", "#ff7f0e")):
            fig.add_trace(go.Bar(x=labels, y=[p[f"{kind}_{key}"] * scale for p in predictions], name=kind,
                                 marker_color=color, showlegend=col == 1, legendgroup=kind,
                                 hovertemplate="%{x}<br>" + kind + " %{y:.3g}<extra></extra>"), row=1, col=col)
    fig.update_layout(barmode="group", height=360, margin=dict(l=10, r=10, t=50, b=40),
                      legend=dict(orientation="h", y=-0.2))
    return fig
