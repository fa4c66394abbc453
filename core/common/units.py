"""Units shared by every module: the gigabyte and the bytes each stored value takes per dtype.

Bytes everywhere in ``core``; GB only at display time. GB = 1e9 bytes, the decimal gigabyte GPU datasheets use
(e.g. "NVIDIA H100 Tensor Core GPU Datasheet": 80 GB HBM3) and the ZeRO paper's memory figures use
(Rajbhandari et al. 2019, §3.1 and Figure 1).

Bytes per value: IEEE 754 binary32 = 4 bytes, binary16 = 2, bfloat16 = 2 (Google Cloud TPU docs, "The bfloat16
numerical format"), FP8 E4M3/E5M2 = 1 (Micikevicius et al. 2022, "FP8 Formats for Deep Learning"), int8 = 1 and
4-bit formats = 0.5 (two values per byte, before quantization constants such as scales and absmax blocks).
"""
from __future__ import annotations

import math

GB = 1e9
"""Bytes in one (decimal) gigabyte."""

BYTES_PER_VALUE: dict[str, float] = {"fp32": 4, "fp16": 2, "bf16": 2, "fp8": 1, "int8": 1, "int4": 0.5}
"""Bytes one stored value takes at each dtype (weights, KV-cache entries, activations), without quantization
constants. The single table behind ``core.plan.memory.BYTES_PER_PARAM`` and ``core.io.plan_io.KV_DTYPES``."""


def bytes_per_value(dtype: str) -> float:
    """Bytes one value takes at ``dtype`` ("fp32" 4, "fp16"/"bf16" 2, "fp8"/"int8" 1, "int4" 0.5).

    Raises ValueError naming the known dtypes for anything else.
    """
    try:
        return BYTES_PER_VALUE[dtype]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown dtype {dtype!r}. Known: {', '.join(BYTES_PER_VALUE)}.") from None


def subset(names) -> dict[str, float]:
    """``BYTES_PER_VALUE`` restricted to ``names``, in that order (e.g. the dtypes one table offers)."""
    return {name: BYTES_PER_VALUE[name] for name in names}


def to_gb(n_bytes: float) -> float:
    """Bytes → GB (1e9 bytes), for display only."""
    return n_bytes / GB


_SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")


def format_power(value: float, digits: int = 3) -> str:
    """1.3e26 → '1.3 × 10²⁶' (a number too large or small for a suffix, as a reader writes it; never 'e+26')."""
    v = float(value)
    if not math.isfinite(v) or v == 0:
        return str(v) if not math.isfinite(v) else "0"
    mantissa, exponent = f"{v:.{digits - 1}e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
    return f"{mantissa} × {power_of_ten(int(exponent))}"


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


def format_count(value: float, digits: int = 3) -> str:
    """175000000000 → '175B', 1.4e12 → '1.4T', 6.7e9 → '6.7B' (short scale, like the papers); rounded before the
    unit is chosen (999.96M → '1B', never '1e+03M'), and from 10¹⁵ on as a power of ten ('1 × 10¹⁵')."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    v = float(f"{v:.{digits}g}")  # round first, so 999.96M is counted as the 1B it reads as
    if abs(v) >= 1e15:
        return format_power(v, digits)
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def format_whole(value: float) -> str:
    """A count people read digit by digit while it is short ('12,288'), in the papers' short scale past 100,000
    ('131M', '1 × 10¹⁸'), so a GPU count for an absurd input still fits its metric box."""
    v = float(value)
    if math.isfinite(v) and abs(v) < 1e5:
        return f"{round(v):,}"
    return format_count(v)


def power_of_ten(exponent: int) -> str:
    """3 → '10³', -2 → '10⁻²' (superscript digits, as a formula reads)."""
    return "10" + str(int(exponent)).translate(_SUPERSCRIPT)


def format_magnitude(value: float, decimals: int = 2, plain_below: float = 1e6, digits: int = 2) -> str:
    """A number of any size that a person can read: below ``plain_below`` with thousands separators and
    ``decimals`` decimals ('18.23', '48,642.71'), above it as a power of ten ('8.72 × 10²⁶', not
    '8.722954806059943e+26'); '∞' / 'nan' for the non-finite."""
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if abs(v) < plain_below:
        return f"{v:,.{decimals}f}"
    exponent = math.floor(math.log10(abs(v)))
    mantissa = v / 10 ** exponent
    if round(abs(mantissa), digits) >= 10:  # 9.999e26 rounds to 10.00: carry into the exponent
        exponent, mantissa = exponent + 1, mantissa / 10
    return f"{mantissa:.{digits}f} × {power_of_ten(exponent)}"


def format_duration_s(seconds: float) -> str:
    """A short duration in a readable unit: '845 ms' below 1 s, '1.23 s' / '45.2 s' below 2 minutes, then
    '3 min 25 s' and '2 h 05 min' (a 117.6 s wait reads '117.6 s', not '117,645 ms')."""
    s = float(seconds)
    if not math.isfinite(s):
        return str(s)
    if s < 0:
        return "−" + format_duration_s(-s)
    if s < 1:
        ms = s * 1000
        return f"{ms:.3g} ms" if ms < 100 else f"{ms:.0f} ms"
    if s < 10:
        return f"{s:.2f} s"
    if s < 120:
        return f"{s:.1f} s"
    if s < 3600:
        minutes, rest = divmod(round(s), 60)
        return f"{minutes} min {rest} s"
    hours, rest = divmod(round(s / 60), 60)
    return f"{hours} h {rest:02d} min"


def error_pct(predicted: float, measured: float, *, missing: float | None = None) -> float | None:
    """(predicted − measured) ÷ measured × 100: positive = the prediction is high. ``missing`` where there is no
    measurement to compare with (zero, NaN or infinite)."""
    if not measured or not math.isfinite(measured):
        return missing
    return 100.0 * (predicted - measured) / measured
