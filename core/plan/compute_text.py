"""The Compute planner's numbers as text: parsing what a person types ("70B", "1.4T", "5.76e23") with clear
messages, the plausible range of each input, and formatting what the page shows (counts, dollars, durations)."""
from __future__ import annotations

import math
import re

from core.common.units import format_count, format_duration_s  # noqa: F401  (re-exported: core.plan.compute_text.*)
from core.plan.compute import PFLOP_S_DAY, ComputeInputError

# Plausibility limits for user input: beyond these the numbers are typos, not plans.
MIN_PARAMS, MAX_PARAMS = 1e3, 1e15
MIN_TOKENS, MAX_TOKENS = 1e3, 1e17
MIN_FLOPS, MAX_FLOPS = 1e9, 1e32
MIN_PFLOP_S_DAYS, MAX_PFLOP_S_DAYS = MIN_FLOPS / PFLOP_S_DAY, MAX_FLOPS / PFLOP_S_DAY


# --------------------------------------------------------------------------------------------
# User-facing input: "70B", "1.4T", "5.76e23", "3,640" → numbers, with clear messages
# --------------------------------------------------------------------------------------------

_SUFFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_NUMBER_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([KkMmBbGgTt]?)$")


def parse_quantity(text, what: str = "Value") -> float:
    """Parse a count typed by a person: '70B', '1.4T', '700b', '5.76e23', '175,000,000,000', '3 640'.

    Suffixes: K = 1e3, M = 1e6, B/G = 1e9, T = 1e12. Raises ComputeInputError with a message for the page.
    """
    if text is None or not str(text).strip():
        raise ComputeInputError(f"{what} is empty: enter a number such as 70B, 1.4T or 5.76e23.")
    cleaned = re.sub(r"[\s,_']", "", str(text))
    match = _NUMBER_RE.match(cleaned)
    if not match:
        raise ComputeInputError(
            f"{what}: {str(text)!r} is not a number. Use digits with an optional K/M/B/T suffix "
            "(70B, 1.4T) or scientific notation (5.76e23).")
    try:
        value = float(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    except OverflowError:  # pragma: no cover - float() returns inf rather than raising
        value = math.inf
    if not math.isfinite(value):
        raise ComputeInputError(f"{what}: {str(text)!r} is too large to be a real number of anything.")
    return value


def check_range(value: float, low: float, high: float, what: str, unit: str) -> float:
    """value if low ≤ value ≤ high, else ComputeInputError naming the limits and the unit."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ComputeInputError(f"{what} must be a number of {unit}.") from None
    if not math.isfinite(v):
        raise ComputeInputError(f"{what} must be a finite number of {unit}.")
    if v <= 0:
        raise ComputeInputError(f"{what} must be positive, got {format_number(v)} {unit}.")
    if v < low or v > high:
        raise ComputeInputError(
            f"{what} of {format_number(v)} {unit} is outside the plausible range "
            f"{format_number(low)} – {format_number(high)} {unit}.")
    return v


def parse_in_range(text, low: float, high: float, what: str, unit: str) -> float:
    """parse_quantity then check_range: one call for a text field."""
    return check_range(parse_quantity(text, what), low, high, what, unit)


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def format_number(value: float, digits: int = 3) -> str:
    """Readable number: thousands separators up to 1e9, scientific beyond, small numbers with `digits` figures."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e9 or abs(v) < 1e-3:
        return f"{v:.{digits}g}".replace("e+", "e")
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def format_input_count(value: float) -> str:
    """A count as a person would type it back into a field: 7e10 → '70B', 123456789 → '123456789'."""
    v = float(value)
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            short = f"{v / scale:.6g}"
            if "e" not in short and math.isclose(float(short) * scale, v, rel_tol=1e-12):
                return short + suffix
    if v == int(v):
        return str(int(v))
    return f"{v:.6g}"


def format_dollars(value: float) -> str:
    """$ amounts: '$812', '$147,456', '$2.04M', '$1.3B' (2-3 significant figures past a million)."""
    v = float(value)
    if not math.isfinite(v):
        return f"${v}"
    if abs(v) >= 1e12:
        return f"${v:.3g}".replace("e+", "e")
    if abs(v) >= 1e9:
        return f"${v / 1e9:.3g}B"
    if abs(v) >= 1e6:
        return f"${v / 1e6:.3g}M"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    return f"${v:.2f}"


def format_duration_days(days: float) -> str:
    """Wall-clock time in the unit a person would say: '5.2 hours', '30.0 days', '2.3 years'."""
    d = float(days)
    if not math.isfinite(d):
        return str(d)
    if d < 1:
        hours = d * 24
        return f"{hours:.1f} hours" if hours >= 1 else f"{hours * 60:.1f} minutes"
    if d < 365:
        return f"{d:,.1f} days"
    return f"{d / 365.25:,.1f} years"
