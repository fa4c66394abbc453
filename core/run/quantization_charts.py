"""Plotly figures for the Quantization page. Each function takes the results of
``core.run.quantization.compare_variants`` (a DataFrame) and returns a ``go.Figure``; unavailable variants are left out.

Memory is shown in MB (1e6 bytes), KL divergence in nats, speed in tokens/s. No Streamlit here.
"""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go

# One colour per variant, the same in every chart.
VARIANT_COLORS = {"fp32": "#4F46E5", "fp16": "#0EA5E9", "bf16": "#10B981", "int8": "#F59E0B", "nf4": "#EF4444",
                  "fp4": "#8B5CF6"}
_PREDICTED_COLOR = "#9CA3AF"
_PEAK_COLOR = "#1F2937"

QUALITY_METRICS = {
    "kl_mean": ("KL divergence vs baseline, mean (nats)", "{:.5f} nats"),
    "kl_p99": ("KL divergence vs baseline, 99th percentile (nats)", "{:.5f} nats"),
    "delta_ppl": ("ΔPPL vs baseline (perplexity points)", "{:+.3f}"),
    "top1_agreement": ("Top-1 agreement with baseline (%)", "{:.1f} %"),
}
# Plain decimals on the axis: plotly's default SI ticks would print 0.0008 nats as "800µ".
_AXIS_FORMATS = {"kl_mean": ".3~g", "kl_p99": ".3~g", "delta_ppl": ".3~g", "top1_agreement": ".0f"}


def _available(results: pd.DataFrame) -> pd.DataFrame:
    if results is None or len(results) == 0:
        return pd.DataFrame(columns=getattr(results, "columns", []))
    return results[results["available"].astype(bool)]


def _color(variant: str) -> str:
    return VARIANT_COLORS.get(variant, "#6B7280")


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 400) -> go.Figure:
    fig.update_layout(title=title, xaxis_title=x_title, yaxis_title=y_title, height=height, template="plotly_white",
                      margin={"l": 60, "r": 20, "t": 60, "b": 50}, legend={"orientation": "h", "y": -0.2})
    return fig


def memory_quality_figure(results: pd.DataFrame, quality: str = "kl_mean") -> go.Figure:
    """Scatter: measured weight memory (MB) against a quality metric versus the baseline, one point per variant.

    Lower-left is better for KL / ΔPPL (small and faithful); the baseline sits at 0 by definition.
    """
    if quality not in QUALITY_METRICS:
        raise ValueError(f"Unknown quality metric {quality!r}. Choose from {', '.join(QUALITY_METRICS)}.")
    y_title, fmt = QUALITY_METRICS[quality]
    frame = _available(results)
    fig = go.Figure()
    values = []
    for _, row in frame.iterrows():
        x = row["weight_bytes"] / 1e6
        y = row[quality]
        if y is None or (isinstance(y, float) and math.isnan(y)):
            continue
        values.append(float(y))
        fig.add_trace(go.Scatter(
            x=[x], y=[y], mode="markers+text", name=row["label"], text=[row["variant"]], textposition="top center",
            marker={"size": 14, "color": _color(row["variant"]), "line": {"color": "black", "width": 1}},
            hovertemplate=(f"<b>{row['label']}</b><br>weights %{{x:.1f}} MB<br>{y_title}: "
                           f"{fmt.format(y)}<extra></extra>")))
    fig = _layout(fig, "Memory against quality (each point is one variant)", "Measured weight memory (MB)", y_title)
    if values:  # room above and below the points for their labels
        low, high = min(values + [0.0]), max(values + [0.0])
        pad = 0.15 * (high - low or abs(high) or 1.0)
        fig.update_yaxes(range=[low - pad, high + pad], tickformat=_AXIS_FORMATS[quality])
    fig.update_xaxes(rangemode="tozero")
    return fig


def memory_bars_figure(results: pd.DataFrame) -> go.Figure:
    """Grouped bars per variant: measured weight memory, the planner's prediction, and the peak memory during
    generation (MB). The hover shows the prediction error in %."""
    frame = _available(results)
    labels = list(frame["variant"])
    fig = go.Figure()
    fig.add_trace(go.Bar(
        x=labels, y=list(frame["weight_bytes"] / 1e6), name="measured weights",
        marker_color=[_color(v) for v in labels],
        customdata=list(frame["prediction_error_pct"]),
        hovertemplate="%{x}: %{y:.1f} MB measured<br>error vs prediction %{customdata:+.3f} %<extra></extra>",
        text=[f"{v:.0f}" for v in frame["weight_bytes"] / 1e6], textposition="outside"))
    fig.add_trace(go.Bar(
        x=labels, y=list(frame["predicted_weight_bytes"] / 1e6), name="planner prediction",
        marker_color=_PREDICTED_COLOR, hovertemplate="%{x}: %{y:.1f} MB predicted<extra></extra>"))
    if "peak_bytes" in frame and frame["peak_bytes"].notna().any():
        fig.add_trace(go.Bar(
            x=labels, y=list(frame["peak_bytes"] / 1e6), name="peak during generation",
            marker_color=_PEAK_COLOR, opacity=0.55,
            hovertemplate="%{x}: peak %{y:.1f} MB during greedy generation<extra></extra>"))
    fig.update_layout(barmode="group")
    return _layout(fig, "Measured memory per variant", "Variant", "Memory (MB)")


def speed_figure(results: pd.DataFrame) -> go.Figure:
    """Bars of greedy generation speed (tokens/s) per variant, on this machine."""
    frame = _available(results)
    labels = list(frame["variant"])
    fig = go.Figure(go.Bar(
        x=labels, y=list(frame["tokens_per_s"]), marker_color=[_color(v) for v in labels],
        text=[f"{v:.1f}" for v in frame["tokens_per_s"]], textposition="outside",
        hovertemplate="%{x}: %{y:.2f} tokens/s<extra></extra>"))
    return _layout(fig, "Generation speed on this machine", "Variant", "Speed (tokens/s)", height=340)


def kl_by_position_figure(results: pd.DataFrame) -> go.Figure:
    """KL divergence versus the baseline at each position of the reference text, one line per variant (nats).
    Spikes show the tokens where quantization changes the model's prediction most."""
    frame = _available(results)
    fig = go.Figure()
    for _, row in frame.iterrows():
        values = row.get("kl_per_position")
        if values is None or row["variant"] == row.get("baseline"):
            continue
        fig.add_trace(go.Scatter(
            x=list(range(len(values))), y=list(values), mode="lines", name=row["label"],
            line={"color": _color(row["variant"]), "width": 1.5},
            hovertemplate=f"{row['variant']}: position %{{x}}, KL %{{y:.4f}} nats<extra></extra>"))
    fig = _layout(fig, "KL divergence at each reference-text position", "Position in the reference text (token)",
                  "KL divergence (nats)", height=360)
    fig.update_yaxes(tickformat=".3~g")
    return fig
