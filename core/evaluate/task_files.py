"""Tasks in lm-evaluation-harness's own YAML format (``core/data/lm_eval_tasks/``, which ``lm_eval --include_path``
runs as it is), read here without lm-eval: the documents, the prompt of each and the requests lm-eval makes of them.

The fields and their meaning follow lm-eval's task guide
(https://github.com/EleutherAI/lm-evaluation-harness/blob/main/docs/task_guide.md) and its ``ConfigurableTask``
(``lm_eval/api/task.py``: ``doc_to_text`` / ``doc_to_target`` / ``doc_to_choice`` as a field name or a Jinja2
template, ``fewshot_context``, ``construct_requests``): the context is the description, the ``num_fewshot`` solved
examples (``doc_to_text + target_delimiter + target``) joined by ``fewshot_delimiter``, then the item's
``doc_to_text``; each choice's continuation is ``target_delimiter + choice``.
"""
from __future__ import annotations

import ast
import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from jinja2 import BaseLoader, Environment, StrictUndefined

from core.common.paths import DATA_DIR

TASK_DIR = DATA_DIR / "lm_eval_tasks"
OUTPUT_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling", "generate_until")
LOGLIK_TYPES = ("multiple_choice", "loglikelihood", "loglikelihood_rolling")
_ENV = Environment(loader=BaseLoader(), undefined=StrictUndefined, keep_trailing_newline=True)


class TaskFileError(ValueError):
    """A task file lm-eval's format does not allow, or this reader does not support; the message is user-facing."""


@dataclass(frozen=True)
class Request:
    """One log-likelihood request: ``kind`` "loglikelihood" (log P(continuation | context)) or
    "loglikelihood_rolling" (log P(continuation) from the start, ``context`` empty)."""

    kind: str
    context: str
    continuation: str


@dataclass(frozen=True)
class LmEvalTask:
    """A task as its YAML defines it, with its documents loaded."""

    name: str
    output_type: str
    docs: tuple[dict, ...]
    fewshot_docs: tuple[dict, ...] = ()
    num_fewshot: int = 0
    doc_to_text: str = ""
    doc_to_target: str | int = ""
    doc_to_choice: str | list | None = None
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    description: str = ""
    metrics: tuple[str, ...] = ()
    config: dict = field(default_factory=dict, compare=False)

    @property
    def is_loglikelihood(self) -> bool:
        return self.output_type in LOGLIK_TYPES

    def to_dict(self) -> dict:
        return {"name": self.name, "output_type": self.output_type, "items": len(self.docs),
                "num_fewshot": self.num_fewshot, "metrics": list(self.metrics)}


class _Loader(yaml.SafeLoader):
    """YAML with lm-eval's ``!function module.name`` tag kept as text (this reader never runs task code)."""


_Loader.add_constructor("!function", lambda loader, node: "!function " + loader.construct_scalar(node))


def render(template, doc: dict):
    """lm-eval's rule for ``doc_to_*``: a field name gives that field, an int or list is itself, else a Jinja2
    template rendered on the document (``lm_eval.utils.apply_template``)."""
    if isinstance(template, (int, list)):
        return template
    if isinstance(template, str) and template in doc:
        return doc[template]
    if not isinstance(template, str):
        raise TaskFileError(f"A doc_to_* value must be a field name or a template, not {type(template).__name__}.")
    if template.startswith("!function"):
        raise TaskFileError(f"'{template}': Python functions in a task file are not run here; use a template.")
    try:
        return _ENV.from_string(template).render(**doc)
    except Exception as exc:  # jinja2 syntax errors, undefined fields
        raise TaskFileError(f"The template {template!r} does not render on {doc}: {exc}") from None


def text_of(task: LmEvalTask, doc: dict) -> str:
    return str(render(task.doc_to_text, doc))


def choices_of(task: LmEvalTask, doc: dict) -> list[str]:
    """``doc_to_choice``: a list, a field holding a list, or a template rendering to a Python list literal."""
    value = render(task.doc_to_choice, doc)
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise TaskFileError(f"doc_to_choice gives {value!r}, not a list of choices.") from None
    if isinstance(value, dict):
        value = list(value.values())
    if not isinstance(value, list) or not value:
        raise TaskFileError(f"doc_to_choice gives {value!r}, not a non-empty list of choices.")
    return [str(c) for c in value]


def target_of(task: LmEvalTask, doc: dict):
    """``doc_to_target`` as lm-eval reads it: a choice index (int) for multiple choice, else text."""
    value = render(task.doc_to_target, doc)
    if isinstance(value, str) and task.doc_to_choice is not None and value.strip().isdigit():
        return int(value)
    return value


def gold_index(task: LmEvalTask, doc: dict) -> int:
    choices = choices_of(task, doc)
    gold = target_of(task, doc)
    if isinstance(gold, str):
        if gold not in choices:
            raise TaskFileError(f"The target {gold!r} is not one of the choices {choices}.")
        return choices.index(gold)
    if not 0 <= int(gold) < len(choices):
        raise TaskFileError(f"The target index {gold} is outside the {len(choices)} choices.")
    return int(gold)


def _target_text(task: LmEvalTask, doc: dict) -> str:
    if task.output_type == "multiple_choice":
        return choices_of(task, doc)[gold_index(task, doc)]
    target = target_of(task, doc)
    return str(target[0] if isinstance(target, list) else target)


def context_of(task: LmEvalTask, doc: dict, num_fewshot: int | None = None) -> str:
    """The prompt lm-eval builds (``ConfigurableTask.fewshot_context``, without a chat template): the description,
    the first ``num_fewshot`` documents of the few-shot split (its ``first_n`` sampler) each with its answer, then the
    item."""
    n = task.num_fewshot if num_fewshot is None else int(num_fewshot)
    if n > len(task.fewshot_docs):
        raise TaskFileError(f"{task.name} has {len(task.fewshot_docs)} few-shot examples; {n} were asked for.")
    shots = [text_of(task, d) + task.target_delimiter + _target_text(task, d) for d in task.fewshot_docs[:n]]
    head = task.description + "".join(s + task.fewshot_delimiter for s in shots)
    return head + text_of(task, doc)


def requests_of(task: LmEvalTask, doc: dict, num_fewshot: int | None = None) -> list[Request]:
    """``construct_requests``: one per choice (multiple_choice), one (loglikelihood) or the whole target
    (loglikelihood_rolling)."""
    if task.output_type == "loglikelihood_rolling":
        return [Request("loglikelihood_rolling", "", str(target_of(task, doc)))]
    context = context_of(task, doc, num_fewshot)
    if task.output_type == "multiple_choice":
        return [Request("loglikelihood", context, task.target_delimiter + c) for c in choices_of(task, doc)]
    if task.output_type == "loglikelihood":
        return [Request("loglikelihood", context, task.target_delimiter + _target_text(task, doc))]
    raise TaskFileError(f"{task.name} is a {task.output_type} task: it is scored by generation, not log-likelihood.")


def _read_jsonl(path: Path) -> tuple[dict, ...]:
    docs = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(f"{path.name}: the task's data file cannot be read ({exc.__class__.__name__}: "
                            f"{getattr(exc, 'strerror', None) or exc}).") from None
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise TaskFileError(f"{path.name} line {number}: not JSON ({exc.msg}).") from None
    return tuple(docs)


def task_from_config(config: dict, docs: tuple[dict, ...], fewshot_docs: tuple[dict, ...] = ()) -> LmEvalTask:
    """An LmEvalTask from a parsed YAML and its documents (checked)."""
    name = config.get("task")
    if not isinstance(name, str) or not name.strip():
        raise TaskFileError("The task file has no 'task:' name.")
    output_type = config.get("output_type", "generate_until")
    if output_type not in OUTPUT_TYPES:
        raise TaskFileError(f"{name}: output_type {output_type!r} is not one of {', '.join(OUTPUT_TYPES)}.")
    if output_type == "multiple_choice" and config.get("doc_to_choice") is None:
        raise TaskFileError(f"{name}: a multiple_choice task needs doc_to_choice.")
    metrics = tuple(m["metric"] if isinstance(m, dict) else str(m) for m in config.get("metric_list") or ())
    return LmEvalTask(name=name, output_type=output_type, docs=docs, fewshot_docs=fewshot_docs,
                      num_fewshot=int(config.get("num_fewshot") or 0),
                      doc_to_text=config.get("doc_to_text", ""), doc_to_target=config.get("doc_to_target", ""),
                      doc_to_choice=config.get("doc_to_choice"),
                      target_delimiter=config.get("target_delimiter", " "),
                      fewshot_delimiter=config.get("fewshot_delimiter", "\n\n"),
                      description=config.get("description", "") or "", metrics=metrics, config=config)


def parse_yaml(text: str) -> dict:
    try:
        config = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise TaskFileError(f"The task file is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise TaskFileError("The task file is not a YAML mapping of lm-eval task fields.")
    return config


def load_task_file(path: Path) -> LmEvalTask:
    """One YAML of a task folder, its ``dataset_kwargs.data_files`` read from the same folder."""
    config = parse_yaml(Path(path).read_text(encoding="utf-8"))
    files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    if not isinstance(files, dict) or not files:
        raise TaskFileError(f"{Path(path).name}: only local JSONL tasks (dataset_kwargs.data_files) are read here.")
    split = config.get("test_split") or "test"
    if split not in files:
        raise TaskFileError(f"{Path(path).name}: the test split {split!r} has no data file.")
    folder = Path(path).parent
    fewshot = config.get("fewshot_split")
    return task_from_config(config, _read_jsonl(folder / files[split]),
                            _read_jsonl(folder / files[fewshot]) if fewshot in files else ())


def load_tasks(folder: Path = TASK_DIR) -> dict[str, LmEvalTask]:
    """Every task YAML in ``folder`` by task name."""
    return {t.name: t for t in (load_task_file(p) for p in sorted(Path(folder).glob("*.yaml")))}


def bundled_task(name: str, folder: Path = TASK_DIR) -> LmEvalTask:
    tasks = load_tasks(folder)
    if name not in tasks:
        raise TaskFileError(f"Unknown task {name!r}; the bundled tasks are {', '.join(tasks)}.")
    return tasks[name]
