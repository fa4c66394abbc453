"""Serving load test against a running endpoint; prints the README's markdown table.

    .venv/bin/python benchmarks/serving_load.py http://127.0.0.1:8000/v1 smollm2 [requests_per_level]
"""
from __future__ import annotations

import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.endpoints import Endpoint  # noqa: E402
from core.load_test import run_load_test  # noqa: E402


def main() -> None:
    base_url, model = sys.argv[1], sys.argv[2]
    requests = int(sys.argv[3]) if len(sys.argv) > 3 else 16
    frame = run_load_test(Endpoint("bench", base_url, model), [1, 2, 4, 8], requests, prompt_tokens=64, output_tokens=32)
    print(f"{datetime.date.today()}: {requests} requests per level, 64-token prompts, 32 output tokens (ignore_eos)\n")
    print("| concurrency | errors | TTFT p50 (s) | TTFT p99 (s) | TPOT p50 (s) | e2e p50 (s) | e2e p99 (s) | output tok/s | req/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in frame.itertuples():
        print(f"| {r.concurrency} | {r.errors} | {r.ttft_p50_s:.3f} | {r.ttft_p99_s:.3f} | {r.tpot_p50_s:.4f} | "
              f"{r.e2e_p50_s:.3f} | {r.e2e_p99_s:.3f} | {r.output_tokens_per_s:.1f} | {r.requests_per_s:.2f} |")


if __name__ == "__main__":
    main()
