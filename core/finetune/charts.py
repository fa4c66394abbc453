"""Figures for the Fine-tune page (data in, Plotly figure out; no Streamlit)."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

LOSS_COLOR = "#4F46E5"
SPEED_COLOR = "#94A3B8"


def loss_curve_figure(steps: Sequence, total_steps: int | None = None) -> go.Figure:
    """Training loss (nats/token over the answer tokens) per optimizer step, with tokens/s on a second axis.

    ``steps``: objects with ``step``, ``loss`` and ``tokens_per_s`` (``core.finetune.runner.FinetuneStep``) or dicts
    with those keys. ``total_steps`` fixes the x range so the curve grows into a stable frame while training."""
    rows = [s if isinstance(s, dict) else s.to_dict() for s in steps]
    x = [r["step"] for r in rows]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[r["loss"] for r in rows], mode="lines+markers", name="loss (nats/token)",
                             line=dict(color=LOSS_COLOR, width=2), marker=dict(size=5),
                             hovertemplate="step %{x}<br>loss %{y:.3f} nats/token<extra></extra>"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[r["tokens_per_s"] for r in rows], mode="lines", name="speed (tokens/s)",
                             line=dict(color=SPEED_COLOR, width=1, dash="dot"),
                             hovertemplate="step %{x}<br>%{y:,.0f} tokens/s<extra></extra>"),
                  secondary_y=True)
    fig.update_xaxes(title_text="optimizer step", range=[0.5, max(total_steps or 0, max(x, default=1)) + 0.5])
    fig.update_yaxes(title_text="training loss (nats/token)", rangemode="tozero", secondary_y=False)
    fig.update_yaxes(title_text="tokens/s", rangemode="tozero", showgrid=False, secondary_y=True)
    fig.update_layout(height=340, margin=dict(l=10, r=10, t=30, b=10), legend=dict(orientation="h", y=1.12),
                      hovermode="x unified")
    return fig
