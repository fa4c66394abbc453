"""Plotly figures of the Serving planner. Inputs are plain rows from core.plan.serving / core.plan.serving_capacity; outputs are
go.Figure objects. Memory in GB (1e9 bytes), times in ms, throughput in output tokens/s."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10), legend_title_text="",
               hoverlabel=dict(namelength=-1))
_MEMORY_COLORS = {"Weights": "#4F46E5", "Activation reserve": "#10B981", "Runtime overhead": "#9CA3AF",
                  "KV cache pool": "#0EA5E9"}


def memory_figure(rows: Sequence[Mapping], title: str = "Memory of one GPU") -> go.Figure:
    """One stacked horizontal bar: weights, activation reserve, runtime overhead, KV pool (GB) within the budget."""
    fig = go.Figure()
    for row in rows:
        if row["Component"] not in _MEMORY_COLORS:
            continue
        fig.add_bar(y=["per GPU"], x=[row["Per GPU (GB)"]], name=row["Component"], orientation="h",
                    marker_color=_MEMORY_COLORS[row["Component"]],
                    hovertemplate=f"{row['Component']}: %{{x:.2f}} GB<extra></extra>")
    fig.update_layout(barmode="stack", title=title, xaxis_title="GB (10⁹ bytes)", height=220, **_LAYOUT)
    return fig


def throughput_latency_figure(curves: Mapping[str, Sequence[Mapping]], tpot_target_ms: float | None = None,
                              title: str = "Throughput vs time per output token") -> go.Figure:
    """One line per GPU (label → latency-curve rows): x = TPOT (ms), y = aggregate output tokens/s, points labelled
    with the concurrency; a dashed line at the TPOT target."""
    fig = go.Figure()
    for label, rows in curves.items():
        fig.add_scatter(x=[r["tpot_s"] * 1e3 for r in rows], y=[r["throughput_tokens_per_s"] for r in rows],
                        mode="lines+markers", name=label, text=[str(r["concurrency"]) for r in rows],
                        hovertemplate="%{text} users: TPOT %{x:.1f} ms, %{y:,.0f} tokens/s<extra>" + label
                                      + "</extra>")
    if tpot_target_ms:
        fig.add_vline(x=tpot_target_ms, line_dash="dash", line_color="#EF4444",
                      annotation_text=f"TPOT target {tpot_target_ms:g} ms")
    fig.update_layout(title=title, xaxis_title="Time per output token (ms)",
                      yaxis_title="Aggregate output tokens/s (one replica)", **_LAYOUT)
    return fig


def per_user_figure(rows: Sequence[Mapping], knee: int | None = None,
                    title: str = "Per-user and aggregate speed vs concurrent users") -> go.Figure:
    """Per-user tokens/s and aggregate tokens/s against concurrency (log x), with the predicted knee."""
    x = [r["concurrency"] for r in rows]
    fig = go.Figure()
    fig.add_scatter(x=x, y=[r["throughput_tokens_per_s"] for r in rows], mode="lines+markers",
                    name="aggregate tokens/s", hovertemplate="%{x} users: %{y:,.0f} tokens/s<extra></extra>")
    fig.add_scatter(x=x, y=[r["per_user_tokens_per_s"] for r in rows], mode="lines+markers", yaxis="y2",
                    name="per-user tokens/s", hovertemplate="%{x} users: %{y:,.1f} tokens/s each<extra></extra>")
    if knee and x and knee <= max(x) * 4:
        fig.add_vline(x=knee, line_dash="dot", line_color="#9CA3AF", annotation_text=f"knee ≈ {knee}")
    fig.update_layout(title=title, xaxis=dict(title="Concurrent users", type="log"),
                      yaxis=dict(title="Aggregate output tokens/s"),
                      yaxis2=dict(title="Per-user tokens/s", overlaying="y", side="right"), **_LAYOUT)
    return fig


def cost_latency_figure(points: Mapping[str, Sequence[tuple[float, float, int]]],
                        title: str = "Cost vs latency") -> go.Figure:
    """One line per GPU × TP (label → (TPOT ms, $ per 1M output tokens, users) points)."""
    fig = go.Figure()
    for label, pts in points.items():
        fig.add_scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines+markers", name=label,
                        text=[str(p[2]) for p in pts],
                        hovertemplate="%{text} users: TPOT %{x:.1f} ms, $%{y:.3f} per 1M output tokens<extra>"
                                      + label + "</extra>")
    fig.update_layout(title=title, xaxis_title="Time per output token (ms)",
                      yaxis=dict(title="$ per 1M output tokens", type="log"), **_LAYOUT)
    return fig


def measured_vs_predicted_figure(rows: Sequence[Mapping], metric: str = "tokens_per_s",
                                 title: str = "Measured vs predicted on this machine") -> go.Figure:
    """Grouped bars per concurrency: measured and predicted ``metric`` (rows of core.measure.device_bench.compare_rows)."""
    x = [str(r["concurrency"]) for r in rows]
    unit = {"tokens_per_s": "output tokens/s", "tpot_s": "s per token", "ttft_s": "s"}.get(metric, "")
    fig = go.Figure()
    fig.add_bar(x=x, y=[r[f"measured_{metric}"] for r in rows], name="measured", marker_color="#4F46E5")
    fig.add_bar(x=x, y=[r[f"predicted_{metric}"] for r in rows], name="predicted", marker_color="#A78BFA")
    fig.update_layout(barmode="group", title=title, xaxis_title="Concurrent sequences (batched generate)",
                      yaxis_title=unit, **_LAYOUT)
    return fig
