"""Plotly figures of the training-layout planner (core.plan.parallel): the per-GPU memory stack of a layout and its
step-time breakdown. Inputs are the planner's typed results; memory axes in GB = 1e9 bytes, time in seconds."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from core.common.units import GB
from core.plan.memory_charts import COMPONENT_COLORS
from core.plan.parallel.memory import StageMemory
from core.plan.parallel.step_time import StepTime

MEMORY_PARTS = (("weights_bytes", "weights"), ("gradients_bytes", "gradients"), ("optimizer_bytes", "optimizer"),
                ("activations_bytes", "activations"), ("overhead_bytes", "CUDA context"))
STEP_PARTS = (("compute_s", "compute", "#4F46E5"), ("tp_comm_s", "TP comm", "#F59E0B"),
              ("pp_bubble_s", "pipeline bubble", "#EF4444"), ("pp_p2p_s", "PP send/recv", "#A78BFA"),
              ("dp_comm_s", "DP comm (exposed)", "#0EA5E9"))
_LAYOUT = dict(template="plotly_white", margin=dict(l=10, r=10, t=50, b=10), legend_title_text="", barmode="stack")


def memory_stack_figure(stages: Sequence[tuple[str, StageMemory]], capacity_bytes: float | None = None,
                        title: str = "Per-GPU memory at the step's peak") -> go.Figure:
    """One stacked bar per (label, stage memory): weights, gradients, optimizer, activations, CUDA context; a dashed
    line at the GPU's capacity."""
    fig = go.Figure()
    labels = [label for label, _ in stages]
    for key, name in MEMORY_PARTS:
        fig.add_bar(name=name, x=labels, y=[getattr(m, key) / GB for _, m in stages],
                    marker_color=COMPONENT_COLORS.get(name), hovertemplate="%{x}<br>" + name + ": %{y:.2f} GB")
    if capacity_bytes:
        fig.add_hline(y=capacity_bytes / GB, line_dash="dash", annotation_text=f"GPU {capacity_bytes / GB:g} GB")
    fig.update_layout(title=title, yaxis_title="GB per GPU", **_LAYOUT)
    return fig


def step_time_figure(steps: Sequence[tuple[str, StepTime]], title: str = "Step time, where it goes") -> go.Figure:
    """One horizontal stacked bar per (label, step time): compute, TP comm, bubble, PP sends, exposed DP comm."""
    fig = go.Figure()
    labels = [label for label, _ in steps]
    for key, name, color in STEP_PARTS:
        fig.add_bar(name=name, y=labels, x=[getattr(s, key) for _, s in steps], orientation="h", marker_color=color,
                    hovertemplate="%{y}<br>" + name + ": %{x:.3f} s")
    fig.update_layout(title=title, xaxis_title="seconds per step", yaxis=dict(autorange="reversed"), **_LAYOUT)
    return fig
