"""Figures for the sampling pipeline (core.run.sampling.pipeline_stages): one small multiple per processor, in the order
generate() applies them, so one can see which control removed which token. Data in, go.Figure out; no Streamlit."""
from __future__ import annotations

import html

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.run.sampling import PipelineStage, top_tokens

KEPT_COLOR = "#4F46E5"
CUT_COLOR = "#CBD5E1"


def _label(text: str) -> str:
    shown = text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥") or "∅"
    return html.escape(shown, quote=False)


def stage_rows(stages: list[PipelineStage], decode, n: int = 12) -> list[dict]:
    """The model's n most likely tokens with their probability after each stage (0 once removed)."""
    rows = []
    for token_id, _ in top_tokens(stages[0].probs, n):
        row = {"token_id": token_id, "token": decode(token_id)}
        for stage in stages:
            row[stage.key] = float(stage.probs[token_id])
            row[f"{stage.key}_kept"] = bool(stage.kept[token_id])
        rows.append(row)
    return rows


def pipeline_figure(stages: list[PipelineStage], decode, n: int = 12, title: str = "") -> go.Figure:
    """Small multiples: one horizontal bar chart per stage, same tokens on every row; a token a stage removed is a
    grey stub marked ✗, so the first panel where it turns grey names the control that cut it."""
    rows = stage_rows(stages, decode, n)
    labels = [f"{_label(r['token'])}  #{r['token_id']}" for r in rows]
    cols = len(stages)
    titles = [f"{i}. {s.label}<br><sup>{s.kept_count:,} token(s) left</sup>" if i else
              f"{s.label}<br><sup>{s.kept_count:,} tokens</sup>" for i, s in enumerate(stages)]
    fig = make_subplots(rows=1, cols=cols, shared_yaxes=True, subplot_titles=titles, horizontal_spacing=0.012)
    for index, stage in enumerate(stages):
        kept = [r[f"{stage.key}_kept"] for r in rows]
        values = [r[stage.key] for r in rows]
        fig.add_trace(go.Bar(
            y=labels, x=[v if k else 0.02 for v, k in zip(values, kept)], orientation="h", showlegend=False,
            marker_color=[KEPT_COLOR if k else CUT_COLOR for k in kept],
            text=[f"{v:.2f}" if k else "✗" for v, k in zip(values, kept)], textposition="outside",
            customdata=[["kept" if k else f"removed by {stage.label}" if index and rows[j][f'{stages[index - 1].key}_kept']
                         else "removed earlier", v] for j, (v, k) in enumerate(zip(values, kept))],
            hovertemplate="%{y}<br>p = %{customdata[1]:.4f} (%{customdata[0]})<extra>" + html.escape(stage.label) + "</extra>",
        ), row=1, col=index + 1)
        fig.update_xaxes(range=[0, 1.15], showticklabels=False, row=1, col=index + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_annotations(font_size=11)
    fig.update_layout(title=title or "The distribution after each processor, in generate()'s order",
                      height=max(340, 26 * len(rows) + 150), margin={"l": 10, "r": 10, "t": 90, "b": 10},
                      bargap=0.25)
    return fig
