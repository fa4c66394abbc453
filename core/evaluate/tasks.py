"""The bundled evaluation tasks (``core/data/eval_tasks.json``, CC0, written for LLM Lab). Each task's prompts take
their instruction and solved examples ("shots") from the example set of the same key in core.run.prompts, so the test
items never appear in a prompt."""
from __future__ import annotations

import json
from dataclasses import dataclass

from core.run.prompts import ExampleSet, example_set
from core.common.paths import DATA_DIR

DATA = DATA_DIR / "eval_tasks.json"


@dataclass(frozen=True)
class Item:
    input: str
    reference: str


@dataclass(frozen=True)
class EvalTask:
    key: str
    title: str
    kind: str  # "classification" (accuracy) or "generation" (ROUGE)
    items: tuple[Item, ...]
    max_new_tokens: int
    labels: tuple[str, ...] = ()

    @property
    def prompts(self) -> ExampleSet:
        return example_set(self.key)


def _load() -> dict[str, EvalTask]:
    raw = json.loads(DATA.read_text(encoding="utf-8"))["tasks"]
    return {key: EvalTask(key, t["title"], t["kind"], tuple(Item(i["input"], i["reference"]) for i in t["items"]),
                          int(t["max_new_tokens"]), tuple(t.get("labels", ())))
            for key, t in raw.items()}


TASKS: dict[str, EvalTask] = _load()


def eval_task(key: str) -> EvalTask:
    try:
        return TASKS[key]
    except KeyError as exc:
        raise ValueError(f"Unknown task {key!r}; choose one of {', '.join(TASKS)}.") from exc
