"""Memory-planner inputs in the URL, the assembled plan, and its CSV / JSON export.

Every input of the Memory planner page has a URL key (``FIELDS``): ``parse_query_params`` turns query params into
input values (invalid values fall back to defaults with a message), ``to_query_params`` writes them back, so a copied
link reopens the same plan. A pasted config.json travels in the URL as compact base64url JSON of its shape keys
(``encode_config`` / ``decode_config``). ``build_plan`` computes every table the page shows from the inputs
(formulas in core.plan.memory) and ``plan_csv`` / ``plan_json`` export it.
"""
from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.plan import architectures, memory
from core.common import safe_json, units
from core.plan.architectures import ArchitectureError
from core.plan.hardware import DEFAULT_GPU, GPUS, GPU, custom_gpu
from core.common.units import GB, format_count, format_power  # format_count re-exported (core.io.plan_io.format_count)
from core.io.url_state import choice_parser, number_parser
from core.common.user_text import clip, code, escape_markdown

CUSTOM_GPU = "Custom GPU"
SOURCES = {"catalog": "Catalog model", "params": "Parameter count", "config": "config.json"}
KV_DTYPES = {name: float(b) for name, b in units.subset(("fp32", "fp16", "bf16", "fp8")).items()}
DEFAULT_MODEL = "meta-llama/Meta-Llama-3-8B"
MIN_PARAMS, MAX_PARAMS = 1e3, 1e15
ZERO_STAGES = {0: "DDP (no sharding)", 1: "ZeRO-1 (optimizer sharded)", 2: "ZeRO-2 (+ gradients)",
               3: "ZeRO-3 / FSDP (+ weights)"}
# Short names for chart legends and column titles: "ZeRO-3 / FSDP".
ZERO_STAGE_NAMES = {stage: label.split(" (")[0] for stage, label in ZERO_STAGES.items()}
N_GPU_CURVE = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
MAX_CONFIG_URL_CHARS = 4000


class PlanInputError(ValueError):
    """An input value that cannot be used (message is user-facing)."""


# ---------------------------------------------------------------------------------------------------------------
# Parsing and formatting
# ---------------------------------------------------------------------------------------------------------------
_SUFFIX = {"": 1, "k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


QUOTED_CHARS = 40
"""A bad value is quoted in its message up to this many characters (a 10,000-character paste is not echoed whole)."""


def _quoted(text) -> str:
    return clip(str(text).strip(), QUOTED_CHARS)


def parse_param_count(text) -> int:
    """'7B', '6.74e9', '124,439,808', '350M' → an integer parameter count between 1e3 and 1e15."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        value = float(text)
    else:
        cleaned = str(text).strip().replace(",", "").replace("_", "").replace(" ", "").lower()
        cleaned = re.sub(r"(params?|parameters)$", "", cleaned)
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)([kmbgt]?)", cleaned)
        if not match:
            raise PlanInputError(f"'{_quoted(text)}' is not a parameter count. Write e.g. 7B, 350M, 6.74e9 or "
                                 "124439808.")
        value = float(match.group(1)) * _SUFFIX[match.group(2)]
    if not math.isfinite(value) or not MIN_PARAMS <= value <= MAX_PARAMS:
        raise PlanInputError(f"A parameter count must be between 1 thousand and 1 quadrillion (1e15), got "
                             f"{_quoted(text)}.")
    return int(round(value))


def format_gb(n_bytes: float) -> str:
    """Bytes → '13.48 GB' (GB = 1e9 bytes); small values in MB; past 100,000 GB in TB, past 100,000 TB as a power of
    ten ('1.31 × 10¹¹ GB'), so a metric box never holds a 15-digit number."""
    gb = n_bytes / GB
    if gb == 0:
        return "0 GB"
    if abs(gb) < 0.1:
        return f"{n_bytes / 1e6:.3g} MB"
    if abs(gb) < 100:
        return f"{gb:.2f} GB"
    if abs(gb) < 1e5:
        return f"{gb:,.1f} GB"
    if abs(gb) < 1e8:
        return f"{gb / 1e3:,.0f} TB"
    return f"{format_power(gb)} GB"


# ---------------------------------------------------------------------------------------------------------------
# config.json in the URL
# ---------------------------------------------------------------------------------------------------------------
_SHAPE_KEYS = set(architectures.ALIAS_KEYS) | {
    "model_type", "architectures", "tie_word_embeddings", "num_decoder_layers", "feed_forward_proj",
    "type_vocab_size", "relative_attention_num_buckets", "sliding_window", "use_sliding_window", "attention_bias",
    "mlp_bias", "_name_or_path"}


def parse_config_text(text: str) -> dict:
    """Text of a config.json → dict; PlanInputError with a clear message when it is not a JSON object, or is too
    long, too deep or has absurd numbers (core.common.safe_json caps them before parsing)."""
    if not str(text).strip():
        raise PlanInputError("Paste a config.json (or upload one) to plan from it.")
    try:
        return safe_json.parse_config_json(str(text), "That config.json")
    except safe_json.JSONInputError as exc:
        raise PlanInputError(str(exc)) from None


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
@dataclass(frozen=True)
class Field:
    """One input: URL key ↔ session-state key, default value, parse (URL text → value), write (value → URL text)."""

    url_key: str
    state_key: str
    default: Any
    parse: Callable[[str], Any]
    write: Callable[[Any], str | None] = str


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


def defaults() -> dict[str, Any]:
    """Session-state key → default value."""
    return {f.state_key: f.default for f in FIELDS.values()}


def parse_query_params(query: Mapping[str, str]) -> tuple[dict[str, Any], list[str]]:
    """Query params → (session-state key → value for the keys present, user-facing problems).

    Invalid values fall back to their default; unknown keys are ignored. A link with ``params`` but no ``src``
    (e.g. from the compute planner: /memory?params=7000000000) plans from that raw parameter count.
    """
    values: dict[str, Any] = {}
    problems: list[str] = []
    for url_key, text in query.items():
        f = FIELDS.get(url_key)
        if f is None:
            continue
        try:
            values[f.state_key] = f.parse(text)
        except (PlanInputError, ArchitectureError, ValueError, TypeError) as exc:
            values[f.state_key] = f.default
            problems.append(f"{code(f'{url_key}={text}', 60)}: {escape_markdown(exc)} — using the default "
                            f"({f.write(f.default) or 'empty'}).")
    if "params" in query and "src" not in query:
        values["mem_source"] = "params"
    if "cfg" in query and "src" not in query and values.get("mem_config_text"):
        values["mem_source"] = "config"
    return values, problems


def to_query_params(values: Mapping[str, Any]) -> dict[str, str]:
    """Session-state values → URL query params (inputs that cannot be written, e.g. invalid text, are left out)."""
    out: dict[str, str] = {}
    source = values.get("mem_source", "catalog")
    for url_key, f in FIELDS.items():
        if url_key == "model" and source != "catalog":
            continue
        if url_key == "cfg" and source != "config":
            continue
        if url_key == "params" and source != "params":
            continue
        if f.state_key not in values:
            continue
        text = f.write(values[f.state_key])
        if text is not None:
            out[url_key] = text
    return out


# ---------------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class ModelChoice:
    """What the plan is about: a catalog model or config (exact shape) or a bare parameter count."""

    label: str
    n_params: int
    config: dict | None  # normalized config when the architecture is known
    shape_source: str  # the model whose shape is used for KV cache / activations
    shape_config: dict | None
    catalog_id: str | None = None

    @property
    def exact(self) -> bool:
        return self.config is not None


def nearest_catalog_decoder(n_params: float) -> str:
    """Catalog decoder whose parameter count is closest (in log scale) to ``n_params``."""
    best, best_gap = None, math.inf
    for cid in architectures.catalog_ids():
        if architectures.model_kind(cid) != "decoder":
            continue
        gap = abs(math.log(architectures.param_count(cid) / n_params))
        if gap < best_gap:
            best, best_gap = cid, gap
    return best


def choose_model(source: str, model_id: str = DEFAULT_MODEL, params_text: str = "", config_text: str = "") -> ModelChoice:
    """Resolve the model inputs; raises PlanInputError / ArchitectureError with a user-facing message."""
    if source == "catalog":
        cid = architectures.resolve_id(model_id)
        cfg = architectures.get_config(cid)
        return ModelChoice(architectures.display_name(cid), architectures.param_count(cid), cfg, cid, cfg, cid)
    if source == "params":
        n = parse_param_count(params_text)
        near = nearest_catalog_decoder(n)
        return ModelChoice(f"{format_count(n)}-parameter model", n, None, near, architectures.get_config(near))
    if source == "config":
        raw = parse_config_text(config_text)
        cfg = architectures.get_config(raw)
        n = architectures.param_count(cfg)
        name = cfg.get("_name_or_path") or f"pasted {cfg['model_type']} config"
        return ModelChoice(str(name), n, cfg, "your config.json", cfg)
    raise PlanInputError(f"Unknown model source {source!r}.")


def selected_gpu(gpu_name: str, custom_gb: float) -> GPU:
    """Catalog GPU, or a custom one with ``custom_gb`` GB."""
    if gpu_name == CUSTOM_GPU:
        return custom_gpu(custom_gb, name=f"Custom GPU ({custom_gb:g} GB)")
    return GPUS[gpu_name]


@dataclass
class MemoryPlan:
    """Every number the Memory planner shows, in bytes (GB = 1e9 in the tables)."""

    model: ModelChoice
    gpu: GPU
    inputs: dict[str, Any]
    breakdown: dict[str, int] = field(default_factory=dict)
    inference: dict[str, dict[str, float]] = field(default_factory=dict)  # weight format → components
    kv_tokens: int = 0
    kv_per_token_bytes: float = 0.0
    rule_of_thumb: dict[str, float] = field(default_factory=dict)
    store_fp32_bytes: float = 0.0
    mixed_precision: dict[str, float] = field(default_factory=dict)
    activations_by_recompute: dict[str, float] = field(default_factory=dict)
    zero: dict[int, dict[str, float]] = field(default_factory=dict)  # stage → per-GPU components at n_gpus
    zero_curves: dict[int, list[tuple[int, float]]] = field(default_factory=dict)
    fit_rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def selected_inference(self) -> dict[str, float]:
        return self.inference[self.inputs["weight_format"]]

    @property
    def usable_bytes(self) -> float:
        """Memory of the chosen GPU that a plan may use: all of it minus the headroom kept free."""
        return memory.usable_bytes(self.gpu.memory_bytes, self.inputs["headroom_pct"])


def _capacity_rows(plan: MemoryPlan, gpus: list[GPU]) -> list[dict[str, Any]]:
    headroom = plan.inputs["headroom_pct"]
    infer = plan.selected_inference
    need_infer = sum(infer.values())
    stage = plan.inputs["stage"]
    need_train = sum(plan.zero[stage].values())
    rows = []
    for gpu in gpus:
        usable = memory.usable_bytes(gpu.memory_bytes, headroom)
        row = {
            "GPU": gpu.name,
            "memory (GB)": gpu.memory_gb,
            "usable (GB)": usable / GB,
            "serve: needs on 1 GPU (GB)": need_infer / GB,
            "serve: left on 1 GPU (GB)": (gpu.memory_bytes - need_infer) / GB,
            "serve: fits 1 GPU": need_infer <= usable,
            "min GPUs to serve": memory.inference_min_gpus(infer, usable),
            "train: needs per GPU (GB)": need_train / GB,
            "train: fits": need_train <= usable,
        }
        for s in ZERO_STAGES:
            row[f"min GPUs, {ZERO_STAGE_NAMES[s]}"] = memory.training_min_gpus(
                plan.model.n_params, s, plan.mixed_precision["activations"], None, usable,
                optimizer_bytes_per_param=plan.inputs["optimizer_bytes"], overhead_bytes=plan.inputs["overhead_gb"] * GB)
        rows.append(row)
    return rows


def build_plan(model: ModelChoice, gpu: GPU, *, weight_format: str = "bf16", kv_dtype: str = "bf16",
               context: int = 4096, batch: int = 1, workspace_pct: float = memory.DEFAULT_INFERENCE_WORKSPACE_PCT,
               overhead_gb: float = memory.DEFAULT_CUDA_OVERHEAD_GB, train_seq: int = 2048, micro_batch: int = 1,
               recompute: str = "selective", optimizer_bytes: float = 12.0, n_gpus: int = 8, stage: int = 3,
               headroom_pct: float = 10.0) -> MemoryPlan:
    """Compute the whole plan (formulas and sources in core.plan.memory)."""
    if kv_dtype not in KV_DTYPES:
        raise PlanInputError(f"Unknown KV-cache dtype {kv_dtype!r}.")
    if weight_format not in memory.WEIGHT_FORMATS:
        raise PlanInputError(f"Unknown weight format {weight_format!r}.")
    if stage not in ZERO_STAGES:
        raise PlanInputError(f"ZeRO stage must be 0–3, got {stage!r}.")
    inputs = dict(weight_format=weight_format, kv_dtype=kv_dtype, context=int(context), batch=int(batch),
                  workspace_pct=float(workspace_pct), overhead_gb=float(overhead_gb), train_seq=int(train_seq),
                  micro_batch=int(micro_batch), recompute=recompute, optimizer_bytes=float(optimizer_bytes),
                  n_gpus=int(n_gpus), stage=int(stage), headroom_pct=float(headroom_pct))
    plan = MemoryPlan(model=model, gpu=gpu, inputs=inputs)
    n = model.n_params
    if model.exact:
        plan.breakdown = architectures.param_breakdown(model.config)
    weights_arg = model.config if model.exact else n
    kv_bytes = KV_DTYPES[kv_dtype]
    overhead_bytes = overhead_gb * GB  # the page's input is in GB; core works in bytes
    for fmt in memory.WEIGHT_FORMATS:
        plan.inference[fmt] = memory.inference_breakdown(
            weights_arg, fmt, context, batch, kv_bytes, workspace_pct, shape_model=model.shape_config,
            overhead_bytes=overhead_bytes)
    shape = model.shape_config
    window = shape.get("sliding_window_effective")
    plan.kv_tokens = min(context, window) if window else context
    plan.kv_per_token_bytes = memory.model_kv_cache_bytes(shape, 1, 1, kv_bytes) if shape["kind"] != "encoder" else 0.0

    plan.rule_of_thumb = {k: v * n for k, v in memory.training_bytes_per_param("rule_of_thumb").items()}
    plan.store_fp32_bytes = memory.weights_bytes(n, "fp32")
    for option in memory.RECOMPUTE_OPTIONS:
        plan.activations_by_recompute[option] = memory.model_activation_bytes(shape, train_seq, micro_batch, option)
    activations = plan.activations_by_recompute[recompute]
    states = memory.zero_model_states_breakdown(n, 1, 0, optimizer_bytes_per_param=optimizer_bytes)
    plan.mixed_precision = {**states, "activations": activations, "cuda_context": overhead_bytes}
    for s in ZERO_STAGES:
        plan.zero[s] = memory.training_per_gpu(n, n_gpus, s, activations, optimizer_bytes_per_param=optimizer_bytes,
                                               overhead_bytes=overhead_bytes)
        plan.zero_curves[s] = [
            (g, sum(memory.training_per_gpu(n, g, s, activations, optimizer_bytes_per_param=optimizer_bytes,
                                            overhead_bytes=overhead_bytes).values()))
            for g in N_GPU_CURVE]
    gpus = list(GPUS.values())
    if gpu.name not in GPUS:
        gpus.append(gpu)
    plan.fit_rows = _capacity_rows(plan, gpus)
    return plan


# ---------------------------------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------------------------------
def plan_rows(plan: MemoryPlan) -> list[dict[str, Any]]:
    """The plan as rows (section, item, value, unit) for CSV export and the summary table."""
    rows: list[dict[str, Any]] = []

    def add(section, item, value, unit):
        rows.append({"section": section, "item": item, "value": value, "unit": unit})

    m = plan.model
    add("model", "model", m.label, "")
    add("model", "parameters", m.n_params, "parameters")
    add("model", "parameter count exact (from architecture)", m.exact, "")
    add("model", "shape used for KV cache and activations", m.shape_source, "")
    for comp, count in plan.breakdown.items():
        add("parameters", comp, count, "parameters")
    for fmt, parts in plan.inference.items():
        for comp, value in memory.export_keys(parts).items():
            add(f"inference {fmt}", comp, round(value / GB, 4), "GB")
        add(f"inference {fmt}", "total", round(sum(parts.values()) / GB, 4), "GB")
    add("KV cache", "tokens cached per sequence", plan.kv_tokens, "tokens")
    add("KV cache", "per token per sequence", round(plan.kv_per_token_bytes / 1e6, 6), "MB")
    for comp, value in plan.rule_of_thumb.items():
        add("training, rule of thumb (24 B/param)", comp, round(value / GB, 4), "GB")
    add("training, rule of thumb (24 B/param)", "total", round(sum(plan.rule_of_thumb.values()) / GB, 4), "GB")
    add("training, rule of thumb (24 B/param)", "store fp32 weights", round(plan.store_fp32_bytes / GB, 4), "GB")
    for comp, value in memory.export_keys(plan.mixed_precision).items():
        add("training, mixed precision (1 GPU)", comp, round(value / GB, 4), "GB")
    add("training, mixed precision (1 GPU)", "total", round(sum(plan.mixed_precision.values()) / GB, 4), "GB")
    for option, value in plan.activations_by_recompute.items():
        add("activations per micro-batch", f"recompute {option}", round(value / GB, 4), "GB")
    for s, parts in plan.zero.items():
        section = f"per GPU, {ZERO_STAGES[s]}, {plan.inputs['n_gpus']} GPUs"
        for comp, value in memory.export_keys(parts).items():
            add(section, comp, round(value / GB, 4), "GB")
        add(section, "total", round(sum(parts.values()) / GB, 4), "GB")
    for row in plan.fit_rows:
        for key, value in row.items():
            if key != "GPU":
                add(f"GPU fit: {row['GPU']}", key, value if value is not None else "never", "")
    return rows


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
