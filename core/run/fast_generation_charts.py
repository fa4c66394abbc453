"""The fast-generation comparison as a figure: tokens/s of the default ``generate()``, the static-cache +
``torch.compile`` path and the bandwidth bound (``core.run.fast_generation``)."""
from __future__ import annotations

import plotly.graph_objects as go


def speed_figure(default_tokens_per_s: float | None, fast_tokens_per_s: float | None,
                 bound_tokens_per_s: float | None, gpu_name: str | None = None):
    """Horizontal bars: tokens/s of the default path, the fast path and the bandwidth bound."""
    names, values, colors = [], [], []
    for name, value, color in (("default generate()", default_tokens_per_s, "#6b7280"),
                               ("static cache + torch.compile", fast_tokens_per_s, "#2563eb"),
                               (f"bandwidth bound{f' ({gpu_name})' if gpu_name else ''}", bound_tokens_per_s,
                                "#dc2626")):
        if value is not None:
            names.append(name)
            values.append(value)
            colors.append(color)
    fig = go.Figure(go.Bar(x=values, y=names, orientation="h", marker_color=colors,
                           text=[f"{v:,.0f} tok/s" for v in values], textposition="auto",
                           hovertemplate="%{y}: %{x:,.1f} tokens/s<extra></extra>"))
    fig.update_layout(xaxis_title="tokens per second", height=260, margin=dict(t=20, b=10, l=10, r=10))
    return fig
