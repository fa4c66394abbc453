"""The evaluation summary as a bar chart: each setup's score on the task."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go


def summary_figure(frame: pd.DataFrame, score: str) -> go.Figure:
    fig = go.Figure()
    if frame.empty:
        return fig
    fig.add_trace(go.Bar(x=frame["setup"], y=frame[score], text=[f"{v:.3g}" for v in frame[score]],
                         textposition="outside", hovertemplate="%{x}<br>" + score + ": %{y:.3f}<extra></extra>"))
    fig.update_layout(title=f"{score} by setup", yaxis_title=score, xaxis_title="model · prompt technique",
                      yaxis_rangemode="tozero")
    return fig
