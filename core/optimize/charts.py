"""Figures of the Optimize page: quality against sparsity, soft labels at two temperatures, the distillation loss,
and the line-up of variants. Each takes data and returns a Plotly figure."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots


def sparsity_figure(rows: list[dict], metric: str = "perplexity") -> go.Figure:
    """``metric`` (perplexity or kl_mean_nats) of each pruned variant against its measured zeros (%), one line per
    method; the dense model as a dashed line."""
    label = {"perplexity": "perplexity on the reference text", "kl_mean_nats": "mean KL to dense (nats)"}[metric]
    fig = go.Figure()
    dense = next((r for r in rows if r.get("method") == "dense"), None)
    for method in dict.fromkeys(r.get("method") for r in rows):
        if method in (None, "dense"):
            continue
        points = sorted((r for r in rows if r.get("method") == method), key=lambda r: r["sparsity_pct"])
        fig.add_trace(go.Scatter(
            x=[r["sparsity_pct"] for r in points], y=[r[metric] for r in points], name=method,
            mode="lines+markers" if len(points) > 1 else "markers", marker_size=9,
            hovertemplate=method + "<br>zeros %{x:.1f} %<br>" + label + " %{y:.3f}<extra></extra>"))
    if dense is not None:
        fig.add_hline(y=dense[metric], line_dash="dash", annotation_text=f"dense: {dense[metric]:.3g}")
    fig.update_layout(title=f"{label.capitalize()} against sparsity", xaxis_title="weights set to zero (%)",
                      yaxis_title=label, yaxis_type="log" if metric == "perplexity" else "linear")
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
