"""A log-likelihood task run: every item's requests scored in batches, each item's metrics as lm-eval's
``ConfigurableTask.process_results`` computes them, and the task's means with their standard errors.

- multiple_choice: ``acc`` = the choice of highest summed log-likelihood is the gold one; ``acc_norm`` = the same
  after dividing each log-likelihood by its choice's length in characters (``len(choice)``, lm-eval's
  ``completion_len``; the byte-length variant is ``acc_bytes``).
- loglikelihood: ``acc`` = every continuation token was the greedy one (lm-eval's ``is_greedy``).
- loglikelihood_rolling: word / byte perplexity = exp(−Σ loglik / Σ words or bytes) and bits per byte =
  −Σ loglik / Σ bytes / ln 2 (lm-eval's ``weighted_perplexity``, ``bits_per_byte``; words are whitespace-split).

Standard errors: ``stats.mean_stderr`` for the means (as lm-eval), a bootstrap over items for the perplexities
(lm-eval reports "N/A" there).
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from core.evaluate.requests import Scorer, ScoringStopped
from core.evaluate.stats import bootstrap_stderr, mean, mean_stderr
from core.evaluate.task_files import LmEvalTask, choices_of, gold_index, requests_of, target_of

PERPLEXITY_METRICS = ("word_perplexity", "byte_perplexity", "bits_per_byte")


@dataclass(frozen=True)
class RunSettings:
    """What a run was scored with: what can make two runs of one task differ."""

    variant: str = "fp32"
    num_fewshot: int | None = None  # None: the task's own
    batch_size: int = 16
    limit: int | None = None
    chat_template: bool = False
    fewshot_as_multiturn: bool = False

    def to_dict(self) -> dict:
        return {"variant": self.variant, "num_fewshot": self.num_fewshot, "batch_size": self.batch_size,
                "limit": self.limit, "chat_template": self.chat_template,
                "fewshot_as_multiturn": self.fewshot_as_multiturn}


@dataclass(frozen=True)
class ItemResult:
    """One item: its prompt, its choices (the continuation, for loglikelihood / rolling), their log-likelihoods
    (nats), and its metrics."""

    doc_id: int
    context: str
    choices: tuple[str, ...]
    gold: int | None
    logliks: tuple[float, ...]
    is_greedy: tuple[bool | None, ...]
    metrics: dict = field(default_factory=dict)
    doc: dict = field(default_factory=dict)

    @property
    def predicted(self) -> int | None:
        return max(range(len(self.logliks)), key=lambda i: self.logliks[i]) if len(self.logliks) > 1 else None

    def to_dict(self) -> dict:
        return {"doc_id": self.doc_id, "context": self.context, "choices": list(self.choices), "gold": self.gold,
                "logliks": list(self.logliks), "is_greedy": list(self.is_greedy), **self.metrics}


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float
    stderr: float

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "stderr": self.stderr}


@dataclass(frozen=True)
class TaskResult:
    task: str
    output_type: str
    settings: RunSettings
    items: tuple[ItemResult, ...]
    metrics: tuple[MetricValue, ...]
    total_items: int  # the task's items before any limit
    seconds: float = 0.0
    stopped: bool = False
    config: dict = field(default_factory=dict, compare=False)

    def metric(self, name: str) -> MetricValue:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.task} has no metric {name!r}; it has {', '.join(m.name for m in self.metrics)}.")

    def to_dict(self) -> dict:
        return {"task": self.task, "output_type": self.output_type, "settings": self.settings.to_dict(),
                "metrics": [m.to_dict() for m in self.metrics], "items": len(self.items),
                "total_items": self.total_items, "seconds": self.seconds, "stopped": self.stopped}


def item_metrics(task: LmEvalTask, doc: dict, logliks: list[float], greedy: list) -> dict:
    """lm-eval's ``process_results`` for one item."""
    if task.output_type == "multiple_choice":
        choices = choices_of(task, doc)
        gold = gold_index(task, doc)
        best = max(range(len(logliks)), key=lambda i: logliks[i])
        norm = max(range(len(logliks)), key=lambda i: logliks[i] / float(len(choices[i])))
        by_bytes = max(range(len(logliks)), key=lambda i: logliks[i] / float(len(choices[i].encode("utf-8"))))
        return {"acc": float(best == gold), "acc_norm": float(norm == gold), "acc_bytes": float(by_bytes == gold)}
    if task.output_type == "loglikelihood":
        if greedy[0] is None:  # an endpoint's prompt log-probs carry no per-token argmax: acc would read 0
            raise ValueError(f"{task.name} is a loglikelihood task, scored by whether every token of the answer is "
                             "the model's top choice, and this scorer does not report that (an endpoint's prompt "
                             "log-probabilities give each token's probability only). Multiple-choice and "
                             "perplexity tasks run on it.")
        return {"acc": float(bool(greedy[0])), "loglik": logliks[0]}
    target = str(target_of(task, doc))
    return {"loglik": logliks[0], "words": len(re.split(r"\s+", target)), "bytes": len(target.encode("utf-8"))}


def _weighted(items: list[dict], unit: str, bits: bool = False) -> float:
    total = -sum(i["loglik"] for i in items) / sum(i[unit] for i in items)
    return total / math.log(2) if bits else math.exp(total)


def aggregate(task: LmEvalTask, items: list[ItemResult]) -> tuple[MetricValue, ...]:
    if not items:
        return ()
    if task.output_type == "loglikelihood_rolling":
        rows = [i.metrics for i in items]
        specs = {"word_perplexity": ("words", False), "byte_perplexity": ("bytes", False),
                 "bits_per_byte": ("bytes", True)}
        return tuple(MetricValue(name, _weighted(rows, unit, bits),
                                 bootstrap_stderr(lambda xs, u=unit, b=bits: _weighted(list(xs), u, b), rows, 500))
                     for name, (unit, bits) in specs.items())
    names = ("acc", "acc_norm") if task.output_type == "multiple_choice" else ("acc",)
    return tuple(MetricValue(n, mean([i.metrics[n] for i in items]), mean_stderr([i.metrics[n] for i in items]))
                 for n in names)


def run_task(task: LmEvalTask, scorer: Scorer, settings: RunSettings = RunSettings(), *,
             stop: threading.Event | None = None,
             on_item: Callable[[ItemResult], None] | None = None) -> TaskResult:
    """Score the task's first ``settings.limit`` items (all when None) in one batched pass of the scorer; a Stop
    keeps the items whose every request was answered (``stopped``)."""
    if not task.is_loglikelihood:
        raise ValueError(f"{task.name} is a {task.output_type} task: log-likelihood scoring needs multiple_choice, "
                         "loglikelihood or loglikelihood_rolling.")
    docs = task.docs if settings.limit is None else task.docs[:max(1, int(settings.limit))]
    per_doc = [requests_of(task, d, settings.num_fewshot) for d in docs]
    flat = [r for reqs in per_doc for r in reqs]
    started = time.perf_counter()
    stopped = False
    try:
        answers = dict(enumerate(scorer(flat)))
    except ScoringStopped as exc:
        answers, stopped = exc.done, True
    items, index = [], 0
    for doc_id, (doc, reqs) in enumerate(zip(docs, per_doc)):
        span = range(index, index + len(reqs))
        index += len(reqs)
        if not all(i in answers for i in span):
            continue
        logliks = [answers[i].loglik for i in span]
        greedy = [answers[i].is_greedy for i in span]
        mc = task.output_type == "multiple_choice"
        item = ItemResult(doc_id, reqs[0].context, tuple(choices_of(task, doc)) if mc else (reqs[0].continuation,),
                          gold_index(task, doc) if mc else None, tuple(logliks), tuple(greedy),
                          item_metrics(task, doc, logliks, greedy), doc)
        items.append(item)
        if on_item is not None:
            on_item(item)
    return TaskResult(task.name, task.output_type, settings, tuple(items), aggregate(task, items), len(task.docs),
                      time.perf_counter() - started, stopped, task.config)
