"""Distributed training step on this machine: each rank's measured peak beside the prediction and the ZeRO paper's
formula, and the bytes sent per step beside the ZeRO volumes, for every strategy at 2 and 4 ranks; prints the
README's markdown table.

    .venv/bin/python benchmarks/bench_distributed.py [--ranks 2,4] [preset ...]    (default: tiny-llama tiny-llama-tied)

Settings: tiny-llama at 32 tokens × 1, tiny-llama-tied at 128 tokens × 2 (its peak is the loss's backward);
presets from core.distributed.presets (smollm2-135m takes minutes per run on 2 cores).
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
from core.distributed.strategies import STRATEGIES  # noqa: E402
from core.measure.trackers import cpu_kernels  # noqa: E402

SETTINGS = {"tiny-llama": (32, 1), "tiny-llama-tied": (128, 2), "smollm2-135m": (64, 1)}


def main(presets: list[str], ranks: tuple[int, ...] = (2, 4)) -> None:
    kernels = cpu_kernels()
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, {kernels['aten_cpu_capability']} kernels, gloo, "
          "one thread per rank; MB = 10^6 bytes; worst rank shown\n")
    print("| model | tokens × batch | strategy | ranks | measured peak (MB) | predicted (MB) | error | ZeRO formula "
          "(MB) | its error | sent per step (MB) | ZeRO volume (MB) | error | s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in presets:
        seq, batch = SETTINGS.get(name, (32, 1))
        for world in ranks:
            for strategy in STRATEGIES:
                run = run_distributed_step(StepSpec(PRESETS[name]["architecture"], strategy, seq_len=seq,
                                                    batch_size=batch), world)
                rows = report.rank_rows(run)
                worst = max(rows, key=lambda r: abs(r["error (%)"]))
                paper = (worst["ZeRO paper formula (MB)"] - worst["measured peak (MB)"]) / worst["measured peak (MB)"]
                print(f"| {name} | {seq} × {batch} | {strategy} | {world} | {worst['measured peak (MB)']:.2f} | "
                      f"{worst['predicted peak (MB)']:.2f} | {worst['error (%)']:+.1f} % | "
                      f"{worst['ZeRO paper formula (MB)']:.2f} | {100 * paper:+.1f} % | "
                      f"{worst['sent per step (MB)']:.2f} | {worst['ZeRO volume (MB)']:.2f} | "
                      f"{worst['volume error (%)']:+.1f} % | {run.duration_s:.1f} |", flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    ranks = (2, 4)
    if args[:1] == ["--ranks"]:
        ranks, args = tuple(int(r) for r in args[1].split(",")), args[2:]
    main(args or ["tiny-llama", "tiny-llama-tied"], ranks)
