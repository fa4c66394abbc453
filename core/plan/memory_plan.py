"""The Memory planner's plan: what it is about (``choose_model``: a catalog model, a pasted config.json or a bare
parameter count, with the shape used for KV cache and activations), on which GPU (``selected_gpu``), and every number
the page shows (``build_plan`` → ``MemoryPlan``: serving per weight format, KV cache, training recipes, ZeRO stages
and the GPU fit table; formulas and their sources in core.plan.memory). The inputs' vocabulary (sources, KV dtypes,
ZeRO stages) and the parsing and formatting of their values live here too; core.io.plan_io puts them in the URL and
exports the plan.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from core.plan import architectures, memory
from core.common import safe_json, units
from core.plan.hardware import GPUS, GPU, custom_gpu
from core.common.units import GB, format_count, format_gb  # re-exported (memory_plan.format_count, .format_gb)
from core.common.user_text import clip

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


def parse_config_text(text: str) -> dict:
    """Text of a config.json → dict; PlanInputError with a clear message when it is not a JSON object, or is too
    long, too deep or has absurd numbers (core.common.safe_json caps them before parsing)."""
    if not str(text).strip():
        raise PlanInputError("Paste a config.json (or upload one) to plan from it.")
    try:
        return safe_json.parse_config_json(str(text), "That config.json")
    except safe_json.JSONInputError as exc:
        raise PlanInputError(str(exc)) from None


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

