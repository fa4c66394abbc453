"""How a model is loaded: the device ("auto" or explicit), the dtype (with remarks on slow combinations), the model's
kind (decoder, encoder, encoder-decoder) and the transformers Auto class for it, and bitsandbytes quantization
(``bnb_config``). ``core.run.models.loading`` and ``core.run.models.random_weights`` both build on these."""
from __future__ import annotations

import importlib.util

import torch

from core.common.device import DeviceError, resolve_device
from core.run.models.bundled import ModelLoadError

KINDS = ("decoder", "encoder", "encoder-decoder")
QUANTIZATIONS = (None, "int8", "nf4", "fp4")

DTYPE_NAMES = {
    "fp32": torch.float32, "float32": torch.float32,
    "fp16": torch.float16, "float16": torch.float16, "half": torch.float16,
    "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
}
SHORT_DTYPE = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}

# model_type values of encoder-only families: their config also maps to a *ForCausalLM class in transformers
# (e.g. BertLMHeadModel), so the architecture list decides and this set is the fallback.
_ENCODER_MODEL_TYPES = {
    "bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta", "mpnet",
    "camembert", "modernbert", "ernie", "nomic_bert", "xlm", "funnel", "squeezebert", "mobilebert", "layoutlm",
}


def select_device(device: str | torch.device = "auto") -> torch.device:
    """"auto" picks CUDA > MPS > CPU; an explicit "cpu" / "cuda" / "cuda:1" / "mps" is checked to exist.

    The one resolver is ``core.common.device.resolve_device``; this raises its message as a ``ModelLoadError``.
    """
    try:
        return resolve_device(device)
    except DeviceError as exc:
        raise ModelLoadError(str(exc)) from exc


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """"auto": fp32 on CPU (fastest and exact there), bf16 on CUDA GPUs that support it else fp16, fp16 on MPS."""
    if isinstance(dtype, torch.dtype):
        if dtype not in SHORT_DTYPE:
            raise ModelLoadError(f"Unsupported dtype {dtype}; use fp32, fp16 or bf16.")
        resolved = dtype
    else:
        key = (dtype or "auto").strip().lower()
        if key == "auto":
            if device.type == "cuda":
                return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            if device.type == "mps":
                return torch.float16
            return torch.float32
        if key not in DTYPE_NAMES:
            raise ModelLoadError(f"Unknown dtype '{dtype}'. Use 'auto', 'fp32', 'fp16' or 'bf16'.")
        resolved = DTYPE_NAMES[key]
    if resolved == torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ModelLoadError("This GPU does not support bf16 (it needs compute capability 8.0+); use fp16 or fp32.")
    return resolved


def dtype_notes(dtype: torch.dtype, device: torch.device) -> list[str]:
    """User-facing remarks on running ``dtype`` on ``device`` (e.g. fp16 on a CPU is emulated and slow)."""
    # Measured with torch 2.13 on CPU: fp16 matmuls run (results match fp32 to the first tokens) but are several
    # times slower than fp32, because most CPUs have no native fp16 arithmetic.
    if device.type == "cpu" and dtype == torch.float16:
        return ["fp16 runs on this CPU but is much slower than fp32: CPUs lack native fp16 math (it is emulated)."]
    if device.type == "cpu" and dtype == torch.bfloat16:
        return ["bf16 on CPU saves memory; its speed depends on the CPU's bf16 support."]
    return []


def detect_kind(config) -> str:
    """"decoder" | "encoder" | "encoder-decoder" from a transformers config (architectures first, then model_type)."""
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    architectures = list(getattr(config, "architectures", None) or [])
    for arch in architectures:
        if arch.endswith(("ForConditionalGeneration",)) and getattr(config, "is_encoder_decoder", False):
            return "encoder-decoder"
        if arch.endswith(("ForCausalLM", "LMHeadModel")) and not arch.startswith(("Bert", "Roberta")):
            return "decoder"
    model_type = getattr(config, "model_type", "")
    if model_type in _ENCODER_MODEL_TYPES:
        return "decoder" if getattr(config, "is_decoder", False) else "encoder"
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return "decoder"
    return "encoder"


def auto_class(kind: str):
    """The transformers Auto class that builds a model of ``kind`` (one of KINDS)."""
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return {"decoder": AutoModelForCausalLM, "encoder": AutoModel, "encoder-decoder": AutoModelForSeq2SeqLM}[kind]


def bnb_config(quantization: str, compute_dtype: torch.dtype = torch.float32, double_quant: bool = False):
    """BitsAndBytesConfig for "int8" (LLM.int8(), Dettmers et al. 2022) or 4-bit "nf4" / "fp4" (QLoRA, Dettmers et
    al. 2023, section 3). ``double_quant`` also quantizes the 4-bit block scales; ``compute_dtype`` is the dtype
    the 4-bit matmuls run in."""
    from transformers import BitsAndBytesConfig

    if quantization == "int8":
        return BitsAndBytesConfig(load_in_8bit=True)
    if quantization in ("nf4", "fp4"):
        return BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type=quantization,
            bnb_4bit_use_double_quant=bool(double_quant),
            bnb_4bit_compute_dtype=compute_dtype,
        )
    raise ModelLoadError(f"Unknown quantization '{quantization}'. Use none, 'int8', 'nf4' or 'fp4'.")


def check_quantization_runs_here(quantization: str, device: torch.device) -> None:
    """ModelLoadError unless bitsandbytes is installed and runs on ``device`` (it does not on Apple MPS)."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelLoadError(f"{quantization} quantization needs the bitsandbytes package, which is not installed.")
    if device.type == "mps":
        raise ModelLoadError(
            f"{quantization} quantization (bitsandbytes) does not run on Apple MPS; choose device 'cpu' or a CUDA GPU."
        )
