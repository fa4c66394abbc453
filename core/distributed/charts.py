"""Figures of distributed steps: per rank, the measured peak beside the prediction and the ZeRO paper's formula."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def measured_vs_predicted_figure(table: pd.DataFrame) -> go.Figure:
    """Grouped bars per (strategy, world size, rank): measured peak, LLM Lab's prediction, the ZeRO formula (MB)."""
    fig = go.Figure()
    if table.empty:
        return fig
    labels = [f"{r['strategy']} ×{r['world size']} · rank {r['rank']}" for _, r in table.iterrows()]
    for column, name in (("measured peak (MB)", "measured"), ("predicted peak (MB)", "predicted (LLM Lab)"),
                         ("ZeRO paper formula (MB)", "ZeRO paper formula + activations")):
        fig.add_trace(go.Bar(x=labels, y=table[column], name=name,
                             hovertemplate="%{x}<br>" + name + ": %{y:.2f} MB<extra></extra>"))
    fig.update_layout(barmode="group", title="Peak memory per rank: measured vs predicted",
                      yaxis_title="peak tensor bytes per rank (MB)", legend=dict(orientation="h", y=-0.25))
    return fig
