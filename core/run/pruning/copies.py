"""Pruned copies of a loaded model, and the calibration text they are pruned on.

``pruned_copy`` leaves the model it is given as it was and returns a new ``core.run.models.LoadedModel`` (same
tokenizer and device) holding a pruned deep copy, so the Optimize page's line-up and the Evaluate page's variants
prune the same way. Wanda's input norms, ShortGPT's Block Influence and the head importance are measured on the
bundled distillation text (``core/data/distillation_text.txt``, CC0), not on the text the copies are scored on (as
Wanda calibrates on C4 and scores on WikiText; Sun et al. 2023, §4.1).
"""
from __future__ import annotations

import copy
from pathlib import Path

from core.common.paths import DATA_DIR
from core.run.pruning.methods import least_influential_layers, prune_model, remove_head_groups, remove_layers

CALIBRATION_TEXT_PATH = DATA_DIR / "distillation_text.txt"
CALIBRATION_TOKENS = 192


def load_calibration_text(path: Path | str = CALIBRATION_TEXT_PATH) -> str:
    """The bundled calibration (and distillation training) text without its header comment."""
    from core.run.quantization import load_reference_text

    return load_reference_text(path)


def calibration_ids(tokenizer, tokens: int = CALIBRATION_TOKENS):
    """Tokens for Wanda's input norms and ShortGPT's Block Influence: the first ``tokens`` of the calibration text,
    not the text the variants are scored on (as Wanda calibrates on C4 and scores on WikiText)."""
    return tokenizer(load_calibration_text(), return_tensors="pt").input_ids[:, :tokens]


def pruned_copy(base, method: str, *, sparsity: float = 0.5, layers: int = 0, head_groups: int = 1,
                calibration=None):
    """A pruned copy of ``base`` as a LoadedModel: ``method`` one of ``METHODS`` (unstructured or 2:4),
    "remove-layers" (``layers`` of lowest Block Influence taken out) or "remove-heads" (``head_groups`` key/value
    head groups of lowest importance taken out of every layer); ``calibration``: token ids for Wanda's norms, the
    Block Influence and the head importance (``calibration_ids``)."""
    from core.run.models import as_loaded

    model = copy.deepcopy(base.model)
    if method == "remove-heads":
        info = remove_head_groups(model, calibration, head_groups)
        name = f"{info['query_heads_per_layer']} heads per layer"
        note = (f"{head_groups} of every layer's key/value head groups removed: {info['query_heads_per_layer']} "
                f"query and {info['kv_heads_per_layer']} key/value heads left per layer")
    elif method == "remove-layers":
        drop = least_influential_layers(base.model, calibration, layers)
        remove_layers(model, drop)
        name = f"{layers} layers removed"
        note = f"layers {', '.join(map(str, drop))} removed (lowest Block Influence)"
    else:
        info = prune_model(model, method, sparsity, calibration)
        name = f"{method} {100 * info['sparsity']:.0f} %"
        note = f"{method}: {100 * info['sparsity']:.1f} % of the layers' weights are zero"
    model.eval()
    return as_loaded(base, model, name, note)
