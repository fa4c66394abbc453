"""Serving load test of an OpenAI-compatible endpoint, measured the way vLLM's ``vllm bench serve`` measures it.

Definitions (vllm/benchmarks/serve.py ``calculate_metrics`` and lib/endpoint_request_func.py, vLLM project,
https://github.com/vllm-project/vllm; https://docs.vllm.ai/en/latest/cli/bench/serve.html):

- TTFT: time from sending a request to receiving its first streamed token.
- ITL: the gaps between successive streamed chunks of one request.
- E2EL: time from sending a request to receiving the end of its response.
- TPOT: (E2EL − TTFT) / (output tokens − 1), per request with more than one output token.
- Output throughput: output tokens of all successful requests / the level's wall time (first send → last answer);
  request throughput: successful requests / that wall time. Failed requests are counted, never dropped silently.

Each concurrency level keeps exactly ``concurrency`` requests in flight (like ``--max-concurrency`` with an infinite
request rate) until ``requests_per_level`` have been sent. Requests use streamed completions with ``ignore_eos`` on
vLLM (so every request generates exactly ``output_tokens``, as ``bench serve``'s random dataset does) and ask the
server for the token counts (``stream_options.include_usage``). The HTTP client is httpx's async client.
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

from core.endpoints import (
    Capabilities,
    Endpoint,
    EndpointError,
    describe_http_error,
    iter_completion_chunks,
    probe,
    timeout,
)
from core.checks import check_int, check_positive_int

DEFAULT_MAX_CONCURRENCY = 64
MAX_REQUESTS_PER_LEVEL = 1000
MAX_TOKENS = 1_048_576  # prompt / output length cap (2^20 tokens, above any served context window)
PERCENTILES = (50, 90, 99)
COLUMNS = [
    "concurrency", "requests", "errors", "duration_s", "prompt_tokens_mean", "output_tokens_total",
    *(f"{m}_p{p}_s" for m in ("ttft", "tpot", "itl", "e2e") for p in PERCENTILES),
    "ttft_mean_s", "tpot_mean_s", "e2e_mean_s", "output_tokens_per_s", "requests_per_s",
]

# Filler for synthetic prompts: common short English words are one token each in most BPE vocabularies; the real
# prompt length is what the server reports (usage.prompt_tokens) and is shown next to the request.
_WORDS = ("the of and to in is that for it as with was on be at by this had not are but from or have an they which "
          "one you were all we her she there would their will when who him been has more if no out do so can what up "
          "said about other into than its time only could new them man some these then two first may any like now my "
          "such make over our even most me state after also made many did must before back see through way where get "
          "much go well your know should down work year because come people just say each those take day good how long "
          "little use very great world own under last right").split()


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

    @property
    def tpot_s(self) -> float | None:
        if not self.ok or self.ttft_s is None or self.output_tokens < 2:
            return None
        return (self.e2el_s - self.ttft_s) / (self.output_tokens - 1)

    def to_dict(self) -> dict:
        return asdict(self) | {"itl_s": list(self.itl_s), "tpot_s": self.tpot_s}


def synthetic_prompt(prompt_tokens: int) -> str:
    """About ``prompt_tokens`` tokens of filler text (one common word ≈ one token)."""
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


def summarize_level(concurrency: int, records: list[RequestRecord], duration_s: float) -> dict:
    """One row of the result table: bench serve's metrics over one level's requests."""
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
            "requests_per_s": len(ok) / duration_s if duration_s > 0 else 0.0}
    return row


async def _one_request(client: httpx.AsyncClient, endpoint: Endpoint, body: dict, concurrency: int,
                       level_start: float) -> RequestRecord:
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
                             sent - level_start)
    except (httpx.HTTPError, EndpointError) as exc:
        message = describe_http_error(endpoint, exc) if isinstance(exc, httpx.HTTPError) else str(exc)
        return RequestRecord(concurrency, False, ttft, tuple(itl), time.perf_counter() - sent, 0, None,
                             sent - level_start, message)


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


async def _run_level(endpoint: Endpoint, body: dict, concurrency: int, requests: int, read_timeout_s: float,
                     on_record: Callable[[RequestRecord], None] | None, stop: threading.Event | None
                     ) -> tuple[list[RequestRecord], float]:
    records: list[RequestRecord] = []
    queue = list(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout(read_timeout_s), headers=endpoint.headers(), limits=limits) as client:
        start = time.perf_counter()

        failures: list[BaseException] = []

        async def worker() -> None:
            while queue and not (stop is not None and stop.is_set()):
                queue.pop()
                record = await _one_request(client, endpoint, body, concurrency, start)
                records.append(record)
                if on_record is not None:
                    try:
                        on_record(record)
                    except BaseException as exc:  # e.g. the page's rerun: end the whole level, not one worker
                        failures.append(exc)
                        return

        tasks = [asyncio.create_task(worker()) for _ in range(concurrency)]
        try:
            while not all(t.done() for t in tasks):
                await asyncio.wait(tasks, timeout=0.2)
                if failures or (stop is not None and stop.is_set()):
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
    """Rows (one per level) and every request's record."""

    rows: list[dict] = field(default_factory=list)
    records: list[RequestRecord] = field(default_factory=list)
    stopped: bool = False

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=COLUMNS)

    def records_frame(self) -> pd.DataFrame:
        return pd.DataFrame([r.to_dict() for r in self.records])

    def to_dict(self) -> dict:
        return {"levels": self.rows, "requests": [r.to_dict() for r in self.records], "stopped": self.stopped}


def run_load_test_detailed(endpoint: Endpoint, concurrency_levels, requests_per_level: int, prompt_tokens: int,
                           output_tokens: int, *, max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
                           read_timeout_s: float = 120.0, stop: threading.Event | None = None,
                           on_record: Callable[[RequestRecord], None] | None = None,
                           on_level: Callable[[dict], None] | None = None,
                           capabilities: Capabilities | None = None) -> LoadTestRun:
    """Run every level in turn (lowest first) and return rows and records. ``stop`` (a threading.Event) ends the
    test within ~0.2 s, cancelling in-flight requests; ``on_record``/``on_level`` report progress."""
    levels = check_parameters(concurrency_levels, requests_per_level, prompt_tokens, output_tokens, max_concurrency)
    capabilities = capabilities or probe(endpoint)
    body = _request_body(endpoint, synthetic_prompt(prompt_tokens), output_tokens, capabilities)
    run = LoadTestRun()
    for concurrency in levels:
        if stop is not None and stop.is_set():
            break
        records, duration = _run_coroutine(lambda: _run_level(endpoint, body, concurrency, int(requests_per_level),
                                                              read_timeout_s, on_record, stop))
        run.records.extend(records)
        if records:
            row = summarize_level(concurrency, records, duration)
            run.rows.append(row)
            if on_level is not None:
                on_level(row)
    run.stopped = bool(stop is not None and stop.is_set())
    return run


def run_load_test(endpoint: Endpoint, concurrency_levels, requests_per_level: int, prompt_tokens: int,
                  output_tokens: int, **options) -> pd.DataFrame:
    """One row per concurrency level with bench serve's metrics (see the module docstring and COLUMNS)."""
    return run_load_test_detailed(endpoint, concurrency_levels, requests_per_level, prompt_tokens, output_tokens,
                                  **options).frame()
