"""Log-likelihood runs written in lm-evaluation-harness's shapes, so a run here and an ``lm_eval`` run elsewhere load
in the same tools: the results JSON (``results[task]["acc,none"]``, ``"acc_stderr,none"``, ``configs``,
``n-samples``, ``n-shot``, ``versions``, ``higher_is_better``; lm-eval's ``EvaluationTracker.save_results_aggregated``)
and the per-item samples JSONL (``--log_samples``: ``doc_id``, ``doc``, ``arguments``, ``resps``), plus a CSV of
the per-item rows."""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path
from typing import Sequence

from core.evaluate.loglik import TaskResult

FILTER = "none"  # lm-eval's key suffix when a task has no filter pipeline
HIGHER_IS_BETTER = {"acc": True, "acc_norm": True, "word_perplexity": False, "byte_perplexity": False,
                    "bits_per_byte": False}


def _number(value: float):
    return "N/A" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def results_json(runs: Sequence[TaskResult], model_name: str = "", model_args: str = "") -> dict:
    """The results file ``lm_eval --output_path`` writes, for these runs."""
    results, configs, n_samples, n_shot, versions, better = {}, {}, {}, {}, {}, {}
    for run in runs:
        entry = {"name": run.task, "alias": run.task, "sample_len": len(run.items)}
        for m in run.metrics:
            entry[f"{m.name},{FILTER}"] = m.value
            entry[f"{m.name}_stderr,{FILTER}"] = _number(m.stderr)
        results[run.task] = entry
        config = {k: v for k, v in run.config.items() if isinstance(v, (str, int, float, bool, list, dict))}
        configs[run.task] = config
        n_samples[run.task] = {"original": run.total_items,
                               "effective": len(run.items)}
        shots = run.settings.num_fewshot
        n_shot[run.task] = int(config.get("num_fewshot", 0) if shots is None else shots)
        versions[run.task] = (config.get("metadata") or {}).get("version", 1.0)
        better[run.task] = {m.name: HIGHER_IS_BETTER.get(m.name, True) for m in run.metrics}
    settings = runs[0].settings.to_dict() if runs else {}
    return {"results": results, "group_subtasks": {t: [] for t in results}, "configs": configs,
            "versions": versions, "n-shot": n_shot, "higher_is_better": better, "n-samples": n_samples,
            "config": {"model": "llm-lab", "model_args": model_args, "model_name": model_name,
                       "batch_size": settings.get("batch_size"), "limit": settings.get("limit"),
                       "llm_lab_settings": settings},
            "date": time.time(), "model_name": model_name,
            "total_evaluation_time_seconds": str(sum(r.seconds for r in runs))}


def samples_rows(run: TaskResult) -> list[dict]:
    """The ``samples_<task>.jsonl`` rows of ``--log_samples``: per-choice log-likelihoods in ``resps``."""
    out = []
    for item in run.items:
        if run.output_type == "loglikelihood_rolling":
            arguments = {"gen_args_0": {"arg_0": item.choices[0]}}
            resps = [[str(item.logliks[0])]]
        else:
            arguments = {f"gen_args_{i}": {"arg_0": item.context, "arg_1": run.config.get("target_delimiter", " ")
                                           + c if run.output_type == "multiple_choice" else c}
                         for i, c in enumerate(item.choices)}
            resps = [[[str(ll), str(g)]] for ll, g in zip(item.logliks, item.is_greedy)]
        row = {"doc_id": item.doc_id, "doc": item.doc, "target": str(item.gold) if item.gold is not None else "",
               "arguments": arguments, "resps": resps, "filtered_resps": [r[0] for r in resps], "filter": FILTER,
               "metrics": [m.name for m in run.metrics]}
        row.update({k: v for k, v in item.metrics.items() if k in ("acc", "acc_norm")})
        if run.output_type == "loglikelihood_rolling":
            row.update({k: [item.metrics["loglik"], item.metrics["words" if k == "word_perplexity" else "bytes"]]
                        for k in ("word_perplexity", "byte_perplexity", "bits_per_byte")})
        out.append(row)
    return out


def write_results(runs: Sequence[TaskResult], folder: Path, *, log_samples: bool = False,
                  model_name: str = "", model_args: str = "") -> list[Path]:
    """``results_<date>.json`` (and with ``log_samples`` a ``samples_<task>_<date>.jsonl`` per task) in ``folder``,
    as lm_eval lays them out."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H-%M-%S", time.gmtime())
    written = [folder / f"results_{stamp}.json"]
    written[0].write_text(json.dumps(results_json(runs, model_name, model_args), indent=2, default=str),
                          encoding="utf-8")
    if log_samples:
        for run in runs:
            path = folder / f"samples_{run.task}_{stamp}.jsonl"
            path.write_text("".join(json.dumps(r, default=str) + "\n" for r in samples_rows(run)), encoding="utf-8")
            written.append(path)
    return written


def items_csv(runs: Sequence[TaskResult]) -> str:
    """One row per (run, item, choice): task, variant, doc id, choice, its log-likelihood, gold, the item's metrics."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "variant", "doc_id", "choice_index", "choice", "loglik", "is_gold", "acc", "acc_norm"])
    for run in runs:
        for item in run.items:
            for i, (choice, ll) in enumerate(zip(item.choices, item.logliks)):
                writer.writerow([run.task, run.settings.variant, item.doc_id, i, choice, f"{ll:.6f}",
                                 "" if item.gold is None else int(i == item.gold),
                                 item.metrics.get("acc", ""), item.metrics.get("acc_norm", "")])
    return buffer.getvalue()


def summary_csv(runs: Sequence[TaskResult]) -> str:
    """One row per (run, metric): value ± stderr."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["task", "variant", "metric", "value", "stderr", "items"])
    for run in runs:
        for m in run.metrics:
            writer.writerow([run.task, run.settings.variant, m.name, f"{m.value:.6g}", f"{m.stderr:.6g}",
                             len(run.items)])
    return buffer.getvalue()
