"""OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp's server, Ollama) as a second runtime.

An ``Endpoint`` is configured by whoever runs LLM Lab (``LLM_LAB_ENDPOINTS``, a JSON list, or Streamlit secrets passed
in by the page), never by a visitor unless the operator allows free-form URLs (``LLM_LAB_ALLOW_CUSTOM_ENDPOINTS=1``).
The API key is read from an environment variable named in the config; it is kept out of ``repr``, ``to_dict`` and every
error message, so it cannot reach a page, a URL, a log or a download.

Generation uses the Completions API (https://platform.openai.com/docs/api-reference/completions) with server-sent
events (``stream: true``, https://html.spec.whatwg.org/multipage/server-sent-events.html) and ``logprobs`` (top
alternatives per token; vLLM returns up to its ``--max-logprobs``, default 20). vLLM's extra sampling parameters
(``top_k``, ``min_p``, ``repetition_penalty``; https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html)
are sent only to a server that accepts them: ``probe`` asks the server and the page disables the others, with the
reason. Results are ``core.run.generation.GenerationResult``s, so pages and charts don't care where the tokens came from.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator
from urllib.parse import urlsplit

import httpx
import torch

from core.run.generation import Alternative, GenerationResult, PreparedPrompt, StepEvent
from core.run.sampling import DecodingSettings, check_settings

ENDPOINTS_ENV = "LLM_LAB_ENDPOINTS"
ALLOW_CUSTOM_ENV = "LLM_LAB_ALLOW_CUSTOM_ENDPOINTS"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0  # longest silence tolerated between two bytes of a response (a slow prefill included)
PLAIN_MAX_LOGPROBS = 5  # the OpenAI Completions API's limit on `logprobs`
VLLM_MAX_LOGPROBS = 20  # vLLM's default --max-logprobs


class EndpointError(RuntimeError):
    """The server could not be reached or answered something unusable; the message is user-facing (no secrets)."""


@dataclass(frozen=True)
class Endpoint:
    """One OpenAI-compatible server and the model name it serves. ``api_key`` never appears in repr or to_dict."""

    name: str
    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False, compare=False)

    @property
    def api_base(self) -> str:
        """The URL under which /completions and /models live (``…/v1``), whether or not the config ends in /v1."""
        base = self.base_url.rstrip("/")
        return base if base.endswith("/v1") else base + "/v1"

    @property
    def server_root(self) -> str:
        base = self.api_base
        return base[: -len("/v1")]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def to_dict(self) -> dict:
        return {"name": self.name, "base_url": self.base_url, "model": self.model, "has_api_key": bool(self.api_key)}


def _check_url(url: str) -> str:
    u = str(url).strip()
    bad = EndpointError(f"'{url}' is not an http(s) URL such as http://127.0.0.1:8000/v1.")
    try:  # urlsplit raises ValueError on e.g. "http://[::1"; .port on a non-numeric or out-of-range port;
        parts = urlsplit(u)  # httpx.URL catches what httpx itself would refuse later, when the request is sent
        parts.port
        httpx.URL(u)
    except (ValueError, httpx.InvalidURL):
        raise bad from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise bad
    if parts.username or parts.password:
        raise EndpointError("Put credentials in an API-key environment variable, not in the URL.")
    return u


def endpoints_from_config(entries: Iterable[dict], environ: dict | None = None) -> list[Endpoint]:
    """Endpoints from config entries ``{"name", "base_url", "model", "api_key_env"?}``; the key is read from the
    environment variable ``api_key_env`` names (a literal key in the config is refused: configs get shared)."""
    environ = os.environ if environ is None else environ
    endpoints = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise EndpointError(f"Endpoint #{i + 1} in the configuration is not an object with name, base_url, model.")
        missing = [k for k in ("name", "base_url", "model") if not str(entry.get(k) or "").strip()]
        if missing:
            raise EndpointError(f"Endpoint #{i + 1} in the configuration lacks {', '.join(missing)}.")
        if "api_key" in entry:
            raise EndpointError(f"Endpoint '{entry['name']}': give the name of an environment variable holding the key "
                                "(api_key_env), not the key itself.")
        key_env = entry.get("api_key_env")
        endpoints.append(Endpoint(str(entry["name"]), _check_url(str(entry["base_url"])), str(entry["model"]),
                                  environ.get(key_env) if key_env else None))
    names = [e.name for e in endpoints]
    if len(set(names)) != len(names):
        raise EndpointError("Two configured endpoints share a name; names must be unique.")
    return endpoints


def configured_endpoints(extra_entries: Iterable[dict] | None = None) -> list[Endpoint]:
    """The operator's endpoints: ``LLM_LAB_ENDPOINTS`` (a JSON list of entries, see endpoints_from_config) followed by
    ``extra_entries`` (the page passes ``st.secrets["endpoints"]`` here; core does not import streamlit)."""
    raw = os.environ.get(ENDPOINTS_ENV, "").strip()
    entries: list = []
    if raw:
        try:
            entries = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise EndpointError(f"{ENDPOINTS_ENV} is not valid JSON ({exc.msg} at character {exc.pos}).") from None
        if isinstance(entries, dict):
            entries = [entries]
        if not isinstance(entries, list):
            raise EndpointError(f"{ENDPOINTS_ENV} must be a JSON list of endpoint objects.")
    return endpoints_from_config(list(entries) + [dict(e) for e in (extra_entries or [])])


def custom_endpoint(base_url: str, model: str) -> Endpoint:
    """A visitor-typed endpoint (only offered when custom_urls_allowed()); never carries an API key."""
    if not model or not model.strip():
        raise EndpointError("Enter the model name the server serves.")
    return Endpoint("custom", _check_url(base_url), model.strip())


def custom_urls_allowed() -> bool:
    """Whether visitors may type their own server URL (off unless the operator sets LLM_LAB_ALLOW_CUSTOM_ENDPOINTS=1:
    otherwise any visitor could make the server fetch arbitrary addresses)."""
    return os.environ.get(ALLOW_CUSTOM_ENV, "").strip().lower() in ("1", "true", "yes")


def timeout(read_s: float = READ_TIMEOUT_S) -> httpx.Timeout:
    return httpx.Timeout(connect=CONNECT_TIMEOUT_S, read=read_s, write=10.0, pool=10.0)


def describe_http_error(endpoint: Endpoint, exc: Exception) -> str:
    """A user-facing sentence for a transport failure (never the headers, so never the key)."""
    where = f"'{endpoint.name}' ({endpoint.api_base})"
    if isinstance(exc, httpx.ConnectError):
        return f"Cannot connect to {where}: nothing answers there (is the server running, and the URL right?)."
    if isinstance(exc, httpx.TimeoutException):
        return f"{where} did not answer in time ({type(exc).__name__}); the server may be overloaded or stuck."
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"{where} broke the connection mid-response ({exc}); the output may be truncated."
    return f"Request to {where} failed: {type(exc).__name__}: {exc}"


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300].strip()
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict):
            return str(error.get("message") or error.get("detail") or error)[:300]
        return str(error)[:300]
    return str(body)[:300]


def check_response(endpoint: Endpoint, response: httpx.Response) -> None:
    if response.status_code >= 400:
        message = _server_message(response)
        if response.status_code == 404 and endpoint.model in message:
            raise EndpointError(f"'{endpoint.name}' does not serve a model named '{endpoint.model}': {message}")
        if response.status_code in (401, 403):
            raise EndpointError(f"'{endpoint.name}' refused the request (HTTP {response.status_code}): check its API key.")
        raise EndpointError(f"'{endpoint.name}' answered HTTP {response.status_code}: {message or response.reason_phrase}")


# ---------------------------------------------------------------------------------------------------------------------
# What the server honours


@dataclass(frozen=True)
class Capabilities:
    """What a server accepts, from probing it: its served models and whether it is vLLM (which takes top_k, min_p,
    repetition_penalty, prompt_logprobs and up to --max-logprobs alternatives)."""

    models: tuple[str, ...]
    is_vllm: bool
    max_model_len: int | None = None

    @property
    def max_logprobs(self) -> int:
        return VLLM_MAX_LOGPROBS if self.is_vllm else PLAIN_MAX_LOGPROBS

    def unsupported(self) -> dict[str, str]:
        """Sampling control → why the server ignores it (empty for vLLM)."""
        if self.is_vllm:
            return {}
        why = "not part of the OpenAI Completions API, and this server did not identify as vLLM"
        return {"top_k": why, "repetition_penalty": why + " (it offers frequency/presence penalties instead)",
                "beam search": "OpenAI-compatible servers stream one sequence; beam search is not offered"}

    def to_dict(self) -> dict:
        return {"models": list(self.models), "is_vllm": self.is_vllm, "max_model_len": self.max_model_len,
                "max_logprobs": self.max_logprobs, "unsupported": self.unsupported()}


def probe(endpoint: Endpoint, read_timeout_s: float = 10.0) -> Capabilities:
    """Ask the server which models it serves (GET /v1/models) and whether it is vLLM (GET /version, vLLM's; or a
    model entry ``owned_by: vllm``). Raises EndpointError if unreachable or if the configured model isn't served."""
    try:
        with httpx.Client(timeout=timeout(read_timeout_s), headers=endpoint.headers()) as client:
            response = client.get(endpoint.api_base + "/models")
            check_response(endpoint, response)
            try:
                data = response.json()["data"]
                models = {str(m["id"]): m for m in data}
            except (json.JSONDecodeError, KeyError, TypeError) as exc:
                raise EndpointError(f"'{endpoint.name}' answered /v1/models with something that is not a model list "
                                    f"({type(exc).__name__}); is this an OpenAI-compatible server?") from None
            is_vllm = any(str(m.get("owned_by", "")).lower() == "vllm" for m in models.values() if isinstance(m, dict))
            if not is_vllm:
                try:
                    version = client.get(endpoint.server_root + "/version")
                    is_vllm = version.status_code == 200 and "version" in version.json()
                except (httpx.HTTPError, json.JSONDecodeError, TypeError):
                    is_vllm = False
    except httpx.HTTPError as exc:
        raise EndpointError(describe_http_error(endpoint, exc)) from None
    if endpoint.model not in models:
        served = ", ".join(sorted(models)) or "none"
        raise EndpointError(f"'{endpoint.name}' does not serve a model named '{endpoint.model}' (it serves: {served}).")
    entry = models[endpoint.model]
    max_len = entry.get("max_model_len") if isinstance(entry, dict) else None
    return Capabilities(tuple(sorted(models)), is_vllm, int(max_len) if isinstance(max_len, int) else None)


# ---------------------------------------------------------------------------------------------------------------------
# Server-sent events


def iter_sse_data(lines: Iterable[str]) -> Iterator[str]:
    """The ``data:`` payloads of an event stream (multi-line data joined with newlines), per the HTML SSE spec."""
    buffer: list[str] = []
    for line in lines:
        line = line.rstrip("\r")
        if not line:
            if buffer:
                yield "\n".join(buffer)
                buffer = []
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        name, _, value = line.partition(":")
        if name == "data":
            buffer.append(value[1:] if value.startswith(" ") else value)
    if buffer:
        yield "\n".join(buffer)


def iter_completion_chunks(lines: Iterable[str], endpoint_name: str = "server") -> Iterator[dict]:
    """Parsed JSON chunks of a streamed completion up to ``[DONE]``. Raises EndpointError on a chunk that is not JSON,
    an ``error`` event, or a stream that ends without ``[DONE]`` (truncated)."""
    for payload in iter_sse_data(lines):
        if payload.strip() == "[DONE]":
            return
        try:
            chunk = json.loads(payload)
        except json.JSONDecodeError:
            raise EndpointError(f"'{endpoint_name}' sent a stream event that is not JSON: {payload[:120]!r}") from None
        if not isinstance(chunk, dict):
            raise EndpointError(f"'{endpoint_name}' sent a stream event that is not a JSON object: {payload[:120]!r}")
        if "error" in chunk:
            error = chunk["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise EndpointError(f"'{endpoint_name}' reported an error mid-stream: {str(message)[:300]}")
        yield chunk
    raise EndpointError(f"The stream from '{endpoint_name}' ended before the server said it was done (no [DONE]): "
                        "the connection was cut or the server crashed; the output is truncated.")


# ---------------------------------------------------------------------------------------------------------------------
# Generation


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


# ---------------------------------------------------------------------------------------------------------------------
# Prompt log-probabilities (quality over an endpoint)


def prompt_logprobs(endpoint: Endpoint, text: str, read_timeout_s: float = 120.0) -> list[float]:
    """One log-probability (natural log) per token of ``text`` after the first, as the server scores it: vLLM's
    ``prompt_logprobs`` extension, else the Completions API's ``echo`` + ``logprobs`` (with max_tokens 0)."""
    if not text or not text.strip():
        raise EndpointError("The text to score is empty.")
    base = {"model": endpoint.model, "prompt": text, "temperature": 0.0}
    try:
        with httpx.Client(timeout=timeout(read_timeout_s), headers=endpoint.headers()) as client:
            response = client.post(endpoint.api_base + "/completions",
                                   json=base | {"max_tokens": 1, "prompt_logprobs": 0, "return_token_ids": True})
            if response.status_code < 400:
                values = _vllm_prompt_logprobs(response.json())
                if values is not None:
                    return values
            elif response.status_code not in (400, 422):
                check_response(endpoint, response)
            response = client.post(endpoint.api_base + "/completions",
                                   json=base | {"max_tokens": 0, "echo": True, "logprobs": 0})
            check_response(endpoint, response)
            choice = response.json()["choices"][0]
            values = (choice.get("logprobs") or {}).get("token_logprobs")
    except httpx.HTTPError as exc:
        raise EndpointError(describe_http_error(endpoint, exc)) from None
    except (json.JSONDecodeError, KeyError, IndexError, TypeError) as exc:
        raise EndpointError(f"'{endpoint.name}' answered the scoring request with an unexpected body "
                            f"({type(exc).__name__}).") from None
    if not values:
        raise EndpointError(f"'{endpoint.name}' returns neither prompt_logprobs nor echoed logprobs, so it cannot "
                            "score a text.")
    return [float(v) for v in values[1:] if v is not None]


def _vllm_prompt_logprobs(body: dict) -> list[float] | None:
    try:
        choice = body["choices"][0]
    except (KeyError, IndexError, TypeError):
        return None
    entries = choice.get("prompt_logprobs")
    ids = choice.get("prompt_token_ids")
    if not entries or not ids or len(entries) != len(ids):
        return None
    values = []
    for token_id, entry in zip(ids[1:], entries[1:]):
        scored = (entry or {}).get(str(token_id))
        if scored is None:
            return None
        values.append(float(scored["logprob"] if isinstance(scored, dict) else scored))
    return values


def perplexity(logprobs: list[float]) -> float:
    """exp(mean negative log-likelihood), as llama.cpp's perplexity tool and core.run.quantization define it."""
    if not logprobs:
        raise EndpointError("No scored tokens: perplexity needs a text of at least two tokens.")
    return math.exp(-sum(logprobs) / len(logprobs))
