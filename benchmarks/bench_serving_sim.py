"""Speed of the serving simulator (core.serve.sim): 10,000 simulated requests, closed loop and Poisson, on a fitted
CPU-like step model and on a catalog GPU's roofline. The issue's bar: under 5 s each, so the capacity search and the
page stay interactive. Prints a Markdown table.

    .venv/bin/python benchmarks/bench_serving_sim.py [requests]
"""
from __future__ import annotations

import datetime
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.serve.sim.replay import Traffic, replay  # noqa: E402
from core.serve.sim.scheduler import EngineConfig  # noqa: E402
from core.serve.sim.step_model import LinearStepModel, roofline_step_model  # noqa: E402
from core.serve.workload import WorkloadSpec  # noqa: E402

CPU_LIKE = LinearStepModel(0.030, 0.0009, 1e-6, 0.001, 5e-6, request_overhead_s=0.05, source="CPU-like")


def main(n: int = 10_000) -> None:
    cases = [
        ("CPU-like fit, 128-seq engine", CPU_LIKE, EngineConfig(num_blocks=182, block_size_tokens=128,
                                                                 max_num_seqs=128)),
        ("Llama-3-8B on H100 SXM (roofline)", roofline_step_model("meta-llama/Meta-Llama-3-8B", "H100 SXM"),
         EngineConfig(num_blocks=30_000)),
    ]
    loads = [Traffic(concurrency=1), Traffic(concurrency=16), Traffic(request_rate=2.0), Traffic(request_rate=50.0)]
    spec = WorkloadSpec(512, 32, 0.5, 0, 1)
    print(f"{datetime.date.today()}: {n:,} requests, 512-token prompts (range 0.5), 32 output tokens\n")
    print("| step model | load | wall (s) | steps | simulated time (s) | TTFT p50 (s) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, model, config in cases:
        for traffic in loads:
            start = time.perf_counter()
            r = replay(spec, n, traffic, config, model, timeline=True)
            wall = time.perf_counter() - start
            print(f"| {name} | {traffic.label} | {wall:.2f} | {r.simulation.steps:,} | {r.simulation.duration_s:,.0f} "
                  f"| {r.row['ttft_p50_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
