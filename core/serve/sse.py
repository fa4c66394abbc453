"""Server-sent events (https://html.spec.whatwg.org/multipage/server-sent-events.html) as an OpenAI-compatible server
streams a completion (``stream: true``): the ``data:`` payloads, then the JSON chunks up to ``[DONE]``."""
from __future__ import annotations

import json
from typing import Iterable, Iterator

from core.serve.endpoints import EndpointError


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
