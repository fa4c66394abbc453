"""Plotly figures of the Memory planner. Inputs are plain data (bytes, counts); outputs are go.Figure objects.

All memory axes are in GB = 1e9 bytes.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from core.plan.memory import component_label
from core.common.units import GB

# One colour per component, shared by every chart so a component looks the same everywhere.
COMPONENT_COLORS = {
    "weights": "#4F46E5",
    "quantized weights": "#4F46E5",
    "quantization constants": "#A78BFA",
    "16-bit layers (not quantized)": "#818CF8",
    "gradients": "#F59E0B",
    "optimizer": "#EF4444",
    "optimizer states": "#EF4444",
    "activations": "#10B981",
    "KV cache": "#0EA5E9",
    "activation workspace": "#10B981",
    "CUDA context": "#9CA3AF",
    "embeddings": "#0EA5E9",
    "attention": "#4F46E5",
    "mlp": "#F59E0B",
    "norms": "#10B981",
    "lm_head": "#EF4444",
    "pooler": "#9CA3AF",
}
STAGE_COLORS = ["#EF4444", "#F59E0B", "#0EA5E9", "#4F46E5"]
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10), legend_title_text="",
               hoverlabel=dict(namelength=-1))


def parameter_breakdown_figure(breakdown: Mapping[str, int], title: str = "Parameters per component") -> go.Figure:
    """Horizontal bars: parameters per component (embeddings, attention, mlp, norms, lm_head, ...)."""
    items = [(k, v) for k, v in breakdown.items()]
    total = sum(v for _, v in items) or 1
    fig = go.Figure(go.Bar(
        x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
        marker_color=[COMPONENT_COLORS.get(k, "#6B7280") for k, _ in items],
        text=[f"{v / total:.1%}" for _, v in items], textposition="auto",
        customdata=[[v / 1e6] for _, v in items],
        hovertemplate="%{y}: %{x:,} parameters (%{customdata[0]:,.1f} M)<extra></extra>"))
    fig.update_layout(title=title, xaxis_title="parameters", yaxis=dict(autorange="reversed"), height=320,
                      **_LAYOUT)
    return fig


def stacked_memory_figure(bars: Mapping[str, Mapping[str, float]], title: str, capacity_bytes: float | None = None,
                          capacity_label: str | None = None, highlight: str | None = None) -> go.Figure:
    """Stacked bars, one per plan (e.g. per precision or per ZeRO stage), each stacking its memory components.

    ``bars``: bar label → component (an id such as "cuda_context" or a label) → bytes; traces are named with
    ``memory.component_label``. A dashed line marks the GPU capacity when given; the bar named ``highlight`` gets a
    bold label.
    """
    labels = list(bars)
    components: list[str] = []
    for parts in bars.values():
        for comp in parts:
            if comp not in components:
                components.append(comp)
    fig = go.Figure()
    for comp in components:
        name = component_label(comp)
        fig.add_trace(go.Bar(
            name=name, x=[f"<b>{b}</b>" if b == highlight else b for b in labels],
            y=[bars[b].get(comp, 0.0) / GB for b in labels],
            marker_color=COMPONENT_COLORS.get(name),
            hovertemplate=f"{name}: %{{y:,.2f}} GB<extra>%{{x}}</extra>"))
    totals = [sum(bars[b].values()) / GB for b in labels]
    fig.add_trace(go.Scatter(
        x=[f"<b>{b}</b>" if b == highlight else b for b in labels], y=totals, mode="text",
        text=[f"{t:,.1f} GB" for t in totals], textposition="top center", showlegend=False, hoverinfo="skip"))
    if capacity_bytes:
        # The line is a shape; a legend-only trace names it (an in-plot label would sit on top of the bars).
        fig.add_hline(y=capacity_bytes / GB, line_dash="dash", line_color="#111827", line_width=2)
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=capacity_label or f"{capacity_bytes / GB:g} GB",
                                 line=dict(color="#111827", dash="dash", width=2)))
    top = max(totals + [capacity_bytes / GB if capacity_bytes else 0]) if labels else 1
    fig.update_layout(barmode="stack", title=title, yaxis_title="memory (GB)", height=420,
                      yaxis_range=[0, top * 1.15 if top else 1], **_LAYOUT)
    return fig


def per_gpu_vs_gpus_figure(curves: Mapping[str, Sequence[tuple[int, float]]], capacity_bytes: float | None = None,
                           capacity_label: str | None = None, chosen_n: int | None = None,
                           title: str = "Training memory per GPU vs number of GPUs") -> go.Figure:
    """Lines: per-GPU bytes of each strategy (DDP, ZeRO 1/2/3) against the number of data-parallel GPUs (log x)."""
    fig = go.Figure()
    for i, (label, points) in enumerate(curves.items()):
        fig.add_trace(go.Scatter(
            x=[n for n, _ in points], y=[b / GB for _, b in points], mode="lines+markers", name=label,
            line=dict(color=STAGE_COLORS[i % len(STAGE_COLORS)], width=2.5),
            hovertemplate=f"{label}<br>%{{x}} GPUs: %{{y:,.2f}} GB per GPU<extra></extra>"))
    # Lines as traces, not shapes: shape annotations on log axes would need log10 coordinates.
    xs = [n for points in curves.values() for n, _ in points] or [1]
    ys = [b / GB for points in curves.values() for _, b in points if b > 0] or [1]
    if capacity_bytes:
        fig.add_trace(go.Scatter(
            x=[min(xs), max(xs)], y=[capacity_bytes / GB] * 2, mode="lines", name=capacity_label or "GPU capacity",
            line=dict(color="#111827", dash="dash", width=2),
            hovertemplate=f"{capacity_label or 'GPU capacity'}: %{{y:,.1f}} GB<extra></extra>"))
        ys.append(capacity_bytes / GB)
    if chosen_n:
        fig.add_trace(go.Scatter(
            x=[chosen_n, chosen_n], y=[min(ys), max(ys)], mode="lines", name=f"your plan: {chosen_n} GPUs",
            line=dict(color="#6B7280", dash="dot", width=1.5), hoverinfo="skip"))
    fig.update_layout(title=title, xaxis_title="data-parallel GPUs", yaxis_title="memory per GPU (GB)",
                      xaxis_type="log", yaxis_type="log", height=440, **_LAYOUT)
    # Labelled ticks only where they help: the GPU counts plotted, and 1-2-5 (or decade) steps of GB. Plotly's own
    # log ticks label every minor step (2, 3, 4, … 9 between decades), which cluttered this chart.
    x_ticks = log_axis_ticks(min(xs), max(xs), steps=(1, 2, 5)) if len(set(xs)) > 12 else sorted(set(xs))
    y_ticks = log_axis_ticks(min(ys), max(ys))
    fig.update_xaxes(tickmode="array", tickvals=x_ticks, ticktext=[f"{v:,g}" for v in x_ticks], minor_showgrid=False)
    fig.update_yaxes(tickmode="array", tickvals=y_ticks, ticktext=[f"{v:,g}" for v in y_ticks], minor_showgrid=False)
    return fig


def log_axis_ticks(low: float, high: float, steps: Sequence[float] = (1, 2, 5), max_ticks: int = 8) -> list[float]:
    """Tick values for a log axis covering [low, high]: ``steps`` × 10^k (1-2-5 by default), thinned to decades
    (then every other decade, …) until at most ``max_ticks`` remain; a range with none of them gets its two ends."""
    if not (low > 0 and high > 0):
        raise ValueError("A log axis needs positive bounds.")
    low, high = min(low, high), max(low, high)
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    ticks = [m * 10 ** k for k in range(first, last + 1) for m in steps if low <= m * 10 ** k <= high]
    if len(ticks) > max_ticks:
        decades = [10.0 ** k for k in range(first, last + 1) if low <= 10.0 ** k <= high]
        stride = max(1, math.ceil(len(decades) / max_ticks))
        ticks = decades[::stride]
    return ticks or sorted({float(f"{low:.2g}"), float(f"{high:.2g}")})
