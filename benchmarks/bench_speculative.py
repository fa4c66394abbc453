"""Benchmark: speculative decoding vs plain greedy decoding with the bundled SmolLM2-135M, on a prompt whose answer
copies the prompt (prompt lookup should help) and an open-ended one (it should not).

All methods run greedy in one process, interleaved per round (plain, lookup, assisted, plain, ...) so they see the
same machine load; the ratio t_plain / t_method of medians is the speed-up. Also reported: acceptance rate, new
tokens per target forward pass, and whether the tokens equal plain greedy decoding's (they must).

    .venv/bin/python benchmarks/bench_speculative.py [--tokens 48] [--rounds 3] [--draft-layers 28] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.run.models import load_model  # noqa: E402
from core.run.speculative import DEFAULT_DRAFT_LAYERS, METHOD_LABELS, PROMPTS, run_speculative, self_draft  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--draft-layers", type=int, default=DEFAULT_DRAFT_LAYERS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    loaded = load_model()
    draft = self_draft(loaded, args.draft_layers)
    rows = []
    for name, prompt in PROMPTS.items():
        times: dict[str, list[float]] = {m: [] for m in METHOD_LABELS}
        last = {}
        for _ in range(args.rounds):
            for method in METHOD_LABELS:
                run = run_speculative(loaded, prompt, method, args.tokens, draft=draft, use_chat_template=True)
                times[method].append(run.total_s)
                last[method] = run
        base = statistics.median(times["plain"])
        for method, run in last.items():
            median = statistics.median(times[method])
            rows.append({
                "prompt": name, "method": method, "new_tokens": run.new_tokens,
                "target_forward_passes": run.target_forward_passes,
                "tokens_per_forward": round(run.tokens_per_forward, 2),
                "acceptance_rate": None if run.acceptance_rate is None else round(run.acceptance_rate, 3),
                "median_s": round(median, 3), "speedup": round(base / median, 2),
                "identical_to_plain": run.token_ids == last["plain"].token_ids,
            })
            print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"tokens": args.tokens, "rounds": args.rounds,
                                         "draft_layers": args.draft_layers, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
