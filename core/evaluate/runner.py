"""Run every setup (a prompt technique on a model variant) over a task's items, greedy, and score each completion."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable

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


def score_key(task_key: str) -> str:
    return "accuracy (%)" if eval_task(task_key).kind == "classification" else "rougeL F1"


def verdict(run: EvalRun) -> str:
    """One sentence: the best setup, and whether few-shot beat zero-shot on each model that ran both."""
    rows = summary(run)
    if not rows:
        return "No completions yet."
    key = score_key(run.task)
    unit = " %" if key.endswith("(%)") else ""
    best = rows[0]
    sentences = [f"Best on this task: {best['setup']} ({key.replace(' (%)', '')} {best[key]:.3g}{unit}, "
                 f"{best['items']} items)."]
    by_setup = {(r["model"], r["technique"]): r[key] for r in rows}
    for model in dict.fromkeys(r["model"] for r in rows):
        zero, few = by_setup.get((model, "zero-shot")), by_setup.get((model, "few-shot"))
        if zero is None or few is None:
            continue
        if few > zero:
            sentences.append(f"On {model}, few-shot beats zero-shot ({few:.3g} vs {zero:.3g}).")
        else:
            sentences.append(f"On {model}, few-shot does not beat zero-shot ({few:.3g} vs {zero:.3g}).")
    return " ".join(sentences)
