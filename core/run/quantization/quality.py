"""Quality of a variant against the baseline from logits (numpy, shape (positions, vocab)): perplexity, KL divergence
per position and its percentile, top-1 agreement (llama.cpp ``perplexity --kl-divergence`` reports the same), and
the token-level diff of two generated outputs."""
from __future__ import annotations

import numpy as np

from core.run.quantization.variants import KL_PERCENTILE


# ---------------------------------------------------------------------------------------------------------------------
# Quality metrics (numpy; logits of shape (positions, vocab))


def _as_2d_float64(logits, name: str) -> np.ndarray:
    if hasattr(logits, "detach"):  # torch tensor (bf16 has no numpy dtype: go through fp32)
        logits = logits.detach().float().cpu().numpy()
    array = np.asarray(logits, dtype=np.float64)
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or array.shape[-1] < 1:
        raise ValueError(f"{name} must have shape (positions, vocab) or (1, positions, vocab), got {array.shape}.")
    return array


def log_softmax(logits) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, in float64: x − max − log Σ exp(x − max)."""
    x = _as_2d_float64(logits, "logits")
    shifted = x - np.max(x, axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def kl_divergence(base_logits, other_logits, chunk_positions: int = 64) -> np.ndarray:
    """KL(P_base ‖ Q_other) per position, in nats: Σ_v p(v) · (log p(v) − log q(v)).

    P and Q are the softmax of each model's next-token logits at the same position; the direction (baseline first)
    is the one llama.cpp's ``perplexity --kl-divergence`` reports. Computed from log-softmax in float64, a chunk of
    positions at a time to bound memory. Exactly 0 for identical logits; tiny negative rounding is clipped to 0.
    Accepts numpy arrays or torch tensors of shape (positions, vocab) or (1, positions, vocab).
    """
    base = _as_2d_float64(base_logits, "base_logits")
    other = _as_2d_float64(other_logits, "other_logits")
    if base.shape != other.shape:
        raise ValueError(f"Logit shapes differ: {base.shape} vs {other.shape}.")
    out = np.empty(base.shape[0], dtype=np.float64)
    for start in range(0, base.shape[0], max(1, int(chunk_positions))):
        stop = start + max(1, int(chunk_positions))
        log_p = log_softmax(base[start:stop])
        log_q = log_softmax(other[start:stop])
        p = np.exp(log_p)
        with np.errstate(invalid="ignore"):
            terms = np.where(p > 0, p * (log_p - log_q), 0.0)
        out[start:stop] = terms.sum(axis=-1)
    return np.maximum(out, 0.0)


def token_nll(logits, token_ids) -> np.ndarray:
    """Negative log-likelihood (nats) of tokens 1..T−1, each predicted from the logits at the position before it."""
    log_probs = log_softmax(logits)
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] != log_probs.shape[0]:
        raise ValueError(f"{ids.shape[0]} token ids for {log_probs.shape[0]} positions of logits.")
    if ids.shape[0] < 2:
        raise ValueError("Perplexity needs at least 2 tokens.")
    return -log_probs[np.arange(ids.shape[0] - 1), ids[1:]]


def perplexity_from_logits(logits, token_ids) -> float:
    """Perplexity = exp(mean NLL) of the text, every token after the first scored (as llama.cpp's perplexity tool
    defines it, https://github.com/ggml-org/llama.cpp/tree/master/tools/perplexity)."""
    return float(np.exp(np.mean(token_nll(logits, token_ids))))


def top1_agreement(base_logits, other_logits) -> float:
    """Fraction (0–1) of positions where both models' most likely next token is the same ("Same top p" in llama.cpp)."""
    base = _as_2d_float64(base_logits, "base_logits")
    other = _as_2d_float64(other_logits, "other_logits")
    if base.shape != other.shape:
        raise ValueError(f"Logit shapes differ: {base.shape} vs {other.shape}.")
    return float(np.mean(np.argmax(base, axis=-1) == np.argmax(other, axis=-1)))


def kl_percentile(kl_per_position, percentile: float = KL_PERCENTILE) -> float:
    """The ``percentile``-th percentile (linear interpolation) of per-position KL values ("99.0% KLD" in llama.cpp)."""
    values = np.asarray(kl_per_position, dtype=np.float64).reshape(-1)
    if values.size == 0:
        return float("nan")
    return float(np.percentile(values, percentile))


# ---------------------------------------------------------------------------------------------------------------------
# Token-level comparison of generated outputs


def first_divergence(base_ids, other_ids) -> int | None:
    """Index of the first generated token that differs from the baseline's (or where one output stops while the other
    goes on); None when both outputs are identical."""
    base, other = list(base_ids), list(other_ids)
    for index, (a, b) in enumerate(zip(base, other)):
        if a != b:
            return index
    if len(base) != len(other):
        return min(len(base), len(other))
    return None


def token_diff(base_ids, other_ids, other_tokens=None) -> list[dict]:
    """Position-by-position comparison of a variant's tokens with the baseline's.

    One entry per token of the variant: {"position", "token" (text), "same" (equal to the baseline's token at that
    position), "after_divergence" (at or after the first divergence: the context differs from the baseline's from
    there on, so later matches are coincidences)}.
    """
    other = list(other_ids)
    texts = list(other_tokens) if other_tokens is not None else [str(t) for t in other]
    divergence = first_divergence(base_ids, other)
    base = list(base_ids)
    entries = []
    for index, (token_id, text) in enumerate(zip(other, texts)):
        same = index < len(base) and base[index] == token_id
        entries.append({"position": index, "token": text, "same": bool(same),
                        "after_divergence": divergence is not None and index >= divergence})
    return entries
