"""Figures of the Optimize page: quality against sparsity, soft labels at two temperatures, the distillation loss,
and the line-up of variants. Each takes data and returns a Plotly figure."""
from __future__ import annotations

import math

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.common.units import format_magnitude, power_of_ten
from core.plan.memory_charts import log_axis_ticks


METRIC_LABELS = {"perplexity": "perplexity on the reference text", "kl_mean_nats": "mean KL to the dense model (nats)"}
"""Axis names of the pruning charts; the tables call the same quantity "KL to the dense model (nats)"."""
MIN_SPARSITY_SPREAD_PCT = 1.0
"""Below this spread of measured zeros (percentage points) a sparsity axis shows nothing (layer and head removal add
no zeros: their points all sit at the model's natural ~0.03 %)."""


def has_sparsity_spread(rows: list[dict]) -> bool:
    """True when the pruned rows' measured zeros differ by at least ``MIN_SPARSITY_SPREAD_PCT`` points, i.e. a chart
    against sparsity has something to show (not so for layer or head removal alone)."""
    xs = [r["sparsity_pct"] for r in rows if r.get("method") not in (None, "dense")
          and _finite(r.get("sparsity_pct"))]
    dense = [r["sparsity_pct"] for r in rows if r.get("method") == "dense" and _finite(r.get("sparsity_pct"))]
    xs += dense
    return len(xs) >= 2 and max(xs) - min(xs) >= MIN_SPARSITY_SPREAD_PCT


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _log_axis(values: list[float]) -> dict:
    """A log axis that fits ``values`` (a twentieth of their span, at least 0.1 decade, each side) with one tick
    format: plain numbers ('20', '50', '1,000') while everything is below 10⁵, powers of ten ('10¹' … '10²⁶') otherwise."""
    positive = [v for v in values if _finite(v) and v > 0]
    if not positive:
        return {"type": "log"}
    low, high = min(positive), max(positive)
    lo, hi = math.log10(low), math.log10(high)
    margin = max(0.1, 0.05 * (hi - lo))
    lo, hi = lo - margin, hi + margin
    if high < 1e5:
        ticks = log_axis_ticks(10 ** lo, 10 ** hi, steps=(1, 2, 5))
        text = [f"{t:,g}" for t in ticks]
    else:
        ticks = log_axis_ticks(10 ** lo, 10 ** hi, steps=(1,))
        text = [power_of_ten(round(math.log10(t))) if math.isclose(10 ** round(math.log10(t)), t, rel_tol=1e-9)
                else format_magnitude(t, plain_below=1e5) for t in ticks]
    return {"type": "log", "range": [lo, hi], "tickmode": "array", "tickvals": ticks, "ticktext": text,
            "minor_showgrid": False}


def sparsity_figure(rows: list[dict], metric: str = "perplexity") -> go.Figure:
    """``metric`` (perplexity or kl_mean_nats) of each pruned variant against its measured zeros (%), one line per
    method; the dense model as a dashed line. The y axis fits the data (log for perplexity, with one tick format;
    from 0 for KL) and the x axis spans the measured zeros with a margin. Check ``has_sparsity_spread`` first: with
    layer or head removal alone every point sits at ~0 % and the chart has nothing to show."""
    label = METRIC_LABELS[metric]
    fig = go.Figure()
    dense = next((r for r in rows if r.get("method") == "dense"), None)
    xs, ys = [], []
    for method in dict.fromkeys(r.get("method") for r in rows):
        if method in (None, "dense"):
            continue
        points = sorted((r for r in rows if r.get("method") == method), key=lambda r: r["sparsity_pct"])
        xs += [r["sparsity_pct"] for r in points]
        ys += [r[metric] for r in points]
        fig.add_trace(go.Scatter(
            x=[r["sparsity_pct"] for r in points], y=[r[metric] for r in points], name=method,
            mode="lines+markers" if len(points) > 1 else "markers", marker_size=9,
            hovertemplate=method + "<br>zeros %{x:.1f} %<br>" + label + " %{y:.4g}<extra></extra>"))
    if dense is not None:
        ys.append(dense[metric])
        xs.append(dense.get("sparsity_pct", 0.0))
        fig.add_hline(y=dense[metric], line_dash="dash")
        # Written by hand: on a log axis an annotation's y is log10 of the value, and add_hline's own annotation
        # put perplexity 33.6 at 10^33.6, which stretched the autorange to 10³⁵ (issue 32).
        at = dense[metric]
        if metric == "perplexity" and _finite(at) and at > 0:
            at = math.log10(at)
        fig.add_annotation(x=1, xref="paper", xanchor="right", y=at, yanchor="bottom", showarrow=False,
                           text=f"dense: {dense[metric]:.3g}")
    if metric == "perplexity":
        yaxis = _log_axis(ys)
    else:
        finite = [y for y in ys if _finite(y)]
        top = max(finite, default=0.0)
        yaxis = {"type": "linear", "range": [0.0, top * 1.1 if top > 0 else 1.0]}
    finite_x = [x for x in xs if _finite(x)] or [0.0]
    x_low, x_high = min(0.0, min(finite_x)), max(finite_x)
    x_margin = max(2.0, 0.05 * (x_high - x_low))
    fig.update_layout(title=f"{label[0].upper()}{label[1:]} against sparsity", xaxis_title="weights set to zero (%)",
                      yaxis_title=label, xaxis_range=[x_low - x_margin, x_high + x_margin])
    fig.update_yaxes(**yaxis)
    return fig


def temperature_figure(rows: list[dict]) -> go.Figure:
    """Grouped bars: each of the teacher's top next tokens' probability at each temperature."""
    columns = [c for c in rows[0] if c.startswith("p at T=")] if rows else []
    fig = go.Figure()
    tokens = [repr(r["token"]) if r["token id"] is not None else r["token"] for r in rows]
    for column in columns:
        fig.add_trace(go.Bar(x=tokens, y=[r[column] for r in rows], name=column.replace(" (%)", ""),
                             hovertemplate="%{x}<br>%{y:.2f} %<extra>" + column + "</extra>"))
    fig.update_layout(barmode="group", title="Hard vs soft labels: the teacher's next-token distribution",
                      xaxis_title="next token", yaxis_title="probability (%)")
    return fig


def loss_figure(losses: list[float], temperature: float | None = None) -> go.Figure:
    fig = go.Figure(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines+markers",
                               hovertemplate="step %{x}<br>loss %{y:.4f}<extra></extra>"))
    suffix = f" at T = {temperature:g}" if temperature else ""
    fig.update_layout(title="Distillation loss (T² · KL to the teacher" + suffix + ")", xaxis_title="step",
                      yaxis_title="loss (nats)", yaxis_rangemode="tozero")
    return fig


LINEUP_PANELS = (("Weights (MB)", "weights, MB"), ("Speed (tok/s)", "greedy speed, tokens/s"),
                 ("Perplexity", "perplexity (lower is better)"),
                 ("Review sentiment, few-shot (% correct)", "task accuracy, %"))


def lineup_figure(table: pd.DataFrame) -> go.Figure:
    """One bar panel per measure, the variants side by side in each."""
    panels = [(c, t) for c, t in LINEUP_PANELS if c in table and table[c].notna().any()]
    fig = make_subplots(rows=1, cols=max(1, len(panels)), subplot_titles=[t for _, t in panels])
    for i, (column, _) in enumerate(panels, start=1):
        fig.add_trace(go.Bar(x=table["Variant"], y=table[column], showlegend=False,
                             text=[f"{v:.3g}" if pd.notna(v) else "" for v in table[column]], textposition="outside",
                             hovertemplate="%{x}<br>%{y:.3f}<extra>" + column + "</extra>"), row=1, col=i)
    fig.update_layout(title="fp32, quantized, pruned and distilled, measured here", height=420)
    return fig
