"""Serving load test of an OpenAI-compatible endpoint, measured the way vLLM's ``vllm bench serve`` measures it.

Definitions (vllm/benchmarks/serve.py ``calculate_metrics`` and lib/endpoint_request_func.py, vLLM project,
https://github.com/vllm-project/vllm; https://docs.vllm.ai/en/latest/cli/bench/serve.html):

- TTFT: time from sending a request to receiving its first streamed token.
- ITL: the gaps between successive streamed chunks of one request.
- E2EL: time from sending a request to receiving the end of its response.
- TPOT: (E2EL − TTFT) / (output tokens − 1), per request with more than one output token.
- Output throughput: output tokens of all successful requests / the level's wall time (first send → last answer);
  request throughput: successful requests / that wall time. Failed requests are counted, never dropped silently.

- Goodput: successful requests meeting every SLO per second of the level (core.serve.slo; DistServe's definition).

Two ways to load the server, as bench serve offers:

- closed loop (``run_load_test_detailed``): each concurrency level keeps exactly ``concurrency`` requests in flight
  (``--max-concurrency`` with an infinite request rate) until ``requests_per_level`` have been sent;
- open loop (``run_rate_sweep``): requests arrive at a request rate, as a Poisson or gamma process of a burstiness
  (``--request-rate``, ``--burstiness``; core.serve.arrivals), whether or not earlier ones have finished, optionally
  capped at a number in flight. ``core.serve.saturation`` searches for the highest rate within the SLOs.

Every request has its own prompt (core.serve.workload: distinct random texts of an exact token count, drawn per
level from the run's seed; a shared prefix and length ranges on request), so vLLM's automatic prefix caching cannot
serve one request's prompt from another's. On vLLM the run reads the engine's prefix-cache counters before and after
each level (core.serve.vllm_metrics) and reports the level's hit rate. Requests use streamed completions with
``ignore_eos`` on vLLM (so every request generates exactly its output length, as ``bench serve``'s random dataset
does) and ask the server for the token counts (``stream_options.include_usage``). The HTTP client is httpx's async
client.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import httpx
import numpy as np
import pandas as pd

from core.serve.capabilities import Capabilities, probe
from core.serve.endpoints import Endpoint, EndpointError, describe_http_error, timeout
from core.serve.sse import iter_completion_chunks
from core.common.checks import check_int, check_positive_int
from core.serve.arrivals import ArrivalInputError, arrival_times_s, check_burstiness, check_rate
from core.serve.slo import SLO, goodput_per_s
from core.serve.vllm_metrics import EngineCounters, prefix_cache_use, try_read_counters
from core.serve.workload import (
    MAX_TOKENS,
    WORDS as _WORDS,
    Tokenizer,
    WorkloadInputError,
    WorkloadRequest,
    WorkloadSpec,
    build_requests,
    tokenizer_for,
)

DEFAULT_MAX_CONCURRENCY = 64
MAX_REQUESTS_PER_LEVEL = 1000
PERCENTILES = (50, 90, 99)
COLUMNS = [
    "concurrency", "requests", "errors", "duration_s", "prompt_tokens_mean", "output_tokens_total",
    *(f"{m}_p{p}_s" for m in ("ttft", "tpot", "itl", "e2e") for p in PERCENTILES),
    "ttft_mean_s", "tpot_mean_s", "e2e_mean_s", "output_tokens_per_s", "requests_per_s",
    "request_rate", "burstiness", "prompt_tokens_total", "output_tokens_mean", "goodput_requests_per_s",
    "prefix_cache_queried_tokens", "prefix_cache_hit_tokens", "prefix_cache_hit_rate",
]

class LoadTestInputError(ValueError):
    """Bad load-test parameters; the message is user-facing."""


@dataclass(frozen=True)
class RequestRecord:
    """One request of a load test, as bench serve's RequestFuncOutput records it (times in seconds)."""

    concurrency: int
    ok: bool
    ttft_s: float | None
    itl_s: tuple[float, ...]
    e2el_s: float
    output_tokens: int
    prompt_tokens: int | None
    start_s: float  # since the level started
    error: str | None = None
    request_rate: float | None = None  # the level's offered rate (requests/s) in open-loop mode; None: closed loop

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)

    def to_dict(self) -> dict:
        return asdict(self) | {"itl_s": list(self.itl_s), "tpot_s": self.tpot_s}


def synthetic_prompt(prompt_tokens: int) -> str:
    """About ``prompt_tokens`` tokens of filler text (one common word ≈ one token), the same text every call: a
    fixed probe prompt. Load tests use core.serve.workload's distinct prompts instead."""
    return " ".join(_WORDS[i % len(_WORDS)] for i in range(max(1, int(prompt_tokens))))


def check_parameters(concurrency_levels, requests_per_level: int, prompt_tokens: int, output_tokens: int,
                     max_concurrency: int = DEFAULT_MAX_CONCURRENCY) -> list[int]:
    """Sorted distinct concurrency levels; LoadTestInputError for anything non-numeric, fractional, out of range."""
    try:
        given = list(concurrency_levels)
    except TypeError:
        raise LoadTestInputError(f"Concurrency levels must be a list of whole numbers, got {concurrency_levels!r}.") from None
    levels = sorted({check_positive_int(c, "Concurrency level", error=LoadTestInputError) for c in given})
    if not levels:
        raise LoadTestInputError("Choose at least one concurrency level.")
    if levels[-1] > max_concurrency:
        raise LoadTestInputError(f"Concurrency {levels[-1]} is above this deployment's cap of {max_concurrency}.")
    check_int(requests_per_level, "Requests per level", 1, MAX_REQUESTS_PER_LEVEL, error=LoadTestInputError)
    check_int(prompt_tokens, "Prompt length (tokens)", 1, MAX_TOKENS, error=LoadTestInputError)
    check_int(output_tokens, "Output length (tokens)", 1, MAX_TOKENS, error=LoadTestInputError)
    return levels


def _usage_tokens(value, name: str, default):
    """A token count from a server's ``usage`` block; a malformed one is the server's error, reported per request."""
    if value is None:
        return default
    try:
        return check_int(value, f"usage.{name}", 0, 2**62, error=EndpointError)
    except (TypeError, ValueError, OverflowError) as exc:
        raise EndpointError(f"The server sent a malformed usage.{name}: {value!r}.") from exc


def _percentile(values: list[float], p: float) -> float:
    return float(np.percentile(values, p)) if values else float("nan")


def summarize_level(concurrency: int | None, records: list[RequestRecord], duration_s: float, *,
                    slo: SLO | None = None, request_rate: float | None = None, burstiness: float | None = None,
                    cache=None) -> dict:
    """One row of the result table: bench serve's metrics over one level's requests; goodput when an SLO is given;
    the prefix cache's work (a core.serve.vllm_metrics.PrefixCacheUse) when the server reported it."""
    ok = [r for r in records if r.ok]
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    tpot = [r.tpot_s for r in ok if r.tpot_s is not None]
    itl = [gap for r in ok for gap in r.itl_s]
    e2e = [r.e2el_s for r in ok]
    prompt = [r.prompt_tokens for r in ok if r.prompt_tokens is not None]
    output_total = sum(r.output_tokens for r in ok)
    row = {"concurrency": concurrency, "requests": len(records), "errors": len(records) - len(ok),
           "duration_s": duration_s, "prompt_tokens_mean": float(np.mean(prompt)) if prompt else float("nan"),
           "output_tokens_total": output_total}
    for name, values in (("ttft", ttft), ("tpot", tpot), ("itl", itl), ("e2e", e2e)):
        for p in PERCENTILES:
            row[f"{name}_p{p}_s"] = _percentile(values, p)
    row |= {"ttft_mean_s": float(np.mean(ttft)) if ttft else float("nan"),
            "tpot_mean_s": float(np.mean(tpot)) if tpot else float("nan"),
            "e2e_mean_s": float(np.mean(e2e)) if e2e else float("nan"),
            "output_tokens_per_s": output_total / duration_s if duration_s > 0 else 0.0,
            "requests_per_s": len(ok) / duration_s if duration_s > 0 else 0.0,
            "request_rate": request_rate, "burstiness": burstiness if request_rate is not None else None,
            "prompt_tokens_total": int(sum(prompt)) if prompt else None,
            "output_tokens_mean": output_total / len(ok) if ok else float("nan"),
            "goodput_requests_per_s": goodput_per_s(ok, slo or SLO(), duration_s),
            "prefix_cache_queried_tokens": cache.queried_tokens if cache else None,
            "prefix_cache_hit_tokens": cache.hit_tokens if cache else None,
            "prefix_cache_hit_rate": cache.hit_rate if cache else None}
    return row


async def _one_request(client: httpx.AsyncClient, endpoint: Endpoint, body: dict, concurrency: int | None,
                       level_start: float, request_rate: float | None = None) -> RequestRecord:
    sent = time.perf_counter()
    ttft, last, itl, output_tokens, prompt_tokens, chunks = None, sent, [], 0, None, 0
    try:
        async with client.stream("POST", endpoint.api_base + "/completions", json=body) as response:
            if response.status_code >= 400:
                text = (await response.aread()).decode("utf-8", "replace")[:200]
                raise EndpointError(f"HTTP {response.status_code}: {text}")
            lines = [line async for line in _lines_until_done(response)]
            for _ in iter_completion_chunks((line for _, line in lines), endpoint.name):
                pass  # validates the stream (JSON, error events, [DONE]); timing was taken as the lines arrived
            for now, chunk in _timed(lines):
                choices = chunk.get("choices") or []
                if any((c or {}).get("text") for c in choices):
                    chunks += 1
                    if ttft is None:
                        ttft = now - sent
                    else:
                        itl.append(now - last)
                    last = now
                usage = chunk.get("usage")
                if isinstance(usage, dict):
                    output_tokens = _usage_tokens(usage.get("completion_tokens"), "completion_tokens",
                                                  output_tokens) or output_tokens
                    prompt_tokens = _usage_tokens(usage.get("prompt_tokens"), "prompt_tokens", prompt_tokens)
        e2el = time.perf_counter() - sent
        return RequestRecord(concurrency, True, ttft, tuple(itl), e2el, output_tokens or chunks, prompt_tokens,
                             sent - level_start, None, request_rate)
    except (httpx.HTTPError, EndpointError) as exc:
        message = describe_http_error(endpoint, exc) if isinstance(exc, httpx.HTTPError) else str(exc)
        return RequestRecord(concurrency, False, ttft, tuple(itl), time.perf_counter() - sent, 0, None,
                             sent - level_start, message, request_rate)


async def _lines_until_done(response: httpx.Response):
    """Each line of the response with its arrival time: (perf_counter seconds, line)."""
    async for line in response.aiter_lines():
        yield (time.perf_counter(), line)


def _timed(lines: list[tuple[float, str]]):
    """(arrival time, parsed chunk) for each data event; lines already validated by iter_completion_chunks."""
    for now, line in lines:
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload and payload != "[DONE]":
                yield now, json.loads(payload)


def _request_body(endpoint: Endpoint, prompt: str, output_tokens: int, capabilities: Capabilities) -> dict:
    body = {"model": endpoint.model, "prompt": prompt, "max_tokens": int(output_tokens), "temperature": 0.0,
            "stream": True, "stream_options": {"include_usage": True}}
    if capabilities.is_vllm:
        body["ignore_eos"] = True  # fixed output length, as bench serve's random dataset
    return body


async def _run_level(endpoint: Endpoint, bodies: list[dict], concurrency: int | None, read_timeout_s: float,
                     on_record: Callable[[RequestRecord], None] | None, stop: threading.Event | None,
                     send_times_s=None, request_rate: float | None = None) -> tuple[list[RequestRecord], float]:
    """Send ``bodies``: closed loop (``send_times_s`` None: ``concurrency`` workers, each sending its next request
    when the last one ends) or open loop (request i is sent at ``send_times_s[i]`` after the start, waiting for a
    free slot when ``concurrency`` are already in flight; ``concurrency`` None: no cap)."""
    records: list[RequestRecord] = []
    connections = concurrency or len(bodies)
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(timeout=timeout(read_timeout_s), headers=endpoint.headers(), limits=limits) as client:
        start = time.perf_counter()
        failures: list[BaseException] = []

        def stopped() -> bool:
            return bool(failures) or (stop is not None and stop.is_set())

        async def send(body: dict) -> None:
            record = await _one_request(client, endpoint, body, concurrency, start, request_rate)
            records.append(record)
            if on_record is not None:
                try:
                    on_record(record)
                except BaseException as exc:  # e.g. the page's rerun: end the whole level, not one request
                    failures.append(exc)

        if send_times_s is None:
            queue = list(reversed(bodies))

            async def worker() -> None:
                while queue and not stopped():
                    await send(queue.pop())

            tasks = [asyncio.create_task(worker()) for _ in range(min(int(concurrency), len(bodies)))]
        else:
            slots = asyncio.Semaphore(concurrency) if concurrency else None

            async def arrive(body: dict, at_s: float) -> None:
                delay = start + at_s - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                if stopped():
                    return
                if slots is None:
                    await send(body)
                else:
                    async with slots:
                        if not stopped():
                            await send(body)

            tasks = [asyncio.create_task(arrive(b, float(t))) for b, t in zip(bodies, send_times_s)]
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=0.2)
                if stopped():
                    break
        finally:
            for t in tasks:
                t.cancel()  # closes in-flight streams: the server aborts those requests
            await asyncio.gather(*tasks, return_exceptions=True)
        if failures:
            raise failures[0]
        return records, time.perf_counter() - start


def _run_coroutine(make):
    """asyncio.run(make()) — in a helper thread when this thread already runs an event loop (e.g. a caller inside
    Jupyter or Playwright's sync API), since asyncio.run refuses to nest."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    outcome: dict = {}

    def target() -> None:
        try:
            outcome["value"] = asyncio.run(make())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="llm-lab-load-test")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


@dataclass
class LoadTestRun:
    """Rows (one per level) and every request's record, with the workload that produced them."""

    rows: list[dict] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    stopped: bool = False
    workload: WorkloadSpec | None = None
    tokenizer: str = ""  # how prompt lengths were made exact: "endpoint", "local" or "words" (approximate)
    slo: SLO | None = None
    engine: EngineCounters | None = None  # the server's counters before the run (None: not vLLM's /metrics)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def records_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.records])

    def to_dict(self) -> dict:
        return {"levels": self.rows, "requests": [r.to_dict() for r in self.records], "stopped": self.stopped,
                "workload": self.workload.to_dict() if self.workload else None, "tokenizer": self.tokenizer,
                "slo": self.slo.to_dict() if self.slo else None,
                "engine": self.engine.to_dict() if self.engine else None}


def new_seed() -> int:
    """A fresh workload seed: a rerun with the same seed sends the same prompts, which the server may have cached."""
    return int(np.random.SeedSequence().entropy % (2**63))


def _workload(prompt_tokens: int, output_tokens: int, range_ratio: float, prefix_tokens: int,
              seed: int | None) -> WorkloadSpec:
    try:
        return WorkloadSpec(int(prompt_tokens), int(output_tokens), range_ratio, int(prefix_tokens),
                            new_seed() if seed is None else seed)
    except (WorkloadInputError, TypeError, ValueError) as exc:
        raise LoadTestInputError(str(exc)) from None


def _tokenizer_name(tokenizer) -> str:
    return {"EndpointTokenizer": "endpoint", "HFTokenizer": "local"}.get(type(tokenizer).__name__, "words")


def _bodies(endpoint: Endpoint, requests: list[WorkloadRequest], capabilities: Capabilities) -> list[dict]:
    return [_request_body(endpoint, r.prompt, r.output_tokens, capabilities) for r in requests]


def _prepare(endpoint, prompt_tokens, output_tokens, range_ratio, prefix_tokens, seed, slo, capabilities,
             tokenizer, local_tokenizer) -> tuple[LoadTestRun, Capabilities, Tokenizer]:
    spec = _workload(prompt_tokens, output_tokens, range_ratio, prefix_tokens, seed)
    capabilities = capabilities or probe(endpoint)
    tokenizer = tokenizer or tokenizer_for(endpoint, capabilities.is_vllm, local_tokenizer)
    run = LoadTestRun(workload=spec, tokenizer=_tokenizer_name(tokenizer), slo=slo,
                      engine=try_read_counters(endpoint) if capabilities.is_vllm else None)
    return run, capabilities, tokenizer


def _measure_level(run: LoadTestRun, endpoint: Endpoint, bodies: list[dict], concurrency: int | None,
                   read_timeout_s: float, on_record, on_level, stop, send_times_s=None,
                   request_rate: float | None = None, burstiness: float | None = None) -> None:
    before = try_read_counters(endpoint) if run.engine is not None else None
    records, duration = _run_coroutine(lambda: _run_level(endpoint, bodies, concurrency, read_timeout_s, on_record,
                                                          stop, send_times_s, request_rate))
    after = try_read_counters(endpoint) if before is not None else None
    run.records.extend(records)
    if records:
        cache = prefix_cache_use(before, after) if before is not None and after is not None else None
        row = summarize_level(concurrency, records, duration, slo=run.slo, request_rate=request_rate,
                              burstiness=burstiness, cache=cache)
        run.rows.append(row)
        if on_level is not None:
            on_level(row)


def run_load_test_detailed(endpoint: Endpoint, concurrency_levels, requests_per_level: int, prompt_tokens: int,
                           output_tokens: int, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                           read_timeout_s: float = 120.0, stop: threading.Event | None = None,
                           on_record: Callable[[RequestRecord], None] | None = None,
                           on_level: Callable[[dict], None] | None = None,
                           capabilities: Capabilities | None = None, range_ratio: float = 0.0,
                           prefix_tokens: int = 0, seed: int | None = None, slo: SLO | None = None,
                           tokenizer: Tokenizer | None = None, local_tokenizer=None) -> LoadTestRun:
    """Run every concurrency level in turn (lowest first) and return rows and records. Each level sends its own
    distinct prompts (``seed``: None draws a fresh one, kept in ``run.workload``); ``prefix_tokens`` shares a prefix,
    ``range_ratio`` varies the lengths (core.serve.workload). ``stop`` (a threading.Event) ends the test within
    ~0.2 s, cancelling in-flight requests; ``on_record``/``on_level`` report progress."""
    levels = check_parameters(concurrency_levels, requests_per_level, prompt_tokens, output_tokens, max_concurrency)
    run, capabilities, tokenizer = _prepare(endpoint, prompt_tokens, output_tokens, range_ratio, prefix_tokens, seed,
                                            slo, capabilities, tokenizer, local_tokenizer)
    for index, concurrency in enumerate(levels):
        if stop is not None and stop.is_set():
            break
        requests = build_requests(run.workload, int(requests_per_level), tokenizer, level=index)
        _measure_level(run, endpoint, _bodies(endpoint, requests, capabilities), concurrency, read_timeout_s,
                       on_record, on_level, stop)
    run.stopped = bool(stop is not None and stop.is_set())
    return run


def check_rates(request_rates) -> list[float]:
    """Sorted distinct request rates (requests/s, inf allowed); LoadTestInputError for anything else."""
    try:
        given = list(request_rates)
    except TypeError:
        raise LoadTestInputError(f"Request rates must be a list of numbers, got {request_rates!r}.") from None
    try:
        rates = sorted({check_rate(r) for r in given})
    except ArrivalInputError as exc:
        raise LoadTestInputError(str(exc)) from None
    if not rates:
        raise LoadTestInputError("Choose at least one request rate.")
    return rates


def run_rate_sweep(endpoint: Endpoint, request_rates, requests_per_rate: int, prompt_tokens: int,
                   output_tokens: int, *, burstiness: float = 1.0, max_concurrency: int | None = None,
                   read_timeout_s: float = 120.0, stop: threading.Event | None = None,
                   on_record: Callable[[RequestRecord], None] | None = None,
                   on_level: Callable[[dict], None] | None = None, capabilities: Capabilities | None = None,
                   range_ratio: float = 0.0, prefix_tokens: int = 0, seed: int | None = None,
                   slo: SLO | None = None, tokenizer: Tokenizer | None = None, local_tokenizer=None,
                   first_level: int = 0) -> LoadTestRun:
    """Open loop: for each request rate (lowest first), ``requests_per_rate`` requests arriving as a gamma process of
    ``burstiness`` (1 = Poisson) at that rate, at most ``max_concurrency`` in flight (None: no cap), as
    ``vllm bench serve --request-rate R --burstiness B [--max-concurrency C]``. ``first_level`` numbers the levels
    (their prompts and arrival draws) after ones already sent with the same seed."""
    rates = check_rates(request_rates)
    check_parameters([1], requests_per_rate, prompt_tokens, output_tokens)
    if max_concurrency is not None:
        max_concurrency = check_int(max_concurrency, "Max requests in flight", 1, MAX_REQUESTS_PER_LEVEL,
                                    error=LoadTestInputError)
    try:
        shape = check_burstiness(burstiness)
    except ArrivalInputError as exc:
        raise LoadTestInputError(str(exc)) from None
    run, capabilities, tokenizer = _prepare(endpoint, prompt_tokens, output_tokens, range_ratio, prefix_tokens, seed,
                                            slo, capabilities, tokenizer, local_tokenizer)
    for index, rate in enumerate(rates, start=int(first_level)):
        if stop is not None and stop.is_set():
            break
        requests = build_requests(run.workload, int(requests_per_rate), tokenizer, level=index)
        times = arrival_times_s(len(requests), rate, shape, seed=int(np.random.default_rng(
            [run.workload.seed, index, 1]).integers(2**62)))
        _measure_level(run, endpoint, _bodies(endpoint, requests, capabilities), max_concurrency, read_timeout_s,
                       on_record, on_level, stop, times, rate, shape)
    run.stopped = bool(stop is not None and stop.is_set())
    return run


def run_load_test(endpoint: Endpoint, concurrency_levels, requests_per_level: int, prompt_tokens: int,
                  output_tokens: int, **options) -> pd.DataFrame:
    """One row per concurrency level with bench serve's metrics (see the module docstring and COLUMNS)."""
    return run_load_test_detailed(endpoint, concurrency_levels, requests_per_level, prompt_tokens, output_tokens,
                                  **options).frame()


def prefix_cache_totals(levels: pd.DataFrame) -> dict | None:
    """The prefix cache's work over a whole run (``queried``, ``hits`` tokens, ``hit_rate``) from the levels table;
    None when the server did not report it."""
    if levels.empty or "prefix_cache_queried_tokens" not in levels or levels["prefix_cache_queried_tokens"].isna().all():
        return None
    queried = float(levels["prefix_cache_queried_tokens"].fillna(0).sum())
    hits = float(levels["prefix_cache_hit_tokens"].fillna(0).sum())
    return {"queried": queried, "hits": hits, "hit_rate": hits / queried if queried else float("nan")}
