"""The event loop around the scheduler (core.serve.sim.scheduler): clients send requests at their send times, at most
``max_in_flight`` at once (a closed loop of concurrency C is C in flight with every send time 0, exactly as
core.serve.load_test's workers), the engine runs step after step while it has work and idles until the next
arrival otherwise. Returns each request's token times and the per-step timeline.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from core.serve.sim.scheduler import EngineConfig, EngineState, SimRequest, SimulationInputError


@dataclass(frozen=True)
class SimulatedRequest:
    """One simulated request as the load test would record it (seconds since the run's start)."""

    index: int
    prompt_tokens: int
    output_tokens: int
    send_s: float
    ttft_s: float
    e2el_s: float
    itl_s: tuple
    cached_tokens: int
    preemptions: int
    ok: bool = True

    @property
    def tpot_s(self) -> float | None:
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1) if self.output_tokens > 1 else None

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__} | {"itl_s": list(self.itl_s),
                                                                             "tpot_s": self.tpot_s}


@dataclass(frozen=True)
class Timeline:
    """Per step: start and length (s), prefill tokens, decode sequences, KV blocks in use, waiting requests,
    running requests (numpy arrays of one length)."""

    start_s: np.ndarray
    step_s: np.ndarray
    prefill_tokens: np.ndarray
    decode_seqs: np.ndarray
    kv_blocks_used: np.ndarray
    waiting: np.ndarray
    running: np.ndarray

    def to_dict(self) -> dict:
        return {k: getattr(self, k).tolist() for k in self.__dataclass_fields__}

    def __len__(self) -> int:
        return len(self.start_s)


@dataclass(frozen=True)
class SimulationResult:
    requests: tuple
    timeline: Timeline | None
    duration_s: float
    steps: int
    preemptions: int
    config: EngineConfig


def check_requests(config: EngineConfig, prompts, outputs, prefix_tokens: int) -> None:
    """SimulationInputError when a request cannot run on this engine at all (context or KV pool too small)."""
    longest = int(np.max(np.asarray(prompts) + np.asarray(outputs)))
    if config.max_model_len is not None and longest > config.max_model_len:
        raise SimulationInputError(f"A request of {longest:,} tokens (prompt + output) is past the model's context of "
                                   f"{config.max_model_len:,} tokens: shorten the prompt or the output.")
    if -(-longest // config.block_size_tokens) > config.num_blocks:
        raise SimulationInputError(
            f"The KV pool ({config.num_blocks:,} blocks of {config.block_size_tokens} = {config.capacity_tokens:,} "
            f"tokens) is too small for one request of {longest:,} tokens: give the engine more KV memory.")
    if prefix_tokens and int(np.min(prompts)) < prefix_tokens:
        raise SimulationInputError("The shared prefix is longer than a prompt.")


def simulate(config: EngineConfig, step_model, prompts, outputs, send_times_s, *, max_in_flight: int | None = None,
             prefix_tokens: int = 0, request_overhead_s: float | None = None,
             frontend_serial_s: float | None = None, timeline: bool = True,
             fast_decode: bool = True) -> SimulationResult:
    """Simulate requests i = 0…n−1 (``prompts[i]`` tokens including the shared prefix, ``outputs[i]`` tokens out),
    sent in order at ``send_times_s`` (sorted), at most ``max_in_flight`` at once (None: no cap). ``fast_decode``
    prices runs of pure decode steps in one call (the same times as one step after another)."""
    prompts = np.asarray(prompts, dtype=int)
    outputs = np.asarray(outputs, dtype=int)
    sends = np.asarray(send_times_s, dtype=float)
    n = len(prompts)
    if n == 0 or len(outputs) != n or len(sends) != n:
        raise SimulationInputError("Give at least one request, with a prompt length, output length and send time each.")
    if prompts.min() < 1 or outputs.min() < 1:
        raise SimulationInputError("Prompt and output lengths must be at least 1 token.")
    if not np.all(np.isfinite(sends)) or sends.min() < 0:
        raise SimulationInputError("Send times must be finite and not negative.")
    check_requests(config, prompts, outputs, prefix_tokens)
    overhead = float(getattr(step_model, "request_overhead_s", 0.0) if request_overhead_s is None
                     else request_overhead_s)
    serial = float(getattr(step_model, "frontend_serial_s", 0.0) if frontend_serial_s is None else frontend_serial_s)
    serial = min(max(serial, 0.0), overhead)
    state = EngineState(config)
    requests = [SimRequest(i, int(p), int(o), int(prefix_tokens)) for i, (p, o) in enumerate(zip(prompts, outputs))]
    cap = n if max_in_flight is None else max(1, min(int(max_in_flight), n))
    free_slots = deque([0.0] * cap)
    arrivals: deque[SimRequest] = deque()
    next_send = 0
    frontend_free = 0.0

    def release() -> None:
        # The server's front end takes ``serial`` seconds per request one at a time (the rest of the overhead in
        # parallel): requests sent together reach the engine one after another, not in the same step.
        nonlocal next_send, frontend_free
        while next_send < n and free_slots:
            r = requests[next_send]
            r.send_s = max(float(sends[next_send]), free_slots.popleft())
            r.arrive_s = frontend_free = max(r.send_s + overhead - serial, frontend_free) + serial
            arrivals.append(r)
            next_send += 1

    cols: list[list] = [[] for _ in range(7)]
    t, steps, finished = 0.0, 0, 0
    release()
    while finished < n:
        while arrivals and arrivals[0].arrive_s <= t:
            state.waiting.append(arrivals.popleft())
        if not state.running and not state.waiting:
            if not arrivals:
                raise SimulationInputError("The simulation ran out of work before every request finished.")
            t = arrivals[0].arrive_s
            continue
        next_arrival = arrivals[0].arrive_s if arrivals else math.inf
        k = state.decode_run_length(next_arrival) if fast_decode else 0
        if k:
            used0 = state.used_blocks()
            waiting0, running0 = len(state.waiting), len(state.running)
            starts, dt, done = state.decode_run(k, t, next_arrival, step_model)
            if timeline:
                m = len(dt)
                cols[0].extend(starts.tolist())
                cols[1].extend(dt.tolist())
                cols[2].extend([0] * m)
                cols[3].extend([running0] * m)
                cols[4].extend(np.linspace(used0, max(used0, state.used_blocks()), m).round().tolist())
                cols[5].extend([waiting0] * m)
                cols[6].extend([running0] * m)
            steps += len(dt)
            t = float(starts[-1] + dt[-1])
        else:
            batch = state.schedule()
            if not batch:
                raise SimulationInputError("The engine cannot schedule any request: the KV pool is too small for "
                                           "the requests waiting.")
            p, keys, d, c, seqs = state.batch_features(batch)
            dt = float(step_model.step_s(p, keys, d, c, seqs))
            if timeline:
                for col, value in zip(cols, (t, dt, p, d, state.used_blocks(), len(state.waiting),
                                             len(state.running))):
                    col.append(value)
            t += dt
            steps += 1
            done = state.complete(batch, t)
        for r in done:
            free_slots.append(r.finish_s)
            finished += 1
        if done:
            release()
    results = tuple(_record(r) for r in requests)
    line = Timeline(*(np.asarray(c, dtype=float) for c in cols)) if timeline else None
    return SimulationResult(results, line, t, steps, state.preemptions, config)


def _record(r: SimRequest) -> SimulatedRequest:
    times = np.concatenate([np.atleast_1d(np.asarray(x, dtype=float)) for x in r.token_times])
    ttft = float(times[0] - r.send_s)
    e2e = float(times[-1] - r.send_s)
    return SimulatedRequest(r.index, r.prompt_tokens, r.output_tokens, r.send_s, ttft, e2e,
                            tuple(np.diff(times).tolist()), r.cached_tokens, r.preemptions)
