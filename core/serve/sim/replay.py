"""Replays exactly what the load test (core.serve.load_test) sends, through the simulated engine: the same seeded
workload (core.serve.workload: per-level lengths drawn from ``default_rng([seed, level])``, the shared prefix, the
range ratio) and the same sending (closed loop: ``concurrency`` in flight, every send at once; open loop: the
gamma/Poisson send times of core.serve.arrivals drawn from ``default_rng([seed, level, 1])``, optionally capped in
flight) — and summarizes it with the load test's own row (``summarize_level``: bench serve's TTFT, TPOT, ITL, E2EL
percentiles, throughput, goodput for an SLO).

Saturation and capacity search the simulator the way core.serve.saturation searches the server: geometric growth
from a start rate until the p90 SLOs fail, then geometric bisection (``within_slo`` judges each rate). Replicas for a
traffic: the fewest replicas R such that one replica at rate/R (requests spread evenly: each sees a Poisson stream of
rate/R when the total is Poisson, a thinned process) meets the p90 SLOs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.serve.arrivals import ArrivalInputError, arrival_times_s, check_burstiness, check_rate
from core.serve.load_test import summarize_level
from core.serve.saturation import MAX_PROBES, MIN_RATE_FRACTION
from core.serve.sim.scheduler import EngineConfig, SimulationInputError
from core.serve.sim.simulation import SimulationResult, simulate
from core.serve.slo import SLO, within_slo
from core.serve.workload import WorkloadInputError, WorkloadSpec, sample_lengths

MAX_SIM_REQUESTS = 200_000


@dataclass(frozen=True)
class Traffic:
    """How requests are sent: closed loop (``concurrency``) or open loop (``request_rate`` requests/s as a gamma
    process of ``burstiness``, 1 = Poisson; ``max_concurrency`` caps those in flight)."""

    concurrency: int | None = None
    request_rate: float | None = None
    burstiness: float = 1.0
    max_concurrency: int | None = None

    def __post_init__(self) -> None:
        if (self.concurrency is None) == (self.request_rate is None):
            raise SimulationInputError("Give either a concurrency (closed loop) or a request rate (open loop).")
        if self.concurrency is not None and (isinstance(self.concurrency, bool) or
                                             not isinstance(self.concurrency, (int, np.integer))
                                             or self.concurrency < 1):
            raise SimulationInputError(f"Concurrency must be a whole number of at least 1, got {self.concurrency!r}.")
        try:
            if self.request_rate is not None:
                check_rate(self.request_rate)
            check_burstiness(self.burstiness)
        except ArrivalInputError as exc:
            raise SimulationInputError(str(exc)) from None

    @property
    def label(self) -> str:
        return f"c={self.concurrency}" if self.concurrency is not None else f"{self.request_rate:g} req/s"

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Replay:
    """One simulated level: the load test's row for it, and the simulation behind it."""

    row: dict
    traffic: Traffic
    workload: WorkloadSpec
    simulation: SimulationResult

    def to_dict(self, with_requests: bool = False) -> dict:
        d = {"row": self.row, "traffic": self.traffic.to_dict(), "workload": self.workload.to_dict(),
             "steps": self.simulation.steps, "preemptions": self.simulation.preemptions,
             "engine": self.simulation.config.to_dict()}
        if with_requests:
            d["requests"] = [r.to_dict() for r in self.simulation.requests]
        return d


def workload_lengths(spec: WorkloadSpec, n: int, level: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(prompt tokens including the shared prefix, output tokens) of the load test's requests of ``level``: the draws
    core.serve.workload.build_requests makes (its prompts are cut to these exact lengths)."""
    rng = np.random.default_rng([int(spec.seed), int(level)])
    inputs, outputs = sample_lengths(spec, n, rng)
    return inputs + int(spec.prefix_tokens), outputs


def send_times(traffic: Traffic, n: int, seed: int, level: int) -> np.ndarray:
    """When the load test sends each request: all at once (closed loop; the in-flight cap paces them) or its arrival
    schedule (core.serve.load_test.run_rate_sweep's seed for the level)."""
    if traffic.concurrency is not None:
        return np.zeros(n)
    draw_seed = int(np.random.default_rng([int(seed), int(level), 1]).integers(2**62))
    return arrival_times_s(n, traffic.request_rate, traffic.burstiness, seed=draw_seed)


def replay(spec: WorkloadSpec, num_requests: int, traffic: Traffic, config: EngineConfig, step_model, *,
           level: int = 0, slo: SLO | None = None, timeline: bool = True) -> Replay:
    """Simulate one load-test level; ``level`` is the load test's level index (it picks the prompts' lengths and
    the arrival draw)."""
    if isinstance(num_requests, bool) or not isinstance(num_requests, (int, np.integer)) or \
            not 1 <= num_requests <= MAX_SIM_REQUESTS:
        raise SimulationInputError(f"Requests must be a whole number from 1 to {MAX_SIM_REQUESTS:,}, got {num_requests!r}.")
    prompts, outputs = workload_lengths(spec, int(num_requests), level)
    sends = send_times(traffic, int(num_requests), spec.seed, level)
    cap = traffic.concurrency if traffic.concurrency is not None else traffic.max_concurrency
    sim = simulate(config, step_model, prompts, outputs, sends, max_in_flight=cap, prefix_tokens=spec.prefix_tokens,
                   timeline=timeline)
    row = summarize_level(traffic.concurrency, list(sim.requests), sim.duration_s, slo=slo,
                          request_rate=traffic.request_rate, burstiness=traffic.burstiness)
    row["preemptions"] = sim.preemptions
    row["prefix_cache_hit_tokens"] = int(sum(r.cached_tokens for r in sim.requests))
    return Replay(row, traffic, spec, sim)


def check_workload(prompt_tokens, output_tokens, range_ratio=0.0, prefix_tokens=0, seed=0) -> WorkloadSpec:
    try:
        return WorkloadSpec(prompt_tokens, output_tokens, range_ratio, prefix_tokens, seed)
    except WorkloadInputError as exc:
        raise SimulationInputError(str(exc)) from None


@dataclass(frozen=True)
class SimulatedSaturation:
    """The highest simulated rate within the SLOs (None: even the lowest probe missed), the first that missed."""

    saturation_rate: float | None
    first_failing_rate: float | None
    probes: tuple  # (rate, within SLO) in order

    def to_dict(self) -> dict:
        return {"saturation_rate": self.saturation_rate, "first_failing_rate": self.first_failing_rate,
                "probes": [{"request_rate": r, "within_slo": ok} for r, ok in self.probes]}


def simulated_saturation(spec: WorkloadSpec, requests_per_rate: int, config: EngineConfig, step_model, slo: SLO, *,
                         start_rate: float = 1.0, max_rate: float = 64.0, growth: float = 2.0, refine_steps: int = 2,
                         burstiness: float = 1.0) -> SimulatedSaturation:
    """core.serve.saturation.find_saturation's search, each probe a replayed open-loop level (level numbers as the
    real search gives them, so probe i draws the prompts and arrivals the real probe i draws)."""
    if slo.empty:
        raise SimulationInputError("Set at least one SLO (TTFT, TPOT or end-to-end) to search for saturation.")
    start, top = float(start_rate), float(max_rate)
    if not (0 < start <= top < math.inf) or not 1.05 <= growth <= 16:
        raise SimulationInputError("The search needs 0 < start rate ≤ highest rate (finite) and growth 1.05–16.")
    probes: list[tuple[float, bool]] = []

    def probe(rate: float) -> bool:
        r = replay(spec, requests_per_rate, Traffic(request_rate=rate, burstiness=burstiness), config, step_model,
                   level=len(probes), slo=slo, timeline=False)
        ok = within_slo(r.row, slo)
        probes.append((rate, ok))
        return ok

    good = bad = None
    rate = start
    while len(probes) < MAX_PROBES:
        if probe(rate):
            good = rate
            if bad is not None or rate >= top:
                break
            rate = min(rate * growth, top)
        else:
            bad = rate
            if good is not None:
                break
            rate /= growth
            if rate < start * MIN_RATE_FRACTION:
                break
    if good is not None and bad is not None:
        for _ in range(refine_steps):
            mid = math.sqrt(good * bad)
            good, bad = (mid, bad) if probe(mid) else (good, mid)
    return SimulatedSaturation(good, bad, tuple(probes))


@dataclass(frozen=True)
class ReplicaAnswer:
    """Replicas needed for a request rate at the p90 SLOs, and the simulated row of one replica at its share."""

    replicas: int | None  # None: not within max_replicas (or one request alone misses the SLOs)
    request_rate: float
    per_replica_rate: float | None
    row: dict | None
    notes: tuple = ()

    def to_dict(self) -> dict:
        return {"replicas": self.replicas, "request_rate": self.request_rate,
                "per_replica_rate": self.per_replica_rate, "row": self.row, "notes": list(self.notes)}


def replicas_for_traffic(spec: WorkloadSpec, request_rate: float, config: EngineConfig, step_model, slo: SLO, *,
                         num_requests: int = 1000, burstiness: float = 1.0, max_replicas: int = 4096) -> ReplicaAnswer:
    """Fewest replicas whose share of ``request_rate`` meets the p90 SLOs in simulation (doubling, then bisection)."""
    try:
        rate = check_rate(request_rate)
    except ArrivalInputError as exc:
        raise SimulationInputError(str(exc)) from None
    if math.isinf(rate):
        raise SimulationInputError("An infinite request rate needs infinitely many replicas: give a finite rate.")
    if slo.empty:
        raise SimulationInputError("Set at least one SLO (TTFT, TPOT or end-to-end) to size the deployment.")
    rows: dict[int, dict] = {}

    def ok(replicas: int) -> bool:
        r = replay(spec, num_requests, Traffic(request_rate=rate / replicas, burstiness=burstiness), config,
                   step_model, slo=slo, timeline=False)
        rows[replicas] = r.row
        return within_slo(r.row, slo)

    lo, hi = 0, 1
    while not ok(hi):
        lo, hi = hi, hi * 2
        if hi > max_replicas:
            return ReplicaAnswer(None, rate, None, None, (f"More than {max_replicas:,} replicas, or the SLOs cannot be "
                                                          "met by one request alone at this workload.",))
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return ReplicaAnswer(hi, rate, rate / hi, rows[hi])
