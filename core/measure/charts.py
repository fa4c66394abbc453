"""Plotly figures of measurements (data in, figure out): predicted vs measured peaks, and their components."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import plotly.graph_objects as go

from core.common.units import GB

def comparison_figure(results: Iterable[Mapping]):
    """Grouped bars per measured setting: predicted vs measured peak (GB), with the textbook formula and, for
    training, the 24 B/param rule as markers; the error % labels the predicted bar."""
    results = list(results)
    labels = [f"{r['architecture']}<br>{r['mode']}: {r['setting']}" for r in results]
    fig = go.Figure()
    fig.add_bar(name="measured", x=labels, y=[r["measured_peak_bytes"] / GB for r in results],
                marker_color="#2563eb", hovertemplate="%{x}<br>measured %{y:.3f} GB<extra></extra>")
    fig.add_bar(name="predicted (planner)", x=labels, y=[r["predicted_peak_bytes"] / GB for r in results],
                marker_color="#f59e0b",
                text=[("" if r.get("error_pct") is None else f"{r['error_pct']:+.1f}%") for r in results],
                textposition="outside", hovertemplate="%{x}<br>predicted %{y:.3f} GB<extra></extra>")
    textbook = [r.get("textbook_peak_bytes") for r in results]  # None for fine-tuning steps
    fig.add_scatter(name="textbook formula", x=labels, y=[None if v is None else v / GB for v in textbook],
                    mode="markers", marker=dict(symbol="diamond", size=11, color="#6b7280"),
                    hovertemplate="%{x}<br>textbook %{y:.3f} GB<extra></extra>")
    rule = [r.get("rule_of_thumb_bytes") for r in results]
    if any(v is not None for v in rule):
        fig.add_scatter(name="24 B/param rule", x=labels, y=[None if v is None else v / GB for v in rule],
                        mode="markers", marker=dict(symbol="x", size=11, color="#dc2626"),
                        hovertemplate="%{x}<br>24 B/param %{y:.3f} GB<extra></extra>")
    fig.update_layout(barmode="group", yaxis_title="peak memory (GB)", legend_title_text="",
                      margin=dict(t=30, b=10), height=420)
    return fig


def components_figure(result: Mapping):
    """Stacked bars: the measured and the predicted peak split into their components (GB)."""
    fig = go.Figure()
    names = list(dict.fromkeys(list(result["measured_components"]) + list(result["predicted_components"])))
    for name in names:
        fig.add_bar(name=name, x=["measured", "predicted"],
                    y=[result["measured_components"].get(name, 0.0) / GB,
                       result["predicted_components"].get(name, 0.0) / GB],
                    hovertemplate=f"{name}: %{{y:.3f}} GB<extra></extra>")
    fig.update_layout(barmode="stack", yaxis_title="GB", legend_title_text="component", height=380,
                      margin=dict(t=30, b=10))
    return fig
