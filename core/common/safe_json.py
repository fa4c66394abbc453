"""Parse untrusted JSON (pasted or uploaded config.json, a model folder's config.json) with its size capped first.

Python's ``json`` module has three ways to fall over on hostile input, each checked here BEFORE ``json.loads`` runs:

* length: a 50 MB paste costs memory and time to parse; text longer than ``max_chars`` is refused unread.
* depth: ``json.loads`` recurses once per nested ``[`` / ``{`` and raises ``RecursionError`` near Python's recursion
  limit (~1,000; https://docs.python.org/3/library/json.html#json.loads, "RecursionError"); the nesting is counted
  by a scan that skips string contents, and deeper than ``max_depth`` is refused.
* huge integers: ``int()`` of more than 4,300 digits raises ``ValueError`` (CVE-2020-10735,
  https://docs.python.org/3/library/stdtypes.html#int-max-str-digits); ``parse_int`` refuses more than
  ``max_int_digits`` digits with a clear message, before ``int()`` sees them.

Also :func:`check_config_fields`: the config.json keys LLM Lab reads by type (``architectures`` a list of strings,
``model_type`` a string), so a config such as ``"architectures": 5`` is refused with a message instead of a
``TypeError`` deep in transformers. Every error is a :class:`JSONInputError` (a ``ValueError``) whose message is
user-facing. Plain Python, no Streamlit.
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# A real config.json is a few KB (Llama 3 70B: 654 bytes; the largest Hub configs with long token maps ~100 KB).
MAX_CONFIG_CHARS = 1_000_000
MAX_CONFIG_DEPTH = 32  # real configs nest 3-4 levels (rope_scaling, quantization_config, text_config)
MAX_INT_DIGITS = 30  # larger than any real count (10^30); far below Python's 4,300-digit int limit


class JSONInputError(ValueError):
    """JSON text that is too large, too deep, not valid, or of the wrong shape; the message is user-facing."""


def nesting_depth(text: str) -> int:
    """Deepest ``[`` / ``{`` nesting of JSON text, ignoring brackets inside strings (linear scan, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def loads_limited(text: str, *, max_chars: int = MAX_CONFIG_CHARS, max_depth: int = MAX_CONFIG_DEPTH,
                  max_int_digits: int = MAX_INT_DIGITS, what: str = "The JSON") -> Any:
    """``json.loads`` with the text's length, nesting depth and integer sizes capped before parsing.

    Raises JSONInputError naming the limit that was hit (and the JSON error position for invalid JSON).
    """
    if not isinstance(text, str):
        raise JSONInputError(f"{what} must be text, got {type(text).__name__}.")
    if len(text) > max_chars:
        raise JSONInputError(f"{what} is longer than {max_chars:,} characters, the limit (a config.json is a few "
                             "thousand characters); it was not read.")
    depth = nesting_depth(text)
    if depth > max_depth:
        raise JSONInputError(f"{what} nests {depth:,} levels deep; the limit is {max_depth} "
                             "(a config.json nests 3 or 4 levels).")

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > max_int_digits:
            raise JSONInputError(f"{what} has a {len(digits.lstrip('-')):,}-digit number; numbers longer than "
                                 f"{max_int_digits} digits are refused.")
        return int(digits)

    def parse_constant(name: str):
        raise JSONInputError(f"{what} contains {name}, which is not valid JSON.")

    try:
        return json.loads(text, parse_int=parse_int, parse_constant=parse_constant)
    except JSONInputError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except (RecursionError, ValueError) as exc:  # belt and braces: the checks above should have caught these
        raise JSONInputError(f"{what} could not be read: {type(exc).__name__}.") from None


def check_config_fields(cfg: Mapping, what: str = "config.json") -> Mapping:
    """Refuse a config whose keys LLM Lab reads by type have the wrong type; return it unchanged otherwise."""
    if not isinstance(cfg, Mapping):
        raise JSONInputError(f"{what} must be a JSON object ({{...}}), not {type(cfg).__name__}.")
    model_type = cfg.get("model_type")
    if model_type is not None and not isinstance(model_type, str):
        raise JSONInputError(f"{what}: 'model_type' must be text such as \"llama\", got {type(model_type).__name__}.")
    archs = cfg.get("architectures")
    if archs is not None and (not isinstance(archs, list) or not all(isinstance(a, str) for a in archs)):
        raise JSONInputError(f"{what}: 'architectures' must be a list of class names such as "
                             "[\"LlamaForCausalLM\"], got " + type(archs).__name__ + ".")
    for sub in ("text_config", "encoder", "decoder"):
        if isinstance(cfg.get(sub), Mapping):
            check_config_fields(cfg[sub], f"{what} ({sub})")
    return cfg


def parse_config_json(text: str, what: str = "config.json") -> dict:
    """Text of a config.json → dict, with sizes capped before parsing and the typed keys checked."""
    value = loads_limited(text, what=what)
    if not isinstance(value, dict):
        raise JSONInputError(f"{what} must be a JSON object ({{...}}), not a list or a single value.")
    check_config_fields(value, what)
    return value


def read_config_file(path: str | os.PathLike, what: str = "config.json") -> dict:
    """Read and check a model folder's config.json; its size is checked on disk before it is read."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_CONFIG_CHARS * 4:  # UTF-8: at most 4 bytes per character
            raise JSONInputError(f"{what} is {size:,} bytes; the limit is {MAX_CONFIG_CHARS:,} characters.")
        with open(path, encoding="utf-8") as handle:
            text = handle.read(MAX_CONFIG_CHARS + 1)
    except UnicodeDecodeError:
        raise JSONInputError(f"{what} is not UTF-8 text.") from None
    except OSError as exc:
        raise JSONInputError(f"{what} could not be read ({exc.strerror or type(exc).__name__}).") from None
    return parse_config_json(text, what)
