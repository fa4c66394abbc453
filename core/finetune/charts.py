"""Figures of fine-tuning (data in, Plotly figure out; no Streamlit): the planner's memory per component
(``plans_figure``) and the Fine-tune page's live loss curve (``loss_curve_figure``)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.common.units import GB

LOSS_COLOR = "#4F46E5"
SPEED_COLOR = "#94A3B8"


def loss_curve_figure(steps: Sequence, total_steps: int | None = None) -> go.Figure:
    """Training loss (nats/token over the answer tokens) per optimizer step, with tokens/s on a second axis.

    ``steps``: objects with ``step``, ``loss`` and ``tokens_per_s`` (``core.finetune.results.FinetuneStep``) or dicts
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
    # Both y axes fixed from the data with round ticks: the first step's loss (3.39) sat above an autoranged 0–3
    # axis, and the speed axis read 72.8 / 48.6 / 24.3 (issue 32).
    loss_top, loss_step = nice_axis([r["loss"] for r in rows])
    speed_top, speed_step = nice_axis([r["tokens_per_s"] for r in rows])
    fig.update_yaxes(title_text="training loss (nats/token)", range=[0, loss_top], tick0=0, dtick=loss_step,
                     secondary_y=False)
    fig.update_yaxes(title_text="speed (tokens/s)", range=[0, speed_top], tick0=0, dtick=speed_step,
                     tickformat=",.0f" if speed_step >= 1 else ",.2~f", showgrid=False, secondary_y=True)
    # The legend under the plot, so it covers no point (it sat over the first steps' loss).
    fig.update_layout(height=380, margin=dict(l=10, r=10, t=30, b=10),
                      legend=dict(orientation="h", x=0, xanchor="left", y=-0.3, yanchor="top"),
                      hovermode="x unified")
    return fig


def nice_axis(values: Sequence[float], ticks: int = 4, headroom: float = 1.08) -> tuple[float, float]:
    """(top, step) of an axis from 0 that holds ``values`` with ``headroom``: a 1-2-2.5-5 × 10^k step giving about
    ``ticks`` intervals, and a top that is a whole number of steps (3.387 → (4, 1); 72.8 tokens/s → (80, 20))."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v) and v > 0]
    top = max(finite, default=1.0) * headroom
    raw = top / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    return step * math.ceil(top / step - 1e-9), step


COMPONENT_COLORS = {
    "frozen base weights": "#64748b", "weights": "#64748b", "adapter weights": "#0ea5e9",
    "adapter gradients": "#22c55e", "gradients": "#22c55e", "adapter optimizer states": "#a855f7",
    "optimizer states": "#a855f7", "activations": "#f59e0b", "logits (temporary)": "#ef4444",
    "logit gradients (temporary)": "#ef4444", "backward temporaries": "#fb7185",
    "optimizer temporaries": "#fb7185", "dequantized weight buffer": "#14b8a6", "runtime overhead": "#94a3b8",
}


def plans_figure(plans: Mapping[str, Mapping], capacity_gb: float | None = None):
    """Stacked bars, one per plan (e.g. {"LoRA": plan, "full fine-tuning": plan} from ``plan_finetune``): memory
    per component in GB at each plan's predicted peak, with the GPU's memory as a dashed line."""
    names = list(plans)
    components = list(dict.fromkeys(c for plan in plans.values() for c in plan["components"]))
    fig = go.Figure()
    for comp in components:
        fig.add_bar(name=comp, x=names, y=[plans[n]["components"].get(comp, 0.0) / GB for n in names],
                    marker_color=COMPONENT_COLORS.get(comp), hovertemplate=f"{comp}: %{{y:.3f}} GB<extra></extra>")
    if capacity_gb:
        fig.add_hline(y=capacity_gb, line_dash="dash", line_color="#111827",
                      annotation_text=f"GPU memory {capacity_gb:g} GB", annotation_position="top left")
    fig.update_layout(barmode="stack", yaxis_title="memory at the peak (GB)", legend_title_text="component",
                      height=420, margin=dict(t=30, b=10))
    return fig
