"""Figures and HTML for the Generate page (data in, Plotly figure / HTML string out; no Streamlit)."""
from __future__ import annotations

import html

import plotly.graph_objects as go

from core.run.generation import STAGE_LABELS, STAGES, GenerationResult, StepEvent

STAGE_COLORS = {"raw": "#94A3B8", "temperature": "#818CF8", "filtered": "#4F46E5"}


def display_token(text: str) -> str:
    """A token made readable: visible spaces (␣) and newlines (↵), tabs (⇥); empty → ∅."""
    if text == "":
        return "∅"
    return text.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")


def probability_color(probability: float) -> str:
    """Background colour for a probability: red (unlikely) → amber → green (likely), light enough for dark text."""
    p = min(max(float(probability), 0.0), 1.0)
    return f"hsl({round(p * 120)}, 75%, 82%)"


def colored_tokens_html(steps: list[StepEvent], selected: int | None = None, prompt_text: str | None = None,
                        by: str = "probability") -> str:
    """The completion as spans coloured by each token's probability (`by`: "probability" = the model's raw
    softmax, or "sampled_probability"); hover shows the numbers. `selected` outlines one step."""
    parts = ['<div style="font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 0.95rem; '
             'line-height: 1.9; white-space: pre-wrap; word-break: break-word; color: #111827;">']
    if prompt_text:
        parts.append(f'<span style="color:#6B7280;">{html.escape(prompt_text)}</span>')
    for step in steps:
        shown = step.text if step.text else step.token
        probability = getattr(step, by)
        outline = "outline: 2px solid #4F46E5;" if selected == step.index else ""
        title = (f"step {step.index}: {display_token(step.token)!s} · model p={step.probability:.3f} (rank "
                 f"{step.raw_rank}) · sampled-from p={step.sampled_probability:.3f} · {step.kept_tokens} candidates")
        body = html.escape(shown).replace("\n", "↵\n")
        parts.append(
            f'<span title="{html.escape(title)}" style="background:{probability_color(probability)}; '
            f'border-radius: 3px; padding: 1px 1px; {outline}">{body}</span>'
        )
    parts.append("</div>")
    return "".join(parts)


def color_legend_html() -> str:
    stops = [0.0, 0.25, 0.5, 0.75, 1.0]
    cells = "".join(
        f'<span style="background:{probability_color(p)}; padding: 0 8px; margin-right: 2px; border-radius: 3px;">{p:.2f}</span>'
        for p in stops
    )
    return f'<div style="font-size: 0.8rem; color:#374151;">token probability: {cells}</div>'


def _token_names(step: StepEvent) -> dict[int, str]:
    """Decoded text of every token shown at a step (any stage's alternatives, and the chosen one)."""
    names = {a.token_id: a.token for stage in step.alternatives.values() for a in stage}
    names.setdefault(step.token_id, step.token)
    return names


def step_table_rows(step: StepEvent) -> list[dict]:
    """One row per token shown at a step, most likely (raw) first: its probability at each stage; ▶ marks the choice."""
    names = _token_names(step)
    return [
        {"token": ("▶ " if token_id == step.token_id else "") + display_token(names[token_id]),
         "id": token_id, "model p": probs[0], "adjusted p": probs[1], "sampled-from p": probs[2]}
        for token_id, probs in sorted(step.stage_probabilities.items(), key=lambda item: -item[1][0])
    ]


def step_distribution_figure(step: StepEvent, n: int = 10) -> go.Figure:
    """Top alternatives at one step under the three stages of the logits pipeline (grouped horizontal bars)."""
    order = [a.token_id for a in step.alternatives.get("raw", [])[:n]]
    for stage in ("temperature", "filtered"):
        for alt in step.alternatives.get(stage, [])[:n]:
            if alt.token_id not in order:
                order.append(alt.token_id)
    if step.token_id not in order:
        order.append(step.token_id)
    names = _token_names(step)
    labels = [("▶ " if tid == step.token_id else "") + display_token(names.get(tid, str(tid))) + f"  #{tid}" for tid in order]
    fig = go.Figure()
    for position, stage in enumerate(STAGES):
        values = [step.stage_probabilities.get(tid, (0.0, 0.0, 0.0))[position] for tid in order]
        fig.add_trace(go.Bar(
            y=labels, x=values, orientation="h", name=STAGE_LABELS[stage], marker_color=STAGE_COLORS[stage],
            hovertemplate="%{y}<br>" + STAGE_LABELS[stage] + ": %{x:.4f}<extra></extra>",
        ))
    fig.update_layout(
        barmode="group", height=max(320, 34 * len(order) + 120), margin=dict(l=10, r=10, t=50, b=40),
        title=f"Step {step.index}: chose {display_token(step.token)!r} — model p = {step.probability:.3f}, "
              f"sampled from p = {step.sampled_probability:.3f}",
        xaxis_title="probability", yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.15),
    )
    return fig


def shape_figure(rows: list[dict], title: str = "") -> go.Figure:
    """One next-token distribution at each stage; tokens cut by top-k / top-p are drawn hollow."""
    labels = [display_token(r["token"]) + f"  #{r['token_id']}" for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Bar(y=labels, x=[r["raw"] for r in rows], orientation="h", name=STAGE_LABELS["raw"],
                         marker_color=STAGE_COLORS["raw"], hovertemplate="%{y}: %{x:.4f}<extra>raw</extra>"))
    fig.add_trace(go.Bar(y=labels, x=[r["temperature"] for r in rows], orientation="h",
                         name=STAGE_LABELS["temperature"], marker_color=STAGE_COLORS["temperature"],
                         hovertemplate="%{y}: %{x:.4f}<extra>temperature</extra>"))
    fig.add_trace(go.Bar(
        y=labels, x=[r["filtered"] for r in rows], orientation="h", name=STAGE_LABELS["filtered"],
        marker=dict(color=[STAGE_COLORS["filtered"] if r["kept"] else "rgba(0,0,0,0)" for r in rows],
                    line=dict(color=STAGE_COLORS["filtered"], width=1)),
        customdata=["kept" if r["kept"] else "cut" for r in rows],
        hovertemplate="%{y}: %{x:.4f} (%{customdata})<extra>sampled from</extra>",
    ))
    fig.update_layout(barmode="group", height=max(360, 30 * len(rows) + 120), margin=dict(l=10, r=10, t=50, b=40),
                      title=title, xaxis_title="probability", xaxis_range=[0, 1],
                      yaxis=dict(autorange="reversed"), legend=dict(orientation="h", y=-0.12))
    return fig


def probability_timeline_figure(steps: list[StepEvent]) -> go.Figure:
    """Chosen-token probability at every step: the model's (raw) and in the distribution sampled from."""
    x = [s.index for s in steps]
    text = [display_token(s.token) for s in steps]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[s.probability for s in steps], mode="lines+markers", name="model p (raw)",
                             text=text, marker_color=STAGE_COLORS["raw"],
                             hovertemplate="step %{x} %{text}: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=x, y=[s.sampled_probability for s in steps], mode="lines+markers",
                             name="p in the distribution sampled from", text=text, marker_color=STAGE_COLORS["filtered"],
                             hovertemplate="step %{x} %{text}: %{y:.3f}<extra></extra>"))
    fig.update_layout(height=280, margin=dict(l=10, r=10, t=40, b=40), title="Chosen token probability per step",
                      xaxis_title="step", yaxis_title="probability", yaxis_range=[0, 1.05],
                      legend=dict(orientation="h", y=-0.3))
    return fig


def compare_figure(results: dict[str, GenerationResult]) -> go.Figure:
    """The model's probability of each chosen token, per step, for each compared setting."""
    fig = go.Figure()
    for label, result in results.items():
        fig.add_trace(go.Scatter(
            x=[s.index for s in result.steps], y=[s.probability for s in result.steps], mode="lines+markers",
            name=label, text=[display_token(s.token) for s in result.steps],
            hovertemplate=label + " · step %{x} %{text}: %{y:.3f}<extra></extra>",
        ))
    fig.update_layout(height=300, margin=dict(l=10, r=10, t=40, b=40), xaxis_title="step",
                      yaxis_title="model probability of the chosen token", yaxis_range=[0, 1.05],
                      title="How likely the model found each chosen token", legend=dict(orientation="h", y=-0.3))
    return fig
