"""Benchmark: the Generate page's instrumented streaming vs a plain ``model.generate()``.

Same model, prompt, settings and seed in one process, runs interleaved (plain, instrumented, plain, ...) so both see
the same machine load. tokens/s = generated tokens / wall time of the whole call (prefill included); the instrumented
run is timed until its last event has been consumed, i.e. including the per-token probabilities and top alternatives
that the page shows. Target (issue 4): ratio instrumented / plain ≥ 0.9 on CPU with the bundled SmolLM2-135M.

    .venv/bin/python benchmarks/bench_generation.py [--tokens 64] [--rounds 5] [--mode sampling] [--json out.json]
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
# On a shared, oversubscribed CPU, OpenMP's default spin-waiting makes torch ops called from the *main* thread several
# times slower than the same ops called from any other thread (measured: 12 s vs 4 s for 16 tokens at load 8 on
# 2 cores). Both paths below must run under the same OpenMP behaviour, so wait passively (set before torch loads).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.run.generation import generate_kwargs, prepare_generation, run_generation  # noqa: E402
from core.run.models import load_model  # noqa: E402
from core.run.sampling import DecodingSettings  # noqa: E402

PROMPT = "Write a short story about a lighthouse keeper who finds a message in a bottle."


def plain_generate(loaded, prompt, settings) -> tuple[int, float]:
    prepared, checked = prepare_generation(loaded, prompt, settings, use_chat_template=True)
    inputs = prepared.input_ids.to(loaded.device)
    started = time.perf_counter()
    torch.manual_seed(checked.settings.seed)
    sequences = loaded.model.generate(
        input_ids=inputs, attention_mask=torch.ones_like(inputs), **generate_kwargs(loaded, checked.settings)
    )
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()
    return sequences.shape[1] - inputs.shape[1], time.perf_counter() - started


def instrumented_generate(loaded, prompt, settings) -> tuple[int, float]:
    started = time.perf_counter()
    result = run_generation(loaded, prompt, settings, use_chat_template=True, top_n=10)
    return result.new_tokens, time.perf_counter() - started


def instrumentation_ms_per_token(loaded, prompt, settings, repeats: int = 200) -> float:
    """Time only the per-token bookkeeping (three softmaxes, top-k lists, chosen-token numbers) on real logits, so
    the cost can be read without the machine's timing noise."""
    from core.run.generation import stream_generation
    from core.run.sampling import filter_warpers, temperature_warpers

    stream = stream_generation(loaded, prompt, settings, use_chat_template=True)
    ids = stream.prepared.input_ids.to(loaded.device)
    with torch.no_grad():
        logits = loaded.model(ids).logits[:, -1].float()
    tempered = temperature_warpers(stream.settings)(ids, logits)
    stages = {"raw": logits[0], "temperature": tempered[0], "filtered": filter_warpers(stream.settings)(ids, tempered)[0]}
    token = int(torch.argmax(logits))
    started = time.perf_counter()
    for _ in range(repeats):
        stream._measure(token, stages)
    return (time.perf_counter() - started) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model name (default: the bundled SmolLM2-135M-Instruct)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per run")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each kind (after one warm-up each)")
    parser.add_argument("--mode", choices=["greedy", "sampling"], default="sampling")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args()

    loaded = load_model(args.model, device=args.device)
    settings = DecodingSettings.for_mode(
        args.mode, temperature=0.8, top_k=50, top_p=0.95, max_new_tokens=args.tokens, seed=1234
    )
    print(f"model {loaded.name} on {loaded.device} ({loaded.dtype_name}), torch threads {torch.get_num_threads()}")
    print(f"settings {settings.to_dict()}")
    plain_generate(loaded, PROMPT, settings)  # warm-up
    instrumented_generate(loaded, PROMPT, settings)

    plain_rates, instrumented_rates, ratios = [], [], []
    for round_index in range(args.rounds):
        n_plain, t_plain = plain_generate(loaded, PROMPT, settings)
        n_inst, t_inst = instrumented_generate(loaded, PROMPT, settings)
        plain_rates.append(n_plain / t_plain)
        instrumented_rates.append(n_inst / t_inst)
        ratios.append(instrumented_rates[-1] / plain_rates[-1])
        print(f"round {round_index + 1}: plain {n_plain} tok in {t_plain:.3f} s = {plain_rates[-1]:.1f} tok/s | "
              f"instrumented {n_inst} tok in {t_inst:.3f} s = {instrumented_rates[-1]:.1f} tok/s | "
              f"ratio {ratios[-1]:.3f}")

    per_step_ms = instrumentation_ms_per_token(loaded, PROMPT, settings)
    summary = {
        "model": loaded.name, "device": str(loaded.device), "dtype": loaded.dtype_name, "mode": args.mode,
        "new_tokens": args.tokens, "rounds": args.rounds,
        "plain_tokens_per_s": statistics.median(plain_rates),
        "instrumented_tokens_per_s": statistics.median(instrumented_rates),
        "ratio_median": statistics.median(ratios),
        "instrumentation_ms_per_token": per_step_ms,
        "plain_ms_per_token": 1000 / statistics.median(plain_rates),
    }
    print(f"\nplain model.generate():        {summary['plain_tokens_per_s']:.1f} tokens/s (median)")
    print(f"instrumented streaming:        {summary['instrumented_tokens_per_s']:.1f} tokens/s (median)")
    print(f"ratio instrumented / plain:    {summary['ratio_median']:.3f} (target ≥ 0.9)")
    print(f"instrumentation compute:       {per_step_ms:.2f} ms/token vs {summary['plain_ms_per_token']:.1f} ms/token "
          f"for a plain step ({per_step_ms / summary['plain_ms_per_token']:.1%}; noise-free estimate of the cost)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
