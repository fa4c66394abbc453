"""Tensor / pipeline / TP × PP training steps on this machine's gloo ranks: each rank's measured peak beside
core.distributed.parallel_predict and the training-layout planner (core.plan.parallel.stage_memory), the bytes
communicated per step beside the planner's formulas, and the loss gap to one process on the same batch; prints
the README's markdown table (worst rank per run).

    .venv/bin/python benchmarks/bench_distributed_parallel.py [preset]    (default: tiny-llama)

Settings: 32 tokens × 1 sequence per micro-batch, 2 micro-batches (the optimizer step's peak) and 256 tokens × 4
micro-batches (a backward peak, activations in flight).
"""
from __future__ import annotations

import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.distributed import report  # noqa: E402
from core.distributed.launcher import StepSpec, run_distributed_step  # noqa: E402
from core.distributed.presets import PRESETS  # noqa: E402

LAYOUTS = (("tp", 2), ("pp_gpipe", 2), ("pp_1f1b", 2), ("tp_pp", 4))
SETTINGS = ((32, 2), (256, 4))  # (tokens, micro-batches)


def main(preset: str) -> None:
    architecture = PRESETS[preset]["architecture"]
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, gloo, one thread per rank; MB = 10^6 bytes; worst "
          "rank shown\n")
    print("| layout | ranks | tokens × micro-batches | measured peak (MB) | predicted (MB) | error | planner (MB) | "
          "its error | sent per step (MB) | formula (MB) | error | max loss gap to 1 process | s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for seq, m in SETTINGS:
        singles = {b: run_distributed_step(StepSpec(architecture, "ddp", seq_len=seq, batch_size=b), 1)
                   .ranks[0]["losses"] for b in (1, m)}
        for strategy, world in LAYOUTS:
            run = run_distributed_step(StepSpec(architecture, strategy, seq_len=seq, microbatches=m), world)
            reference = singles[1 if strategy == "tp" else m]
            gap = max(abs(a - b) for r in run.ranks for a, b in zip(r["losses"], reference))
            rows = report.rank_rows(run)
            worst = max(rows, key=lambda r: abs(r["error (%)"]))
            planner = (worst["ZeRO paper formula (MB)"] - worst["measured peak (MB)"]) / worst["measured peak (MB)"]
            print(f"| {report.LABELS[strategy]} | {world} | {seq} × {m if strategy != 'tp' else 1} | "
                  f"{worst['measured peak (MB)']:.2f} | {worst['predicted peak (MB)']:.2f} | "
                  f"{worst['error (%)']:+.1f} % | {worst['ZeRO paper formula (MB)']:.2f} | {100 * planner:+.1f} % | "
                  f"{worst['sent per step (MB)']:.3f} | {worst['ZeRO volume (MB)']:.3f} | "
                  f"{worst['volume error (%)']:+.1f} % | {gap:.1e} | {run.duration_s:.1f} |", flush=True)


if __name__ == "__main__":
    main((sys.argv[1:] or ["tiny-llama"])[0])
