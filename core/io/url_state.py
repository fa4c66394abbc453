"""A page's inputs in its URL (st.query_params): one codec for every page (``Field``, ``UrlCodec``) and the parsers
its fields use (text from a link → a checked value).

A shared link can carry anything, so every parser rejects what the page could not use with a message that says what
was expected; the pages fall back to the default and show that message. The Memory, Compute and Serving planners
describe their inputs as ``Field`` s (``core.io.plan_io``, ``compute_url``, ``serving_url``) and round-trip them
through ``UrlCodec``: one parse loop, one write loop, one wording of a problem.
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.common.user_text import code, escape_markdown


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


@dataclass(frozen=True)
class Field:
    """One input: URL key ↔ session-state key, default value, parse (URL text → value, raising ValueError with what
    was expected), write (value → URL text; None keeps an invalid entry, e.g. half-typed text, out of the URL)."""

    url_key: str
    state_key: str
    default: Any
    parse: Callable[[str], Any]
    write: Callable[[Any], str | None] = str


class UrlCodec:
    """A page's fields, read from and written to its URL query."""

    def __init__(self, fields: Iterable[Field]):
        self.fields: dict[str, Field] = {f.url_key: f for f in fields}

    def __contains__(self, url_key: str) -> bool:
        return url_key in self.fields

    def __iter__(self):
        return iter(self.fields)

    def defaults(self) -> dict[str, Any]:
        """Session-state key → default value."""
        return {f.state_key: f.default for f in self.fields.values()}

    def parse(self, query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
        """Query → (session-state key → value for the keys present, problems the page shows); an invalid value falls
        back to its field's default and says so; unknown keys are ignored."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for url_key, text in query.items():
            f = self.fields.get(url_key)
            if f is None:
                continue
            try:
                values[f.state_key] = f.parse(text)
            except (ValueError, TypeError) as exc:
                values[f.state_key] = f.default
                problems.append(f"{code(f'{url_key}={text}', 60)}: {escape_markdown(exc)} — using the default "
                                f"({escape_markdown(f.write(f.default) or 'empty')}).")
        return values, problems

    def write(self, values: Mapping[str, Any], skip: Iterable[str] = ()) -> dict[str, str]:
        """Session-state values → URL query: every field whose state key is in ``values``, but those in ``skip``
        (URL keys) and those its ``write`` leaves out."""
        skip = set(skip)
        out: dict[str, str] = {}
        for url_key, f in self.fields.items():
            if url_key in skip or f.state_key not in values:
                continue
            text = f.write(values[f.state_key])
            if text is not None:
                out[url_key] = text
        return out
