"""LoadedModels made from another one: the same tokenizer and device around a transformed model (a pruned copy, a
distilled student, a PEFT adapter on a copy)."""
from __future__ import annotations

import dataclasses


def as_loaded(base, model, name: str, note: str = ""):
    """``base`` (a LoadedModel) with another model in it, e.g. a pruned copy: same tokenizer and device, ``name``
    and ``note`` (its only note) describing it, no quantization."""
    return dataclasses.replace(base, model=model, name=name, notes=[note] if note else [], quantization=None)
