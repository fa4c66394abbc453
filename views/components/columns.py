"""Column formats shared by the pages' tables."""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import streamlit as st


def gb_columns(columns: Iterable[str], formats: Mapping[str, str] | None = None,
               helps: Mapping[str, str] | None = None) -> dict:
    """``column_config`` for every column whose name contains "(GB)": two decimals and the unit ("%.2f GB"), or the
    format given for that column in ``formats``; ``helps`` adds a tooltip per column."""
    formats, helps = formats or {}, helps or {}
    return {c: st.column_config.NumberColumn(c, format=formats.get(c, "%.2f GB"), help=helps.get(c))
            for c in columns if "(GB)" in c}


# Streamlit sizes a table's column to its cells, not its header: a short number under a long header read
# "optimizer state h…" at 1,400 px (issue 32). Widths in px from characters: Streamlit's table font is 14 px Source
# Sans, about 7.5 px per character in Chromium; a header also holds its sort and menu icons.
CHAR_PX, HEADER_PAD_PX, CELL_PAD_PX = 7.5, 40, 24
MAX_COLUMN_PX = 420


def _label(name, spec) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, Mapping) and spec.get("label"):
        return str(spec["label"])
    return str(name)


def fitted_columns(frame, column_config: Mapping | None = None, max_px: int | None = MAX_COLUMN_PX) -> dict:
    """``column_config`` for ``st.dataframe(frame, …)`` with a width on every column that has none: wide enough for
    its whole header and for its cells up to ``max_px`` (a grid cuts longer text at the column's edge: long answers
    belong in a wrapping ``st.table``; ``max_px=None`` sizes the column to its longest cell, for a many-row table of
    sentences that scrolls sideways instead). Existing settings (format, help, label) are kept."""
    config = dict(column_config or {})
    for name in frame.columns:
        spec = config.get(name)
        if isinstance(spec, Mapping) and spec.get("width") is not None:
            continue
        values = frame[name].head(200).astype(str)
        cells = int(values.str.len().max()) if len(values) else 0
        header = len(_label(name, spec))
        header_px = header * CHAR_PX + HEADER_PAD_PX  # always whole, even past max_px
        cells_px = cells * CHAR_PX + CELL_PAD_PX
        width = math.ceil(max(header_px, cells_px if max_px is None else min(cells_px, max_px)))
        if isinstance(spec, str):
            config[name] = {"label": spec, "width": width}
        elif isinstance(spec, Mapping):
            config[name] = {**spec, "width": width}
        else:
            config[name] = {"width": width}
    return config
