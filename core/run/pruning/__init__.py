"""Pruning: a model transformation like quantization (``core.run.quantization``), so the workflows above it (the
Optimize page's study and line-up, the Evaluate page's pruned variants) share one implementation.

Modules: ``methods`` (magnitude, Wanda and 2:4 masks, layer removal by Block Influence, head-group removal, and
their measured effect) and ``copies`` (``pruned_copy`` of a LoadedModel and the calibration text it is pruned on).
Import the names below from this package.
"""
from __future__ import annotations

from core.run.pruning.copies import (CALIBRATION_TEXT_PATH, CALIBRATION_TOKENS, calibration_ids,
                                     load_calibration_text, pruned_copy)
from core.run.pruning.methods import (METHODS, PruningError, block_influence, drop_head_groups, follows_2_4,
                                      head_group_scores, input_norms, layer_count, least_influential_layers,
                                      measured_sparsity, prunable_linears, prune_model, quality, remove_head_groups,
                                      remove_layers)

__all__ = ["CALIBRATION_TEXT_PATH", "CALIBRATION_TOKENS", "METHODS", "PruningError", "block_influence",
           "calibration_ids", "drop_head_groups", "follows_2_4", "head_group_scores", "input_norms", "layer_count",
           "least_influential_layers", "load_calibration_text", "measured_sparsity", "prunable_linears",
           "prune_model", "pruned_copy", "quality", "remove_head_groups", "remove_layers"]
