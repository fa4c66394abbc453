"""Optimize on this machine: the bundled SmolLM2 pruned per method and sparsity, a prune-then-distil run, and the
line-up of fp32 / int8 / NF4 / pruned / distilled; prints the README's markdown tables.

    .venv/bin/python benchmarks/bench_optimize.py [--steps 30] [--remove 6]

Speed is one greedy generation of 32 tokens per variant on this machine; compare rows of one run only.
"""
from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.run.models import load_model  # noqa: E402
from core.optimize import distillation, variants  # noqa: E402


def _row(r: dict, extra: str = "") -> str:
    zeros = "–" if r["sparsity_pct"] is None else f"{r['sparsity_pct']:.1f}"
    return (f"| {r['variant']} | {r['weight_bytes'] / 1e6:.1f} | {r['layers']} | {zeros} | {r['tokens_per_s']:.1f} | "
            f"{r['perplexity']:.2f} | {r['kl_mean_nats']:.3f} | {r['top1_agreement']:.1f} |{extra}")


def main(steps: int, remove: int) -> None:
    base = load_model(None, dtype="fp32", device="cpu")
    print(f"{datetime.date.today()}, {os.cpu_count()} cores, SmolLM2-135M-Instruct fp32 on CPU\n")
    rows = variants.pruning_study(base, ["magnitude", "wanda", "2:4-magnitude", "2:4-wanda", "remove-layers"],
                                  [0.1, 0.3, 0.5, 0.7], 4)
    print("| pruned variant | weights (MB) | layers | zeros (%) | tok/s | perplexity | KL (nats) | top-1 (%) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(_row(r))
    result = distillation.prune_and_distil(base, remove=remove, steps=steps)
    print(f"\nDistillation: layers {result.removed} removed ({result.teacher_layers} → {result.student_layers}), "
          f"{len(result.losses)} steps × {result.seq_len} tokens, T = {result.temperature:g}, "
          f"lr {result.learning_rate:g}, {result.seconds:.0f} s; loss {result.losses[0]:.3f} → {result.losses[-1]:.3f}")
    print("| model | perplexity | KL to teacher (nats) | top-1 (%) |\n|---|---|---|---|")
    print(f"| teacher | {result.teacher['perplexity']:.2f} | 0 | 100 |")
    for name, q in (("pruned student", result.pruned), ("distilled student", result.distilled)):
        print(f"| {name} | {q['perplexity']:.2f} | {q['kl_mean_nats']:.3f} | {100 * q['top1_agreement']:.1f} |")
    print(f"KL recovered: {result.kl_recovered_pct:.1f} %\n")
    line = variants.lineup(base, variants.LINEUP_KINDS, pruned={"layers": remove},
                           distilled_model=result.student, task_limit=0)
    print("| variant | weights (MB) | layers | zeros (%) | tok/s | perplexity | KL (nats) | top-1 (%) | "
          "review sentiment few-shot (%) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in line:
        if "reason" in r:
            print(f"| {r['variant']} | {r['reason']} |")
        else:
            print(_row(r, f" {r['task_score']:.0f} |"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=distillation.DEFAULT_STEPS)
    parser.add_argument("--remove", type=int, default=distillation.DEFAULT_REMOVE)
    args = parser.parse_args()
    main(args.steps, args.remove)
