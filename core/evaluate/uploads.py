"""A team's own items: a JSONL or CSV of multiple-choice questions (or of texts, for perplexity), or an lm-eval task
YAML with its JSONL, turned into an ``LmEvalTask`` after checks. Every bad row is named by its line number and the
reason; nothing is scored until the whole file is good.

Item rows (JSONL objects or CSV columns):
- multiple choice: ``question``, ``choices`` (a JSON list; in CSV the choices separated by ``|``) and ``answer`` (the
  choice's index from 0, or its text);
- perplexity: ``text`` alone.
"""
from __future__ import annotations

import csv
import io
import json

from core.evaluate.task_files import (LmEvalTask, TaskFileError, choices_of, gold_index, parse_yaml,
                                      task_from_config)

MAX_UPLOAD_BYTES = 5_000_000  # 5 MB (10⁶ bytes), as the message says
MAX_ITEMS = 5000
MAX_CHOICES = 26
MAX_FIELD_CHARS = 4000
MAX_REPORTED = 10


class UploadError(ValueError):
    """An upload that cannot be scored; ``problems`` holds (line number, reason) per bad row."""

    def __init__(self, message: str, problems: tuple[tuple[int, str], ...] = ()):
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:MAX_REPORTED])
        more = f" (and {len(problems) - MAX_REPORTED} more)" if len(problems) > MAX_REPORTED else ""
        super().__init__(f"{message} {shown}{more}".strip())
        self.problems = problems


def _text(data: bytes | str, what: str) -> str:
    if isinstance(data, bytes):
        if len(data) > MAX_UPLOAD_BYTES:
            raise UploadError(f"The {what} is {len(data) / 1e6:,.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:,.0f} MB.")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UploadError(f"The {what} is not UTF-8 text.") from None
    if len(data.encode("utf-8")) > MAX_UPLOAD_BYTES:
        raise UploadError(f"The {what} is larger than {MAX_UPLOAD_BYTES / 1e6:,.0f} MB.")
    if not data.strip():
        raise UploadError(f"The {what} is empty.")
    return data


def _check_row(row: dict) -> tuple[dict | None, str]:
    """(the normalised doc, "") or (None, the reason)."""
    if not isinstance(row, dict):
        return None, "not an object with named fields"
    too_long = [k for k, v in row.items() if isinstance(v, str) and len(v) > MAX_FIELD_CHARS]
    if too_long:
        return None, f"'{too_long[0]}' is longer than {MAX_FIELD_CHARS:,} characters"
    if "question" not in row and "text" in row:
        text = row["text"]
        if not isinstance(text, str) or not text.strip():
            return None, "'text' is empty"
        return {"text": text}, ""
    question, choices, answer = row.get("question"), row.get("choices"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        return None, "no 'question' (or 'text' for a perplexity item)"
    if isinstance(choices, str):
        try:
            choices = json.loads(choices) if choices.strip().startswith("[") else choices.split("|")
        except json.JSONDecodeError:
            return None, "'choices' is not a JSON list"
    if not isinstance(choices, list) or len(choices) < 2:
        return None, "'choices' needs at least two choices"
    choices = [str(c).strip() for c in choices]
    if len(choices) > MAX_CHOICES:
        return None, f"more than {MAX_CHOICES} choices"
    if any(not c for c in choices):
        return None, "a choice is empty"
    if len(set(choices)) != len(choices):
        return None, "two choices are the same, so the answer is not unique"
    if answer is None or str(answer).strip() == "":
        return None, "no 'answer'"
    answer = str(answer).strip()
    if answer.isdigit() and answer not in choices:
        gold = int(answer)
        if gold >= len(choices):
            return None, f"answer index {gold} is outside the {len(choices)} choices"
    elif answer in choices:
        gold = choices.index(answer)
    else:
        return None, f"the answer {answer!r} is not one of the choices"
    return {"question": question.strip(), "choices": choices, "gold": gold}, ""


def _rows(text: str, kind: str) -> list[tuple[int, object]]:
    """(line number, parsed row) for each row of a JSONL or CSV text."""
    if kind == "jsonl":
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    out.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    out.append((number, f"not JSON ({exc.msg})"))
        return out
    try:
        reader = csv.DictReader(io.StringIO(text))
        return [(reader.line_num, dict(row)) for row in reader]
    except csv.Error as exc:
        raise UploadError(f"The CSV cannot be read: {exc}.") from None


def _docs(text: str, kind: str) -> tuple[dict, ...]:
    docs, problems = [], []
    rows = _rows(text, kind)
    if len(rows) > MAX_ITEMS:
        raise UploadError(f"The file has {len(rows):,} items; the limit is {MAX_ITEMS:,}.")
    for number, row in rows:
        if isinstance(row, str):
            problems.append((number, row))
            continue
        doc, why = _check_row(row)
        if doc is None:
            problems.append((number, why))
        else:
            docs.append(doc)
    if problems:
        raise UploadError(f"{len(problems)} of {len(rows)} rows cannot be scored:", tuple(problems))
    if not docs:
        raise UploadError("The file has no items.")
    kinds = {"text" in d for d in docs}
    if len(kinds) > 1:
        raise UploadError("The file mixes multiple-choice rows and text-only rows: upload one kind per file.")
    return tuple(docs)


def task_from_items(data: bytes | str, file_name: str, name: str = "uploaded") -> LmEvalTask:
    """An LmEvalTask from a JSONL or CSV of items (the kind is read from the file name's ending)."""
    kind = "csv" if file_name.lower().endswith(".csv") else "jsonl"
    docs = _docs(_text(data, "file"), kind)
    if "text" in docs[0]:
        config = {"task": name, "output_type": "loglikelihood_rolling", "doc_to_text": "", "doc_to_target": "text"}
    else:
        config = {"task": name, "output_type": "multiple_choice", "doc_to_text": "Question: {{question}}\nAnswer:",
                  "doc_to_choice": "choices", "doc_to_target": "gold", "num_fewshot": 0}
    return task_from_config(config, docs)


def task_from_yaml(yaml_data: bytes | str, data_files: dict[str, bytes | str]) -> LmEvalTask:
    """An LmEvalTask from an lm-eval YAML and the JSONL files its ``dataset_kwargs.data_files`` names (uploaded
    with it); each document is rendered once here so a template that fails names its line."""
    config = parse_yaml(_text(yaml_data, "task file"))
    files = (config.get("dataset_kwargs") or {}).get("data_files") or {}
    if not isinstance(files, dict) or not files:
        raise UploadError("The task file names no dataset_kwargs.data_files: upload a YAML for local JSONL files.")
    split = config.get("test_split") or "test"
    missing = [f for f in files.values() if f not in data_files]
    if split not in files or files[split] in missing:
        raise UploadError(f"Upload the task's data file {files.get(split, split)!r} with its YAML.")
    docs = {}
    for key in {split, config.get("fewshot_split")} - {None}:
        if key in files and files[key] in data_files:
            docs[key] = []
            problems = []
            for number, row in _rows(_text(data_files[files[key]], files[key]), "jsonl"):
                (problems.append((number, row)) if isinstance(row, str) else docs[key].append(row))
            if problems:
                raise UploadError(f"{files[key]}: {len(problems)} rows are not JSON:", tuple(problems))
    task = task_from_config(config, tuple(docs[split]), tuple(docs.get(config.get("fewshot_split"), ())))
    if len(task.docs) > MAX_ITEMS:
        raise UploadError(f"The task has {len(task.docs):,} items; the limit is {MAX_ITEMS:,}.")
    problems = []
    for number, doc in enumerate(task.docs, 1):
        try:
            if task.output_type == "multiple_choice":
                choices = choices_of(task, doc)
                gold_index(task, doc)
                if len(set(choices)) != len(choices):
                    raise TaskFileError("two choices are the same, so the answer is not unique")
        except TaskFileError as exc:
            problems.append((number, str(exc)))
    if problems:
        raise UploadError(f"{len(problems)} of {len(task.docs)} rows cannot be scored:", tuple(problems))
    return task
