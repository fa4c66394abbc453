"""Measure's own copies of three small shared helpers: an integer check, device resolution and the GB unit.

These are the ONLY such copies in ``core.measure``: every other module of the package imports them from here. They
are kept here until the shared leaves ``core.checks`` (input checks), ``core.device`` (device resolution) and
``core.units`` (GB, bytes per dtype) land; then this module re-exports those and nothing else changes.
"""
from __future__ import annotations

import math

from core.hardware import GB  # noqa: F401 - re-exported: the package's one GB

__all__ = ["GB", "check_int", "resolve_device"]


def check_int(value, name: str, low: int, high: int) -> int:
    """``value`` as an int when it is a whole number in [low, high]; ValueError with a user-facing message else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value != int(value) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}.")
    return int(value)


def resolve_device(device: str = "auto"):
    """A ``torch.device`` for "auto" (CUDA when available, else CPU), "cpu" or "cuda[:i]"; ValueError for a device
    this machine cannot use."""
    import torch

    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"Unsupported device {device!r}: use 'auto', 'cuda' or 'cpu'.") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("CUDA was requested but this machine has no usable CUDA GPU.")
    if dev.type not in ("cuda", "cpu"):
        raise ValueError(f"Unsupported device {device!r}: use 'auto', 'cuda' or 'cpu'.")
    return dev
