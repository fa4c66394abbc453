"""A whole-number field whose entry always reaches the page.

Streamlit's ``number_input`` with ``min_value`` / ``max_value`` turns an out-of-range entry red in the browser and
keeps sending the previous value, so the action beside it ran with a number the user had not typed (issue 32: Layers
to remove = 99999 ran with 4). This field has no bounds in the browser; the page checks them and, while the entry is
out of range, says so and disables its action.
"""
from __future__ import annotations

import streamlit as st


def whole_number_input(container, label: str, *, lo: int, hi: int, value: int, key: str, step: int = 1,
                       help: str | None = None) -> tuple[int, str | None]:
    """``(entered value, problem)``: ``problem`` is the sentence to show (and the reason to disable the action)
    when the entry is outside ``lo``–``hi``, else None. The help text ends with the range."""
    where = container if container is not None else st
    shown_help = f"{help} Allowed: {lo:,} to {hi:,}." if help else f"Allowed: {lo:,} to {hi:,}."
    entered = where.number_input(label, value=int(value), step=int(step), key=key, help=shown_help)
    entered = int(entered)
    if entered < lo:
        return entered, f"{label} must be at least {lo:,} (at most {hi:,}); {entered:,} was entered."
    if entered > hi:
        return entered, f"{label} must be at most {hi:,} (at least {lo:,}); {entered:,} was entered."
    return entered, None
