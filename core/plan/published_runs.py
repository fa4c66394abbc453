"""Published batch-1 decode measurements (benchmarks/published_decode.json) next to the serving planner's prediction
and bandwidth ceiling for the same model, weight format and GPU: the README table, and a physics check (no measured
number may beat the ceiling: 100 % of the GPU's datasheet bandwidth spent on the weights and KV cache)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from core.common.paths import REPO_ROOT
from core.common.units import error_pct
from core.plan.serving import serving_plan


DATA = REPO_ROOT / "benchmarks" / "published_decode.json"


def load_runs(path: Path = DATA) -> list[dict[str, Any]]:
    """The published runs (engine, gpu, model, weight_format, prompt/output tokens, measured tokens/s, source)."""
    return json.loads(Path(path).read_text())["runs"]


def comparison_rows(runs: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Per run: predicted batch-1 decode tokens/s (default efficiency), the ceiling, implied efficiency, error %."""
    out = []
    for run in runs if runs is not None else load_runs():
        plan = serving_plan(run["model"], run["gpu"], weight_format=run["weight_format"],
                            prompt_tokens=run["prompt_tokens"], output_tokens=run["output_tokens"], concurrency=1)
        measured = float(run["measured_tokens_per_s"])
        out.append({**run, "predicted_tokens_per_s": plan.decode_tokens_per_s,
                    "ceiling_tokens_per_s": plan.decode_ceiling_tokens_per_s,
                    "implied_bandwidth_efficiency": measured / plan.decode_ceiling_tokens_per_s,
                    "error_pct": error_pct(plan.decode_tokens_per_s, measured)})
    return out


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The README table."""
    lines = ["| GPU | engine | model (as published) | measured tok/s | planner tok/s | error | ceiling tok/s | "
             "implied efficiency | source |", "|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['gpu']} | {r['engine']} | {r['model_as_published']} | {r['measured_tokens_per_s']:.1f} | "
                     f"{r['predicted_tokens_per_s']:.1f} | {r['error_pct']:+.0f} % | {r['ceiling_tokens_per_s']:.1f} | "
                     f"{r['implied_bandwidth_efficiency'] * 100:.0f} % | [link]({r['source']}) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(markdown_table(comparison_rows()))
