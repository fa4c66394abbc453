"""Benchmark: the serving planner's prediction for this machine vs a measured run of the bundled SmolLM2-135M.

Per round: a fresh device microbenchmark (bandwidth, matmul FLOP/s, per-operator dispatch; core.measure.device_bench), then
batched ``generate`` at concurrency 1, 2, 4, 8 (random prompts, greedy, fixed lengths), each next to the planner's
prediction made from the microbenchmark taken moments before (so both see the same machine load). Medians over rounds.

Targets (issue 12): predicted batch-1 decode tokens/s within 25 % of the measured value; the knee direction right
(where the prediction says aggregate tokens/s rises with concurrency, the measurement rises too).

    .venv/bin/python benchmarks/bench_serving.py [--rounds 3] [--prompt 64] [--output 16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_generation.py: spin-waiting distorts shared CPUs
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.measure import device_bench
from core.run import models

LEVELS = (1, 2, 4, 8)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--prompt", type=int, default=64)
    ap.add_argument("--output", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    loaded = models.load_model(None, dtype="fp32", device=args.device)
    ops = device_bench.count_ops_per_step(loaded.model)
    device_bench.measure_generation(loaded, 1, args.prompt, 2)  # warm-up
    per_round = []
    profiles = []
    overheads = []
    for r in range(args.rounds):
        measured, predicted = [], []
        for b in LEVELS:
            profile = device_bench.measure_device(args.device, refresh=True, model=models.BUNDLED_DECODER)
            overhead = device_bench.measure_step_overhead(models.BUNDLED_DECODER, b)
            decode_flops = device_bench.measure_decode_matmul_flops(models.BUNDLED_DECODER, b, args.device)
            profiles.append(profile)
            overheads.append(overhead)
            measured.append(device_bench.measure_generation(loaded, b, args.prompt, args.output, seed=r))
            predicted.append(device_bench.predict_generation(models.BUNDLED_DECODER, profile, b, args.prompt,
                                                             args.output, overhead,
                                                             decode_flops_per_s=decode_flops))
        per_round.append(device_bench.compare_rows(measured, predicted))
        print(f"round {r + 1}: " + ", ".join(
            f"b={row['concurrency']} meas {row['measured_tokens_per_s']:.1f} pred {row['predicted_tokens_per_s']:.1f}"
            for row in per_round[-1]), flush=True)
    rows = []
    for i, b in enumerate(LEVELS):
        row = {"concurrency": b}
        for key in per_round[0][i]:
            if key != "concurrency":
                row[key] = statistics.median(rr[i][key] for rr in per_round)
        rows.append(row)
    p = profiles[-1]
    print(f"\n{p.device}: {p.name}, {p.threads} thread(s); bandwidth {statistics.median(x.bandwidth_bytes_per_s for x in profiles) / 1e9:.2f} GB/s, "
          f"matmul {statistics.median(x.matmul_flops_per_s for x in profiles) / 1e9:.1f} GFLOP/s, "
          f"tiny matmul {statistics.median(x.dispatch_s for x in profiles) * 1e6:.1f} us, {ops} ops/decode step, "
          f"step overhead (tiny twin) {statistics.median(overheads) * 1e3:.1f} ms")
    print(f"{'b':>3} {'TTFT meas ms':>13} {'pred':>8} {'err%':>6} {'TPOT meas ms':>13} {'pred':>8} {'err%':>6} "
          f"{'tok/s meas':>11} {'pred':>8} {'err%':>6}")
    for r in rows:
        print(f"{r['concurrency']:>3} {r['measured_ttft_s'] * 1e3:>13.1f} {r['predicted_ttft_s'] * 1e3:>8.1f} "
              f"{r['error_ttft_s_pct']:>+6.0f} {r['measured_tpot_s'] * 1e3:>13.1f} {r['predicted_tpot_s'] * 1e3:>8.1f} "
              f"{r['error_tpot_s_pct']:>+6.0f} {r['measured_tokens_per_s']:>11.1f} {r['predicted_tokens_per_s']:>8.1f} "
              f"{r['error_tokens_per_s_pct']:>+6.0f}")
    batch1 = abs(rows[0]["error_tokens_per_s_pct"])
    knee = device_bench.knee_direction_ok(rows)
    print(f"\nbatch-1 decode error {batch1:.0f}% (target ≤ 25%): {'PASS' if batch1 <= 25 else 'MISS'}; "
          f"knee direction: {'PASS' if knee else 'MISS'}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "ops_per_step": ops, "step_overhead_s": statistics.median(overheads),
                                               "profile": profiles[-1].to_dict()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
