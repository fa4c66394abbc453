"""Benchmark: attention of a 256-token text through the bundled SmolLM2-135M on CPU, plus the model-view figure.

What the Attention page does for one text: `attention_maps` (tokenize, one forward pass with eager attention,
30 layers × 9 heads × 256 × 256 weights copied to numpy) and `model_view_figure` (270 thumbnails, max-pooled, one
heatmap trace). Also timed separately: the per-head statistics table and the figure's JSON (what Streamlit sends to
the browser). Model loading is excluded (cached by the page). Target (issue 5): extraction + model-view figure
< 3 s on CPU. Each round is timed on its own; the median and best rounds are reported, since other processes
on a shared machine slow single rounds down.

    .venv/bin/python benchmarks/bench_attention.py [--tokens 256] [--rounds 5] [--device cpu] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Idle OpenMP threads sleep instead of spinning. On a shared 2-core machine the default (spinning) made one
# 256-token forward pass take ~15 s instead of ~2 s at load average 7 (measured, 2 threads): each parallel region
# waits for a descheduled spinning thread. Must be set before torch loads its OpenMP runtime; override with
# OMP_WAIT_POLICY=ACTIVE to compare.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.run import attention, attention_charts
from core.run.models import BUNDLED_DECODER, load_model  # noqa: E402

TARGET_SECONDS = 3.0
PARAGRAPH = (
    "The teacher gave the student a book because she wanted him to learn about the history of the city. "
    "He read it every evening by the window, taking notes on the old bridges, the markets and the people "
    "who built them. "
)


def text_of_exactly(tokenizer, n_tokens: int) -> str:
    """A natural-language text that the tokenizer turns into exactly `n_tokens` tokens."""
    ids: list[int] = []
    while len(ids) < n_tokens + 64:
        ids += tokenizer(PARAGRAPH, add_special_tokens=False)["input_ids"]
    for cut in range(max(1, n_tokens - 16), n_tokens + 64):  # decode → re-encode may merge tokens at the cut
        text = tokenizer.decode(ids[:cut])
        if len(tokenizer(text)["input_ids"]) == n_tokens:
            return text
    raise RuntimeError(f"could not build a {n_tokens}-token text")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu (the issue's target) or auto / cuda")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    started = time.perf_counter()
    loaded = load_model(BUNDLED_DECODER, device=args.device, attn_implementation="eager")
    load_seconds = time.perf_counter() - started
    text = text_of_exactly(loaded.tokenizer, args.tokens)

    attention.attention_maps(loaded, text)  # warm-up (first-call allocations, thread pools)
    rounds = []
    for _ in range(args.rounds):
        t0 = time.perf_counter()
        result = attention.attention_maps(loaded, text)
        t1 = time.perf_counter()
        figure = attention_charts.model_view_figure(result.weights, selected=(0, 0))
        t2 = time.perf_counter()
        figure_json = figure.to_json()
        t3 = time.perf_counter()
        attention.head_statistics(result)
        t4 = time.perf_counter()
        rounds.append({"extract_s": t1 - t0, "figure_s": t2 - t1, "json_s": t3 - t2, "stats_s": t4 - t3,
                       "total_s": t2 - t0})

    def summary(key):
        values = [r[key] for r in rounds]
        return {"median": statistics.median(values), "best": min(values)}

    report = {
        "model": loaded.name,
        "device": str(loaded.device),
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "tokens": result.n_tokens,
        "shape": list(result.weights.shape),
        "weights_mb": result.weights.nbytes / 1e6,
        "figure_json_mb": len(figure_json) / 1e6,
        "load_s": load_seconds,
        "rounds": len(rounds),
        **{key: summary(key) for key in ("extract_s", "figure_s", "json_s", "stats_s", "total_s")},
        "target_s": TARGET_SECONDS,
    }
    report["meets_target"] = report["total_s"]["median"] < TARGET_SECONDS

    print(f"{report['model']} on {report['device']} ({report['torch_threads']} torch threads, "
          f"OMP_WAIT_POLICY={report['omp_wait_policy']}, {report['cpu_count']} CPUs, "
          f"load average {report['load_average_1min']:.1f})")
    print(f"{report['tokens']} tokens → weights {tuple(report['shape'])}, {report['weights_mb']:.0f} MB; "
          f"model-view JSON {report['figure_json_mb']:.1f} MB; model load {load_seconds:.1f} s (not counted)")
    for key, label in (("extract_s", "attention_maps (forward + copy)"), ("figure_s", "model_view_figure"),
                       ("total_s", "extraction + model view"), ("json_s", "figure → JSON (extra)"),
                       ("stats_s", "head_statistics (extra)")):
        print(f"  {label:34s} median {report[key]['median']:.3f} s   best {report[key]['best']:.3f} s")
    verdict = "meets" if report["meets_target"] else "MISSES"
    print(f"extraction + model-view figure: {report['total_s']['median']:.2f} s (median of {len(rounds)}) "
          f"→ {verdict} the < {TARGET_SECONDS:.0f} s target")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
