"""Log-likelihood tasks on one model variant, end to end: the variant loaded (``variants.variant_model``), one
batched scorer (``requests.local_scorer``, or ``requests.endpoint_scorer`` for a server), every task run
(``loglik.run_task``). What the CLI (``python -m core.evaluate``), the benchmark and the page share."""
from __future__ import annotations

import threading
from typing import Callable, Sequence

from core.evaluate.loglik import RunSettings, TaskResult, run_task
from core.evaluate.requests import DEFAULT_BATCH_SIZE, endpoint_scorer, local_scorer
from core.evaluate.task_files import LmEvalTask, TaskFileError, load_tasks
from core.evaluate.variants import variant_model


def pick_tasks(names: Sequence[str], available: dict[str, LmEvalTask] | None = None) -> list[LmEvalTask]:
    available = load_tasks() if available is None else available
    unknown = [n for n in names if n not in available]
    if unknown or not names:
        raise TaskFileError(f"Unknown task {', '.join(unknown) or '(none given)'}; the tasks are "
                            f"{', '.join(available)}.")
    return [available[n] for n in names]


def default_load(**options):
    from core.run.models import load_model

    return load_model(None, device="cpu", **options)


def run_tasks(tasks: Sequence[LmEvalTask], variant: str = "fp32", *, limit: int | None = None,
              batch_size: int = DEFAULT_BATCH_SIZE, num_fewshot: int | None = None, load: Callable = default_load,
              loaded=None, endpoint=None, adapter: dict | None = None,
              on_progress: Callable[[str, int, int], None] | None = None,
              stop: threading.Event | None = None) -> list[TaskResult]:
    """Every task on one variant (``loaded``: an already built LoadedModel to use instead); ``on_progress(task,
    requests done, total)``; a set ``stop`` ends the run with the finished items kept."""
    if loaded is None and endpoint is None:
        loaded = variant_model(variant, load, adapter=adapter)
    if endpoint is not None and loaded is None:
        loaded = load(dtype="fp32")  # the bundled tokenizer: the server must serve the same model
    settings = RunSettings(variant=variant, num_fewshot=num_fewshot, batch_size=batch_size, limit=limit)
    results = []
    for task in tasks:
        report = (lambda done, total, name=task.name: on_progress(name, done, total)) if on_progress else None
        if endpoint is not None:
            scorer = endpoint_scorer(endpoint, loaded.tokenizer, on_progress=report, stop=stop)
        else:
            scorer = local_scorer(loaded.model, loaded.tokenizer, batch_size, on_progress=report, stop=stop)
        results.append(run_task(task, scorer, settings, stop=stop))
        if results[-1].stopped:
            break
    return results
