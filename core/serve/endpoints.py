"""OpenAI-compatible servers (vLLM, SGLang, TGI, llama.cpp's server, Ollama) as a second runtime: which servers, and
talking to them.

An ``Endpoint`` is configured by whoever runs LLM Lab (``LLM_LAB_ENDPOINTS``, a JSON list, or Streamlit secrets passed
in by the page), never by a visitor unless the operator allows free-form URLs (``LLM_LAB_ALLOW_CUSTOM_ENDPOINTS=1``).
The API key is read from an environment variable named in the config; it is kept out of ``repr``, ``to_dict`` and every
error message, so it cannot reach a page, a URL, a log or a download.

This module holds the configuration and the HTTP plumbing every client of a server shares (``timeout``,
``check_response``, ``describe_http_error``). What a server honours is ``core.serve.capabilities``; the event-stream
parser ``core.serve.sse``; generation ``core.serve.endpoint_generation``; scoring a text (prompt log-probabilities,
perplexity) ``core.serve.endpoint_scoring``.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Iterable
from urllib.parse import urlsplit

import httpx

ENDPOINTS_ENV = "LLM_LAB_ENDPOINTS"
ALLOW_CUSTOM_ENV = "LLM_LAB_ALLOW_CUSTOM_ENDPOINTS"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0  # longest silence tolerated between two bytes of a response (a slow prefill included)


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
