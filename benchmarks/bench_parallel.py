"""Benchmark: the training-layout planner's search for a 70B model on 64 H100s (8 nodes × 8, NVLink 4 + NDR
InfiniBand), and the published runs beside the planner.

Target (issue 30): every layout of the 70B / 64-GPU space evaluated and ranked in under 2 s; Narayanan et al. 2021
Table 1 reproduced within 15 % of its teraFLOP/s per GPU.

    .venv/bin/python benchmarks/bench_parallel.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.plan.hardware import get_gpu
from core.plan.parallel import default_cluster, model_shape, plan_layouts
from core.plan.parallel.published import markdown_table, published_comparison


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    model, gpu = model_shape("meta-llama/Llama-2-70b-hf"), get_gpu("H100 SXM")
    cluster = default_cluster("H100 SXM", 64)
    times = []
    for _ in range(args.rounds):
        start = time.perf_counter()
        result = plan_layouts(model, gpu, cluster, seq_len=4096, global_batch=512, token_budget=2e12)
        times.append(time.perf_counter() - start)
    n = len(result.feasible) + len(result.infeasible)
    print(f"70B on 64 H100: {n:,} layouts ({len(result.feasible):,} feasible) in median "
          f"{statistics.median(times):.3f} s (max {max(times):.3f} s) over {args.rounds} rounds; target < 2 s")
    best = result.best
    print(f"fastest: {best.layout.label()}: {best.step.total_s:.2f} s/step, MFU {best.step.mfu:.1%}, "
          f"{best.memory.total_bytes / 1e9:.1f} GB per GPU, {best.training.time_s / 86400:.1f} days for 2T tokens")
    print(markdown_table(published_comparison()))


if __name__ == "__main__":
    main()
