"""vLLM's own serving benchmark (``vllm bench serve``, vllm/benchmarks/serve.py) run on the same server and
workload as LLM Lab's load test, so the two can be compared number for number.

It runs in the vLLM virtualenv (``.venv-vllm``, built by scripts/vllm_server.sh) as a separate process, through
scripts/vllm_bench_serve.py, with its random dataset (distinct random-token prompts of exactly the asked length,
``--ignore-eos``); the result's fields are vLLM's own (``median_ttft_ms``, ``output_throughput``, …).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from core.serve.endpoints import Endpoint
from core.common.paths import REPO_ROOT

ROOT = REPO_ROOT
RUNNER = ROOT / "scripts" / "vllm_bench_serve.py"
DEFAULT_VLLM_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"


class VllmBenchError(RuntimeError):
    """vLLM's benchmark could not run or failed; the message says why (with the end of its log)."""


@dataclass(frozen=True)
class VllmBenchResult:
    """The numbers of one ``vllm bench serve`` run, in its own units (ms, tokens/s, requests/s)."""

    completed: int
    failed: int
    duration_s: float
    total_input_tokens: int
    total_output_tokens: int
    median_ttft_ms: float
    p90_ttft_ms: float
    median_tpot_ms: float
    p90_tpot_ms: float
    median_e2el_ms: float
    output_throughput: float  # output tokens/s
    request_throughput: float  # requests/s
    request_goodput: float | None  # requests/s meeting --goodput SLOs (None: no SLO given)
    raw: dict

    def to_dict(self) -> dict:
        return asdict(self)


def bench_arguments(endpoint: Endpoint, tokenizer: str, prompt_tokens: int, output_tokens: int, num_prompts: int, *,
                    max_concurrency: int | None = None, request_rate: float = math.inf, burstiness: float = 1.0,
                    seed: int = 0, range_ratio: float = 0.0, prefix_tokens: int = 0,
                    goodput_ms: dict[str, float] | None = None) -> list[str]:
    """``vllm bench serve`` arguments for LLM Lab's workload (same lengths, rate, burstiness, cap, SLOs)."""
    args = ["--backend", "vllm", "--base-url", endpoint.server_root, "--endpoint", "/v1/completions",
            "--model", endpoint.model, "--tokenizer", str(tokenizer), "--dataset-name", "random",
            "--random-input-len", str(int(prompt_tokens)), "--random-output-len", str(int(output_tokens)),
            "--random-range-ratio", str(float(range_ratio)), "--random-prefix-len", str(int(prefix_tokens)),
            "--num-prompts", str(int(num_prompts)), "--request-rate", str(float(request_rate)),
            "--burstiness", str(float(burstiness)), "--seed", str(int(seed)), "--ignore-eos", "--disable-tqdm",
            "--percentile-metrics", "ttft,tpot,itl,e2el", "--metric-percentiles", "50,90,99"]
    if max_concurrency:
        args += ["--max-concurrency", str(int(max_concurrency))]
    if goodput_ms:
        args += ["--goodput", *(f"{k}:{v:g}" for k, v in goodput_ms.items())]
    return args


def run_vllm_bench(endpoint: Endpoint, tokenizer: str, prompt_tokens: int, output_tokens: int, num_prompts: int, *,
                   vllm_python: str | os.PathLike | None = None, timeout_s: float = 1800.0, **options
                   ) -> VllmBenchResult:
    """Run ``vllm bench serve`` against ``endpoint`` (``tokenizer``: the served model's tokenizer folder or hub id;
    options as ``bench_arguments``) and return its result."""
    python = Path(vllm_python or os.environ.get("LLM_LAB_VLLM_PYTHON", DEFAULT_VLLM_PYTHON))
    if not python.exists():
        raise VllmBenchError(f"No vLLM env at {python}: build it with scripts/vllm_server.sh install.")
    with tempfile.TemporaryDirectory(prefix="llm-lab-vllm-bench-") as tmp:
        out = Path(tmp) / "result.json"
        command = [str(python), str(RUNNER), str(out), *bench_arguments(endpoint, tokenizer, prompt_tokens,
                                                                         output_tokens, num_prompts, **options)]
        env = dict(os.environ, VLLM_TARGET_DEVICE=os.environ.get("VLLM_TARGET_DEVICE", "cpu"))
        if endpoint.api_key:
            env["OPENAI_API_KEY"] = endpoint.api_key
        try:
            done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise VllmBenchError(f"vllm bench serve did not finish in {timeout_s:.0f} s.") from None
        if done.returncode != 0 or not out.exists():
            log = (done.stdout + done.stderr)[-3000:]
            raise VllmBenchError(f"vllm bench serve failed (exit {done.returncode}):\n{log}")
        raw = json.loads(out.read_text())

    def num(key: str) -> float:
        value = raw.get(key)
        return float(value) if isinstance(value, (int, float)) else float("nan")

    goodput = raw.get("request_goodput")
    return VllmBenchResult(int(raw.get("completed", 0)), int(raw.get("failed", 0)), num("duration"),
                           int(raw.get("total_input_tokens", 0)), int(raw.get("total_output_tokens", 0)),
                           num("median_ttft_ms"), num("p90_ttft_ms"), num("median_tpot_ms"), num("p90_tpot_ms"),
                           num("median_e2el_ms"), num("output_throughput"), num("request_throughput"),
                           float(goodput) if isinstance(goodput, (int, float)) else None, raw)
