"""Log-likelihood requests answered as lm-evaluation-harness's ``HFLM`` answers them
(``lm_eval/models/huggingface.py``: ``_encode_pair``, ``_loglikelihood_tokens``, ``loglikelihood_rolling``), on a
local transformers model or on an OpenAI-compatible server's prompt log-probabilities.

- ``loglikelihood(context, continuation)``: trailing spaces of the context move to the continuation; the whole
  string is tokenised and split at the context's length (so the continuation's tokens are those of the whole text);
  an empty context is the model's prefix token (BOS, else EOS). The model reads ``(context + continuation)[:-1]``;
  the answer is the summed log-softmax of the continuation's tokens and whether each was the greedy choice.
- ``loglikelihood_rolling(text)``: the prefix token, then the text, every token scored (one window: texts longer
  than the model's context are refused rather than windowed).

Requests are batched, padded on the right and run without an attention mask, as HFLM runs a causal model: a
causal model's positions never see the padding after them.
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
    """(context ids, continuation ids) as HFLM ``_encode_pair`` / ``loglikelihood`` make them (``tok_encode`` of a
    causal model adds no special tokens: a BOS-adding tokenizer must not put one mid-request)."""
    if context == "":
        return [prefix_token_id(tokenizer)], tokenizer.encode(continuation, add_special_tokens=False)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces > 0:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    context_ids = tokenizer.encode(context, add_special_tokens=False)
    return context_ids, whole[len(context_ids):]


def encode_request(tokenizer, request: Request) -> tuple[list[int], list[int]]:
    if request.kind == "loglikelihood_rolling":
        return [prefix_token_id(tokenizer)], tokenizer.encode(request.continuation, add_special_tokens=False)
    return encode_pair(tokenizer, request.context, request.continuation)


def _max_length(model) -> int:
    config = getattr(model, "config", None)
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)


def local_scorer(model, tokenizer, batch_size: int = DEFAULT_BATCH_SIZE, *, on_progress: Progress | None = None,
                 stop: threading.Event | None = None, share_context: bool = True) -> Scorer:
    """A Scorer on a transformers causal LM (``model.eval()``): ``batch_size`` rows per forward pass, padded on the
    right, longest first, as HFLM runs them.

    ``share_context`` (default): an item whose choices are all one token long (" positive" / " negative") runs its
    context once and reads every choice off the last position, as HFLM's ``Collator`` groups such requests; the
    log-probabilities are the same (the model reads ``context + continuation[:-1]`` = the context either way)."""
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
        groups: dict[tuple, list[int]] = {}
        for i, (ctx, cont) in enumerate(encoded):
            groups.setdefault(tuple(ctx), []).append(i)
        units = []  # (row the model reads, [(request index, where its continuation starts)])
        for ctx, members in groups.items():
            if share_context and len(ctx) <= max_length and all(len(encoded[i][1]) == 1 for i in members):
                units.append((list(ctx), [(i, len(ctx) - 1) for i in members]))
            else:
                for i in members:
                    row = (encoded[i][0] + encoded[i][1])[-(max_length + 1):][:-1]
                    units.append((row, [(i, len(row) - len(encoded[i][1]))]))
        units.sort(key=lambda u: -len(u[0]))
        out: dict[int, Scored] = {}
        for start in range(0, len(units), batch_size):
            if stop is not None and stop.is_set():
                raise ScoringStopped(dict(out))
            out.update(_forward(model, units[start:start + batch_size], encoded))
            if on_progress is not None:
                on_progress(len(out), len(encoded))
        return [out[i] for i in range(len(encoded))]

    return score


def _forward(model, units, encoded) -> dict[int, Scored]:
    """One forward pass over the units' rows; each request's continuation read from its positions."""
    import torch

    ids = torch.zeros((len(units), max(len(row) for row, _ in units)), dtype=torch.long)
    for j, (row, _) in enumerate(units):
        ids[j, :len(row)] = torch.tensor(row, dtype=torch.long)
    with torch.inference_mode():
        logprobs = torch.log_softmax(model(ids).logits.float(), dim=-1)
    out = {}
    for j, (_, reads) in enumerate(units):
        for i, at in reads:
            cont = encoded[i][1]
            picked = logprobs[j, at:at + len(cont)]
            target = torch.tensor(cont, dtype=torch.long)
            ll = picked.gather(-1, target[:, None]).squeeze(-1).sum().item()
            out[i] = Scored(float(ll), bool((picked.argmax(-1) == target).all().item()), len(cont))
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
