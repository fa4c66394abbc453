"""Components of a predicted or measured peak: stable ids and the one map of their display labels.

Predictions (``core.plan.peak_memory.predict``), plans (``core.plan.finetune``) and measurements
(``core.measure.results``) key their components by these ids; exports and pages show the labels.
"""
from __future__ import annotations

from collections.abc import Mapping

# Stable component id -> display label (the only place labels are spelled; dict exports use the labels).
COMPONENT_LABELS = {
    "weights": "weights",
    "kv_cache": "KV cache",
    "activations_peak": "activations (peak)",
    "optimizer_states": "optimizer states",
    "gradients": "gradients",
    "activations": "activations",
    "activations_kept": "activations kept for backward",
    "temporaries_at_peak": "temporaries at the peak",
    "weight_copies_16bit": "16-bit weight copies",
    "logits_temporary": "logits (temporary)",
    "logit_gradients_temporary": "logit gradients (temporary)",
    "backward_temporaries": "backward temporaries",
    "optimizer_temporaries": "optimizer temporaries",
    "frozen_weights": "frozen base weights",
    "adapter_weights": "adapter weights",
    "adapter_gradients": "adapter gradients",
    "adapter_optimizer_states": "adapter optimizer states",
    "dequantized_weight": "dequantized weight buffer",
    "runtime_overhead": "runtime overhead",
}
_IDS_BY_LABEL = {label: key for key, label in COMPONENT_LABELS.items()}


def labelled(components: Mapping[str, float]) -> dict[str, float]:
    """{id: bytes} -> {display label: bytes} (unknown ids pass through unchanged)."""
    return {COMPONENT_LABELS.get(key, key): float(value) for key, value in components.items()}


def component_ids(components: Mapping[str, float]) -> tuple[tuple[str, float], ...]:
    """{display label or id: bytes} -> ((id, bytes), ...): the immutable form the dataclasses hold."""
    return tuple((_IDS_BY_LABEL.get(key, key), float(value)) for key, value in components.items())
