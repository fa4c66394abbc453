"""Plotly figures of fine-tuning plans (data in, figure out)."""
from __future__ import annotations

from collections.abc import Mapping

import plotly.graph_objects as go

from core.memory import GB

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
