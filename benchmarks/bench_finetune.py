"""LoRA / QLoRA / prompt-tuning fine-tuning: planned (core.finetune.plan_finetune) vs measured (real PEFT steps,
core.measure.measure_finetune_step) peak memory of SmolLM2-135M (the bundled decoder's architecture).

    python benchmarks/bench_finetune.py                       # the issue-13 grid on this machine
    python benchmarks/bench_finetune.py --seq 128 --json out.json --methods lora,qlora
    python benchmarks/bench_finetune.py --seq 128 --methods prompt-tuning --virtual-tokens 20,100

Target (issue 13): |error| ≤ 10 % on CPU for r ∈ {8, 64}, attention-only and all-linear, with and without
gradient checkpointing. Prints one line per setting as it finishes (a run takes minutes on a busy CPU).
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.measure import measure_finetune_step  # noqa: E402

MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--methods", default="lora")
    parser.add_argument("--ranks", default="8,64")
    parser.add_argument("--virtual-tokens", default="20,100", help="soft-prompt lengths for --methods prompt-tuning")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, torch {torch.__version__}, CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads", flush=True)
    grid = []
    for method in args.methods.split(","):
        if method == "prompt-tuning":  # no rank or targets: the soft prompt's length is the setting
            grid += [(method, int(v), f"{v} virtual", ckpt) for v in args.virtual_tokens.split(",")
                     for ckpt in (False, True)]
        else:
            grid += itertools.product([method], map(int, args.ranks.split(",")), ("attention", "all-linear"),
                                      (False, True))
    for method, rank, targets, ckpt in grid:
        if method == "prompt-tuning":
            r = measure_finetune_step(MODEL, method, None, None, args.seq, args.batch, ckpt, device=args.device,
                                      num_virtual_tokens=rank)
        else:
            r = measure_finetune_step(MODEL, method, rank, [targets], args.seq, args.batch, ckpt,
                                      device=args.device)
        soft = method == "prompt-tuning"
        row = {"method": method, "rank": None if soft else rank, "targets": targets, "checkpointing": ckpt,
               "trainable_params": r["trainable_params"], "measured_peak_bytes": r["measured_peak_bytes"],
               "predicted_peak_bytes": r["predicted_peak_bytes"], "error_pct": r["error_pct"],
               "device": r["device"], "seconds": r["seconds"]}
        rows.append(row)
        print(f"{method:5s} {'' if soft else f'r={rank:<3d} '}{targets:10s} ckpt={'yes' if ckpt else 'no ':3s} "
              f"measured {row['measured_peak_bytes'] / 1e6:8.1f} MB  "
              f"predicted {row['predicted_peak_bytes'] / 1e6:8.1f} MB"
              f"  error {row['error_pct']:+6.2f} %  ({row['seconds']:.0f} s)", flush=True)
        if args.json:
            args.json.write_text(json.dumps(rows, indent=2))
    worst = max(abs(r["error_pct"]) for r in rows)
    print(f"worst |error| {worst:.2f} % (target ≤ 10 %)")


if __name__ == "__main__":
    main()
