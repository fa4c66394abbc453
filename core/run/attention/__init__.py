"""Attention weights of a real model: extraction, per-head statistics, aggregations, windows and exports.

`attention_maps(loaded, text)` runs a text through a model loaded by `core.run.models` with the attention
probabilities returned, and gives them back as numpy arrays shaped [layers, heads, queries, keys].
Everything else here is plain numpy on those arrays, so it can be tested on small hand-made cases.

Attention weights are only returned by transformers' "eager" attention: the default SDPA kernel returns
none (transformers/integrations/sdpa_attention.py warns "`sdpa` attention does not support
`output_attentions=True`"). `attention_maps` therefore switches a model to eager attention for the duration
of one forward pass and switches it back afterwards; pages load their models with
`attn_implementation="eager"` so that no switch is needed.

Modules: ``maps`` (the result types and limits), ``extract`` (from a real model), ``analysis`` (statistics,
aggregations, rollout) and ``windows`` (windows of long inputs, exports). Import the names below from this package.
"""
from __future__ import annotations

from core.run.attention.analysis import (PATTERN_THRESHOLD, STATISTIC_DESCRIPTIONS, TokenFocus, attention_rollout,
                                         head_pattern, head_statistics, mean_over_heads, mean_over_layers,
                                         row_entropy_bits, token_focus)
from core.run.attention.extract import (attention_maps, attention_shape, context_window, eager_attention,
                                        max_analysable_tokens, token_label, token_limit)
from core.run.attention.maps import (ATTENTION_MEMORY_BUDGET_BYTES, COMPONENT_LABELS, DEFAULT_MAX_NEW_TOKENS,
                                     MAX_TARGET_TOKENS, RENDER_LIMIT, START_LABEL, TINY_T5_CONFIG, AttentionInputError,
                                     AttentionMaps, AttentionResult)
from core.run.attention.windows import (clamp_window, crop_to_window, indexed_labels, matrix_frame, needs_window,
                                        result_to_npz, upper_triangle_share, view_to_csv, window)


__all__ = ["ATTENTION_MEMORY_BUDGET_BYTES", "AttentionInputError", "AttentionMaps", "AttentionResult",
           "COMPONENT_LABELS", "DEFAULT_MAX_NEW_TOKENS", "MAX_TARGET_TOKENS", "PATTERN_THRESHOLD", "RENDER_LIMIT",
           "START_LABEL", "STATISTIC_DESCRIPTIONS", "TINY_T5_CONFIG", "TokenFocus", "attention_maps",
           "attention_rollout", "attention_shape", "clamp_window", "context_window", "crop_to_window",
           "eager_attention", "head_pattern", "head_statistics", "indexed_labels", "matrix_frame",
           "max_analysable_tokens", "mean_over_heads", "mean_over_layers", "needs_window", "result_to_npz",
           "row_entropy_bits", "token_focus", "token_label", "token_limit", "upper_triangle_share", "view_to_csv",
           "window"]
