"""The requests of a serving load test: distinct prompts of an exact token length, an optional shared prefix and
length distributions — the workload of vLLM's ``vllm bench serve --dataset-name random``.

vLLM's random dataset (vllm/benchmarks/datasets/datasets.py ``RandomDataset``, utils.py ``get_sampling_params``;
https://docs.vllm.ai/en/latest/cli/bench/serve.html):

- input and output lengths are drawn per request, uniformly over the integers in
  [⌊L·(1 − r)⌋, ⌈L·(1 + r)⌉] around the configured length L (``--random-range-ratio`` r, 0 ≤ r < 1; r = 0 is fixed);
- every prompt is different, so no two requests share a cached prefix (vLLM's automatic prefix caching would
  otherwise serve repeated prompt blocks from cache and understate TTFT);
- ``--random-prefix-len`` K prepends one fixed K-token prefix to every prompt (a shared system prompt), to measure
  prefix caching on purpose;
- a prompt's text is decoded from tokens, re-encoded and adjusted until it is exactly the drawn length.

Here the prompt text is random common English words (seeded; readable in the request log), cut to an exact token
count with the served model's own tokenizer: vLLM's ``/tokenize`` and ``/detokenize`` endpoints, or a local
Hugging Face tokenizer. A server that offers neither gets word prompts of about the length (one common word ≈ one
token) and the table reports the length the server counted (``usage.prompt_tokens``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

import httpx
import numpy as np

from core.common.checks import check_int, check_number
from core.serve.endpoints import Endpoint, EndpointError, check_response, describe_http_error, timeout

MAX_TOKENS = 1_048_576  # prompt / output length cap (2^20 tokens, above any served context window)
MAX_RANGE_RATIO = 0.99  # vLLM requires 0 ≤ ratio < 1
FIT_RETRIES = 10  # decode / re-encode rounds before accepting a length mismatch (vLLM's max_retry)

# Common short English words, one token each in most BPE vocabularies.
WORDS = ("the of and to in is that for it as with was on be at by this had not are but from or have an they which "
         "one you were all we her she there would their will when who him been has more if no out do so can what up "
         "said about other into than its time only could new them man some these then two first may any like now my "
         "such make over our even most me state after also made many did must before back see through way where get "
         "much go well your know should down work year because come people just say each those take day good how long "
         "little use very great world own under last right").split()


class WorkloadInputError(ValueError):
    """Bad workload parameters; the message is user-facing."""


@dataclass(frozen=True)
class WorkloadSpec:
    """What each request of a level looks like (token counts; ``range_ratio`` as vLLM's ``--random-range-ratio``,
    ``prefix_tokens`` as ``--random-prefix-len``). ``seed`` fixes the prompts; each level draws its own from it."""

    prompt_tokens: int
    output_tokens: int
    range_ratio: float = 0.0
    prefix_tokens: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        check_int(self.prompt_tokens, "Prompt length (tokens)", 1, MAX_TOKENS, error=WorkloadInputError)
        check_int(self.output_tokens, "Output length (tokens)", 1, MAX_TOKENS, error=WorkloadInputError)
        check_int(self.prefix_tokens, "Shared prefix (tokens)", 0, MAX_TOKENS, error=WorkloadInputError)
        check_number(self.range_ratio, "Length range ratio", 0.0, MAX_RANGE_RATIO, error=WorkloadInputError)
        check_int(self.seed, "Seed", 0, 2**63 - 1, error=WorkloadInputError)

    def length_bounds(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((input low, high), (output low, high)), inclusive, as vLLM's get_sampling_params."""
        r = float(self.range_ratio)
        low_in, high_in = math.floor(self.prompt_tokens * (1 - r)), math.ceil(self.prompt_tokens * (1 + r))
        low_out = max(1, math.floor(self.output_tokens * (1 - r)))
        high_out = max(1, math.ceil(self.output_tokens * (1 + r)))
        return (max(1, low_in), max(1, high_in)), (low_out, high_out)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class WorkloadRequest:
    """One request: its prompt text, the prompt's token count by the tokenizer used (None: not counted) and the
    output tokens asked for."""

    prompt: str
    prompt_tokens: int | None
    output_tokens: int


class Tokenizer(Protocol):
    """What cutting a text to an exact token count needs: the served model's encode and decode."""

    exact: bool

    def encode(self, texts: list[str]) -> list[list[int]]: ...

    def decode(self, ids: list[list[int]]) -> list[str]: ...


class WordTokenizer:
    """No tokenizer: one word is counted as one token (approximate; the server's usage block has the real count)."""

    exact = False

    def encode(self, texts: list[str]) -> list[list[int]]:
        index = {w: i for i, w in enumerate(WORDS)}
        return [[index.get(w, 0) for w in t.split()] for t in texts]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [" ".join(WORDS[i % len(WORDS)] for i in seq) for seq in ids]


class HFTokenizer:
    """A local Hugging Face tokenizer (the bundled model's, or any the machine has), without special tokens: the
    server adds its own (usage.prompt_tokens counts them)."""

    exact = True

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer

    def encode(self, texts: list[str]) -> list[list[int]]:
        return [self.tokenizer.encode(t, add_special_tokens=False) for t in texts]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [self.tokenizer.decode(seq) for seq in ids]


class EndpointTokenizer:
    """The served model's tokenizer through vLLM's ``/tokenize`` and ``/detokenize`` (server root; vLLM docs,
    "OpenAI-Compatible Server: Tokenizer API"), without special tokens."""

    exact = True

    def __init__(self, endpoint: Endpoint, read_timeout_s: float = 30.0) -> None:
        self.endpoint = endpoint
        self.read_timeout_s = read_timeout_s

    def _post(self, client: httpx.Client, path: str, body: dict) -> dict:
        response = client.post(self.endpoint.server_root + path, json={"model": self.endpoint.model} | body)
        check_response(self.endpoint, response)
        try:
            return response.json()
        except ValueError:
            raise EndpointError(f"'{self.endpoint.name}' answered {path} with something that is not JSON.") from None

    def _each(self, path: str, bodies: list[dict], key: str) -> list:
        out = []
        try:
            with httpx.Client(timeout=timeout(self.read_timeout_s), headers=self.endpoint.headers()) as client:
                for body in bodies:
                    value = self._post(client, path, body).get(key)
                    if value is None:
                        raise EndpointError(f"'{self.endpoint.name}' answered {path} without '{key}'.")
                    out.append(value)
        except httpx.HTTPError as exc:
            raise EndpointError(describe_http_error(self.endpoint, exc)) from None
        return out

    def encode(self, texts: list[str]) -> list[list[int]]:
        tokens = self._each("/tokenize", [{"prompt": t, "add_special_tokens": False} for t in texts], "tokens")
        return [[int(i) for i in seq] for seq in tokens]

    def decode(self, ids: list[list[int]]) -> list[str]:
        return [str(t) for t in self._each("/detokenize", [{"tokens": list(seq)} for seq in ids], "prompt")]

    def available(self) -> bool:
        """Whether the server offers the tokenizer API (vLLM does; most hosted APIs don't)."""
        try:
            return bool(self.encode(["the"])[0])
        except EndpointError:
            return False


def sample_lengths(spec: WorkloadSpec, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Per-request (input lengths without the shared prefix, output lengths), integer-uniform in the spec's bounds."""
    (lo_in, hi_in), (lo_out, hi_out) = spec.length_bounds()
    return rng.integers(lo_in, hi_in + 1, size=n), rng.integers(lo_out, hi_out + 1, size=n)


def _word_text(rng: np.random.Generator, words: int) -> str:
    return " ".join(WORDS[i] for i in rng.integers(0, len(WORDS), size=max(1, words)))


def _fit(tokenizer: Tokenizer, texts: list[str], targets: list[int], rng: np.random.Generator) -> list[tuple[str, int]]:
    """Cut (or extend with more random words) each text until it encodes to exactly its target token count, as vLLM's
    gen_prompt_decode_to_target_len; after FIT_RETRIES rounds the count it has is accepted and reported."""
    ids = tokenizer.encode(texts)
    result: list[tuple[str, int] | None] = [None] * len(texts)
    pending = list(range(len(texts)))
    for _ in range(FIT_RETRIES):
        cut = {i: ids[i][: targets[i]] for i in pending}
        decoded = dict(zip(pending, tokenizer.decode([cut[i] for i in pending])))
        again = dict(zip(pending, tokenizer.encode([decoded[i] for i in pending])))
        still = []
        for i in pending:
            n = len(again[i])
            if n == targets[i] or not tokenizer.exact:
                result[i] = (decoded[i], n)
            elif n < targets[i]:  # decoding merged tokens: append words and cut again
                ids[i] = again[i] + tokenizer.encode([" " + _word_text(rng, targets[i] - n + 2)])[0]
                still.append(i)
            else:
                ids[i] = again[i]
                still.append(i)
        pending = still
        if not pending:
            break
    for i in pending:
        text = tokenizer.decode([ids[i][: targets[i]]])[0]
        result[i] = (text, len(tokenizer.encode([text])[0]))
    return result  # type: ignore[return-value]


def build_requests(spec: WorkloadSpec, n: int, tokenizer: Tokenizer | None = None, level: int = 0
                   ) -> list[WorkloadRequest]:
    """``n`` requests of ``spec``: every prompt different (seeded by ``spec.seed`` and ``level``, so two levels of one
    run never share prompts), each ``prefix_tokens`` + its drawn input length long, with its drawn output length."""
    check_int(n, "Requests", 1, 1_000_000, error=WorkloadInputError)
    tokenizer = tokenizer or WordTokenizer()
    rng = np.random.default_rng([int(spec.seed), int(level)])
    inputs, outputs = sample_lengths(spec, n, rng)
    prefix = ""
    if spec.prefix_tokens:
        # The shared prefix depends on the seed only: every level of a run shares it, as a system prompt would.
        prefix_rng = np.random.default_rng([int(spec.seed), 2**32])
        prefix = _fit(tokenizer, [_word_text(prefix_rng, spec.prefix_tokens * 2)], [spec.prefix_tokens], prefix_rng)[0][0]
    # Words ≈ tokens for common words; twice as many leaves room for the cut to the exact length.
    bodies = [_word_text(rng, int(k) * 2 if tokenizer.exact else int(k)) for k in inputs]
    texts = [(prefix + " " + b) if prefix else b for b in bodies]
    targets = [int(k) + int(spec.prefix_tokens) for k in inputs]
    if tokenizer.exact:
        fitted = _fit(tokenizer, texts, targets, rng)
        if prefix:  # the fit cuts from the end, so the prefix stays intact; keep it byte-identical
            fitted = [(t if t.startswith(prefix) else prefix + t[len(prefix):], c) for t, c in fitted]
    else:
        fitted = [(t, None) for t in texts]
    return [WorkloadRequest(text, count, int(out)) for (text, count), out in zip(fitted, outputs)]


def tokenizer_for(endpoint: Endpoint, is_vllm: bool, local=None) -> Tokenizer:
    """The served model's tokenizer: vLLM's tokenizer API when the server is vLLM, else ``local`` (a Hugging Face
    tokenizer the caller knows matches the served model), else word counts."""
    if is_vllm:
        remote = EndpointTokenizer(endpoint)
        if remote.available():
            return remote
    if local is not None:
        return HFTokenizer(local)
    return WordTokenizer()
