"""When the requests of an open-loop load test are sent: a Poisson process or a gamma process of a given
burstiness at a given request rate, as vLLM's ``vllm bench serve --request-rate R --burstiness B``.

vLLM (vllm/benchmarks/serve.py ``get_request``): the gaps between requests are independent draws from a gamma
distribution with shape B and scale 1/(R·B), so their mean is 1/R at any burstiness; B = 1 is the exponential
distribution (a Poisson process), B < 1 burstier, B > 1 more regular, B = ∞ evenly spaced. The cumulative send
times are then rescaled so that the last request goes out at n/R exactly, which keeps the offered rate the same
across seeds. R = ∞ sends everything at once.
"""
from __future__ import annotations

import math

import numpy as np

from core.common.checks import check_int

MAX_REQUEST_RATE = 1e6  # requests/s; above this, use inf (all at once)


class ArrivalInputError(ValueError):
    """Bad arrival parameters; the message is user-facing."""


def check_rate(rate: float, name: str = "Request rate") -> float:
    """A request rate in requests/s: > 0 and finite up to MAX_REQUEST_RATE, or inf."""
    try:
        value = float(rate)
    except (TypeError, ValueError):
        raise ArrivalInputError(f"{name} must be a number of requests per second, got {rate!r}.") from None
    if math.isnan(value) or value <= 0 or (math.isfinite(value) and value > MAX_REQUEST_RATE):
        raise ArrivalInputError(f"{name} must be above 0 and at most {MAX_REQUEST_RATE:,.0f} requests/s "
                                f"(or infinite: all at once), got {rate!r}.")
    return value


def check_burstiness(burstiness: float) -> float:
    try:
        value = float(burstiness)
    except (TypeError, ValueError):
        value = float("nan")
    if math.isnan(value) or value <= 0:
        raise ArrivalInputError(f"Burstiness must be a number above 0 (1 = Poisson), got {burstiness!r}.")
    return value


def arrival_times_s(n: int, request_rate: float, burstiness: float = 1.0, seed: int = 0) -> np.ndarray:
    """Send times in seconds after the start for ``n`` requests (the first one after one gap, as vLLM)."""
    n = check_int(n, "Requests", 1, 10_000_000, error=ArrivalInputError)
    rate, shape = check_rate(request_rate), check_burstiness(burstiness)
    if math.isinf(rate):
        return np.zeros(n)
    if math.isinf(shape):
        gaps = np.full(n, 1.0 / rate)
    else:
        gaps = np.random.default_rng(seed).gamma(shape=shape, scale=1.0 / (rate * shape), size=n)
    times = np.cumsum(gaps)
    if times[-1] > 0:
        times *= (n / rate) / times[-1]
    return times


def parse_rates(text: str) -> list[float]:
    """Request rates from text such as "0.5, 1, 2, 4" (requests/s; "inf" sends all at once), sorted and distinct."""
    parts = [p for p in str(text).replace(";", ",").replace(" ", ",").split(",") if p.strip()]
    if not parts:
        raise ArrivalInputError("Enter at least one request rate, e.g. 0.5, 1, 2, 4 (requests/s).")
    rates = set()
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ArrivalInputError(f"'{part[:20]}' is not a request rate: enter numbers of requests/s, "
                                    "e.g. 0.5, 1, 2, 4.") from None
        rates.add(check_rate(value))
    if len(rates) > 32:
        raise ArrivalInputError(f"At most 32 request rates per sweep, got {len(rates)}.")
    return sorted(rates)
