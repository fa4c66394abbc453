"""Plotly figures for the attention page. Each function takes numpy data and returns a go.Figure (testable).

No Streamlit here. Axes use token positions as coordinates and the tokens as tick labels, because the same
word often occurs twice in a sentence and a categorical axis would merge the two.
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.run.attention import STATISTIC_DESCRIPTIONS, indexed_labels

ATTENTION_COLORSCALE = [[0.0, "#F8FAFC"], [0.15, "#C7D2FE"], [0.4, "#818CF8"], [0.7, "#4F46E5"], [1.0, "#1E1B4B"]]
"""White (no attention) → the app's indigo → near black (all attention)."""
MASKED_COLOR = "#E5E7EB"
"""Background shown where a causal mask forbids attention (future tokens)."""
FOCUS_COLOR = "#DC2626"
BAR_COLOR = "#4F46E5"
THUMBNAIL_CELLS = 24
"""Cells per axis of one model-view thumbnail; longer inputs are max-pooled into blocks."""


def _safe(labels) -> list[str]:
    """Token labels escaped for plotly, whose text supports a subset of HTML: a token such as "<b>" must show
    as itself, not turn the rest of the label bold."""
    return [html.escape(str(label), quote=False) for label in labels]


def _tick_font_size(n: int) -> int:
    return int(max(7, min(12, 700 / max(n, 1))))


def causal_mask(n_queries: int, n_keys: int, query_offset: int = 0, key_offset: int = 0) -> np.ndarray:
    """[q, k] booleans, True where key position > query position (a decoder may not look there)."""
    queries = np.arange(n_queries)[:, None] + query_offset
    keys = np.arange(n_keys)[None, :] + key_offset
    return keys > queries


def head_heatmap(matrix: np.ndarray, query_tokens: list[str], key_tokens: list[str], title: str = "",
                 query_offset: int = 0, key_offset: int = 0, masked: np.ndarray | None = None,
                 zmax: float | None = None, height: int | None = None) -> go.Figure:
    """Heatmap of one [queries, keys] attention matrix: rows are queries (top = first), columns keys.

    Hover shows query, key and weight. Cells where `masked` is True (e.g. future tokens of a decoder) are
    left empty on a grey background so the causal triangle is visible."""
    z = np.array(matrix, dtype=np.float64)
    n_q, n_k = z.shape
    if masked is not None:
        z = np.where(masked, np.nan, z)
    x = np.arange(n_k) + key_offset
    y = np.arange(n_q) + query_offset
    q_labels = _safe(indexed_labels(query_tokens, query_offset))
    k_labels = _safe(indexed_labels(key_tokens, key_offset))
    custom = np.empty((n_q, n_k, 2), dtype=object)
    custom[:, :, 0] = np.array(q_labels, dtype=object)[:, None]
    custom[:, :, 1] = np.array(k_labels, dtype=object)[None, :]
    finite = z[np.isfinite(z)]
    top = zmax if zmax is not None else (float(finite.max()) if finite.size and finite.max() > 0 else 1.0)
    fig = go.Figure(go.Heatmap(
        z=z, x=x, y=y, customdata=custom, zmin=0.0, zmax=top, colorscale=ATTENTION_COLORSCALE,
        hoverongaps=False, colorbar={"title": {"text": "weight"}, "thickness": 14},
        hovertemplate="query %{customdata[0]}<br>key %{customdata[1]}<br>weight %{z:.4f}<extra></extra>"))
    font = {"size": _tick_font_size(max(n_q, n_k))}
    side = height or int(min(900, max(360, 26 * n_q + 160)))
    fig.update_layout(
        title=title, height=side, margin={"l": 10, "r": 10, "t": 50 if title else 20, "b": 10},
        plot_bgcolor=MASKED_COLOR,
        xaxis={"title": "key (attended to)", "tickmode": "array", "tickvals": list(x), "ticktext": _safe(key_tokens),
               "tickangle": -60, "tickfont": font, "showgrid": False, "constrain": "domain"},
        yaxis={"title": "query (attending)", "tickmode": "array", "tickvals": list(y), "ticktext": _safe(query_tokens),
               "autorange": "reversed", "tickfont": font, "showgrid": False, "constrain": "domain",
               "scaleanchor": "x" if n_q == n_k else None},
    )
    return fig


def block_max_pool(matrix: np.ndarray, cells: int = THUMBNAIL_CELLS) -> np.ndarray:
    """Shrink a [q, k] matrix to at most cells × cells by keeping the largest weight of each block.

    Max (not mean) pooling keeps one-token-wide patterns — a previous-token diagonal, a first-token column —
    visible in a small thumbnail."""
    m = np.asarray(matrix)
    out = m
    for axis in (-2, -1):
        n = out.shape[axis]
        if n > cells:
            block = math.ceil(n / cells)
            out = np.maximum.reduceat(out, np.arange(0, n, block), axis=axis)
    return out


def tiled_heatmap(tiles: np.ndarray, labels: np.ndarray, n_cols: int, row_titles: list[str],
                  col_titles: list[str], hover_label: str, title: str = "", tile_px: int = 56,
                  selected: int | None = None, pooled_from: int | None = None) -> go.Figure:
    """Many small heatmaps drawn as ONE heatmap trace (fast to build and to draw), separated by empty gaps.

    `tiles` [n, s_q, s_k] are the (already pooled) matrices in reading order, `labels` [n, 2] integers shown on
    hover through `hover_label` (a hovertemplate using %{customdata[0]} and %{customdata[1]}). `selected`
    draws a frame around that tile."""
    n_tiles, s_q, s_k = tiles.shape
    n_rows = math.ceil(n_tiles / n_cols)
    gap = 1 if max(s_q, s_k) < 8 else 2
    step_r, step_c = s_q + gap, s_k + gap
    z = np.full((n_rows * step_r - gap, n_cols * step_c - gap), np.nan, dtype=np.float32)
    custom = np.zeros(z.shape + (2,), dtype=np.int16)
    for index in range(n_tiles):
        r, c = divmod(index, n_cols)
        z[r * step_r:r * step_r + s_q, c * step_c:c * step_c + s_k] = tiles[index]
        custom[r * step_r:r * step_r + s_q, c * step_c:c * step_c + s_k] = labels[index]
    note = f"<br>(strongest weight in each block of a {pooled_from}-token input)" if pooled_from else ""
    fig = go.Figure(go.Heatmap(
        z=z, customdata=custom, zmin=0.0, zmax=1.0, colorscale=ATTENTION_COLORSCALE, hoverongaps=False,
        colorbar={"title": {"text": "weight"}, "thickness": 14},
        hovertemplate=hover_label + "<br>weight %{z:.3f}" + note + "<extra></extra>"))
    if selected is not None and 0 <= selected < n_tiles:
        r, c = divmod(selected, n_cols)
        fig.add_shape(type="rect", x0=c * step_c - 0.5, x1=c * step_c + s_k - 0.5, y0=r * step_r - 0.5,
                      y1=r * step_r + s_q - 0.5, line={"color": FOCUS_COLOR, "width": 3})
    fig.update_layout(
        title=title, plot_bgcolor="#FFFFFF",
        height=int(max(260, n_rows * tile_px + 120)), width=None,
        margin={"l": 10, "r": 10, "t": 70 if title else 30, "b": 10},
        xaxis={"tickmode": "array", "tickvals": [c * step_c + (s_k - 1) / 2 for c in range(n_cols)],
               "ticktext": col_titles, "side": "top", "showgrid": False, "zeroline": False, "constrain": "domain"},
        yaxis={"tickmode": "array", "tickvals": [r * step_r + (s_q - 1) / 2 for r in range(n_rows)],
               "ticktext": row_titles, "autorange": "reversed", "showgrid": False, "zeroline": False,
               "scaleanchor": "x", "constrain": "domain"},
    )
    return fig


def model_view_figure(weights: np.ndarray, selected: tuple[int, int] | None = None,
                      cells: int = THUMBNAIL_CELLS, title: str = "") -> go.Figure:
    """Model view: one thumbnail per (layer, head), layers as rows and heads as columns (as in bertviz's
    model view, Vig 2019, "A Multiscale Visualization of Attention in the Transformer Model")."""
    w = np.asarray(weights)
    n_layers, n_heads, n_q, n_k = w.shape
    pooled = block_max_pool(w.reshape(n_layers * n_heads, n_q, n_k), cells)
    layers, heads = np.divmod(np.arange(n_layers * n_heads), n_heads)
    labels = np.stack([layers, heads], axis=1)
    chosen = None if selected is None else selected[0] * n_heads + selected[1]
    return tiled_heatmap(
        pooled.astype(np.float32), labels, n_heads, [f"layer {i}" for i in range(n_layers)],
        [f"head {j}" for j in range(n_heads)], "layer %{customdata[0]}, head %{customdata[1]}",
        title=title, tile_px=60 if n_heads <= 12 else 40, selected=chosen,
        pooled_from=max(n_q, n_k) if max(n_q, n_k) > cells else None)


def layer_grid_figure(per_layer: np.ndarray, title: str = "", n_cols: int = 6, cells: int = 48,
                      selected: int | None = None) -> go.Figure:
    """One thumbnail per layer of a [layers, q, k] aggregate (e.g. the mean over heads), `n_cols` per row."""
    m = np.asarray(per_layer)
    n_layers, n_q, n_k = m.shape
    n_cols = max(1, min(n_cols, n_layers))
    pooled = block_max_pool(m, cells).astype(np.float32)
    labels = np.stack([np.arange(n_layers), np.zeros(n_layers, dtype=int)], axis=1)
    n_rows = math.ceil(n_layers / n_cols)
    first = [f"layers {r * n_cols}–{min(n_layers, (r + 1) * n_cols) - 1}" for r in range(n_rows)]
    return tiled_heatmap(
        pooled, labels, n_cols, first, [f"+{c}" for c in range(n_cols)], "layer %{customdata[0]}",
        title=title, tile_px=130, selected=selected, pooled_from=max(n_q, n_k) if max(n_q, n_k) > cells else None)


def statistics_heatmap(stats: pd.DataFrame, statistic: str) -> go.Figure:
    """A per-head statistic of `core.run.attention.head_statistics` as a layers × heads heatmap, values on hover."""
    table = stats.pivot(index="layer", columns="head", values=statistic)
    values = table.to_numpy(dtype=np.float64)
    n_layers, n_heads = values.shape
    pattern = stats.pivot(index="layer", columns="head", values="pattern").to_numpy(dtype=object)
    unit = " bits" if statistic == "entropy_bits" else (" tokens" if statistic == "mean_distance_tokens" else "")
    show_text = n_layers * n_heads <= 400
    fig = go.Figure(go.Heatmap(
        z=values, x=list(table.columns), y=list(table.index), customdata=pattern,
        colorscale=ATTENTION_COLORSCALE, hoverongaps=False, colorbar={"title": {"text": statistic}, "thickness": 14},
        text=np.vectorize(lambda v: "" if np.isnan(v) else f"{v:.2f}")(values) if show_text else None,
        texttemplate="%{text}" if show_text else None, textfont={"size": 9},
        hovertemplate=("layer %{y}, head %{x}<br>" + statistic + " %{z:.3f}" + unit
                       + "<br>pattern: %{customdata}<extra></extra>")))
    fig.update_layout(
        title=f"{statistic}: {STATISTIC_DESCRIPTIONS.get(statistic, '')}",
        height=int(max(320, 24 * n_layers + 140)), margin={"l": 10, "r": 10, "t": 60, "b": 10},
        xaxis={"title": "head", "dtick": 1},
        yaxis={"title": "layer", "dtick": 1, "autorange": "reversed"},
        plot_bgcolor=MASKED_COLOR,
    )
    return fig


def token_focus_figure(values: np.ndarray, tokens: list[str], focus_index: int | None, title: str = "",
                       offset: int = 0, n_cols: int = 3) -> go.Figure:
    """Small-multiple bar charts, one per layer, of a [layers, tokens] array (a token's attention row or
    column in every layer). The focus token's bar is drawn in red."""
    v = np.asarray(values, dtype=np.float64)
    n_layers, n_tokens = v.shape
    n_cols = max(1, min(n_cols, n_layers))
    n_rows = math.ceil(n_layers / n_cols)
    fig = make_subplots(rows=n_rows, cols=n_cols, subplot_titles=[f"layer {i}" for i in range(n_layers)],
                        shared_xaxes=True, shared_yaxes=True, vertical_spacing=min(0.3 / n_rows, 0.08),
                        horizontal_spacing=0.03)
    positions = np.arange(n_tokens) + offset
    labels = _safe(indexed_labels(tokens, offset))
    colors = [FOCUS_COLOR if focus_index is not None and p == focus_index else BAR_COLOR for p in positions]
    traces = []
    for layer in range(n_layers):
        suffix = "" if layer == 0 else str(layer + 1)  # make_subplots names axes x, x2, x3… in reading order
        traces.append(go.Bar(
            x=positions, y=v[layer], marker_color=colors, customdata=labels, showlegend=False,
            xaxis=f"x{suffix}", yaxis=f"y{suffix}",
            hovertemplate=f"layer {layer}<br>%{{customdata}}<br>weight %{{y:.4f}}<extra></extra>"))
    fig.add_traces(traces)  # one call: adding 30 traces one by one with row/col is several times slower
    top = float(np.nanmax(v)) if v.size and np.nanmax(v) > 0 else 1.0
    fig.update_yaxes(range=[0, top * 1.05], tickfont={"size": 9})
    show_labels = n_tokens <= 40
    fig.update_xaxes(tickmode="array", tickvals=list(positions) if show_labels else None,
                     ticktext=_safe(tokens) if show_labels else None, tickangle=-60,
                     tickfont={"size": _tick_font_size(n_tokens * n_cols)})
    fig.update_annotations(font={"size": 11})
    fig.update_layout(title=title, height=int(max(320, n_rows * 150 + 120)), bargap=0.15,
                      margin={"l": 10, "r": 10, "t": 80 if title else 40, "b": 10})
    return fig


def side_by_side_figure(left: np.ndarray, left_tokens: list[str], left_title: str,
                        right: np.ndarray, right_tokens: list[str], right_title: str,
                        right_masked: np.ndarray | None = None, left_masked: np.ndarray | None = None) -> go.Figure:
    """Two [tokens, tokens] attention maps next to each other on one colour scale (e.g. encoder vs decoder)."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=[left_title, right_title], horizontal_spacing=0.12)
    top = float(max(np.nanmax(left), np.nanmax(right), 1e-9))
    for col, (matrix, tokens, masked) in enumerate(((left, left_tokens, left_masked),
                                                    (right, right_tokens, right_masked)), start=1):
        z = np.array(matrix, dtype=np.float64)
        if masked is not None:
            z = np.where(masked, np.nan, z)
        labels = _safe(indexed_labels(tokens))
        n = len(tokens)
        custom = np.empty((n, n, 2), dtype=object)
        custom[:, :, 0] = np.array(labels, dtype=object)[:, None]
        custom[:, :, 1] = np.array(labels, dtype=object)[None, :]
        fig.add_trace(go.Heatmap(
            z=z, x=np.arange(n), y=np.arange(n), customdata=custom, zmin=0, zmax=top,
            colorscale=ATTENTION_COLORSCALE, hoverongaps=False, showscale=col == 2,
            colorbar={"title": {"text": "weight"}, "thickness": 14},
            hovertemplate="query %{customdata[0]}<br>key %{customdata[1]}<br>weight %{z:.4f}<extra></extra>"),
            row=1, col=col)
        font = {"size": _tick_font_size(2 * n)}
        fig.update_xaxes(tickmode="array", tickvals=list(range(n)), ticktext=_safe(tokens), tickangle=-60,
                         tickfont=font, showgrid=False, row=1, col=col)
        fig.update_yaxes(tickmode="array", tickvals=list(range(n)), ticktext=_safe(tokens), autorange="reversed",
                         tickfont=font, showgrid=False, row=1, col=col)
    longest = max(len(left_tokens), len(right_tokens))
    fig.update_layout(height=int(min(760, max(380, 22 * longest + 200))), plot_bgcolor=MASKED_COLOR,
                      margin={"l": 10, "r": 10, "t": 60, "b": 10})
    return fig
