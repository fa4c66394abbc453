"""Saturation search: the highest request rate a served model sustains within its latency SLOs.

Each probe is one open-loop level (core.serve.load_test.run_rate_sweep: Poisson or gamma arrivals at the rate) judged by
core.serve.slo.within_slo — p90 TTFT and p90 TPOT (and p90 end-to-end, when set) within their limits and no failed
request. The search grows the rate geometrically from ``start_rate`` until a probe fails (or ``max_rate`` passes),
stepping down instead when the first probe already fails, then bisects (geometric midpoints) between the last
passing and the first failing rate for ``refine_steps`` more probes. This is the procedure behind "maximum request
rate under SLO" in DistServe (Zhong et al. 2024, arXiv:2401.09670 §2, goodput at a per-GPU rate) and vLLM's
``vllm bench sweep``; every probe draws its own prompts, so none is served from another's prefix cache.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

from core.serve import load_test as L
from core.serve.slo import SLO, within_slo

MIN_RATE_FRACTION = 1 / 16  # stepping down stops below start_rate × this
MAX_PROBES = 24


@dataclass(frozen=True)
class SaturationResult:
    """The search's answer: ``saturation_rate`` (requests/s; None: even the lowest probe missed the SLOs) and the
    first rate that missed them (None: none did up to max_rate), with every probe's verdict in order."""

    saturation_rate: float | None
    first_failing_rate: float | None
    probe_rates: tuple[float, ...]
    probe_ok: tuple[bool, ...]
    slo: SLO
    stopped: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"saturation_rate": self.saturation_rate, "first_failing_rate": self.first_failing_rate,
                "probes": [{"request_rate": r, "within_slo": ok} for r, ok in zip(self.probe_rates, self.probe_ok)],
                "slo": self.slo.to_dict(), "stopped": self.stopped, "notes": list(self.notes)}


def check_search(slo: SLO, start_rate: float, max_rate: float, growth: float, refine_steps: int) -> None:
    if slo.ttft_s is None and slo.tpot_s is None and slo.e2el_s is None:
        raise L.LoadTestInputError("Set at least one SLO (TTFT, TPOT or end-to-end) to search for saturation.")
    start, top = L.check_rates([start_rate])[0], L.check_rates([max_rate])[0]
    if math.isinf(start) or math.isinf(top) or top < start:
        raise L.LoadTestInputError("The search needs a finite start rate at or below a finite highest rate.")
    if not isinstance(growth, (int, float)) or not 1.05 <= growth <= 16:
        raise L.LoadTestInputError(f"Growth factor must be from 1.05 to 16, got {growth!r}.")
    if isinstance(refine_steps, bool) or not isinstance(refine_steps, int) or not 0 <= refine_steps <= 10:
        raise L.LoadTestInputError(f"Refinement probes must be a whole number from 0 to 10, got {refine_steps!r}.")


def find_saturation(endpoint, slo: SLO, requests_per_rate: int, prompt_tokens: int, output_tokens: int, *,
                    start_rate: float = 1.0, max_rate: float = 64.0, growth: float = 2.0, refine_steps: int = 2,
                    stop: threading.Event | None = None, on_probe=None, **options) -> tuple[SaturationResult, L.LoadTestRun]:
    """Search as the module docstring says; ``options`` go to run_rate_sweep (burstiness, max_concurrency,
    range_ratio, prefix_tokens, seed, on_record, on_level, capabilities, tokenizer…). ``on_probe(rate, ok)`` reports
    each verdict. Returns the answer and every probe's rows and records as one LoadTestRun."""
    check_search(slo, start_rate, max_rate, growth, refine_steps)
    merged: L.LoadTestRun | None = None
    rates: list[float] = []
    verdicts: list[bool] = []

    def probe(rate: float) -> bool | None:
        nonlocal merged
        run = L.run_rate_sweep(endpoint, [rate], requests_per_rate, prompt_tokens, output_tokens, slo=slo,
                               stop=stop, first_level=len(rates), **options)
        if merged is None:
            merged = run
            options.setdefault("seed", run.workload.seed)  # later probes: the same seed, their own level numbers
        else:
            merged.rows.extend(run.rows)
            merged.records.extend(run.records)
        if run.stopped or not run.rows:
            return None
        ok = within_slo(run.rows[-1], slo)
        rates.append(rate)
        verdicts.append(ok)
        if on_probe is not None:
            on_probe(rate, ok)
        return ok

    good, bad, notes = None, None, []
    rate = float(start_rate)
    while len(rates) < MAX_PROBES:
        ok = probe(rate)
        if ok is None:
            break
        if ok:
            good = rate
            if bad is not None or rate >= max_rate:
                break
            rate = min(rate * growth, float(max_rate))
        else:
            bad = rate
            if good is not None:
                break
            rate = rate / growth
            if rate < start_rate * MIN_RATE_FRACTION:
                notes.append(f"Even {bad:g} requests/s misses the SLOs: the server cannot meet them at this workload.")
                break
    stopped = bool(stop is not None and stop.is_set())
    if good is not None and bad is not None and not stopped:
        for _ in range(refine_steps):
            mid = math.sqrt(good * bad)
            ok = probe(mid)
            if ok is None:
                stopped = True
                break
            good, bad = (mid, bad) if ok else (good, mid)
    if good is not None and bad is None:
        notes.append(f"Every probe up to {max_rate:g} requests/s met the SLOs: saturation lies above the highest rate.")
    result = SaturationResult(good, bad, tuple(rates), tuple(verdicts), slo,
                              stopped or bool(stop is not None and stop.is_set()), tuple(notes))
    if merged is None:
        merged = L.LoadTestRun(slo=slo)
    merged.stopped = result.stopped
    return result, merged
