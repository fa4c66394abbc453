"""Generation on an OpenAI-compatible server, streamed token by token.

Generation uses the Completions API (https://platform.openai.com/docs/api-reference/completions) with server-sent
events (``stream: true``, parsed by ``core.serve.sse``) and ``logprobs`` (top alternatives per token, as many as
``core.serve.capabilities`` says the server returns). vLLM's extra sampling parameters are sent only to a server
that accepts them. Results are ``core.run.generation.GenerationResult``s, so pages and charts don't care where the
tokens came from.
"""
from __future__ import annotations

import math
import threading
import time
from typing import Any, Iterator

import httpx
import torch

from core.run.generation import Alternative, GenerationResult, PreparedPrompt, StepEvent
from core.run.sampling import DecodingSettings, check_settings
from core.serve.capabilities import PLAIN_MAX_LOGPROBS, Capabilities
from core.serve.endpoints import (READ_TIMEOUT_S, Endpoint, EndpointError, check_response, describe_http_error,
                                  timeout)
from core.serve.sse import iter_completion_chunks


def request_body(endpoint: Endpoint, prompt: str, settings: DecodingSettings, top_logprobs: int,
                 capabilities: Capabilities | None) -> dict[str, Any]:
    """The /v1/completions request for these settings (greedy = temperature 0, as vLLM and OpenAI define it)."""
    body: dict[str, Any] = {
        "model": endpoint.model, "prompt": prompt, "max_tokens": int(settings.max_new_tokens), "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": float(settings.temperature) if settings.do_sample else 0.0,
        "top_p": float(settings.top_p) if settings.do_sample else 1.0, "seed": int(settings.seed),
    }
    if top_logprobs > 0:
        body["logprobs"] = int(min(top_logprobs, capabilities.max_logprobs if capabilities else PLAIN_MAX_LOGPROBS))
    if capabilities is not None and capabilities.is_vllm:
        body["top_k"] = int(settings.top_k) if settings.do_sample and settings.top_k > 0 else -1
        body["repetition_penalty"] = float(settings.repetition_penalty)
        body["return_token_ids"] = True
    return body


class EndpointStream:
    """Iterate for a StepEvent per streamed token; ``result`` is set at the end (also after stop() or an error: the
    tokens received so far). ``stop()`` from any thread closes the connection, which makes vLLM abort the request."""

    def __init__(self, endpoint: Endpoint, prompt: str, settings: DecodingSettings | None = None, top_logprobs: int = 5,
                 capabilities: Capabilities | None = None, read_timeout_s: float = READ_TIMEOUT_S):
        if not prompt or not prompt.strip():
            raise EndpointError("The prompt is empty: write something for the model to continue.")
        checked = check_settings(settings or DecodingSettings())
        self.endpoint, self.prompt, self.settings = endpoint, prompt, checked.settings
        self.notes = list(checked.notes)
        if self.settings.num_beams > 1:
            self.settings = DecodingSettings.for_mode("greedy", max_new_tokens=self.settings.max_new_tokens,
                                                      seed=self.settings.seed)
            self.notes.append("Beam search is not offered over the OpenAI-compatible API; greedy decoding was used.")
        self.top_logprobs = int(top_logprobs)
        self.capabilities = capabilities
        self.read_timeout_s = read_timeout_s
        self.steps: list[StepEvent] = []
        self.result: GenerationResult | None = None
        self.error: str | None = None
        self.prompt_token_ids: list[int] | None = None
        self.prompt_tokens: int | None = None
        self._finish_reason: str | None = None
        self._stop = threading.Event()
        self._response: httpx.Response | None = None
        self.streamed = True

    def stop(self) -> None:
        self._stop.set()
        response = self._response
        if response is not None:
            try:
                response.close()
            except Exception:  # noqa: BLE001 - closing from another thread; the reader sees the closed stream
                pass

    def __iter__(self) -> Iterator[StepEvent]:
        if self.result is not None:
            yield from self.steps
            return
        started = time.perf_counter()
        body = request_body(self.endpoint, self.prompt, self.settings, self.top_logprobs, self.capabilities)
        try:
            with httpx.Client(timeout=timeout(self.read_timeout_s), headers=self.endpoint.headers()) as client:
                with client.stream("POST", self.endpoint.api_base + "/completions", json=body) as response:
                    self._response = response
                    if response.status_code >= 400:
                        response.read()
                        check_response(self.endpoint, response)
                    for chunk in iter_completion_chunks(response.iter_lines(), self.endpoint.name):
                        if self._stop.is_set():
                            break
                        for event in self._events(chunk, time.perf_counter() - started):
                            self.steps.append(event)
                            yield event
        except GeneratorExit:  # the consumer closed the iterator early (a page rerun, Stop): a stopped result
            self._stop.set()
            raise
        except (httpx.HTTPError, httpx.StreamError) as exc:
            if not self._stop.is_set():
                self.error = describe_http_error(self.endpoint, exc)
                raise EndpointError(self.error) from None
        except EndpointError as exc:
            if not self._stop.is_set():
                self.error = str(exc)
                raise
        finally:
            self._response = None
            self._finish(time.perf_counter() - started)

    def _events(self, chunk: dict, elapsed: float) -> Iterator[StepEvent]:
        usage = chunk.get("usage")
        if isinstance(usage, dict) and usage.get("prompt_tokens") is not None:
            self.prompt_tokens = int(usage["prompt_tokens"])
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                raise EndpointError(f"'{self.endpoint.name}' sent a malformed choice: {str(choice)[:120]!r}")
            if choice.get("prompt_token_ids") and self.prompt_token_ids is None:
                self.prompt_token_ids = [int(i) for i in choice["prompt_token_ids"]]
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
            yield from self._choice_events(choice, elapsed)

    def _choice_events(self, choice: dict, elapsed: float) -> Iterator[StepEvent]:
        text = choice.get("text") or ""
        logprobs = choice.get("logprobs") or {}
        tokens = logprobs.get("tokens") or []
        token_ids = choice.get("token_ids") or []
        if not tokens:
            if text:  # a server without logprobs: one step per text piece, probability unknown
                yield self._step(-1, text, text, float("nan"), [], elapsed)
            return
        token_lps = logprobs.get("token_logprobs") or [None] * len(tokens)
        tops = logprobs.get("top_logprobs") or [None] * len(tokens)
        pieces = _split_text(text, tokens)
        for i, token in enumerate(tokens):
            lp = token_lps[i] if i < len(token_lps) else None
            top = tops[i] if i < len(tops) and isinstance(tops[i], dict) else {}
            token_id = int(token_ids[i]) if i < len(token_ids) else -1
            probability = math.exp(lp) if isinstance(lp, (int, float)) else float("nan")
            yield self._step(token_id, str(token), pieces[i], probability, sorted(top.items(), key=lambda kv: -kv[1]),
                             elapsed)

    def _step(self, token_id: int, token: str, text: str, probability: float, top: list, elapsed: float) -> StepEvent:
        """A StepEvent from the server's numbers. The server's logprobs are the model's (vLLM's default logprobs mode
        is the raw distribution), so all three stages show them; greedy picks with probability 1. Alternatives are
        keyed by token text; one that isn't the chosen token gets a negative placeholder id (the server names tokens
        by text only)."""
        greedy = self.settings.mode == "greedy"
        alternatives, stage_probabilities = [], {}
        for position, (alt_token, lp) in enumerate(top):
            alt_id = token_id if str(alt_token) == token else -2 - position
            p = math.exp(lp)
            alternatives.append(Alternative(alt_id, str(alt_token), p))
            stage_probabilities[alt_id] = (p, p, float(alt_id == token_id) if greedy else p)
        known = not math.isnan(probability)
        sampled = 1.0 if greedy else probability
        stage_probabilities[token_id] = (probability, probability, sampled)
        rank = 1 + sum(1 for a in alternatives if a.probability > probability) if known else 0
        return StepEvent(
            index=len(self.steps), token_id=token_id, token=token, text=text, probability=probability,
            adjusted_probability=probability, sampled_probability=sampled, raw_rank=rank,
            kept_tokens=1 if greedy else len(alternatives),
            alternatives={"raw": alternatives, "temperature": alternatives, "filtered": alternatives},
            time_s=elapsed, stage_probabilities=stage_probabilities,
        )

    def snapshot(self) -> GenerationResult:
        if self.result is None:
            self.stop()
            self._finish(self.steps[-1].time_s if self.steps else 0.0)
        return self.result

    def _finish(self, total: float) -> None:
        if self._stop.is_set() and self._finish_reason is None:
            reason = "stopped"
        elif self._finish_reason == "stop":
            reason = "eos"
        else:
            reason = "max_new_tokens" if self._finish_reason == "length" else ("stopped" if self.error else "max_new_tokens")
        ids = self.prompt_token_ids or []
        n_prompt = len(ids) or (self.prompt_tokens or 0)
        notes = list(self.notes)
        if self.error:
            notes.append(self.error)
        prepared = PreparedPrompt(
            text=self.prompt, input_ids=torch.tensor([ids or [0] * n_prompt], dtype=torch.long).reshape(1, -1),
            original_tokens=n_prompt, truncated_tokens=0, max_new_tokens=self.settings.max_new_tokens,
            context_window=(self.capabilities.max_model_len if self.capabilities and self.capabilities.max_model_len
                            else 0), used_chat_template=False, notes=[],
        )
        self.result = GenerationResult(
            prompt=prepared, settings=self.settings, steps=self.steps, completion="".join(s.text for s in self.steps),
            token_ids=[s.token_id for s in self.steps], stop_reason=reason,
            ttft_s=self.steps[0].time_s if self.steps else None, total_s=total, notes=notes, streamed=True,
        )


def _split_text(text: str, tokens: list) -> list[str]:
    """Give each token of a chunk its share of the chunk's text: the token strings when they add up to it (vLLM),
    otherwise the whole text on the last token (byte-level tokens may not be printable on their own)."""
    if "".join(str(t) for t in tokens) == text:
        return [str(t) for t in tokens]
    return [""] * (len(tokens) - 1) + [text]


def stream_generate(endpoint: Endpoint, prompt: str, settings: DecodingSettings | None = None, top_logprobs: int = 5,
                    capabilities: Capabilities | None = None) -> EndpointStream:
    """The streaming counterpart of generate(): iterate it for StepEvents; ``result`` once it ends."""
    return EndpointStream(endpoint, prompt, settings, top_logprobs, capabilities)


def generate(endpoint: Endpoint, prompt: str, settings: DecodingSettings | None = None, top_logprobs: int = 5,
             capabilities: Capabilities | None = None) -> GenerationResult:
    """Generate on the server and return the same GenerationResult the local runtime returns."""
    stream = stream_generate(endpoint, prompt, settings, top_logprobs, capabilities)
    for _ in stream:
        pass
    return stream.result
