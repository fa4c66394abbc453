"""The variants a model is compared at (fp32 / fp16 / bf16 / int8 / nf4 / fp4), the comparison's limits and
inputs, and the bundled reference text."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from core.common.paths import DATA_DIR


ProgressCallback = Callable[[float, str], None]

VARIANTS: tuple[str, ...] = ("fp32", "fp16", "bf16", "int8", "nf4", "fp4")
DEFAULT_VARIANTS: tuple[str, ...] = ("fp32", "bf16", "int8", "nf4")
COMPUTE_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16")
UNQUANTIZED_DTYPES: tuple[str, ...] = ("auto", "fp32", "bf16", "fp16")

DEFAULT_PROMPT = "Explain in two sentences why a lighthouse is useful to ships."
DEFAULT_MAX_NEW_TOKENS = 16
DEFAULT_REFERENCE_TOKENS = 256
MAX_NEW_TOKENS_LIMIT = 256
MAX_REFERENCE_TOKENS_LIMIT = 2048
MIN_REFERENCE_TOKENS = 8
MAX_PROMPT_CHARS = 4000
KL_PERCENTILE = 99.0

REFERENCE_TEXT_PATH = DATA_DIR / "reference_text.txt"


@dataclass(frozen=True)
class VariantSpec:
    """How one variant is stored: the dtype its unquantized layers load in and the bitsandbytes format, if any."""

    name: str
    label: str
    quantization: str | None  # None | "int8" | "nf4" | "fp4"
    dtype: str | None  # fp32 / fp16 / bf16 for float variants; None = the unquantized-layers option
    bits: float  # bits per quantized weight value (constants not included)
    description: str


VARIANT_SPECS: dict[str, VariantSpec] = {
    "fp32": VariantSpec("fp32", "fp32", None, "fp32", 32, "32-bit float, the unquantized baseline (4 B/param)."),
    "fp16": VariantSpec("fp16", "fp16", None, "fp16", 16,
                        "IEEE half precision (2 B/param): 5 exponent bits, max ≈ 65504, so large activations can overflow."),
    "bf16": VariantSpec("bf16", "bf16", None, "bf16", 16,
                        "bfloat16 (2 B/param): fp32's 8 exponent bits (same range), only 7 mantissa bits."),
    "int8": VariantSpec("int8", "int8 (LLM.int8)", "int8", None, 8,
                        "bitsandbytes LLM.int8(): int8 weights with one fp32 scale per row; outlier features "
                        "(|x| > 6) are multiplied in 16-bit (Dettmers et al. 2022)."),
    "nf4": VariantSpec("nf4", "nf4 (4-bit NormalFloat)", "nf4", None, 4,
                       "bitsandbytes 4-bit NormalFloat: 16 levels placed at quantiles of a normal distribution, one "
                       "absmax scale per block of 64 weights (QLoRA, Dettmers et al. 2023)."),
    "fp4": VariantSpec("fp4", "fp4 (4-bit float)", "fp4", None, 4,
                       "bitsandbytes 4-bit float (1 sign, 2 exponent, 1 mantissa bit), one absmax per block of 64."),
}


class QuantizationInputError(ValueError):
    """Bad input to the comparison (the message is user-facing)."""


# ---------------------------------------------------------------------------------------------------------------------
# Inputs


def load_reference_text(path: Path | str = REFERENCE_TEXT_PATH) -> str:
    """The reference text shipped with LLM Lab (core/data/reference_text.txt), without its '#' header lines."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return "\n".join(line for line in lines if not line.startswith("#")).strip()


def normalize_variants(variants) -> list[str]:
    """Validated variant names in canonical order (fp32, fp16, bf16, int8, nf4, fp4), duplicates dropped."""
    if variants is None or isinstance(variants, (str, bytes)):
        variants = [variants] if isinstance(variants, str) else []
    chosen = []
    for v in variants:
        key = str(v).strip().lower()
        if key not in VARIANT_SPECS:
            raise QuantizationInputError(f"Unknown variant '{v}'. Choose from: {', '.join(VARIANTS)}.")
        chosen.append(key)
    if not chosen:
        raise QuantizationInputError("Choose at least one variant to compare (fp32 is the usual baseline).")
    return [v for v in VARIANTS if v in chosen]
