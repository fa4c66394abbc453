"""Attention weights from a real model: the eager attention implementation switched on for one forward pass (SDPA
returns no weights), for decoders, encoders and encoder-decoders (decoder self- and cross-attention over a
generated or given target)."""
from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager

import numpy as np

from core.run.attention.maps import (ATTENTION_MEMORY_BUDGET_BYTES, DEFAULT_MAX_NEW_TOKENS, MAX_TARGET_TOKENS,
                                     START_LABEL, AttentionInputError, AttentionResult)
from core.run.tokens import token_label  # re-exported: core.run.attention.token_label


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
