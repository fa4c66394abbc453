"""Typed measurement results (frozen dataclasses) and the one map of display labels.

``InferenceMeasurement`` / ``TrainingMeasurement`` hold one measurement; ``to_dict()`` gives the dict the public
functions return, with exactly the keys they always had (notebooks, JSON exports and the page read those).
"""
from __future__ import annotations

def error_pct(predicted: float, measured: float) -> float | None:
    """(predicted − measured) / measured in %: positive = the planner over-estimates."""
    return None if not measured else 100.0 * (predicted - measured) / measured
