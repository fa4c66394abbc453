"""What the maps say: per-head statistics (entropy, distance, share on the first token, on the previous token, …)
and the pattern they suggest, means over heads and layers, attention rollout (Abnar & Zuidema 2020, eq. 1) and the
focus of one token."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.run.attention.maps import AttentionMaps, AttentionResult


# ----------------------------------------------------------------------------------------------------------
# Per-head statistics
# ----------------------------------------------------------------------------------------------------------

STATISTIC_DESCRIPTIONS = {
    "entropy_bits": "Mean entropy of a query's attention distribution, in bits (0 = all weight on one token).",
    "normalized_entropy": "Entropy divided by its maximum log2(keys the query can see): 0 = focused, 1 = uniform.",
    "sink_share": "Mean weight on the first token (the attention 'sink'), over queries after the first.",
    "previous_token_share": "Mean weight on the token just before the query, over queries after the first.",
    "self_share": "Mean weight a token puts on itself.",
    "mean_distance_tokens": "Mean distance |query − key| in tokens, weighted by attention (local vs long-range).",
    "max_weight": "Mean of each query's largest weight: how peaked the head is.",
}
"""Column → meaning of `head_statistics`. Sources: entropy, attention to [CLS]/previous token per head as in
Clark et al. 2019, "What Does BERT Look At?" (§3, Figs. 2–4); the attention sink on the first token as in
Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks" (§3.1)."""

PATTERN_THRESHOLD = 0.5
"""A head is labelled by a pattern when that pattern takes more than half of its attention on average."""


def _valid_keys_mask(n_queries: int, n_keys: int, causal: bool) -> np.ndarray:
    """[q, k] booleans: which keys each query may attend to (all, or j ≤ i for a causal model)."""
    if causal:
        return np.tri(n_queries, n_keys, dtype=bool)
    return np.ones((n_queries, n_keys), dtype=bool)


def row_entropy_bits(weights: np.ndarray) -> np.ndarray:
    """Shannon entropy −Σ p·log2 p of each attention row (last axis), with 0·log 0 = 0 (Shannon 1948)."""
    p = np.asarray(weights)
    if p.dtype not in (np.float32, np.float64):
        p = p.astype(np.float64)
    tiny = np.finfo(p.dtype).tiny
    # p·log2(max(p, tiny)) is exactly 0 where p = 0, so no masking pass is needed.
    return -(p * np.log2(np.maximum(p, tiny))).sum(axis=-1, dtype=np.float64)


def head_statistics(result: AttentionResult | AttentionMaps, component: str | None = None) -> pd.DataFrame:
    """One row per (layer, head) with the statistics in `STATISTIC_DESCRIPTIONS` and a `pattern` label.

    For a result, `component` picks the attention family (default: the main self-attention). Definitions,
    for weights w[i, j] of query i and key j (n queries, rows summing to 1):
      entropy_bits         = mean_i H(w[i, :]) with H = −Σ_j w log2 w
      normalized_entropy   = mean over queries that see ≥ 2 keys of H(w[i, :]) / log2(keys visible to i)
      sink_share           = mean_{i ≥ 1} w[i, 0]        (query 0 can only see itself in a causal model)
      previous_token_share = mean_{i ≥ 1} w[i, i − 1]
      self_share           = mean_i w[i, i]
      mean_distance_tokens = mean_i Σ_j w[i, j]·|i − j|
      max_weight           = mean_i max_j w[i, j]
    Previous-token, self and distance need queries and keys from one sequence: they are NaN for cross-attention.
    If there is a single query, sink and previous-token shares use it (sink) or are NaN (previous)."""
    maps = result.component(component) if isinstance(result, AttentionResult) else result
    w = np.asarray(maps.weights)
    if w.dtype not in (np.float32, np.float64):
        w = w.astype(np.float64)
    if w.ndim != 4:
        raise ValueError(f"attention weights must be [layers, heads, queries, keys], got shape {w.shape}")
    n_layers, n_heads, n_q, n_k = w.shape
    same_sequence = maps.is_self_attention and n_q == n_k

    entropy = row_entropy_bits(w)  # [L, H, q]
    visible = _valid_keys_mask(n_q, n_k, maps.causal).sum(axis=1)  # [q]
    spread = visible >= 2
    if spread.any():
        normalized = (entropy[..., spread] / np.log2(visible[spread])).mean(axis=-1)
    else:
        normalized = np.full((n_layers, n_heads), np.nan)

    later = slice(1, None) if n_q > 1 else slice(0, None)
    sink = w[:, :, later, 0].mean(axis=-1, dtype=np.float64)
    nan = np.full((n_layers, n_heads), np.nan)
    if same_sequence:
        diagonal = np.diagonal(w, axis1=2, axis2=3)  # [L, H, n]
        self_share = diagonal.mean(axis=-1, dtype=np.float64)
        previous = np.diagonal(w, offset=-1, axis1=2, axis2=3).mean(axis=-1, dtype=np.float64) if n_q > 1 else nan
        positions = np.arange(n_q)
        distance = np.abs(positions[:, None] - positions[None, :])
        mean_distance = (w * distance.astype(w.dtype)).sum(axis=-1, dtype=np.float64).mean(axis=-1)
    else:
        self_share = previous = mean_distance = nan
    max_weight = w.max(axis=-1).mean(axis=-1, dtype=np.float64)

    layers, heads = np.meshgrid(np.arange(n_layers), np.arange(n_heads), indexing="ij")
    frame = pd.DataFrame({
        "layer": layers.ravel(),
        "head": heads.ravel(),
        "entropy_bits": entropy.mean(axis=-1).ravel(),
        "normalized_entropy": np.asarray(normalized).ravel(),
        "sink_share": sink.ravel(),
        "previous_token_share": np.asarray(previous).ravel(),
        "self_share": np.asarray(self_share).ravel(),
        "mean_distance_tokens": np.asarray(mean_distance).ravel(),
        "max_weight": max_weight.ravel(),
    })
    frame["pattern"] = [head_pattern(row) for row in frame.itertuples(index=False)]
    return frame


def head_pattern(row) -> str:
    """Name of the pattern that takes more than `PATTERN_THRESHOLD` of a head's attention, else broad/mixed."""
    candidates = {
        "first token (sink)": getattr(row, "sink_share"),
        "previous token": getattr(row, "previous_token_share"),
        "itself": getattr(row, "self_share"),
    }
    best_name, best_value = None, -1.0
    for name, value in candidates.items():
        if value is not None and not np.isnan(value) and value > best_value:
            best_name, best_value = name, float(value)
    if best_name is not None and best_value > PATTERN_THRESHOLD:
        return best_name
    normalized = getattr(row, "normalized_entropy")
    if normalized is not None and not np.isnan(normalized) and normalized > 0.8:
        return "broad (near uniform)"
    return "mixed"


# ----------------------------------------------------------------------------------------------------------
# Aggregations
# ----------------------------------------------------------------------------------------------------------

def mean_over_heads(weights: np.ndarray) -> np.ndarray:
    """[layers, heads, q, k] → [layers, q, k]: the average attention of all heads in each layer."""
    return np.asarray(weights).mean(axis=1)


def mean_over_layers(weights: np.ndarray) -> np.ndarray:
    """[layers, heads, q, k] → [q, k]: the average over every layer and head."""
    return np.asarray(weights).mean(axis=(0, 1))


def attention_rollout(weights: np.ndarray, residual_weight: float = 0.5) -> np.ndarray:
    """Attention rollout, Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers", §3 (Eq. 1).

    Per layer, heads are averaged and the residual connection is added as an identity:
    Ã_l = (1 − r)·A_l + r·I with r = 0.5, rows re-normalised; then Ã_rollout(l) = Ã_l · Ã_rollout(l − 1),
    Ã_rollout(0) = Ã_0. Returns [layers, q, k]: entry l is how much each token's representation after layer l
    traces back to each input token. Needs self-attention (q = k)."""
    per_layer = mean_over_heads(weights).astype(np.float64)
    n_layers, n_q, n_k = per_layer.shape
    if n_q != n_k:
        raise ValueError("attention rollout needs self-attention (as many queries as keys)")
    identity = np.eye(n_q)
    rolled = np.empty_like(per_layer)
    current = None
    for layer in range(n_layers):
        mixed = (1.0 - residual_weight) * per_layer[layer] + residual_weight * identity
        mixed /= mixed.sum(axis=-1, keepdims=True)
        current = mixed if current is None else mixed @ current
        rolled[layer] = current
    return rolled


@dataclass(frozen=True)
class TokenFocus:
    """Attention of one token across layers (averaged over heads, or one head).

    `attends_to` [layers, keys]: where the token's query puts its weight.
    `attended_by` [layers, queries]: how much each query puts on this token."""

    index: int
    attends_to: np.ndarray
    attended_by: np.ndarray
    key_tokens: list[str]
    query_tokens: list[str]

    @property
    def query_token(self) -> str | None:
        """The token at `index` among the queries (the one whose attention `attends_to` shows)."""
        return self.query_tokens[self.index] if 0 <= self.index < len(self.query_tokens) else None

    @property
    def key_token(self) -> str | None:
        """The token at `index` among the keys (the one `attended_by` is about)."""
        return self.key_tokens[self.index] if 0 <= self.index < len(self.key_tokens) else None

    @property
    def token(self) -> str:
        """The focus token (for self-attention queries and keys are the same sequence)."""
        return self.query_token if self.query_token is not None else (self.key_token or "")


def token_focus(maps: AttentionMaps, index: int, head: int | None = None) -> TokenFocus:
    """What token `index` attends to, and what attends to it, in every layer (mean over heads unless `head`).

    For cross-attention, `index` is a target token for `attends_to` and a source token for `attended_by`
    only when it exists on that side; the missing side is all zeros."""
    w = np.asarray(maps.weights)
    per_layer = w.mean(axis=1) if head is None else w[:, head]
    n_layers, n_q, n_k = per_layer.shape
    attends_to = per_layer[:, index, :] if 0 <= index < n_q else np.zeros((n_layers, n_k))
    attended_by = per_layer[:, :, index] if 0 <= index < n_k else np.zeros((n_layers, n_q))
    return TokenFocus(index, attends_to, attended_by, list(maps.key_tokens), list(maps.query_tokens))
