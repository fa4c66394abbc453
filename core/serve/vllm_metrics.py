"""vLLM's own counters, read from its Prometheus endpoint (``GET /metrics`` at the server root; vLLM docs,
"Production Metrics": https://docs.vllm.ai/en/latest/usage/metrics.html), parsed with prometheus_client.

- ``vllm:prefix_cache_queries_total`` / ``vllm:prefix_cache_hits_total``: prompt tokens looked up in the prefix
  cache, and those found there. Their change over a load test is the run's prefix-cache hit rate: how much of the
  prompts vLLM did not have to compute because an earlier request (of this run or before it) had the same prefix.
- ``vllm:prompt_tokens_total``: prompt tokens received.
- ``vllm:cache_config_info``: the engine's cache configuration as labels, among them ``block_size``,
  ``num_gpu_blocks`` (KV blocks allocated; on the CPU backend too), ``kv_cache_memory_bytes`` when set and
  ``kv_cache_size_tokens`` — the KV capacity vLLM reports at startup ("KV cache size: N tokens").
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from core.serve.endpoints import Endpoint, EndpointError, describe_http_error, timeout

PREFIX_QUERIES = "vllm:prefix_cache_queries"
PREFIX_HITS = "vllm:prefix_cache_hits"
PROMPT_TOKENS = "vllm:prompt_tokens"
CACHE_CONFIG = "vllm:cache_config_info"


@dataclass(frozen=True)
class EngineCounters:
    """One reading of vLLM's counters (summed over engines) and its KV-cache configuration (None: not reported)."""

    prefix_cache_queries_tokens: float
    prefix_cache_hits_tokens: float
    prompt_tokens: float
    block_size_tokens: int | None = None
    num_blocks: int | None = None
    kv_cache_memory_bytes: int | None = None
    kv_cache_size_tokens: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrefixCacheUse:
    """What the prefix cache served between two readings (tokens)."""

    queried_tokens: float
    hit_tokens: float
    prompt_tokens: float

    @property
    def hit_rate(self) -> float:
        """Hit tokens ÷ queried prompt tokens (nan when nothing was queried)."""
        return self.hit_tokens / self.queried_tokens if self.queried_tokens else float("nan")

    def to_dict(self) -> dict:
        return asdict(self) | {"hit_rate": self.hit_rate}


def _int_label(labels: dict, name: str) -> int | None:
    try:
        return int(float(labels[name]))
    except (KeyError, TypeError, ValueError):
        return None


def parse_metrics(text: str) -> EngineCounters:
    """EngineCounters from Prometheus exposition text; EndpointError when it holds no vLLM prefix-cache counters."""
    sums: dict[str, float] = {}
    config: dict = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name in (PREFIX_QUERIES + "_total", PREFIX_HITS + "_total", PROMPT_TOKENS + "_total"):
                    sums[sample.name] = sums.get(sample.name, 0.0) + float(sample.value)
                elif sample.name == CACHE_CONFIG and not config:
                    config = dict(sample.labels)
    except ValueError as exc:
        raise EndpointError(f"The server's /metrics is not Prometheus text ({exc}).") from None
    if PREFIX_QUERIES + "_total" not in sums:
        raise EndpointError("The server's /metrics has no vLLM prefix-cache counters (vllm:prefix_cache_queries).")
    return EngineCounters(sums[PREFIX_QUERIES + "_total"], sums.get(PREFIX_HITS + "_total", 0.0),
                          sums.get(PROMPT_TOKENS + "_total", 0.0), _int_label(config, "block_size"),
                          _int_label(config, "num_gpu_blocks"), _int_label(config, "kv_cache_memory_bytes"),
                          _int_label(config, "kv_cache_size_tokens"))


def read_counters(endpoint: Endpoint, read_timeout_s: float = 10.0) -> EngineCounters:
    """Scrape the server's /metrics; EndpointError when it is unreachable or not vLLM's."""
    try:
        response = httpx.get(endpoint.server_root + "/metrics", headers=endpoint.headers(),
                             timeout=timeout(read_timeout_s))
    except httpx.HTTPError as exc:
        raise EndpointError(describe_http_error(endpoint, exc)) from None
    if response.status_code >= 400:
        raise EndpointError(f"'{endpoint.name}' has no /metrics (HTTP {response.status_code}).")
    return parse_metrics(response.text)


def try_read_counters(endpoint: Endpoint) -> EngineCounters | None:
    """read_counters, or None for a server without vLLM's metrics (the load test then shows no cache figures)."""
    try:
        return read_counters(endpoint)
    except EndpointError:
        return None


def prefix_cache_use(before: EngineCounters, after: EngineCounters) -> PrefixCacheUse:
    """The prefix cache's work between two readings."""
    return PrefixCacheUse(after.prefix_cache_queries_tokens - before.prefix_cache_queries_tokens,
                          after.prefix_cache_hits_tokens - before.prefix_cache_hits_tokens,
                          after.prompt_tokens - before.prompt_tokens)
