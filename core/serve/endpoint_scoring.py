"""Scoring a text on an OpenAI-compatible server (quality over an endpoint): one log-probability per token of the
prompt, and the perplexity they give."""
from __future__ import annotations

import json
import math

import httpx

from core.serve.endpoints import Endpoint, EndpointError, check_response, describe_http_error, timeout


def prompt_logprobs(endpoint: Endpoint, text: str | list[int], read_timeout_s: float = 120.0) -> list[float]:
    """One log-probability (natural log) per token of ``text`` after the first, as the server scores it: vLLM's
    ``prompt_logprobs`` extension, else the Completions API's ``echo`` + ``logprobs`` (with max_tokens 0).
    ``text`` may be token ids (the Completions API takes a prompt as a list of ids), so the caller's tokenisation is
    the one scored."""
    if not text or (isinstance(text, str) and not text.strip()):
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
