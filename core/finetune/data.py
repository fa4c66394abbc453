"""The bundled fine-tuning data set and its tokenisation: (prompt, response) pairs read from
``core/data/finetune_pirate.json`` (CC0), encoded in the model's chat template with the prompt's labels set to -100
(``torch.nn.CrossEntropyLoss`` ignores them, so only the answer is learned), and padded into batches.

Plain Python (no Streamlit).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from core.run.models import BUNDLED_DECODER
from core.run.prompts import chat_ids
from core.common.paths import DATA_DIR

DATA_PATH = DATA_DIR / "finetune_pirate.json"


@dataclass(frozen=True)
class FinetuneDataset:
    """The bundled data set: (prompt, response) pairs, held-out comparison prompts, its licence and source."""
    name: str
    licence: str
    source: str
    examples: tuple[tuple[str, str], ...]
    comparison_prompts: tuple[str, ...]


def load_dataset(path: Path | str = DATA_PATH) -> FinetuneDataset:
    """Read the bundled fine-tuning set (``core/data/finetune_pirate.json``, CC0)."""
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return FinetuneDataset(raw["name"], raw["licence"], raw["source"],
                           tuple((e["prompt"], e["response"]) for e in raw["examples"]),
                           tuple(raw["comparison_prompts"]))


def encode_examples(tokenizer, examples, seq_len: int) -> list[tuple[list[int], list[int]]]:
    """(input_ids, labels) per example in the model's chat template, cut to ``seq_len`` tokens; the prompt's labels
    are -100 so only the answer (and its end-of-turn token) is learned."""
    out = []
    for prompt, response in examples:
        prompt_ids = chat_ids(tokenizer, prompt)
        answer_ids = tokenizer(response + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        ids = (prompt_ids + answer_ids)[:seq_len]
        labels = ([-100] * len(prompt_ids) + answer_ids)[:seq_len]
        if any(label != -100 for label in labels):
            out.append((ids, labels))
    return out


def pad_batch(encoded, indices, pad_id: int) -> dict[str, torch.Tensor]:
    """The examples ``encoded[i]`` for ``i`` in ``indices`` padded to one width: ``input_ids`` (``pad_id``),
    ``labels`` (-100) and ``attention_mask`` (0 on the padding)."""
    width = max(len(encoded[i][0]) for i in indices)
    ids, labels, mask = [], [], []
    for i in indices:
        x, y = encoded[i]
        pad = width - len(x)
        ids.append(x + [pad_id] * pad)
        labels.append(y + [-100] * pad)
        mask.append([1] * len(x) + [0] * pad)
    return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels), "attention_mask": torch.tensor(mask)}


_MIN_SEQ_LEN: list[int] = []


def min_seq_len() -> int:
    """Fewest tokens a training sequence needs to hold one answer token of the bundled data set (its shortest prompt
    in the chat template, plus one)."""
    if not _MIN_SEQ_LEN:
        from core.run.models import load_tokenizer
        tokenizer = load_tokenizer(BUNDLED_DECODER)
        _MIN_SEQ_LEN.append(1 + min(len(chat_ids(tokenizer, p)) for p, _ in load_dataset().examples))
    return _MIN_SEQ_LEN[0]
