"""What an OpenAI-compatible server honours, from probing it: the models it serves, whether it is vLLM, how many
log-probability alternatives it returns.

The OpenAI Completions API (https://platform.openai.com/docs/api-reference/completions) returns at most 5 ``logprobs``
alternatives; vLLM returns up to its ``--max-logprobs`` (default 20) and takes extra sampling parameters (``top_k``,
``min_p``, ``repetition_penalty``; https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html). They are sent
only to a server that accepts them: ``probe`` asks the server and the page disables the others, with the reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import httpx

from core.serve.endpoints import Endpoint, EndpointError, check_response, describe_http_error, timeout

PLAIN_MAX_LOGPROBS = 5  # the OpenAI Completions API's limit on `logprobs`
VLLM_MAX_LOGPROBS = 20  # vLLM's default --max-logprobs


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
