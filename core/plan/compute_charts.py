"""Plotly figures for the compute planner. Each function takes data and returns a go.Figure (testable).

No Streamlit here.
"""
from __future__ import annotations

import plotly.graph_objects as go

from core.plan import compute, compute_plan, compute_text

_PALETTE = ["#4F46E5", "#0EA5E9", "#10B981", "#F59E0B", "#EF4444", "#8B5CF6", "#EC4899"]
_PLAN_COLOR = "#DC2626"
# Runs that sit almost on top of each other in the parameters/tokens plane get their labels pushed apart.
_RUN_LABEL_POSITIONS = {
    "GPT-3": "middle left", "Jurassic-1": "middle right", "BLOOM": "top center", "OPT-175B": "bottom center",
    "LaMDA": "bottom center", "LLaMA-65B": "middle left", "Chinchilla": "bottom right", "Llama 2 70B": "top center",
}


def iso_flop_figure(budgets_flops, flops_per_param_token: float = 6, tokens_per_param: float = 20,
                    plan: tuple[float, float] | None = None, points: int = 120) -> go.Figure:
    """Iso-FLOP curves of the Chinchilla approach-3 loss (Hoffmann et al. 2022, Fig. 3 right / Eq. 2).

    One curve per budget: loss against model size with D = C / (k·N). Each curve's minimum (Eq. 4) is
    marked with a diamond, the r-tokens-per-parameter rule with an open circle, and `plan` = (N, D) — the
    user's run — with a star at L(N, D).
    """
    fig = go.Figure()
    budgets = sorted(float(b) for b in budgets_flops)
    for i, c in enumerate(budgets):
        color = _PALETTE[i % len(_PALETTE)]
        n_fit, d_fit = compute.loss_optimal_allocation(c, flops_per_param_token)
        n_rule, d_rule = compute.chinchilla_optimal(c, tokens_per_param, flops_per_param_token)
        low = min(n_fit, n_rule) / 20
        high = max(n_fit, n_rule) * 20
        grid = compute.log_grid(low, high, points)
        losses = compute.iso_flop_curve(c, grid, flops_per_param_token)
        label = f"{compute_text.format_number(c, 2)} FLOPs ({compute_text.format_number(compute.pflop_s_days(c))} PF/s-days)"
        fig.add_trace(go.Scatter(
            x=grid, y=losses, mode="lines", name=label, line={"color": color, "width": 2},
            legendgroup=label,
            hovertemplate="N = %{x:.3s} params<br>loss %{y:.4f} nats/token<extra>" + label + "</extra>"))
        fig.add_trace(go.Scatter(
            x=[n_fit], y=[compute.chinchilla_loss(n_fit, d_fit)], mode="markers", legendgroup=label,
            name="minimum of the fit" if i == 0 else None, showlegend=i == 0,
            marker={"symbol": "diamond", "size": 11, "color": color, "line": {"color": "black", "width": 1}},
            hovertemplate=(f"fit minimum: N = {compute_text.format_count(n_fit)}, D = {compute_text.format_count(d_fit)} tokens "
                           f"({d_fit / n_fit:.0f} tokens/param)<br>loss %{{y:.4f}} nats/token<extra></extra>")))
        fig.add_trace(go.Scatter(
            x=[n_rule], y=[compute.chinchilla_loss(n_rule, d_rule)], mode="markers", legendgroup=label,
            name=f"{tokens_per_param:g} tokens/param rule" if i == 0 else None, showlegend=i == 0,
            marker={"symbol": "circle-open", "size": 10, "color": color, "line": {"width": 2}},
            hovertemplate=(f"{tokens_per_param:g}× rule: N = {compute_text.format_count(n_rule)}, "
                           f"D = {compute_text.format_count(d_rule)} tokens<br>loss %{{y:.4f}} nats/token<extra></extra>")))
    if plan is not None:
        n, d = plan
        fig.add_trace(go.Scatter(
            x=[n], y=[compute.chinchilla_loss(n, d)], mode="markers", name="your plan",
            marker={"symbol": "star", "size": 18, "color": _PLAN_COLOR, "line": {"color": "black", "width": 1}},
            hovertemplate=(f"your plan: N = {compute_text.format_count(n)}, D = {compute_text.format_count(d)} tokens"
                           "<br>loss %{y:.4f} nats/token<extra></extra>")))
    fig.update_layout(
        title="Iso-FLOP curves of the Chinchilla loss fit",
        xaxis={"title": "model parameters N (log scale)", "type": "log"},
        yaxis={"title": "fitted loss L(N, D) (nats/token)"},
        legend={"orientation": "h", "y": -0.2}, margin={"t": 50, "b": 10}, height=480,
    )
    return fig


def reference_runs_figure(rows: list[dict], tokens_per_param: float = 20,
                          plan: tuple[float, float] | None = None) -> go.Figure:
    """Log-log scatter of published runs: parameters against training tokens, with the D = r·N line.

    `rows` are `core.plan.training_runs.run_summary` dicts. Points above the line saw more than r tokens per
    parameter (Hoffmann et al. 2022's compute-optimal ratio, r = 20); points below were under-trained for
    their size. `plan` = (N, D) adds the user's run as a star.
    """
    fig = go.Figure()
    xs = [r["parameters"] for r in rows]
    ys = [r["tokens"] for r in rows]
    all_x = xs + ([plan[0]] if plan else [])
    lo, hi = min(all_x) / 2, max(all_x) * 2
    fig.add_trace(go.Scatter(
        x=[lo, hi], y=[lo * tokens_per_param, hi * tokens_per_param], mode="lines",
        name=f"{tokens_per_param:g} tokens per parameter (Chinchilla)",
        line={"color": "#6B7280", "dash": "dash"}, hoverinfo="skip"))
    fig.add_trace(go.Scatter(
        x=xs, y=ys, mode="markers+text", name="published runs", text=[r["run"] for r in rows],
        textposition=[_RUN_LABEL_POSITIONS.get(r["run"], "top center") for r in rows], textfont={"size": 10},
        marker={"size": 10, "color": _PALETTE[0]},
        customdata=[[r["tokens per parameter"], r["compute (PF/s-days)"]] for r in rows],
        hovertemplate=("%{text}<br>%{x:.3s} params, %{y:.3s} tokens<br>%{customdata[0]:.1f} tokens/param"
                       "<br>%{customdata[1]:,.0f} PF/s-days<extra></extra>")))
    if plan is not None:
        n, d = plan
        fig.add_trace(go.Scatter(
            x=[n], y=[d], mode="markers", name="your plan",
            marker={"symbol": "star", "size": 18, "color": _PLAN_COLOR, "line": {"color": "black", "width": 1}},
            hovertemplate=(f"your plan: {compute_text.format_count(n)} params, {compute_text.format_count(d)} tokens "
                           f"({d / n:.1f} tokens/param)<extra></extra>")))
    fig.update_layout(
        title="Published training runs: parameters vs. training tokens",
        xaxis={"title": "parameters (log scale)", "type": "log"},
        yaxis={"title": "training tokens (log scale)", "type": "log"},
        legend={"orientation": "h", "y": -0.2}, margin={"t": 50, "b": 10}, height=480,
    )
    return fig


def data_limit_figure(rows: list[dict]) -> go.Figure:
    """Fitted loss (Hoffmann et al. 2022, Eq. 2) against compute for models of growing size on one data limit.

    `rows` are `core.plan.compute_plan.data_limited_alternatives` dicts: the curve flattens past the compute-optimal
    size — each extra PF/s-day buys less loss.
    """
    fig = go.Figure()
    fig.add_trace(go.Scatter(
        x=[r["compute (PF/s-days)"] for r in rows], y=[r["fitted loss (nats/token)"] for r in rows],
        mode="lines+markers+text", text=[f"{r['size vs compute-optimal']:g}× ({compute_text.format_count(r['parameters'])})"
                                         for r in rows],
        textposition="top right", marker={"size": 10, "color": _PALETTE[0]}, name="same data, bigger model",
        customdata=[[r["tokens per parameter"]] for r in rows],
        hovertemplate=("%{text}<br>%{x:,.3g} PF/s-days<br>loss %{y:.4f} nats/token"
                       "<br>%{customdata[0]:.1f} tokens/param<extra></extra>")))
    optimal = [r for r in rows if r["size vs compute-optimal"] == 1.0]
    if optimal:
        fig.add_trace(go.Scatter(
            x=[optimal[0]["compute (PF/s-days)"]], y=[optimal[0]["fitted loss (nats/token)"]], mode="markers",
            name="compute-optimal for this data", hoverinfo="skip",
            marker={"symbol": "star", "size": 18, "color": _PLAN_COLOR, "line": {"color": "black", "width": 1}}))
    fig.update_layout(
        title="Same data, bigger model: compute spent vs. loss gained",
        xaxis={"title": "training compute (PF/s-days, log scale)", "type": "log"},
        yaxis={"title": "fitted loss L(N, D) (nats/token)"},
        legend={"orientation": "h", "y": -0.2}, margin={"t": 50, "b": 10}, height=420,
    )
    return fig
