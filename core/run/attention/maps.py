"""What attention extraction returns: the weights of every layer and head for one input (``AttentionMaps``, one per
component of an encoder-decoder in ``AttentionResult``), and the limits that keep them renderable and in memory."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


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
