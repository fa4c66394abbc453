"""Column formats shared by the pages' tables."""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import streamlit as st


def gb_columns(columns: Iterable[str], formats: Mapping[str, str] | None = None,
               helps: Mapping[str, str] | None = None) -> dict:
    """``column_config`` for every column whose name contains "(GB)": two decimals and the unit ("%.2f GB"), or the
    format given for that column in ``formats``; ``helps`` adds a tooltip per column."""
    formats, helps = formats or {}, helps or {}
    return {c: st.column_config.NumberColumn(c, format=formats.get(c, "%.2f GB"), help=helps.get(c))
            for c in columns if "(GB)" in c}
