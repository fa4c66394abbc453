"""Memory-planner inputs in the URL and the plan's CSV / JSON export.

Every input of the Memory planner page has a URL key (``FIELDS``): ``parse_query_params`` turns query params into
input values (invalid values fall back to defaults with a message), ``to_query_params`` writes them back, so a copied
link reopens the same plan. A pasted config.json travels in the URL as compact base64url JSON of its shape keys
(``encode_config`` / ``decode_config``). ``plan_csv`` / ``plan_json`` export the plan that
core.plan.memory_plan.build_plan computes (formulas in core.plan.memory).
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from core.plan import architectures, memory
from core.common import safe_json
from core.plan.hardware import DEFAULT_GPU, GPUS
from core.plan.memory_plan import (CUSTOM_GPU, DEFAULT_MODEL, KV_DTYPES, SOURCES, MemoryPlan, PlanInputError,
                                   parse_config_text, parse_param_count)
from core.plan.memory_tables import plan_rows
from core.io.url_state import Field, UrlCodec, choice_parser, number_parser  # Field re-exported

MAX_CONFIG_URL_CHARS = 4000


# ---------------------------------------------------------------------------------------------------------------
# config.json in the URL
# ---------------------------------------------------------------------------------------------------------------
_SHAPE_KEYS = set(architectures.ALIAS_KEYS) | {
    "model_type", "architectures", "tie_word_embeddings", "num_decoder_layers", "feed_forward_proj",
    "type_vocab_size", "relative_attention_num_buckets", "sliding_window", "use_sliding_window", "attention_bias",
    "mlp_bias", "_name_or_path"}


def shape_only(cfg: Mapping) -> dict:
    """The keys of a config that matter for memory (shape, tying, sliding window), in their original names."""
    return {k: v for k, v in cfg.items() if k in _SHAPE_KEYS}


def encode_config(cfg: Mapping) -> str:
    """Compact base64url JSON of a config's shape keys, for the URL."""
    text = json.dumps(shape_only(cfg), separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_config(token: str) -> dict:
    """Inverse of encode_config; PlanInputError when the token is damaged."""
    if len(token) > MAX_CONFIG_URL_CHARS:
        raise PlanInputError("the config in the link is too long")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        value = safe_json.loads_limited(raw.decode(), what="the config in the link")
    except safe_json.JSONInputError as exc:
        raise PlanInputError(str(exc)) from None
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise PlanInputError("the config in the link is damaged") from None
    if not isinstance(value, dict):
        raise PlanInputError("the config in the link is not a JSON object")
    return value


# ---------------------------------------------------------------------------------------------------------------
# URL fields
# ---------------------------------------------------------------------------------------------------------------
_choice = choice_parser
_number = number_parser


def _stage(text):
    return int(_choice(["0", "1", "2", "3"])(str(text)))


def _params_parse(text):
    return format_count_input(parse_param_count(text))


def format_count_input(n: int) -> str:
    """A count as typed back into the field: 7000000000 → '7B', 7500000000 → '7.5B', 124439808 → '124439808'."""
    n = int(n)
    for suffix, scale in (("T", 10**12), ("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if scale <= n < 1000 * scale and (n * 1000) % scale == 0:
            return f"{n / scale:g}{suffix}"
    return str(n)


def _params_write(text):
    try:
        return str(parse_param_count(text))  # plain count, shared with the compute planner
    except PlanInputError:
        return None


def _config_parse(token):
    return json.dumps(decode_config(token), indent=2)


def _config_write(text):
    try:
        cfg = parse_config_text(text)
    except PlanInputError:
        return None
    token = encode_config(cfg)
    return token if len(token) <= MAX_CONFIG_URL_CHARS else None


def _fmt(v):
    return f"{v:g}"


FIELDS: dict[str, Field] = {f.url_key: f for f in [
    Field("src", "mem_source", "catalog", _choice(SOURCES)),
    Field("model", "mem_model", DEFAULT_MODEL, lambda t: architectures.resolve_id(t)),
    Field("params", "mem_params", "7B", _params_parse, _params_write),
    Field("cfg", "mem_config_text", "", _config_parse, _config_write),
    Field("fmt", "mem_weight_format", "bf16", _choice(memory.WEIGHT_FORMATS)),
    Field("kv", "mem_kv_dtype", "bf16", _choice(KV_DTYPES)),
    Field("ctx", "mem_context", 4096, _number(1, 10_000_000, integer=True)),
    Field("batch", "mem_batch", 1, _number(1, 100_000, integer=True)),
    Field("ws", "mem_workspace_pct", memory.DEFAULT_INFERENCE_WORKSPACE_PCT, _number(0, 1000), _fmt),
    Field("ovh", "mem_overhead_gb", memory.DEFAULT_CUDA_OVERHEAD_GB, _number(0, 100), _fmt),
    Field("tseq", "mem_train_seq", 2048, _number(1, 10_000_000, integer=True)),
    Field("mb", "mem_micro_batch", 1, _number(1, 100_000, integer=True)),
    Field("recompute", "mem_recompute", "selective", _choice(memory.RECOMPUTE_OPTIONS)),
    Field("k", "mem_optimizer_bytes", 12.0, _number(0, 100), _fmt),
    Field("gpus", "mem_n_gpus", 8, _number(1, 100_000, integer=True)),
    Field("stage", "mem_stage", 3, _stage),
    Field("gpu", "mem_gpu", DEFAULT_GPU, _choice([*GPUS, CUSTOM_GPU])),
    Field("gpu_gb", "mem_custom_gpu_gb", 80.0, _number(1, 100_000), _fmt),
    Field("headroom", "mem_headroom_pct", 10.0, _number(0, 90), _fmt),
]}


CODEC = UrlCodec(FIELDS.values())
SOURCE_KEYS = {"catalog": "model", "config": "cfg", "params": "params"}
"""The URL key of each model source; a link carries only the chosen source's."""


def defaults() -> dict[str, Any]:
    """Session-state key → default value."""
    return CODEC.defaults()


def parse_query_params(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Query params → (session-state key → value for the keys present, user-facing problems).

    Invalid values fall back to their default; unknown keys are ignored. A link with ``params`` but no ``src``
    (e.g. from the compute planner: /memory?params=7000000000) plans from that raw parameter count.
    """
    values, problems = CODEC.parse(query)
    if "params" in query and "src" not in query:
        values["mem_source"] = "params"
    if "cfg" in query and "src" not in query and values.get("mem_config_text"):
        values["mem_source"] = "config"
    return values, problems


def to_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Session-state values → URL query params (inputs that cannot be written, e.g. invalid text, are left out; of
    the model's three sources only the chosen one's key)."""
    source = values.get("mem_source", "catalog")
    return CODEC.write(values, skip=[key for src, key in SOURCE_KEYS.items() if src != source])


def plan_csv(plan: MemoryPlan) -> str:
    """CSV text of plan_rows."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["section", "item", "value", "unit"])
    writer.writeheader()
    writer.writerows(plan_rows(plan))
    return buf.getvalue()


def plan_json(plan: MemoryPlan, query: Mapping[str, str] | None = None) -> str:
    """JSON of the inputs (as in the URL) and every result."""
    payload = {
        "inputs": dict(query or {}),
        "model": {"label": plan.model.label, "parameters": plan.model.n_params, "exact": plan.model.exact,
                  "shape_source": plan.model.shape_source},
        "gpu": {"name": plan.gpu.name, "memory_gb": plan.gpu.memory_gb},
        "units": "bytes unless the key says otherwise; GB = 1e9 bytes",
        "parameter_breakdown": plan.breakdown,
        "inference_bytes": {fmt: memory.export_keys(parts) for fmt, parts in plan.inference.items()},
        "kv_cache": {"tokens_cached": plan.kv_tokens, "bytes_per_token": plan.kv_per_token_bytes},
        "training_rule_of_thumb_bytes": plan.rule_of_thumb,
        "store_fp32_bytes": plan.store_fp32_bytes,
        "training_mixed_precision_bytes": memory.export_keys(plan.mixed_precision),
        "activations_bytes_by_recompute": plan.activations_by_recompute,
        "per_gpu_bytes_by_zero_stage": {str(s): memory.export_keys(v) for s, v in plan.zero.items()},
        "gpu_fit": plan.fit_rows,
    }
    return json.dumps(payload, indent=2, default=str)
