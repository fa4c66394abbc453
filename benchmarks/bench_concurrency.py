"""Benchmark: many sessions generating at once — aggregate tokens/s and each session's wait and latency.

N sessions (threads, as Streamlit runs each browser session's script in its own thread) submit at the same moment a
greedy generation of exactly ``--tokens`` new tokens each (different prompts), with the bundled SmolLM2, for
N = 1, 2, 4, 8. Modes, each measured in the same run on the same machine:

* ``lock``      — before: ``model.generate()`` behind one process-wide ``threading.Lock`` (what the app did).
* ``queue``     — after: the same runs taking turns in ``core.common.scheduler.GENERATION_QUEUE`` (first come, first served).
* ``batch``     — one padded ``model.generate()`` of all N prompts at once (static batching): what batching could
                  give on this device, for the decision below.
* ``continuous``— transformers' continuous batching (``core.run.batch_serving``) with one request per session; run
                  with ``--continuous`` (default on CUDA, where the app uses it).

Per session: wait = submission → start of its own run; latency = submission → last token. Aggregate tokens/s =
all sessions' new tokens / wall time from submission until the last session finished.

    .venv/bin/python benchmarks/bench_concurrency.py [--sessions 1 2 4 8] [--tokens 32] [--continuous] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_generation.py: same OpenMP behaviour in every thread
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from core.run.models import load_model  # noqa: E402
from core.common.scheduler import GENERATION_QUEUE  # noqa: E402

PROMPTS = [
    "Write a short story about a lighthouse keeper.", "Explain why the sky is blue.", "List three uses of copper.",
    "Describe a busy market in the morning.", "What makes a good team meeting?", "Summarise the water cycle.",
    "Give advice to a new gardener.", "Why do cats purr?",
]


def _kwargs(loaded, tokens: int) -> dict:
    return {"max_new_tokens": tokens, "min_new_tokens": tokens, "do_sample": False,
            "pad_token_id": loaded.tokenizer.pad_token_id}


def _sync(loaded) -> None:
    if loaded.device.type == "cuda":
        torch.cuda.synchronize()


def _one(loaded, prompt: str, tokens: int) -> int:
    ids = loaded.tokenizer(prompt, return_tensors="pt")["input_ids"].to(loaded.device)
    with torch.inference_mode():
        out = loaded.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **_kwargs(loaded, tokens))
    _sync(loaded)
    return int(out.shape[1] - ids.shape[1])


def _concurrent(n: int, session) -> dict:
    """Start n sessions at once; each returns (new tokens, start time); collect waits and latencies."""
    barrier = threading.Barrier(n + 1)
    rows: list[tuple[int, float, float]] = []
    lock = threading.Lock()
    intra_op = torch.get_num_threads()

    def run(i: int) -> None:
        torch.set_num_threads(intra_op)  # a new thread does not inherit the caller's team size
        barrier.wait()
        submitted = time.perf_counter()
        new_tokens, started = session(i)
        done = time.perf_counter()
        with lock:
            rows.append((new_tokens, started - submitted, done - submitted))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    barrier.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    waits, latencies = [r[1] for r in rows], [r[2] for r in rows]
    return {"sessions": n, "tokens": sum(r[0] for r in rows), "wall_s": wall,
            "aggregate_tokens_per_s": sum(r[0] for r in rows) / wall,
            "mean_wait_s": statistics.mean(waits), "max_wait_s": max(waits),
            "mean_latency_s": statistics.mean(latencies), "max_latency_s": max(latencies)}


_SERVER = []


def _continuous_server(loaded):
    from core.run.batch_serving import ContinuousBatchServer

    if not _SERVER:  # on a CPU too, to measure whether it would help there
        _SERVER.append(ContinuousBatchServer(loaded, max_new_tokens=4096, require_cuda=False))
    return _SERVER[0]


def measure(loaded, mode: str, n: int, tokens: int) -> dict:
    plain_lock = threading.Lock()

    def locked(i):
        with plain_lock:
            started = time.perf_counter()
            return _one(loaded, PROMPTS[i % len(PROMPTS)], tokens), started

    def queued(i):
        with GENERATION_QUEUE.admit("benchmark"):
            started = time.perf_counter()
            return _one(loaded, PROMPTS[i % len(PROMPTS)], tokens), started

    def continuous(i):
        ids = loaded.tokenizer(PROMPTS[i % len(PROMPTS)])["input_ids"]
        submitted = time.perf_counter()
        served = _continuous_server(loaded).generate(ids, tokens, ignore_eos=True)
        return len(served.token_ids), submitted + served.queue_wait_s

    if mode == "batch":  # one call for all sessions: every session starts at once and ends with the batch
        tok = loaded.tokenizer
        tok.padding_side = "left"
        batch = tok([PROMPTS[i % len(PROMPTS)] for i in range(n)], return_tensors="pt", padding=True).to(loaded.device)
        began = time.perf_counter()
        with torch.inference_mode():
            out = loaded.model.generate(**batch, **_kwargs(loaded, tokens))
        _sync(loaded)
        wall = time.perf_counter() - began
        new = n * int(out.shape[1] - batch["input_ids"].shape[1])
        return {"sessions": n, "tokens": new, "wall_s": wall, "aggregate_tokens_per_s": new / wall,
                "mean_wait_s": 0.0, "max_wait_s": 0.0, "mean_latency_s": wall, "max_latency_s": wall}
    session = {"lock": locked, "queue": queued, "continuous": continuous}[mode]
    return _concurrent(n, session)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--continuous", action="store_true", help="also measure continuous batching (default on CUDA)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    loaded = load_model(device=args.device)
    modes = ["lock", "queue", "batch"]
    if args.continuous or loaded.device.type == "cuda":
        modes.append("continuous")
    _one(loaded, PROMPTS[0], 4)  # warm-up
    if "continuous" in modes:  # starting the manager (cache allocation, its thread) is one-time, not per request
        started = time.perf_counter()
        _continuous_server(loaded).generate(loaded.tokenizer(PROMPTS[0])["input_ids"], 4)
        print(f"continuous batching manager started and warmed up in {time.perf_counter() - started:.1f} s")
    rows = []
    for n in args.sessions:
        for mode in modes:
            row = {"mode": mode} | measure(loaded, mode, n, args.tokens)
            rows.append(row)
            print(f"{mode:>10} n={n}: {row['aggregate_tokens_per_s']:7.1f} tokens/s aggregate · wait mean "
                  f"{row['mean_wait_s']:6.1f} s max {row['max_wait_s']:6.1f} s · latency mean "
                  f"{row['mean_latency_s']:6.1f} s max {row['max_latency_s']:6.1f} s", flush=True)
    base = {r["sessions"]: r["aggregate_tokens_per_s"] for r in rows if r["mode"] == "lock"}
    for row in rows:
        row["ratio_vs_lock"] = row["aggregate_tokens_per_s"] / base[row["sessions"]]
    summary = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.processor() or platform.machine()}, "
               f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads",
               "device": str(loaded.device), "model": loaded.name, "tokens_per_session": args.tokens, "rows": rows}
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}))
    if _SERVER:
        _SERVER[0].close()
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
