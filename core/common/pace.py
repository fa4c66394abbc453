"""How long a long action will take, said before it starts: the pace last measured in this process, per kind of
work unit (a pruned variant measured, an evaluation completion, a distillation step), else a stated prior.

Issue 32: every long action on Optimize and Evaluate shows an estimate from the measured pace before it starts. A
finished (or stopped) run records its seconds per unit with ``record``; ``estimate`` scales the latest record to
the units planned and says where the number comes from. Thread-safe: every session of the server shares the pace,
as it shares the machine. Plain Python (no Streamlit).
"""
from __future__ import annotations

import threading
from collections.abc import Mapping

from core.common.units import format_duration_s

_LOCK = threading.Lock()
_PACES: dict[str, dict] = {}


def remember(kind: str, pace: Mapping) -> None:
    """Keep ``pace`` (a record of plain values: seconds per unit and whatever the caller needs to scale it) as the
    latest of ``kind``. The one store of every measured pace in the process (``record`` and the fine-tune's
    ``core.finetune.pace`` write here)."""
    with _LOCK:
        _PACES[kind] = dict(pace)


def recall(kind: str) -> dict | None:
    """A copy of the latest pace record of ``kind``, or None."""
    with _LOCK:
        pace = _PACES.get(kind)
    return dict(pace) if pace is not None else None


def record(kind: str, seconds: float, units: int) -> float | None:
    """Remember ``seconds`` over ``units`` of ``kind`` (the latest run wins); returns the seconds per unit, or None
    when nothing was done."""
    if units <= 0 or not seconds > 0:
        return None
    per_unit = float(seconds) / int(units)
    remember(kind, {"s_per_unit": per_unit})
    return per_unit


def measured(kind: str) -> float | None:
    """Seconds per unit of ``kind`` last measured in this process, or None."""
    pace = recall(kind)
    return pace.get("s_per_unit") if pace else None


def forget() -> None:
    """Drop every recorded pace (tests)."""
    with _LOCK:
        _PACES.clear()


def estimate(kind: str, units: int, unit_name: str, prior_s: float, prior_source: str) -> dict:
    """``seconds``, ``measured`` (bool) and ``text`` for ``units`` units: from the pace measured here when there is
    one, else from ``prior_s`` per unit, a figure the caller names in ``prior_source`` (where and when it was
    measured)."""
    units = max(0, int(units))
    pace = measured(kind)
    per_unit, is_measured = (pace, True) if pace is not None else (float(prior_s), False)
    seconds = per_unit * units
    plural = unit_name if units == 1 else f"{unit_name}s"
    basis = (f"at {format_duration_s(per_unit)} per {unit_name}, the pace last measured here" if is_measured else
             f"at about {format_duration_s(per_unit)} per {unit_name} ({prior_source}; nothing measured here yet)")
    return {"seconds": seconds, "measured": is_measured,
            "text": f"About {format_duration_s(seconds)} for {units:,} {plural}, {basis}."}
