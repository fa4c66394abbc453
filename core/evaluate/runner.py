"""Run every setup (a prompt technique on a model variant) over a task's items, greedy, and score each completion."""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from core.common.user_text import counted
from core.evaluate.metrics import ROUGE_TYPES, exact_match, first_line, predicted_label, rouge
from core.evaluate.tasks import EvalTask, eval_task
from core.run.prompts import SHOT_COUNTS, ZERO_SHOT_COT_TRIGGER, build_icl_prompt

COT = "zero-shot-cot"
# zero-shot, one-shot, few-shot (3 solved examples; Brown et al. 2020, §2), and zero-shot chain-of-thought
TECHNIQUES = tuple(SHOT_COUNTS) + (COT,)
COT_REASONING_TOKENS = 48
Generate = Callable[[str, int], str]  # (prompt, max_new_tokens) → completion


class EvaluationInputError(ValueError):
    """Bad evaluation input; the message is user-facing."""


@dataclass(frozen=True)
class Setup:
    """A prompt technique on a model variant; ``generate`` returns the completion of a prompt."""

    model: str
    technique: str
    generate: Generate

    @property
    def label(self) -> str:
        return f"{self.model} · {self.technique}"


@dataclass
class EvalRun:
    task: str
    rows: list[dict] = field(default_factory=list)  # one per (setup, item)
    stopped: bool = False
    seconds: float = 0.0


def local_generator(loaded) -> Generate:
    """Greedy completions from a loaded local model (core.run.models.load_model), in the model-work queue."""
    from core.run.generation import generate_text

    return lambda prompt, max_new_tokens: generate_text(loaded, prompt, max_new_tokens=max_new_tokens)


def cot_answer(task: EvalTask, query: str, generate: Generate) -> tuple[str, str, str]:
    """Zero-shot chain-of-thought in Kojima et al.'s two stages (2022, "Large Language Models are Zero-Shot
    Reasoners", §3, Fig. 2): the zero-shot prompt with "Let's think step by step." draws a reasoning (its first
    paragraph kept), then the prompt, the reasoning and an answer cue ("Therefore, the answer (positive or negative)
    is") draw the answer. Returns (reasoning, answer completion, the second prompt)."""
    first = f"{build_icl_prompt(task.prompts, 'zero-shot', query=query)} {ZERO_SHOT_COT_TRIGGER}"
    reasoning = generate(first, COT_REASONING_TOKENS).strip().split("\n\n")[0].strip()
    if task.kind == "classification":
        cue = f"Therefore, the answer ({' or '.join(task.labels)}) is"
    else:
        cue = "Therefore, the summary in one sentence is:"
    second = f"{first} {reasoning}\n{cue}"
    return reasoning, generate(second, task.max_new_tokens), second


def score_row(task: EvalTask, completion: str, reference: str) -> dict:
    if task.kind == "classification":
        label = predicted_label(completion, task.labels)
        return {"answer": label, "correct": label == reference}
    answer = first_line(completion)
    return {"answer": answer, "exact_match": exact_match(answer, reference), **rouge(answer, reference)}


def run_evaluation(task_key: str, setups: list[Setup], limit: int | None = None, *,
                   on_row: Callable[[dict, int, int], None] | None = None,
                   stop: threading.Event | None = None) -> EvalRun:
    """Every setup over the task's first ``limit`` items (all when None), in item order within each setup.
    ``on_row(row, done, total)`` after each completion; a set ``stop`` ends the run (``stopped``, rows kept)."""
    task = eval_task(task_key)
    if not setups:
        raise EvaluationInputError("Choose at least one prompt technique and one model.")
    for setup in setups:
        if setup.technique not in TECHNIQUES:
            raise EvaluationInputError(f"Unknown technique {setup.technique!r}; choose from {', '.join(TECHNIQUES)}.")
    items = task.items if limit is None else task.items[:max(1, int(limit))]
    run = EvalRun(task.key)
    total = len(items) * len(setups)
    started = time.perf_counter()
    for setup in setups:
        for index, item in enumerate(items):
            if stop is not None and stop.is_set():
                run.stopped = True
                run.seconds = time.perf_counter() - started
                return run
            t0 = time.perf_counter()
            reasoning = ""
            if setup.technique == COT:
                reasoning, completion, _ = cot_answer(task, item.input, setup.generate)
            else:
                prompt = build_icl_prompt(task.prompts, setup.technique, query=item.input)
                completion = setup.generate(prompt, task.max_new_tokens)
            row = {"setup": setup.label, "model": setup.model, "technique": setup.technique, "item": index,
                   "input": item.input, "reference": item.reference, "completion": completion,
                   "reasoning": reasoning,
                   "seconds": time.perf_counter() - t0, **score_row(task, completion, item.reference)}
            run.rows.append(row)
            if on_row is not None:
                on_row(row, len(run.rows), total)
    run.seconds = time.perf_counter() - started
    return run


def summary(run: EvalRun) -> list[dict]:
    """One row per setup: items, the task's score (accuracy, or mean ROUGE-1/2/L and exact match), seconds per item;
    best first."""
    task = eval_task(run.task)
    groups: dict[str, list[dict]] = {}
    for row in run.rows:
        groups.setdefault(row["setup"], []).append(row)
    out = []
    for label, rows in groups.items():
        entry = {"setup": label, "model": rows[0]["model"], "technique": rows[0]["technique"], "items": len(rows),
                 "seconds per item": sum(r["seconds"] for r in rows) / len(rows)}
        if task.kind == "classification":
            entry["accuracy (%)"] = 100.0 * sum(r["correct"] for r in rows) / len(rows)
        else:
            for name in ROUGE_TYPES:
                entry[f"{name} F1"] = sum(r[name] for r in rows) / len(rows)
            entry["exact match (%)"] = 100.0 * sum(r["exact_match"] for r in rows) / len(rows)
        out.append(entry)
    key = "accuracy (%)" if task.kind == "classification" else "rougeL F1"
    return sorted(out, key=lambda e: -e[key])


EVAL_PACE = "evaluate.completion"
"""``core.common.pace`` kind prefix: seconds per completion measured here, per task (``EVAL_PACE.<task>``)."""
# Seconds per greedy completion of SmolLM2 before any run here, and where each figure comes from.
EVAL_PRIORS = {
    "review-sentiment": (0.41, "the default 24-completion run took 9.8 s on a 2-core CPU, 2026-12-07"),
    # 3.8 × a label's: 8.6 s against 2.3 s per completion, side by side on 6 items of each (a busy 2-core CPU)
    "dialogue-summarization": (1.5, "3.8 × a one-word label's, measured side by side on this kind of CPU, 2026-12-07"),
}


def run_estimate(task_key: str, completions: int) -> dict:
    """How long ``completions`` greedy completions of ``task_key`` will take (``core.common.pace.estimate``)."""
    from core.common import pace

    prior_s, prior_source = EVAL_PRIORS.get(task_key, EVAL_PRIORS["review-sentiment"])
    return pace.estimate(f"{EVAL_PACE}.{task_key}", completions, "completion", prior_s, prior_source)


def score_key(task_key: str) -> str:
    return "accuracy (%)" if eval_task(task_key).kind == "classification" else "rougeL F1"


def _names(labels: list[str]) -> str:
    """"A", "A and B", "A, B and C"."""
    return labels[0] if len(labels) == 1 else f"{', '.join(labels[:-1])} and {labels[-1]}"


def _same_score(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _items(rows: list[dict]) -> str:
    """The item counts of these summary rows: "8 items", "8 items each", or "8, 8 and 3 items" when they differ."""
    counts = [r["items"] for r in rows]
    if len(set(counts)) == 1:
        return counted(counts[0], "item") + (" each" if len(rows) > 1 else "")
    return f"{_names([f'{n:,}' for n in counts])} items"


def verdict(run: EvalRun) -> str:
    """What the summary says, in sentences: the best setup, or the setups that tie for best; a lead of a single
    answer called what it is; setups scored on fewer items than the others (a stopped run) named; and whether
    few-shot beat zero-shot on each model that ran both."""
    rows = summary(run)
    if not rows:
        return "No completions yet."
    key = score_key(run.task)
    metric = key.replace(" (%)", "")
    unit = " %" if key.endswith("(%)") else ""
    best = rows[0]
    tied = [r for r in rows if _same_score(r[key], best[key])]
    score = f"{metric} {best[key]:.3g}{unit}"
    if len(tied) == 1:
        sentences = [f"Best on this task: {best['setup']} ({score}, {counted(best['items'], 'item')})."]
    elif len(tied) == len(rows):
        sentences = [f"Best on this task: none, {_names([r['setup'] for r in tied])} tie at {score} "
                     f"({_items(tied)})."]
    else:
        sentences = [f"Best on this task: {_names([r['setup'] for r in tied])} tie at {score} ({_items(tied)})."]
    runner_up = rows[len(tied)] if len(tied) < len(rows) else None
    if len(tied) == 1 and runner_up is not None and runner_up["items"] == best["items"]:
        n = best["items"]
        if key == "accuracy (%)" and round((best[key] - runner_up[key]) * n / 100) == 1:
            sentences.append(f"That is one answer ahead of {runner_up['setup']} ({runner_up[key]:.3g}{unit}): "
                             f"with {counted(n, 'item')} it is not a clear win; run more items.")
        elif key != "accuracy (%)" and n == 1:
            sentences.append("Scored on 1 item: one summary decides this ranking; run more items.")
    most = max(r["items"] for r in rows)
    partial = [r for r in rows if r["items"] < most]
    if partial:
        why = " (the run was stopped)" if run.stopped else ""
        if len(partial) == 1:
            sentences.append(f"{partial[0]['setup']} was scored on only {counted(partial[0]['items'], 'item')}, "
                             f"the others on {most:,}{why}: its score does not compare with theirs.")
        else:
            named = _names([f"{r['setup']} ({counted(r['items'], 'item')})" for r in partial])
            sentences.append(f"{named} were scored on fewer items than the others ({most:,}){why}: their scores "
                             "do not compare with the rest.")
    by_setup = {(r["model"], r["technique"]): r for r in rows}
    for model in dict.fromkeys(r["model"] for r in rows):
        zero, few = by_setup.get((model, "zero-shot")), by_setup.get((model, "few-shot"))
        if zero is None or few is None:
            continue
        numbers = f"{few[key]:.3g} vs {zero[key]:.3g}"
        if few["items"] != zero["items"]:
            numbers += f", on {few['items']:,} and {counted(zero['items'], 'item')}"
        if _same_score(few[key], zero[key]):
            sentences.append(f"On {model}, few-shot ties with zero-shot ({numbers}).")
        elif few[key] > zero[key]:
            sentences.append(f"On {model}, few-shot beats zero-shot ({numbers}).")
        else:
            sentences.append(f"On {model}, few-shot does not beat zero-shot ({numbers}).")
    return " ".join(sentences)
