"""Input validators shared by ``core`` modules: each returns the cleaned value or raises a user-facing message.

``error`` lets a module raise its own ``ValueError`` subclass (e.g. ``QuantizationInputError``) so its callers keep
catching what they caught before.
"""
from __future__ import annotations

import functools
import math
import numbers


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _of(unit: str) -> str:
    return f" {unit}" if unit else ""


def check_int(value, name: str, low: int, high: int, *, error: type[Exception] = ValueError, unit: str = "") -> int:
    """``value`` as an int in ``[low, high]``; whole floats (3.0) and numpy integers are accepted, bools are not.

    >>> check_int(3.0, "Batch size", 1, 8)
    3
    """
    if not _is_number(value) or value != int(value) or not low <= value <= high:
        raise error(f"{name} must be a whole number from {low:,} to {high:,}{_of(unit)}, got {value!r}.")
    return int(value)


def check_positive_int(value, name: str, *, error: type[Exception] = ValueError) -> int:
    """``value`` as an int ≥ 1 (no upper bound)."""
    if not _is_number(value) or value != int(value) or value < 1:
        raise error(f"{name} must be a whole number ≥ 1, got {value!r}.")
    return int(value)


def check_nonnegative(value, name: str, *, error: type[Exception] = ValueError) -> float:
    """``value`` as a finite float ≥ 0."""
    if not _is_number(value) or value < 0:
        raise error(f"{name} must be a non-negative number, got {value!r}.")
    return float(value)


def check_number(value, name: str, low: float, high: float, *, error: type[Exception] = ValueError,
                 unit: str = "") -> float:
    """``value`` as a finite float in ``[low, high]``."""
    if not _is_number(value) or not low <= value <= high:
        raise error(f"{name} must be a number from {low:g} to {high:g}{_of(unit)}, got {value!r}.")
    return float(value)


def check_positive(value, name: str, *, error: type[Exception] = ValueError, unit: str = "") -> float:
    """``value`` as a finite float > 0."""
    if not _is_number(value) or value <= 0:
        raise error(f"{name} must be a positive number{' of ' + unit if unit else ''}, got {value!r}.")
    return float(value)


def check_choice(value, name: str, choices, *, error: type[Exception] = ValueError) -> str:
    """``value`` stripped and lower-cased, which must be one of ``choices``."""
    key = str(value).strip().lower() if value is not None else ""
    if key not in choices:
        raise error(f"{name} must be one of {', '.join(choices)}, got {value!r}.")
    return key


def renamed_keywords(**old_to_new: str):
    """Decorator: keep accepting a keyword argument's old name (``@renamed_keywords(weight_bytes="weight_bytes_per_param")``)
    after renaming it to say its unit. Passing both names is a TypeError."""
    def wrap(func):
        @functools.wraps(func)
        def call(*args, **kwargs):
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(f"{func.__name__}() got both {old!r} and its new name {new!r}.")
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)
        return call
    return wrap
