"""Training and inference compute: FLOPs, petaFLOP/s-days, GPU time and cost, Chinchilla sizing.

Every formula names its source; the collected statements are in docs/references/formulas.md.

- Training FLOPs C ≈ 6·N·D: 2·N·D for the forward pass and 4·N·D for the backward pass
  (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", §2.1 and Table 1).
  Full activation recompute runs the forward pass a second time: ≈ 8·N·D
  (Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models", §5 / Table 4).
- Inference ≈ 2·N FLOPs per generated token (Kaplan et al. 2020, §2.1: C_forward ≈ 2N).
- 1 petaFLOP/s-day = 1e15 FLOP/s × 86,400 s = 8.64e19 FLOPs (Brown et al. 2020, GPT-3, Appendix D).
- Compute-optimal data ≈ 20 tokens per parameter (Hoffmann et al. 2022, "Training Compute-Optimal
  Large Language Models" (Chinchilla), Table 3); with C = 6·N·D and D = 20·N: N_opt = sqrt(C / 120).
- Parametric loss L(N, D) = E + A/N^α + B/D^β (Hoffmann et al. 2022, Eq. 2 and §3.3, approach 3) and its
  minimiser under a fixed budget (Eq. 4).
- Model FLOPs utilisation (MFU) = achieved model FLOP/s ÷ peak FLOP/s (Chowdhery et al. 2022, PaLM,
  Appendix B); training time = C / (n_gpus × peak × MFU).

The plans built from these formulas (a cluster, a run in every unit, data-limited alternatives) are
``core.plan.compute_plan``; parsing and formatting the numbers a person types and reads, ``core.plan.compute_text``.

Pure Python: no Streamlit here.
"""
from __future__ import annotations

import math

from core.common import checks

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

SECONDS_PER_DAY = 86_400
SECONDS_PER_HOUR = 3_600

PFLOP_S_DAY = 1e15 * SECONDS_PER_DAY
"""One petaFLOP/s-day in FLOPs: 1e15 FLOP/s sustained for 86,400 s = 8.64e19 (GPT-3 paper, Appendix D)."""

FLOPS_PER_PARAM_TOKEN = 6.0
"""Training FLOPs per parameter per token: 2 forward + 4 backward (Kaplan et al. 2020, §2.1)."""

RECOMPUTE_EXTRA_FLOPS_PER_PARAM_TOKEN = 2.0
"""Full activation recompute repeats the forward pass: +2 → 8·N·D (Korthikanti et al. 2022, §5)."""

INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0
"""Forward pass only: ≈ 2·N FLOPs per generated token (Kaplan et al. 2020, §2.1)."""

CHINCHILLA_TOKENS_PER_PARAM = 20.0
"""Compute-optimal tokens per parameter (Hoffmann et al. 2022, Table 3: 70B ↔ 1.4T tokens)."""

DEFAULT_MFU = 0.40
"""Default model FLOPs utilisation: a typical well-tuned large run (published GPU-hours imply LLaMA 43-51%,
Llama 2 38-43%; BLOOM reports ~50% and BloombergGPT ~33% of peak while training; see core.plan.training_runs)."""

# Chinchilla approach-3 fit (Hoffmann et al. 2022, §3.3, Eq. 2 with the rounded constants of the paper).
CHINCHILLA_E = 1.69
CHINCHILLA_A = 406.4
CHINCHILLA_B = 410.7
CHINCHILLA_ALPHA = 0.34
CHINCHILLA_BETA = 0.28

class ComputeInputError(ValueError):
    """A user-facing problem with an input (empty, not a number, zero, negative, absurdly large)."""


# --------------------------------------------------------------------------------------------
# Core formulas (public API)
# --------------------------------------------------------------------------------------------


def positive_input(value: float, what: str) -> float:
    """``value`` as a positive float, else ComputeInputError naming ``what`` (the check every formula runs)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ComputeInputError(f"{what} must be a number, got {value!r}.") from None
    return checks.check_positive(v, what, error=ComputeInputError)


def training_flops(n_params: float, n_tokens: float, flops_per_param_token: float = 6) -> float:
    """Training compute C = k·N·D FLOPs, k = 6 by default.

    Source: Kaplan et al. 2020, §2.1 (C ≈ 6ND: 2ND forward + 4ND backward). Use k = 8 for full
    activation recompute (one extra forward, Korthikanti et al. 2022).
    """
    return (positive_input(flops_per_param_token, "FLOPs per parameter per token")
            * positive_input(n_params, "Parameter count") * positive_input(n_tokens, "Token count"))


def inference_flops(n_params: float, n_tokens: float = 1) -> float:
    """Forward-pass compute ≈ 2·N FLOPs per generated token (Kaplan et al. 2020, §2.1), times n_tokens."""
    return (INFERENCE_FLOPS_PER_PARAM_TOKEN * positive_input(n_params, "Parameter count")
            * positive_input(n_tokens, "Token count"))


def pflop_s_days(flops: float) -> float:
    """FLOPs → petaFLOP/s-days: C / 8.64e19 (GPT-3 paper, Brown et al. 2020, Appendix D)."""
    return float(flops) / PFLOP_S_DAY


def flops_from_pflop_s_days(pfsd: float) -> float:
    """petaFLOP/s-days → FLOPs: × 8.64e19 (GPT-3 paper, Appendix D)."""
    return float(pfsd) * PFLOP_S_DAY


def chinchilla_optimal(compute_flops: float, tokens_per_param: float = 20,
                       flops_per_param_token: float = 6) -> tuple[float, float]:
    """Compute-optimal (params, tokens) for a budget, with D = r·N and C = k·N·D.

    Source: Hoffmann et al. 2022 (Chinchilla), Table 3 (≈ 20 tokens per parameter); solving
    C = k·N·(r·N) gives N_opt = sqrt(C / (k·r)), D_opt = r·N_opt (k = 6, r = 20: sqrt(C/120)).
    """
    c = positive_input(compute_flops, "Compute budget")
    r = positive_input(tokens_per_param, "Tokens per parameter")
    k = positive_input(flops_per_param_token, "FLOPs per parameter per token")
    n_opt = math.sqrt(c / (k * r))
    return n_opt, r * n_opt


def chinchilla_tokens(n_params: float, tokens_per_param: float = 20) -> float:
    """Compute-optimal training tokens for a model size: D = r·N (Hoffmann et al. 2022, Table 3)."""
    return positive_input(tokens_per_param, "Tokens per parameter") * positive_input(n_params, "Parameter count")


def chinchilla_params(n_tokens: float, tokens_per_param: float = 20) -> float:
    """Largest compute-optimal model for a data limit: N = D / r (Hoffmann et al. 2022, Table 3)."""
    return positive_input(n_tokens, "Token count") / positive_input(tokens_per_param, "Tokens per parameter")


def training_days(flops: float, n_gpus: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Wall-clock days = C / (n_gpus × peak FLOP/s × MFU) / 86,400.

    MFU as defined in the PaLM paper (Chowdhery et al. 2022, Appendix B): achieved model FLOP/s over peak.
    """
    return training_seconds(flops, n_gpus, peak_flops_per_gpu, mfu) / SECONDS_PER_DAY


def training_seconds(flops: float, n_gpus: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Wall-clock seconds = C / (n_gpus × peak FLOP/s × MFU) (PaLM, Appendix B, MFU definition)."""
    return positive_input(flops, "Compute") / (
        positive_input(n_gpus, "Number of GPUs") * positive_input(peak_flops_per_gpu, "Peak FLOP/s per GPU")
        * check_mfu(mfu))


def gpu_hours(flops: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """GPU-hours = C / (peak FLOP/s × MFU) / 3,600 — independent of how many GPUs share the work."""
    return (positive_input(flops, "Compute")
            / (positive_input(peak_flops_per_gpu, "Peak FLOP/s per GPU") * check_mfu(mfu)) / SECONDS_PER_HOUR)


def cluster_flops(n_gpus: float, days: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Compute a cluster delivers: n_gpus × days × 86,400 s × peak FLOP/s × MFU (PaLM, Appendix B)."""
    return (positive_input(n_gpus, "Number of GPUs") * positive_input(days, "Days") * SECONDS_PER_DAY
            * positive_input(peak_flops_per_gpu, "Peak FLOP/s per GPU") * check_mfu(mfu))


def training_cost(gpu_hours_total: float, price_per_gpu_hour: float) -> float:
    """Cost in dollars = GPU-hours × price per GPU-hour (price is the user's assumption)."""
    price = float(price_per_gpu_hour)
    if not math.isfinite(price) or price < 0:
        raise ComputeInputError("Price per GPU-hour must be zero or a positive number of dollars.")
    return float(gpu_hours_total) * price


def implied_mfu(flops: float, gpu_hours_total: float, peak_flops_per_gpu: float) -> float:
    """MFU needed to do `flops` in the published GPU-hours: C / (GPU-hours × 3,600 × peak).

    The inverse of `gpu_hours` (PaLM, Appendix B, MFU definition). With C = 6·N·D it is the model FLOPs
    utilisation; with a FLOP count that includes recompute it is the hardware FLOPs utilisation (HFU).
    """
    return positive_input(flops, "Compute") / (
        positive_input(gpu_hours_total, "GPU-hours") * SECONDS_PER_HOUR
        * positive_input(peak_flops_per_gpu, "Peak FLOP/s per GPU"))


def gpus_for_one_pflop_s(peak_flops_per_gpu: float, mfu: float = 1.0) -> float:
    """GPUs that together sustain 1 PF/s, i.e. GPU-days per petaFLOP/s-day: 1e15 / (peak × MFU).

    The course notes' rule "1 PF/s-day ≈ 8 V100 or 2 A100 for a day at full efficiency"; datasheet peaks
    (NVIDIA's V100 and A100 datasheets, docs/references/gpus.md) give 8 × 125 = 1000 TFLOP/s for V100 but 2 × 312 = 624 TFLOP/s for A100 (≈ 3.2 A100s).
    """
    return 1e15 / (positive_input(peak_flops_per_gpu, "Peak FLOP/s per GPU") * check_mfu(mfu))


def check_mfu(mfu: float) -> float:
    """``mfu`` as a fraction of peak in (0, 1], else ComputeInputError."""
    v = positive_input(mfu, "Model FLOPs utilisation (MFU)")
    if v > 1:
        raise ComputeInputError(f"MFU is a fraction of peak between 0 and 1 (100%), got {mfu!r}.")
    return v


# --------------------------------------------------------------------------------------------
# Chinchilla parametric loss and iso-FLOP curves
# --------------------------------------------------------------------------------------------


def chinchilla_loss(n_params: float, n_tokens: float) -> float:
    """Predicted pre-training loss L(N, D) = E + A/N^α + B/D^β (nats/token on MassiveText).

    Source: Hoffmann et al. 2022, Eq. 2 with the approach-3 fit of §3.3: E = 1.69, A = 406.4, B = 410.7,
    α = 0.34, β = 0.28.
    """
    n = positive_input(n_params, "Parameter count")
    d = positive_input(n_tokens, "Token count")
    return CHINCHILLA_E + CHINCHILLA_A / n ** CHINCHILLA_ALPHA + CHINCHILLA_B / d ** CHINCHILLA_BETA


def loss_optimal_allocation(compute_flops: float, flops_per_param_token: float = 6) -> tuple[float, float]:
    """(N, D) minimising the fitted L(N, D) under C = k·N·D.

    Source: Hoffmann et al. 2022, Eq. 4: N_opt = G·(C/k)^a, D_opt = G⁻¹·(C/k)^b with
    G = (αA / βB)^(1/(α+β)), a = β/(α+β), b = α/(α+β) (k = 6 in the paper). With the rounded constants
    a ≈ 0.45, so this optimum uses more tokens per parameter than the 20× rule at large budgets.
    """
    c = (positive_input(compute_flops, "Compute budget")
         / positive_input(flops_per_param_token, "FLOPs per parameter per token"))
    s = CHINCHILLA_ALPHA + CHINCHILLA_BETA
    g = (CHINCHILLA_ALPHA * CHINCHILLA_A / (CHINCHILLA_BETA * CHINCHILLA_B)) ** (1 / s)
    n_opt = g * c ** (CHINCHILLA_BETA / s)
    return n_opt, c / n_opt


def iso_flop_curve(compute_flops: float, n_params_grid, flops_per_param_token: float = 6) -> list[float]:
    """Fitted loss along one iso-FLOP line: for each N, D = C / (k·N) and L(N, D) (Hoffmann et al. 2022, Fig. 3)."""
    c = positive_input(compute_flops, "Compute budget")
    k = positive_input(flops_per_param_token, "FLOPs per parameter per token")
    return [chinchilla_loss(n, c / (k * n)) for n in n_params_grid]


def log_grid(low: float, high: float, points: int = 120) -> list[float]:
    """`points` values evenly spaced in log10 between low and high (inclusive)."""
    lo, hi = math.log10(positive_input(low, "low")), math.log10(positive_input(high, "high"))
    if points < 2:
        return [10 ** lo]
    return [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]
