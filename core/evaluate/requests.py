"""Log-likelihood requests answered as lm-evaluation-harness's ``HFLM`` answers them
(``lm_eval/models/huggingface.py``: ``_encode_pair``, ``_loglikelihood_tokens``, ``loglikelihood_rolling``), on a
local transformers model or on an OpenAI-compatible server's prompt log-probabilities.

- ``loglikelihood(context, continuation)``: trailing spaces of the context move to the continuation; the whole
  string is tokenised and split at the context's length (so the continuation's tokens are those of the whole text);
  an empty context is the model's prefix token (BOS, else EOS). The model reads ``(context + continuation)[:-1]``;
  the answer is the summed log-softmax of the continuation's tokens and whether each was the greedy choice.
- ``loglikelihood_rolling(text)``: the prefix token, then the text, every token scored (one window: texts longer
  than the model's context are refused rather than windowed).

Whole requests are batched, padded on the right and run without an attention mask, as HFLM runs a causal model: a
causal model's positions never see the padding after them. The requests of one item share its context, which runs
once (``local_scorer``'s ``share_context``).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from core.evaluate.task_files import Request

DEFAULT_BATCH_SIZE = 16


@dataclass(frozen=True)
class Scored:
    """The answer to one request: summed log-likelihood (nats), whether every continuation token was the argmax
    (None where the scorer cannot tell, e.g. an endpoint's prompt log-probabilities) and the tokens scored."""

    loglik: float
    is_greedy: bool | None
    tokens: int

    def to_dict(self) -> dict:
        return {"loglik": self.loglik, "is_greedy": self.is_greedy, "tokens": self.tokens}


Scorer = Callable[[Sequence[Request]], list[Scored]]
Progress = Callable[[int, int], None]  # (requests done, total)


class ScoringStopped(Exception):
    """The run's Stop was pressed; ``done`` holds the requests answered before it, by request index."""

    def __init__(self, done: dict[int, Scored]):
        super().__init__("stopped")
        self.done = done


def prefix_token_id(tokenizer) -> int:
    """HFLM.prefix_token_id: the BOS token, else EOS: the context of a request whose context is empty."""
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as HFLM ``_encode_pair`` / ``loglikelihood`` make them."""
    if context == "":
        return [prefix_token_id(tokenizer)], tokenizer.encode(continuation)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation)
    context_ids = tokenizer.encode(context)
    return context_ids, whole[len(context_ids):]


def encode_request(tokenizer, request: Request) -> tuple[list[int], list[int]]:
    if request.kind == "loglikelihood_rolling":
        return [prefix_token_id(tokenizer)], tokenizer.encode(request.continuation)
    return encode_pair(tokenizer, request.context, request.continuation)


def _max_length(model) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)


def local_scorer(model, tokenizer, batch_size: int = DEFAULT_BATCH_SIZE, *, on_progress: Progress | None = None,
                 stop: threading.Event | None = None, share_context: bool = True) -> Scorer:
    """A Scorer on a transformers causal LM (``model.eval()``).

    ``share_context`` (default): the requests that share a context (an item's choices) run it once and its key/value
    cache serves every choice: the same log-probabilities as one forward pass per choice (a causal model's position
    sees only what precedes it) for a third of the work on four choices. HFLM does the same for one-token
    continuations (its ``Collator`` groups by context) and runs longer ones whole. Else ``batch_size`` whole
    requests per forward pass, padded on the right, as HFLM runs them."""
    if batch_size < 1:
        raise ValueError("The batch size must be at least 1.")
    max_length = _max_length(model)

    def score(requests: Sequence[Request]) -> list[Scored]:
        encoded = [encode_request(tokenizer, r) for r in requests]
        for (ctx, cont), request in zip(encoded, requests):
            if not cont:
                raise ValueError(f"The continuation {request.continuation!r} has no tokens to score.")
            if request.kind == "loglikelihood_rolling" and len(ctx) + len(cont) > max_length + 1:
                raise ValueError(f"A text of {len(cont):,} tokens is longer than the model's context "
                                 f"({max_length:,}); split it.")
        out: dict[int, Scored] = {}
        groups: dict[tuple, list[int]] = {}
        whole: list[int] = []
        for i, (ctx, cont) in enumerate(encoded):
            if share_context and len(ctx) + len(cont) <= max_length + 1:
                groups.setdefault(tuple(ctx), []).append(i)
            else:
                whole.append(i)
        for ctx, members in groups.items():
            if stop is not None and stop.is_set():
                raise ScoringStopped(dict(out))
            out.update(_shared_context(model, list(ctx), {i: encoded[i][1] for i in members}))
            if on_progress is not None:
                on_progress(len(out), len(encoded))
        whole.sort(key=lambda i: -len(encoded[i][0]) - len(encoded[i][1]))
        for start in range(0, len(whole), batch_size):
            if stop is not None and stop.is_set():
                raise ScoringStopped(dict(out))
            out.update(_whole_batch(model, [(i, encoded[i]) for i in whole[start:start + batch_size]], max_length))
            if on_progress is not None:
                on_progress(len(out), len(encoded))
        return [out[i] for i in range(len(encoded))]

    return score


def _pick(logprobs, cont: list[int]) -> Scored:
    """Scored from the log-softmax rows that predict ``cont`` (shape (len(cont), vocab))."""
    import torch

    target = torch.tensor(cont, dtype=torch.long)
    ll = logprobs.gather(-1, target[:, None]).squeeze(-1).sum().item()
    return Scored(float(ll), bool((logprobs.argmax(-1) == target).all().item()), len(cont))


def _whole_batch(model, batch: list[tuple[int, tuple[list[int], list[int]]]], max_length: int) -> dict[int, Scored]:
    """HFLM's ``_loglikelihood_tokens`` on one batch: ``(context + continuation)[-(max_length + 1):][:-1]``."""
    import torch

    rows = [(ctx + cont)[-(max_length + 1):][:-1] for _, (ctx, cont) in batch]
    ids = torch.zeros((len(rows), max(len(r) for r in rows)), dtype=torch.long)
    for j, row in enumerate(rows):
        ids[j, :len(row)] = torch.tensor(row, dtype=torch.long)
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)
    return {i: _pick(logprobs[j, len(rows[j]) - len(cont):len(rows[j])], cont)
            for j, (i, (_, cont)) in enumerate(batch)}


def _shared_context(model, ctx: list[int], conts: dict[int, list[int]]) -> dict[int, Scored]:
    """One context, several continuations: the context once (its last position predicts every continuation's first
    token), then the continuations' remaining tokens in one batch on copies of its key/value cache."""
    import torch

    with torch.inference_mode():
        first = model(torch.tensor([ctx], dtype=torch.long), use_cache=True)
        head = torch.log_softmax(first.logits[0, -1].float(), dim=-1)
        longer = [i for i, cont in conts.items() if len(cont) > 1]
        tails = {}
        if longer:
            cache = first.past_key_values
            cache.batch_repeat_interleave(len(longer))
            width = max(len(conts[i]) - 1 for i in longer)
            ids = torch.zeros((len(longer), width), dtype=torch.long)
            for j, i in enumerate(longer):
                ids[j, :len(conts[i]) - 1] = torch.tensor(conts[i][:-1], dtype=torch.long)
            mask = torch.ones((len(longer), len(ctx) + width), dtype=torch.long)
            logits = model(ids, past_key_values=cache, attention_mask=mask, use_cache=True).logits.float()
            rest = torch.log_softmax(logits, dim=-1)
            tails = {i: rest[j, :len(conts[i]) - 1] for j, i in enumerate(longer)}
    out = {}
    for i, cont in conts.items():
        rows = head[None] if len(cont) == 1 else torch.cat([head[None], tails[i]], dim=0)
        out[i] = _pick(rows, cont)
    return out


def endpoint_scorer(endpoint, tokenizer, *, on_progress: Progress | None = None,
                    stop: threading.Event | None = None) -> Scorer:
    """A Scorer on an OpenAI-compatible server through its prompt log-probabilities (vLLM ``prompt_logprobs``, else
    ``echo`` + ``logprobs``; ``core.serve.endpoint_scoring``), the request tokenised here as HFLM tokenises it and
    sent as token ids, so server and local model score the same tokens. A server that returns no prompt
    log-probabilities raises ``EndpointError`` with the reason: it is never scored (a silent fallback would score at
    chance)."""
    from core.serve.endpoint_scoring import prompt_logprobs

    def score(requests: Sequence[Request]) -> list[Scored]:
        out = []
        for request in requests:
            if stop is not None and stop.is_set():
                raise ScoringStopped(dict(enumerate(out)))
            ctx, cont = encode_request(tokenizer, request)
            values = prompt_logprobs(endpoint, ctx + cont)  # one per token after the first
            if len(values) < len(cont):
                from core.serve.endpoints import EndpointError

                raise EndpointError(f"'{endpoint.name}' scored {len(values)} of the prompt's tokens; "
                                    f"{len(cont)} were needed.")
            out.append(Scored(float(sum(values[len(values) - len(cont):])), None, len(cont)))
            if on_progress is not None:
                on_progress(len(out), len(requests))
        return out

    return score
