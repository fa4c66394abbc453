"""Size a model from its config BEFORE building it, and refuse what cannot fit in free memory.

transformers allocates every weight of a model it builds (``from_pretrained`` with weights present, or
``from_config``), so a config.json describing a 70B model, or ``"hidden_size": 1e9``, would ask the server for
hundreds of GB (or 4e18 bytes) and get the process killed. Every model load in LLM Lab (``core.run.models.load_model``,
``core.run.models.random_model``, the memory planner's measurement) first calls :func:`check_fits`:

* parameters: ``core.plan.architectures.param_count`` (the memory planner's exact count from the shapes, transformers'
  module layout). Model types the planner does not know are counted by transformers itself on PyTorch's ``meta``
  device (tensors with shapes and no storage: https://pytorch.org/docs/stable/meta.html), after their shape fields
  are checked against the planner's plausibility limits. A config that cannot be counted either way is refused.
* bytes: ``core.plan.memory.weights_bytes`` (bytes per parameter: fp32 4, fp16/bf16 2, int8 1, 4-bit 0.5).
* free memory: ``core.plan.hardware.free_device_memory_bytes`` (available RAM via psutil on CPU, capped by the cgroup
  limit; ``torch.cuda.mem_get_info`` on a GPU). A model moved to a GPU is first loaded in RAM, so both must fit.

Plain Python, no Streamlit.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from core.plan import architectures, hardware, memory
from core.common.units import GB

# Bytes per parameter name in core.plan.memory for each torch dtype / bitsandbytes format a load can use.
_FORMAT_OF = {"float32": "fp32", "fp32": "fp32", "float16": "fp16", "fp16": "fp16", "bfloat16": "bf16",
              "bf16": "bf16", "int8": "int8", "nf4": "int4", "fp4": "int4"}


class ModelTooLargeError(ValueError):
    """The model does not fit in free memory, or its size cannot be computed; the message is user-facing."""


@dataclass(frozen=True)
class SizeCheck:
    """What a load needs against what is free: ``n_params`` at ``weight_format`` = ``needed_bytes``."""

    n_params: int
    weight_format: str  # "fp32" | "fp16" | "bf16" | "int8" | "int4"
    needed_bytes: float
    free_bytes: float
    device: str
    counted_by: str  # "planner" (core.plan.architectures) | "meta" (transformers on the meta device)

    @property
    def fits(self) -> bool:
        return self.needed_bytes <= self.free_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits}


def _as_mapping(config) -> Mapping:
    if isinstance(config, Mapping):
        return config
    if hasattr(config, "to_dict"):
        return config.to_dict()
    raise ModelTooLargeError(f"Cannot size a model from a {type(config).__name__}; a config is needed.")


def _meta_param_count(cfg: Mapping, config=None) -> int:
    """Parameters counted by transformers on the meta device (no memory), for model types the planner lacks.

    ``config``: the PretrainedConfig itself when the caller has one (used as is); else one is built from ``cfg``."""
    import torch
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, PretrainedConfig

    for field, keys in architectures.ALIASES_BY_FIELD.items():  # plausibility first: a meta build still loops per layer
        for key in keys:
            value = cfg.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                limit = architectures.SHAPE_LIMITS.get(field)
                if limit is not None and value > limit:
                    raise ModelTooLargeError(f"config.json: {key!r} = {value:,} is implausibly large "
                                             f"(limit {limit:,}); the model was not built.")
    if not isinstance(config, PretrainedConfig):
        values = dict(cfg)
        model_type = values.pop("model_type", None)
        if not isinstance(model_type, str):
            raise ModelTooLargeError("config.json has no 'model_type', so the model's size cannot be computed.")
        config = AutoConfig.for_model(model_type, **{k: v for k, v in values.items() if not k.startswith("_")})
    if not isinstance(config, PretrainedConfig):
        raise ModelTooLargeError("transformers could not build this config.")
    # A causal LM is counted with its head: AutoModel builds only the base model, which leaves out an untied
    # lm_head (vocab × hidden parameters). Tied heads share the embedding tensor and are deduplicated below.
    causal = any(str(name).endswith("ForCausalLM") for name in (getattr(config, "architectures", None) or ()))
    with torch.device("meta"):
        model = None
        if causal:
            try:
                model = AutoModelForCausalLM.from_config(config)
            except ValueError:  # no causal-LM class registered for this config type: count the base model
                model = None
        if model is None:
            model = AutoModel.from_config(config)
    seen, total = set(), 0
    for param in model.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def count_params(config) -> tuple[int, str]:
    """(parameters, "planner" | "meta") of a config dict / PretrainedConfig; ModelTooLargeError when uncountable."""
    cfg = _as_mapping(config)
    try:
        return architectures.param_count(cfg), "planner"
    except architectures.ArchitectureError as exc:
        planner_problem = str(exc)
    if architectures.is_supported_model_type(cfg):
        raise ModelTooLargeError(f"The model's size cannot be computed from its config, so it was not loaded: "
                                 f"{planner_problem}")
    try:
        return _meta_param_count(cfg, None if isinstance(config, Mapping) else config), "meta"
    except ModelTooLargeError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to count means: refuse, do not allocate
        first = (str(exc).splitlines() or [type(exc).__name__])[0][:300]
        raise ModelTooLargeError(f"The model's size cannot be computed from its config, so it was not loaded "
                                 f"({planner_problem} Counting it with transformers failed too: {first}).") from None


def weight_format(dtype, quantization: str | None = None) -> str:
    """core.plan.memory's bytes-per-parameter name for a torch dtype (or its name) and an optional bitsandbytes format."""
    if quantization:
        key = str(quantization).lower()
    else:
        key = str(dtype).replace("torch.", "").lower()
    if key not in _FORMAT_OF:
        raise ModelTooLargeError(f"Unknown weight format {key!r} for sizing the model.")
    return _FORMAT_OF[key]


def _free_bytes(device) -> tuple[float, str]:
    """(free bytes, device label) where the weights must fit; a GPU load also needs the RAM to stage them."""
    device_name = str(device)
    if device_name.startswith("cuda"):
        gpu = float(hardware.free_device_memory_bytes(device_name))
        ram = float(hardware.free_device_memory_bytes("cpu"))
        return (gpu, f"{device_name} (GPU)") if gpu <= ram else (ram, "RAM (the weights are loaded there first)")
    return float(hardware.free_device_memory_bytes("cpu")), "RAM"


def check_fits(config, dtype, device="cpu", quantization: str | None = None, *,
               free_bytes: float | None = None) -> SizeCheck:
    """Size the model from ``config`` and raise ModelTooLargeError, with the numbers, if it cannot fit.

    ``free_bytes`` overrides the measured free memory (tests; a caller that reserves some for itself).
    """
    n_params, counted_by = count_params(config)
    fmt = weight_format(dtype, quantization)
    needed = memory.weights_bytes(n_params, fmt)
    if free_bytes is None:
        free, where = _free_bytes(device)
    else:
        free, where = float(free_bytes), str(device)
    check = SizeCheck(int(n_params), fmt, float(needed), float(free), where, counted_by)
    if not check.fits:
        raise ModelTooLargeError(
            f"This model has {n_params:,} parameters: its weights need {needed / GB:,.2f} GB at {fmt}, but only "
            f"{free / GB:,.2f} GB is free in {where}. It was not loaded. Pick a smaller model, a smaller dtype or "
            "a quantized format, or plan it on the Memory planner page instead.")
    return check
