"""Attention weights of a real model: extraction, per-head statistics, aggregations, windows and exports.

`attention_maps(loaded, text)` runs a text through a model loaded by `core.run.models` with the attention
probabilities returned, and gives them back as numpy arrays shaped [layers, heads, queries, keys].
Everything else here is plain numpy on those arrays, so it can be tested on small hand-made cases.

Attention weights are only returned by transformers' "eager" attention: the default SDPA kernel returns
none (transformers/integrations/sdpa_attention.py warns "`sdpa` attention does not support
`output_attentions=True`"). `attention_maps` therefore switches a model to eager attention for the duration
of one forward pass and switches it back afterwards; pages load their models with
`attn_implementation="eager"` so that no switch is needed.
"""
from __future__ import annotations

import io
import math
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

RENDER_LIMIT = 128
"""Most tokens drawn along one axis of a heatmap; longer inputs are shown through a window of tokens."""

ATTENTION_MEMORY_BUDGET_BYTES = 1.0e9
"""Memory allowed for the attention weights of one text (all layers and heads, float32): 1 GB.

Eager attention materialises layers × heads × tokens² probabilities, which grows quadratically: SmolLM2's full
8,192-token context would need 30 × 9 × 8192² × 4 bytes = 72 GB. Texts are analysed up to the model's context
window or up to what fits in this budget, whichever is smaller."""

DEFAULT_MAX_NEW_TOKENS = 20
"""Tokens an encoder-decoder model generates when no target text is given."""

MAX_TARGET_TOKENS = RENDER_LIMIT
"""Longest decoder sequence analysed for encoder-decoder models (so cross-attention rows always fit a heatmap)."""

TINY_T5_CONFIG = {
    "model_type": "t5",
    "d_model": 128,
    "d_kv": 32,
    "d_ff": 256,
    "num_layers": 4,
    "num_decoder_layers": 4,
    "num_heads": 4,
    "feed_forward_proj": "gated-gelu",
    "relative_attention_num_buckets": 32,
    "dropout_rate": 0.0,
}
"""A small T5 v1.1-style encoder-decoder (4 + 4 layers, 4 heads) for `core.run.models.random_model`: it shows the
encoder-decoder wiring (encoder self-, decoder self- and cross-attention) offline. Its weights are random, so
its attention patterns are not learned; google/flan-t5-small (8 + 8 layers, 6 heads) shows learned ones."""

START_LABEL = "⟨start⟩"
"""Label of the decoder start token of encoder-decoder models (T5 uses its pad token for it)."""

COMPONENT_LABELS = {
    "self": "Self-attention",
    "encoder": "Encoder self-attention",
    "decoder": "Decoder self-attention (causal)",
    "cross": "Cross-attention (decoder → encoder)",
}


class AttentionInputError(ValueError):
    """The text or model cannot be analysed; the message is meant for the person using the page."""


class _LayersHeads:
    """`n_layers` / `n_heads` of a class whose `weights` are shaped [layers, heads, queries, keys]."""

    weights: np.ndarray

    @property
    def n_layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_heads(self) -> int:
        return int(self.weights.shape[1])


@dataclass(frozen=True)
class AttentionMaps(_LayersHeads):
    """One family of attention maps: weights [layers, heads, queries, keys] and the tokens on each axis.

    `offset_queries` / `offset_keys` are the positions of the first query / key in the full sequence
    (non-zero for a window of a longer input)."""

    weights: np.ndarray
    query_tokens: list[str]
    key_tokens: list[str]
    component: str = "self"
    causal: bool = False
    offset_queries: int = 0
    offset_keys: int = 0

    @property
    def label(self) -> str:
        return COMPONENT_LABELS.get(self.component, self.component)

    @property
    def is_self_attention(self) -> bool:
        """Queries and keys are the same sequence (encoder/decoder self-attention, not cross-attention)."""
        return self.component != "cross"


@dataclass(frozen=True)
class AttentionResult(_LayersHeads):
    """Attention of one text through one model.

    `tokens` / `weights` are the self-attention of a decoder or encoder model, or the encoder self-attention
    of an encoder-decoder model. Encoder-decoder results also carry the decoder side: `target_tokens`,
    `decoder_weights` [layers, heads, target, target] and `cross_weights` [layers, heads, target, source]."""

    tokens: list[str]
    weights: np.ndarray
    kind: str
    model_name: str = ""
    random_weights: bool = False
    target_tokens: list[str] | None = None
    decoder_weights: np.ndarray | None = None
    cross_weights: np.ndarray | None = None
    target_generated: bool = False
    target_text: str = ""
    input_token_count: int = 0
    token_limit: int = 0
    limit_reason: str = ""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    """`token_limit`: most tokens analysed; `limit_reason`: "context window", "memory" (the attention-weight
    budget) or "requested"; `input_token_count`: tokens of the whole text; `seconds`: the forward pass(es)."""

    @property
    def n_tokens(self) -> int:
        return len(self.tokens)

    @property
    def truncated(self) -> bool:
        """The text had more tokens than were analysed."""
        return self.input_token_count > self.n_tokens

    @property
    def is_encoder_decoder(self) -> bool:
        return self.kind == "encoder-decoder"

    def components(self) -> dict[str, AttentionMaps]:
        """All attention families of this result by component name ("self", or "encoder"/"decoder"/"cross")."""
        if not self.is_encoder_decoder:
            return {"self": AttentionMaps(self.weights, self.tokens, self.tokens, "self", self.kind == "decoder")}
        target = self.target_tokens or []
        return {
            "encoder": AttentionMaps(self.weights, self.tokens, self.tokens, "encoder", False),
            "decoder": AttentionMaps(self.decoder_weights, target, target, "decoder", True),
            "cross": AttentionMaps(self.cross_weights, target, self.tokens, "cross", False),
        }

    def component(self, name: str | None = None) -> AttentionMaps:
        """One attention family; None (or "self") gives the main self-attention (the encoder's for T5-like models)."""
        maps = self.components()
        if name in (None, "self") and "self" not in maps:
            name = "encoder"
        if name is None:
            name = "self"
        if name not in maps:
            raise KeyError(f"no {name!r} attention in a {self.kind} result; available: {', '.join(maps)}")
        return maps[name]


# ----------------------------------------------------------------------------------------------------------
# Extraction from a real model
# ----------------------------------------------------------------------------------------------------------

_SWITCH_LOCK = threading.Lock()


@contextmanager
def eager_attention(model):
    """Run `model` with eager attention inside the block, restoring its previous implementation afterwards.

    Only eager attention returns the softmax probabilities (transformers' SDPA returns none; see module doc).
    `PreTrainedModel.set_attn_implementation` switches the kernel in place without reloading weights."""
    config = getattr(model, "config", None)
    previous = getattr(config, "_attn_implementation", None)
    if previous in (None, "eager"):
        yield model
        return
    with _SWITCH_LOCK:
        try:
            model.set_attn_implementation("eager")
        except Exception as error:  # models not built on transformers' attention interface
            raise AttentionInputError(
                f"This model uses the {previous!r} attention kernel, which does not return attention weights, "
                "and it cannot be switched to eager attention. Load it with attn_implementation=\"eager\"."
            ) from error
        try:
            yield model
        finally:
            try:
                model.set_attn_implementation(previous)
            except Exception:  # keep eager: slower but correct
                pass


def token_label(tokenizer, token_id: int) -> str:
    """Readable label of one token: its decoded text, with whitespace made visible."""
    text = tokenizer.decode([int(token_id)])
    text = text.replace("\n", "⏎").replace("\t", "⇥").replace("\r", "")
    stripped = text.strip()
    return stripped if stripped else "␣"


def context_window(loaded) -> int:
    """Longest input the model was built for, from its config (or its tokenizer), in tokens."""
    config = loaded.model.config
    encoder_config = getattr(config, "get_text_config", lambda **_: config)()
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(encoder_config, name, None) or getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    tokenizer_limit = getattr(loaded.tokenizer, "model_max_length", None)
    if isinstance(tokenizer_limit, int) and 0 < tokenizer_limit < 1_000_000:
        return tokenizer_limit
    return 512  # T5-style relative positions: no hard limit; T5 was trained on 512-token inputs (Raffel et al. 2020)


def attention_shape(loaded) -> tuple[int, int]:
    """(layers, heads) of the model's (encoder) self-attention, from its config."""
    config = loaded.model.config
    text_config = getattr(config, "get_text_config", lambda **_: config)()
    layers = getattr(text_config, "num_hidden_layers", None) or getattr(text_config, "num_layers", None)
    heads = getattr(text_config, "num_attention_heads", None) or getattr(text_config, "num_heads", None)
    return int(layers or 1), int(heads or 1)


def max_analysable_tokens(n_layers: int, n_heads: int, budget_bytes: float = ATTENTION_MEMORY_BUDGET_BYTES,
                          copies: int = 2) -> int:
    """Largest n with copies × layers × heads × n² × 4 bytes (float32) ≤ budget.

    Two copies: the framework's tensors and the numpy copy exist together for a moment."""
    if n_layers <= 0 or n_heads <= 0:
        raise ValueError("layers and heads must be positive")
    return max(1, int(math.isqrt(int(budget_bytes // (copies * n_layers * n_heads * 4)))))


def token_limit(loaded) -> int:
    """Tokens `attention_maps` analyses at most for this model: the context window or the memory budget."""
    layers, heads = attention_shape(loaded)
    return min(context_window(loaded), max_analysable_tokens(layers, heads))


def _stack(attentions) -> np.ndarray:
    """Tuple of per-layer tensors [batch=1, heads, q, k] → numpy float32 [layers, heads, q, k]."""
    if not attentions or any(a is None for a in attentions):
        raise AttentionInputError(
            "The model returned no attention weights. It needs eager attention "
            "(load it with attn_implementation=\"eager\")."
        )
    import torch

    return torch.stack([a[0].detach().float().cpu() for a in attentions]).numpy()


def _model_inputs(loaded, encoded: dict):
    device = getattr(loaded, "device", None)
    return {name: (value.to(device) if device is not None else value) for name, value in encoded.items()}


def attention_maps(loaded, text: str, target_text: str | None = None,
                   max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_tokens: int | None = None) -> AttentionResult:
    """Run `text` through `loaded` (a `core.run.models.LoadedModel`) and return every attention map.

    Decoder and encoder models give their self-attention. Encoder-decoder models give the encoder
    self-attention for `text`, and decoder self-attention plus cross-attention for `target_text`
    (or, when it is empty, for the output the model generates greedily, `max_new_tokens` at most).
    Inputs longer than `token_limit(loaded)` (or `max_tokens`) are cut to that many tokens; the result
    records how many the text had."""
    import torch

    if text is None or not str(text).strip():
        raise AttentionInputError("Enter some text to analyse: the input is empty.")
    model, tokenizer = loaded.model, loaded.tokenizer
    if tokenizer is None:
        raise AttentionInputError("This model has no tokenizer, so text cannot be turned into tokens.")
    kind = getattr(loaded, "kind", "decoder")
    limit, limit_reason = token_limit(loaded), "memory"
    if limit == context_window(loaded):
        limit_reason = "context window"
    if max_tokens is not None and int(max_tokens) < limit:
        limit, limit_reason = max(1, int(max_tokens)), "requested"

    all_ids = tokenizer(str(text), add_special_tokens=True, verbose=False)["input_ids"]
    input_token_count = len(all_ids)
    if input_token_count == 0:
        raise AttentionInputError("The text produced no tokens.")
    encoded = tokenizer(str(text), return_tensors="pt", truncation=True, max_length=limit)
    input_ids = encoded["input_ids"][0].tolist()
    tokens = [token_label(tokenizer, i) for i in input_ids]
    notes: list[str] = []

    started = time.perf_counter()
    with eager_attention(model), torch.inference_mode():
        inputs = _model_inputs(loaded, dict(encoded))
        if kind == "encoder-decoder":
            result = _encoder_decoder_maps(loaded, inputs, target_text, max_new_tokens, notes)
            weights, target_tokens, decoder_weights, cross_weights, generated, target_used = result
        else:
            # The base model (no language-model head): the attention is the same, the vocabulary projection
            # of every position is skipped.
            runner = model.base_model if kind == "decoder" and hasattr(model, "base_model") else model
            kwargs = {"use_cache": False} if kind == "decoder" else {}
            outputs = runner(**inputs, output_attentions=True, return_dict=True, **kwargs)
            weights = _stack(outputs.attentions)
            target_tokens = decoder_weights = cross_weights = None
            generated, target_used = False, ""
    seconds = time.perf_counter() - started

    return AttentionResult(
        tokens=tokens,
        weights=weights,
        kind=kind,
        model_name=getattr(loaded, "name", ""),
        random_weights=bool(getattr(loaded, "random_weights", False)),
        target_tokens=target_tokens,
        decoder_weights=decoder_weights,
        cross_weights=cross_weights,
        target_generated=generated,
        target_text=target_used,
        input_token_count=input_token_count,
        token_limit=limit,
        limit_reason=limit_reason,
        seconds=seconds,
        notes=notes,
    )


def _encoder_decoder_maps(loaded, inputs, target_text, max_new_tokens, notes):
    """Encoder self-, decoder self- and cross-attention of a T5/BART-style model for one input and one output."""
    import torch

    model, tokenizer = loaded.model, loaded.tokenizer
    start_id = getattr(model.config, "decoder_start_token_id", None)
    if start_id is None:
        start_id = getattr(getattr(model, "generation_config", None), "decoder_start_token_id", None)
    if start_id is None:
        start_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    inputs = {name: inputs[name] for name in ("input_ids", "attention_mask") if name in inputs}
    device = inputs["input_ids"].device

    if target_text is not None and str(target_text).strip():
        target_ids = tokenizer(str(target_text), add_special_tokens=False)["input_ids"][: MAX_TARGET_TOKENS - 1]
        decoder_ids = torch.tensor([[int(start_id)] + list(target_ids)], device=device)
        generated = False
    else:
        steps = max(1, min(int(max_new_tokens), MAX_TARGET_TOKENS - 1))
        # Padding, [CLS], [MASK], sentinel tokens… are never a meaningful output: only end-of-sequence may end it.
        eos_id = getattr(model.generation_config, "eos_token_id", None)
        eos_ids = set(eos_id if isinstance(eos_id, list) else [eos_id])
        suppressed = sorted(i for i in getattr(tokenizer, "all_special_ids", []) if i not in eos_ids)
        decoder_ids = model.generate(**inputs, max_new_tokens=steps, do_sample=False, num_beams=1,
                                     suppress_tokens=suppressed or None)
        generated = True
        notes.append(f"The decoder side is the model's own greedy output ({decoder_ids.shape[1] - 1} tokens, "
                     "special tokens other than end-of-sequence suppressed).")

    outputs = model(**inputs, decoder_input_ids=decoder_ids, output_attentions=True, return_dict=True, use_cache=False)
    decoder_list = decoder_ids[0].tolist()
    target_tokens = [START_LABEL] + [token_label(tokenizer, i) for i in decoder_list[1:]]
    target_used = tokenizer.decode(decoder_list[1:], skip_special_tokens=True)
    return (
        _stack(outputs.encoder_attentions),
        target_tokens,
        _stack(outputs.decoder_attentions),
        _stack(outputs.cross_attentions),
        generated,
        target_used,
    )


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
