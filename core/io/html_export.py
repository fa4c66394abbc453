"""Standalone HTML for slides: Plotly figures with the plotly.js library embedded, so the file opens offline.

Plotly's ``Figure.to_html(include_plotlyjs=True, full_html=...)``
(https://plotly.com/python-api-reference/generated/plotly.io.to_html.html) writes the ~4.5 MB library into the page
once; further figures reuse it.
"""
from __future__ import annotations

import html

import plotly.graph_objects as go


def standalone_html(figures: list[go.Figure], title: str, body_html: str = "") -> str:
    """One self-contained HTML page: a heading, optional extra HTML (already escaped), then each figure."""
    if not figures and not body_html:
        raise ValueError("Nothing to export: give at least one figure or some HTML.")
    parts = []
    for index, figure in enumerate(figures):
        parts.append(figure.to_html(include_plotlyjs=index == 0, full_html=False,
                                    config={"displaylogo": False, "responsive": True}))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:24px;}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>{body_html}{''.join(parts)}</body></html>"
    )
