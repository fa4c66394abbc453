"""Inputs of a measurement: the accepted dtypes and recipes, their normalization, and the setting checks.

``normalize_dtype`` / ``normalize_recipe`` turn what a user or a page passes ("bfloat16", torch.bfloat16, "amp")
into the names the package uses; ``check_setting`` validates an architecture, a sequence length and a batch size.
"""
from __future__ import annotations

from collections.abc import Mapping

from core.plan import architectures
from core.common import units
from core.common.checks import check_int

RECIPES = ("fp32", "mixed_precision")
INFERENCE_DTYPES = ("fp32", "fp16", "bf16")
DTYPE_BYTES = {name: int(units.BYTES_PER_VALUE[name]) for name in INFERENCE_DTYPES}


MAX_SEQ_LEN = 131_072
MAX_BATCH = 4096


class MeasurementRefused(ValueError):
    """A measurement that would not fit (or would take too long) here; the message is user-facing and carries the
    predicted peak. Attributes: ``predicted_peak_bytes``, ``free_bytes``."""

    def __init__(self, message: str, predicted_peak_bytes: float, free_bytes: float | None = None):
        super().__init__(message)
        self.predicted_peak_bytes = float(predicted_peak_bytes)
        self.free_bytes = None if free_bytes is None else float(free_bytes)


def normalize_dtype(dtype) -> str:
    """"fp32" / "fp16" / "bf16" for a dtype name or torch.dtype ("bfloat16", torch.float16, "half" …);
    ValueError naming the accepted ones otherwise."""
    try:
        import torch

        if isinstance(dtype, torch.dtype):
            dtype = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, str(dtype))
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass
    key = str(dtype).strip().lower().removeprefix("torch.")
    key = {"float32": "fp32", "float": "fp32", "float16": "fp16", "half": "fp16", "bfloat16": "bf16"}.get(key, key)
    if key not in INFERENCE_DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}: use one of {', '.join(INFERENCE_DTYPES)}.")
    return key


def normalize_recipe(recipe) -> str:
    """"mixed_precision" (also "mixed", "amp", "mixed-precision") or "fp32"; ValueError otherwise."""
    key = str(recipe).strip().lower().replace("-", "_").replace(" ", "_")
    if key in ("mixed", "amp", "mixed_precision"):
        return "mixed_precision"
    if key == "fp32":
        return "fp32"
    raise ValueError(f"Unknown training recipe {recipe!r}: use 'fp32' or 'mixed_precision'.")


def learned_position_limit(architecture) -> int | None:
    """Longest sequence a model with learned absolute position embeddings accepts (GPT-2, BERT, RoBERTa);
    None for rotary / relative / ALiBi positions, which have no hard limit."""
    cfg = architectures.get_config(architecture)
    if cfg["model_type"] not in ("gpt2", "bert", "roberta"):
        return None
    return cfg["max_position_embeddings"] - (2 if cfg["model_type"] == "roberta" else 0)


def check_setting(architecture, seq_len, batch_size) -> tuple[dict, int, int]:
    cfg = architectures.get_config(architecture)  # ArchitectureError (a ValueError) for unknown / malformed input
    seq_len = check_int(seq_len, "Sequence length (tokens)", 1, MAX_SEQ_LEN)
    batch_size = check_int(batch_size, "Batch size (sequences)", 1, MAX_BATCH)
    limit = learned_position_limit(cfg)
    if limit is not None and seq_len > limit:
        raise ValueError(f"{architectures.display_name(cfg.get('_name_or_path') or cfg['model_type'])} has learned "
                         f"position embeddings for {limit:,} tokens; choose a sequence length ≤ {limit:,}.")
    return cfg, seq_len, batch_size


def architecture_label(cfg: Mapping) -> str:
    """A short name for results tables: the catalog id / config name, else the model type and shape."""
    name = cfg.get("_name_or_path")
    if name:
        return architectures.display_name(name)
    return (f"{cfg['model_type']} {cfg['num_hidden_layers']}L×{cfg['hidden_size']}"
            f"{' (custom config)'}")
