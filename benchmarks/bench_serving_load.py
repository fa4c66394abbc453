"""Serving load test against a running endpoint; prints the README's markdown tables.

    .venv/bin/python benchmarks/bench_serving_load.py URL MODEL levels [requests_per_level]
        closed loop at concurrency 1, 2, 4, 8 (64-token prompts, 32 output tokens)
    .venv/bin/python benchmarks/bench_serving_load.py URL MODEL compare [requests]
        LLM Lab beside vLLM's own `vllm bench serve` (from .venv-vllm) on the same server, 512-token prompts,
        32 output tokens, concurrency 1 and 4, interleaved
    .venv/bin/python benchmarks/bench_serving_load.py URL MODEL sweep [requests_per_rate]
        open loop: Poisson arrivals at 0.25 … 4 requests/s (128-token prompts, 32 output tokens), goodput at
        TTFT ≤ 2 s and TPOT ≤ 200 ms, then the saturation search for those SLOs

URL is the server's /v1 base, e.g. http://127.0.0.1:8000/v1; MODEL its served name (smollm2 for
scripts/vllm_server.sh). `compare` needs the served model's tokenizer folder: LLM_LAB_BENCH_TOKENIZER (default: the
bundled SmolLM2 folder).
"""
from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.serve import load_test as L
from core.serve.endpoints import Endpoint  # noqa: E402
from core.serve.saturation import find_saturation  # noqa: E402
from core.serve.slo import SLO  # noqa: E402


def levels(endpoint: Endpoint, requests: int) -> None:
    frame = L.run_load_test(endpoint, [1, 2, 4, 8], requests, prompt_tokens=64, output_tokens=32)
    print(f"{datetime.date.today()}: {requests} requests per level, 64-token distinct prompts, 32 output tokens "
          "(ignore_eos)\n")
    print("| concurrency | errors | TTFT p50 (s) | TTFT p99 (s) | TPOT p50 (s) | e2e p50 (s) | e2e p99 (s) | output tok/s | req/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in frame.itertuples():
        print(f"| {r.concurrency} | {r.errors} | {r.ttft_p50_s:.3f} | {r.ttft_p99_s:.3f} | {r.tpot_p50_s:.4f} | "
              f"{r.e2e_p50_s:.3f} | {r.e2e_p99_s:.3f} | {r.output_tokens_per_s:.1f} | {r.requests_per_s:.2f} |")


def compare(endpoint: Endpoint, requests: int) -> None:
    from core.run.models import ensure_bundled_decoder
    from core.serve.vllm_bench import run_vllm_bench

    tokenizer = os.environ.get("LLM_LAB_BENCH_TOKENIZER") or str(ensure_bundled_decoder())
    print(f"{datetime.date.today()}: {requests} requests per level, 512-token prompts, 32 output tokens, interleaved "
          "(LLM Lab, then vllm bench serve)\n")
    print("| 512-token prompts, 32 out | LLM Lab TTFT p50 | vLLM bench TTFT p50 | LLM Lab out tok/s | "
          "vLLM bench out tok/s | prefix-cache hits during LLM Lab's run |")
    print("|---|---:|---:|---:|---:|---:|")
    for c in (1, 4):
        run = L.run_load_test_detailed(endpoint, [c], requests, 512, 32)
        row = run.rows[0]
        cache = L.prefix_cache_totals(run.frame())
        theirs = run_vllm_bench(endpoint, tokenizer, 512, 32, requests, max_concurrency=c, seed=7000 + c)
        print(f"| concurrency {c} | {row['ttft_p50_s'] * 1e3:,.0f} ms | {theirs.median_ttft_ms:,.0f} ms | "
              f"{row['output_tokens_per_s']:.1f} | {theirs.output_throughput:.1f} | "
              f"{cache['hits']:,.0f} of {row['prompt_tokens_total']:,} prompt tokens |")


def sweep(endpoint: Endpoint, requests: int) -> None:
    slo = SLO(ttft_s=2.0, tpot_s=0.2)
    run = L.run_rate_sweep(endpoint, [0.25, 0.5, 1, 2, 4], requests, 128, 32, slo=slo)
    print(f"{datetime.date.today()}: open loop, Poisson arrivals, {requests} requests per rate, 128-token distinct "
          "prompts, 32 output tokens; goodput at TTFT ≤ 2 s and TPOT ≤ 200 ms\n")
    print("| offered req/s | served req/s | goodput req/s | TTFT p50 (ms) | TTFT p90 (ms) | TPOT p50 (ms) | "
          "TPOT p90 (ms) | output tok/s | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in run.rows:
        print(f"| {r['request_rate']:g} | {r['requests_per_s']:.2f} | {r['goodput_requests_per_s']:.2f} | "
              f"{r['ttft_p50_s'] * 1e3:,.0f} | {r['ttft_p90_s'] * 1e3:,.0f} | {r['tpot_p50_s'] * 1e3:.0f} | "
              f"{r['tpot_p90_s'] * 1e3:.0f} | {r['output_tokens_per_s']:.1f} | {r['errors']} |")
    answer, _ = find_saturation(endpoint, slo, requests, 128, 32, start_rate=0.5, max_rate=16.0, refine_steps=2)
    probes = ", ".join(f"{r:.3g}{'✓' if ok else '✗'}" for r, ok in zip(answer.probe_rates, answer.probe_ok))
    print(f"\nSaturation search (p90 within the SLOs): {answer.saturation_rate and f'{answer.saturation_rate:.3g}'} "
          f"requests/s (probes: {probes}).")


def main() -> None:
    if len(sys.argv) < 3:
        print(__doc__)
        sys.exit(2)
    endpoint = Endpoint("bench", sys.argv[1], sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "levels"
    requests = int(sys.argv[4]) if len(sys.argv) > 4 else 16
    {"levels": levels, "compare": compare, "sweep": sweep}[mode](endpoint, requests)


if __name__ == "__main__":
    main()
