"""Plotly figures for the logit lens (core.run.lens): data in, go.Figure out; no Streamlit.

Rows are the residual stream's readings (embeddings at the top, the last layer at the bottom, like reading the
network from input to output), columns the input positions; position t shows the prediction for token t + 1.
"""
from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.run.attention_charts import ATTENTION_COLORSCALE
from core.run.lens import LensResult

RANK_COLOR = "#DC2626"
PROB_COLOR = "#4F46E5"


def _safe(text: str) -> str:
    return html.escape(str(text), quote=False)


def lens_heatmap(result: LensResult, title: str | None = None) -> go.Figure:
    """Layer × position heatmap: colour = the top token's probability, text = the top token, hover = the top-k."""
    probs = result.top_probs[:, :, 0].astype(np.float64)
    rows, positions = probs.shape
    labels = result.row_labels
    text = np.empty((rows, positions), dtype=object)
    hover = np.empty((rows, positions), dtype=object)
    k = result.top_token_ids.shape[2]
    for r in range(rows):
        for t in range(positions):
            ids = result.top_token_ids[r, t]
            text[r, t] = _safe(result.token_texts.get(int(ids[0]), str(ids[0])))[:10]
            lines = [f"{i + 1}. {_safe(result.token_texts.get(int(ids[i]), str(ids[i])))!s} — {result.top_probs[r, t, i]:.3f}"
                     for i in range(k)]
            final = result.token_texts.get(result.final_token_ids[t], "")
            hover[r, t] = (f"{labels[r]} · after {_safe(result.tokens[t])!s} (position {t})<br>" + "<br>".join(lines)
                           + f"<br>model's final top token {_safe(final)!s}: rank {result.final_rank[r, t]}, "
                             f"p = {result.final_probs[r, t]:.3f}")
    fig = go.Figure(go.Heatmap(
        z=probs, x=np.arange(positions), y=np.arange(rows), text=text, texttemplate="%{text}", customdata=hover,
        textfont={"size": 9}, zmin=0.0, zmax=1.0, colorscale=ATTENTION_COLORSCALE,
        colorbar={"title": {"text": "top-1 p"}, "thickness": 14},
        hovertemplate="%{customdata}<extra></extra>",
    ))
    fig.update_layout(
        title=title if title is not None else f"Logit lens: top next-token prediction at every layer ({_safe(result.model_name)})",
        height=int(min(1400, max(420, 22 * rows + 160))), margin={"l": 10, "r": 10, "t": 50, "b": 10},
        xaxis={"title": "input position (predicting the next token)", "tickmode": "array",
               "tickvals": list(range(positions)), "ticktext": [_safe(t) for t in result.tokens], "tickangle": -60},
        yaxis={"title": "residual stream read after", "tickmode": "array", "tickvals": list(range(rows)),
               "ticktext": labels, "autorange": "reversed"},
    )
    return fig


def final_token_figure(result: LensResult, position: int) -> go.Figure:
    """Rank (log scale) and probability, per layer, of the token the full model predicts at one position."""
    t = int(position) % len(result.tokens)
    token = result.token_texts.get(result.final_token_ids[t], "")
    x = result.row_labels
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=result.final_rank[:, t], mode="lines+markers", name="rank (1 = top)",
                             marker_color=RANK_COLOR, hovertemplate="%{x}: rank %{y}<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=result.final_probs[:, t], mode="lines+markers", name="probability",
                             marker_color=PROB_COLOR, hovertemplate="%{x}: p = %{y:.4f}<extra></extra>"), secondary_y=True)
    fig.update_yaxes(title_text="rank (log scale)", type="log", autorange="reversed", secondary_y=False)
    fig.update_yaxes(title_text="probability", range=[0, 1.05], secondary_y=True)
    fig.update_layout(
        title=f"When does {_safe(token)!r} appear? Its rank and probability per layer after {_safe(result.tokens[t])!r} (position {t})",
        height=380, margin={"l": 10, "r": 10, "t": 50, "b": 40}, legend={"orientation": "h", "y": -0.35},
        xaxis={"tickangle": -45},
    )
    return fig
