"""Evaluate's log-likelihood scoring on this machine: every bundled lm-eval task (core/data/lm_eval_tasks) on
SmolLM2-135M fp32 and with 4 layers removed (and any other --variants), the seconds each took, the paired test
between the first two variants per task, and the README's markdown table (value ± lm-eval's standard error).

    .venv/bin/python benchmarks/bench_evaluate.py [--variants fp32,layers-4] [--batch-size 16] [--limit N]

The issue's target: the 400 multiple-choice items × 2 variants in under 3 minutes on this machine.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.evaluate import load_tasks, paired, run_tasks  # noqa: E402
from core.evaluate.suite import default_load  # noqa: E402
from core.evaluate.variants import VARIANTS, variant_model  # noqa: E402


def main(variants: list[str], batch_size: int, limit: int | None) -> None:
    import torch

    tasks = list(load_tasks().values())
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), batch size {batch_size}\n")
    runs, seconds = {}, {}
    base = default_load(dtype="fp32")
    for key in variants:
        t0 = time.perf_counter()
        loaded = base if key == "fp32" else variant_model(key, lambda **_: base)
        build = time.perf_counter() - t0
        cpu0 = time.process_time()
        runs[key] = run_tasks(tasks, key, limit=limit, batch_size=batch_size, loaded=loaded)
        cpu = time.process_time() - cpu0
        mc = sum(r.seconds for r in runs[key] if r.output_type == "multiple_choice")
        items = sum(len(r.items) for r in runs[key] if r.output_type == "multiple_choice")
        seconds[key] = mc
        print(f"{key}: {items} multiple-choice items in {mc:.1f} s (+ {build:.1f} s to build the variant; all tasks "
              f"{cpu:.1f} s of CPU time, which other processes on the machine do not inflate); "
              + ", ".join(f"{r.task} {r.seconds:.1f} s" for r in runs[key]))
    print(f"\n{len(variants)} variants × the multiple-choice items: {sum(seconds.values()):.1f} s of scoring\n")
    head = " | ".join(VARIANTS[k].label for k in variants)
    print(f"| task (items) | metric | {head} |")
    print("|---|---|" + "---|" * len(variants))
    for i, task in enumerate(tasks):
        first = runs[variants[0]][i]
        for m in first.metrics:
            if m.name in ("acc_norm", "byte_perplexity"):
                continue
            cells = " | ".join(f"{runs[k][i].metric(m.name).value:.3f} ± {runs[k][i].metric(m.name).stderr:.3f}"
                               for k in variants)
            print(f"| {task.name} ({len(first.items)}) | {m.name} | {cells} |")
    if len(variants) > 1:
        print()
        for i, task in enumerate(tasks):
            a, b = runs[variants[0]][i], runs[variants[1]][i]
            metric = "acc" if a.output_type == "multiple_choice" else "loglik"
            print(f"{task.name}, {variants[0]} vs {variants[1]}: {paired(a, b, metric).sentence}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", default="fp32,layers-4")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    main(args.variants.split(","), args.batch_size, args.limit)
