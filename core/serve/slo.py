"""Service-level objectives, goodput and the saturation point of a served model.

Goodput (DistServe, Zhong et al. 2024, arXiv:2401.09670 §2; vLLM ``vllm bench serve --goodput``): requests per
second that meet every SLO. A request meets them when its TTFT, its TPOT and its end-to-end latency are each at or
under their limits (a limit that is not set is not checked); as in vLLM's ``calculate_metrics``, a request with one
output token has TPOT 0. Failed requests never count.

The saturation point is the highest offered request rate at which the p90 TTFT and the p90 TPOT stay within their
SLOs: beyond it the queue grows and latency runs away.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

from core.common.checks import check_nonnegative


class SLOInputError(ValueError):
    """Bad SLO parameters; the message is user-facing."""


@dataclass(frozen=True)
class SLO:
    """Latency limits in seconds (None: not checked)."""

    ttft_s: float | None = None
    tpot_s: float | None = None
    e2el_s: float | None = None

    def __post_init__(self) -> None:
        for name, label in (("ttft_s", "TTFT SLO"), ("tpot_s", "TPOT SLO"), ("e2el_s", "End-to-end SLO")):
            value = getattr(self, name)
            if value is not None and check_nonnegative(value, label, error=SLOInputError) <= 0:
                raise SLOInputError(f"{label} must be above 0 seconds, got {value!r}.")

    @property
    def empty(self) -> bool:
        return self.ttft_s is None and self.tpot_s is None and self.e2el_s is None

    def met_by(self, ttft_s: float | None, tpot_s: float | None, e2el_s: float | None) -> bool:
        """Whether one successful request meets every set limit (TPOT None — one output token — counts as 0)."""
        checks = ((self.ttft_s, ttft_s), (self.tpot_s, 0.0 if tpot_s is None else tpot_s), (self.e2el_s, e2el_s))
        return all(limit is None or (value is not None and value <= limit) for limit, value in checks)

    def to_dict(self) -> dict:
        return asdict(self)


def good_requests(records: Iterable, slo: SLO) -> int:
    """Successful requests (``ok``, ``ttft_s``, ``tpot_s``, ``e2el_s`` attributes) that meet every SLO."""
    return sum(1 for r in records if r.ok and slo.met_by(r.ttft_s, r.tpot_s, r.e2el_s))


def goodput_per_s(records: list, slo: SLO, duration_s: float) -> float:
    """Requests per second meeting every SLO; nan when no SLO is set (goodput is then not defined)."""
    if slo.empty:
        return float("nan")
    return good_requests(records, slo) / duration_s if duration_s > 0 else 0.0


def within_slo(row: dict, slo: SLO, percentile: int = 90) -> bool:
    """Whether a level's p90 TTFT and p90 TPOT (row keys ``ttft_p90_s``, ``tpot_p90_s``) are within the SLO and none
    of its requests failed: the saturation search's test of one rate."""
    if row.get("errors", 0):
        return False
    for limit, key in ((slo.ttft_s, f"ttft_p{percentile}_s"), (slo.tpot_s, f"tpot_p{percentile}_s"),
                       (slo.e2el_s, f"e2e_p{percentile}_s")):
        value = row.get(key)
        if key.startswith("tpot") and value is not None and math.isnan(value) and row.get("requests", 0):
            value = 0.0  # one output token per request: no TPOT, counted as 0 (as goodput does)
        if limit is not None and (value is None or math.isnan(value) or value > limit):
            return False
    return True
