"""Parsers for inputs that live in a page's URL (st.query_params): text from a link → a checked value.

A shared link can carry anything, so every parser rejects what the page could not use with a message that says what
was expected; the pages fall back to the default and show that message.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Iterable


class UrlValueError(ValueError):
    """A URL value the page cannot use; the message says what was expected."""


def choice_parser(options: Iterable) -> Callable[[str], str]:
    """Accept exactly one of ``options``."""
    options = list(options)

    def parse(text):
        if text not in options:
            raise UrlValueError(f"expected one of: {', '.join(map(str, options))}")
        return text
    return parse


def number_parser(low: float, high: float, integer: bool = False) -> Callable[[str], float]:
    """Accept a finite number in [low, high] (a whole number when ``integer``)."""
    def parse(text):
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise UrlValueError("expected a number") from None
        if not math.isfinite(value) or not low <= value <= high:
            raise UrlValueError(f"expected a number between {low:g} and {high:g}")
        if integer:
            if value != int(value):
                raise UrlValueError("expected a whole number")
            return int(value)
        return value
    return parse


def parse_bool(text) -> bool:
    """'true'/'false' (also 1/0, yes/no, on/off)."""
    lowered = str(text).lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise UrlValueError("expected true or false")


def slug(text: str | None, fallback: str = "model") -> str:
    """A short lowercase name safe in URLs and download file names: 'HuggingFaceTB/SmolLM2' → 'huggingfacetb-smollm2'."""
    return re.sub(r"[^A-Za-z0-9]+", "-", text or "").strip("-").lower()[:40] or fallback
