"""Long inputs shown a window at a time, and the tables and files for download (CSV of one view, NPZ of a result)."""
from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pandas as pd

from core.run.attention.maps import RENDER_LIMIT, AttentionMaps, AttentionResult


# ----------------------------------------------------------------------------------------------------------
# Windows of long inputs
# ----------------------------------------------------------------------------------------------------------

def needs_window(maps: AttentionMaps, limit: int = RENDER_LIMIT) -> bool:
    """True when one axis has more tokens than can be drawn legibly."""
    return max(len(maps.query_tokens), len(maps.key_tokens)) > limit


def clamp_window(n_tokens: int, start: int, size: int) -> tuple[int, int]:
    """A valid [start, stop) range of at most `size` tokens inside 0..n_tokens."""
    size = max(1, min(int(size), n_tokens))
    start = min(max(0, int(start)), n_tokens - size)
    return start, start + size


def window(maps: AttentionMaps, start: int, size: int = RENDER_LIMIT) -> AttentionMaps:
    """The maps restricted to tokens [start, start + size).

    Self-attention: both queries and keys are cut to the window. Cross-attention: the source (keys) is cut;
    the target (queries, at most MAX_TARGET_TOKENS) is kept. Rows no longer sum to 1 inside a window:
    the rest of the weight goes to tokens outside it."""
    k_start, k_stop = clamp_window(len(maps.key_tokens), start, size)
    if maps.is_self_attention:
        q_start, q_stop = k_start, k_stop
    else:
        q_start, q_stop = 0, len(maps.query_tokens)
    return replace(
        maps,
        weights=np.asarray(maps.weights)[:, :, q_start:q_stop, k_start:k_stop],
        query_tokens=list(maps.query_tokens[q_start:q_stop]),
        key_tokens=list(maps.key_tokens[k_start:k_stop]),
        offset_queries=maps.offset_queries + q_start,
        offset_keys=maps.offset_keys + k_start,
    )


def crop_to_window(array: np.ndarray, view: AttentionMaps) -> np.ndarray:
    """An array [..., queries, keys] computed on the full maps (e.g. `attention_rollout`) cut to the tokens of
    `view`, a `window` of those maps (a no-op for the full maps)."""
    q_stop = view.offset_queries + len(view.query_tokens)
    k_stop = view.offset_keys + len(view.key_tokens)
    return np.asarray(array)[..., view.offset_queries:q_stop, view.offset_keys:k_stop]


# ----------------------------------------------------------------------------------------------------------
# Exports
# ----------------------------------------------------------------------------------------------------------

def indexed_labels(tokens: list[str], offset: int = 0) -> list[str]:
    """Unique labels "position: token" (the same word can occur several times in a text)."""
    return [f"{offset + i}: {token}" for i, token in enumerate(tokens)]


def matrix_frame(matrix: np.ndarray, query_tokens: list[str], key_tokens: list[str],
                 query_offset: int = 0, key_offset: int = 0) -> pd.DataFrame:
    """A [queries, keys] matrix as a DataFrame with "position: token" row and column labels."""
    frame = pd.DataFrame(np.asarray(matrix), index=indexed_labels(query_tokens, query_offset),
                         columns=indexed_labels(key_tokens, key_offset))
    frame.index.name = "query \\ key"
    return frame


def view_to_csv(matrix: np.ndarray, query_tokens: list[str], key_tokens: list[str],
                query_offset: int = 0, key_offset: int = 0) -> str:
    """CSV text of the weights currently shown: one row per query, one column per key."""
    return matrix_frame(matrix, query_tokens, key_tokens, query_offset, key_offset).to_csv(float_format="%.6g")


def result_to_npz(result: AttentionResult) -> bytes:
    """All layers and heads as a compressed .npz: `weights` [layers, heads, q, k], `tokens`, and for
    encoder-decoder models `decoder_weights`, `cross_weights`, `target_tokens`; plus `model` and `kind`."""
    arrays: dict[str, np.ndarray] = {
        "weights": np.asarray(result.weights, dtype=np.float32),
        "tokens": np.array(result.tokens, dtype=str),
        "model": np.array(result.model_name),
        "kind": np.array(result.kind),
        "random_weights": np.array(result.random_weights),
    }
    if result.is_encoder_decoder:
        arrays["decoder_weights"] = np.asarray(result.decoder_weights, dtype=np.float32)
        arrays["cross_weights"] = np.asarray(result.cross_weights, dtype=np.float32)
        arrays["target_tokens"] = np.array(result.target_tokens or [], dtype=str)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def upper_triangle_share(matrix: np.ndarray) -> float:
    """Share of the total weight above the diagonal (on future tokens): 0 for a causal model."""
    m = np.asarray(matrix, dtype=np.float64)
    total = m.sum()
    return float(np.triu(m, k=1).sum() / total) if total > 0 else 0.0
