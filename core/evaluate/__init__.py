"""Evaluate: bundled and uploaded task sets run over prompt techniques and model variants, scored with kept libraries
(ROUGE via Google's ``rouge-score``; accuracy) and, for multiple choice and perplexity, by log-likelihood exactly as
lm-evaluation-harness scores them, with standard errors and paired tests.

- ``tasks``: the generation tasks (CC0, written for LLM Lab) and the solved examples their prompts use;
- ``metrics``: ROUGE-1/2/L F1, the label a completion gives, exact match;
- ``runner``: every setup over every item, with progress and Stop; the summary and its verdict;
- ``report``: tables, CSV/JSON; ``charts``: the summary as bars;
- ``task_files``: tasks in lm-eval's YAML + JSONL format (``core/data/lm_eval_tasks``), their prompts and requests;
- ``requests``: log-likelihood requests answered as lm-eval's HFLM answers them, locally or on an endpoint;
- ``loglik``: a task run, per-item metrics and means ± stderr; ``stats``: stderr, McNemar, paired bootstrap;
- ``compare``: the paired test of two runs and why their numbers differ; ``export``: lm-eval's results JSON,
  samples and CSV; ``uploads``: a team's own items; ``suite``: tasks on a variant end to end (``python -m
  core.evaluate``).
"""
from core.evaluate.compare import Difference, ItemDiff, SettingChange, paired, why_differ
from core.evaluate.export import items_csv, results_json, samples_rows, summary_csv, write_results
from core.evaluate.loglik import ItemResult, MetricValue, RunSettings, TaskResult, run_task
from core.evaluate.requests import Scored, ScoringStopped, encode_pair, endpoint_scorer, local_scorer
from core.evaluate.stats import PairedTest, bootstrap_stderr, mcnemar, mean_stderr, paired_bootstrap
from core.evaluate.suite import pick_tasks, run_tasks
from core.evaluate.task_files import (TASK_DIR, LmEvalTask, Request, TaskFileError, bundled_task, load_tasks,
                                      requests_of)
from core.evaluate.uploads import UploadError, task_from_items, task_from_yaml

__all__ = ["Difference", "ItemDiff", "ItemResult", "LmEvalTask", "MetricValue", "PairedTest", "Request",
           "RunSettings", "Scored", "ScoringStopped", "SettingChange", "TASK_DIR", "TaskFileError", "TaskResult",
           "UploadError", "bootstrap_stderr", "bundled_task", "encode_pair", "endpoint_scorer", "items_csv",
           "load_tasks", "local_scorer", "mcnemar", "mean_stderr", "paired", "paired_bootstrap", "pick_tasks",
           "requests_of", "results_json", "run_task", "run_tasks", "samples_rows", "summary_csv", "task_from_items",
           "task_from_yaml", "why_differ", "write_results"]
