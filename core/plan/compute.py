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

Pure Python: no Streamlit here.
"""
from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass

from core.common import checks
from core.common.units import format_count, format_duration_s  # noqa: F401  (re-exported: core.plan.compute.*)

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

# Plausibility limits for user input: beyond these the numbers are typos, not plans.
MIN_PARAMS, MAX_PARAMS = 1e3, 1e15
MIN_TOKENS, MAX_TOKENS = 1e3, 1e17
MIN_FLOPS, MAX_FLOPS = 1e9, 1e32
MIN_PFLOP_S_DAYS, MAX_PFLOP_S_DAYS = MIN_FLOPS / PFLOP_S_DAY, MAX_FLOPS / PFLOP_S_DAY


class ComputeInputError(ValueError):
    """A user-facing problem with an input (empty, not a number, zero, negative, absurdly large)."""


# --------------------------------------------------------------------------------------------
# Core formulas (public API)
# --------------------------------------------------------------------------------------------


def _positive(value: float, what: str) -> float:
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
    return (_positive(flops_per_param_token, "FLOPs per parameter per token")
            * _positive(n_params, "Parameter count") * _positive(n_tokens, "Token count"))


def inference_flops(n_params: float, n_tokens: float = 1) -> float:
    """Forward-pass compute ≈ 2·N FLOPs per generated token (Kaplan et al. 2020, §2.1), times n_tokens."""
    return INFERENCE_FLOPS_PER_PARAM_TOKEN * _positive(n_params, "Parameter count") * _positive(n_tokens, "Token count")


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
    c = _positive(compute_flops, "Compute budget")
    r = _positive(tokens_per_param, "Tokens per parameter")
    k = _positive(flops_per_param_token, "FLOPs per parameter per token")
    n_opt = math.sqrt(c / (k * r))
    return n_opt, r * n_opt


def chinchilla_tokens(n_params: float, tokens_per_param: float = 20) -> float:
    """Compute-optimal training tokens for a model size: D = r·N (Hoffmann et al. 2022, Table 3)."""
    return _positive(tokens_per_param, "Tokens per parameter") * _positive(n_params, "Parameter count")


def chinchilla_params(n_tokens: float, tokens_per_param: float = 20) -> float:
    """Largest compute-optimal model for a data limit: N = D / r (Hoffmann et al. 2022, Table 3)."""
    return _positive(n_tokens, "Token count") / _positive(tokens_per_param, "Tokens per parameter")


def training_days(flops: float, n_gpus: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Wall-clock days = C / (n_gpus × peak FLOP/s × MFU) / 86,400.

    MFU as defined in the PaLM paper (Chowdhery et al. 2022, Appendix B): achieved model FLOP/s over peak.
    """
    return training_seconds(flops, n_gpus, peak_flops_per_gpu, mfu) / SECONDS_PER_DAY


def training_seconds(flops: float, n_gpus: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Wall-clock seconds = C / (n_gpus × peak FLOP/s × MFU) (PaLM, Appendix B, MFU definition)."""
    return _positive(flops, "Compute") / (
        _positive(n_gpus, "Number of GPUs") * _positive(peak_flops_per_gpu, "Peak FLOP/s per GPU")
        * _mfu(mfu))


def gpu_hours(flops: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """GPU-hours = C / (peak FLOP/s × MFU) / 3,600 — independent of how many GPUs share the work."""
    return _positive(flops, "Compute") / (_positive(peak_flops_per_gpu, "Peak FLOP/s per GPU") * _mfu(mfu)) / SECONDS_PER_HOUR


def cluster_flops(n_gpus: float, days: float, peak_flops_per_gpu: float, mfu: float) -> float:
    """Compute a cluster delivers: n_gpus × days × 86,400 s × peak FLOP/s × MFU (PaLM, Appendix B)."""
    return (_positive(n_gpus, "Number of GPUs") * _positive(days, "Days") * SECONDS_PER_DAY
            * _positive(peak_flops_per_gpu, "Peak FLOP/s per GPU") * _mfu(mfu))


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
    return _positive(flops, "Compute") / (
        _positive(gpu_hours_total, "GPU-hours") * SECONDS_PER_HOUR * _positive(peak_flops_per_gpu, "Peak FLOP/s per GPU"))


def gpus_for_one_pflop_s(peak_flops_per_gpu: float, mfu: float = 1.0) -> float:
    """GPUs that together sustain 1 PF/s, i.e. GPU-days per petaFLOP/s-day: 1e15 / (peak × MFU).

    The course notes' rule "1 PF/s-day ≈ 8 V100 or 2 A100 for a day at full efficiency"; datasheet peaks
    (NVIDIA's V100 and A100 datasheets, docs/references/gpus.md) give 8 × 125 = 1000 TFLOP/s for V100 but 2 × 312 = 624 TFLOP/s for A100 (≈ 3.2 A100s).
    """
    return 1e15 / (_positive(peak_flops_per_gpu, "Peak FLOP/s per GPU") * _mfu(mfu))


def _mfu(mfu: float) -> float:
    v = _positive(mfu, "Model FLOPs utilisation (MFU)")
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
    n = _positive(n_params, "Parameter count")
    d = _positive(n_tokens, "Token count")
    return CHINCHILLA_E + CHINCHILLA_A / n ** CHINCHILLA_ALPHA + CHINCHILLA_B / d ** CHINCHILLA_BETA


def loss_optimal_allocation(compute_flops: float, flops_per_param_token: float = 6) -> tuple[float, float]:
    """(N, D) minimising the fitted L(N, D) under C = k·N·D.

    Source: Hoffmann et al. 2022, Eq. 4: N_opt = G·(C/k)^a, D_opt = G⁻¹·(C/k)^b with
    G = (αA / βB)^(1/(α+β)), a = β/(α+β), b = α/(α+β) (k = 6 in the paper). With the rounded constants
    a ≈ 0.45, so this optimum uses more tokens per parameter than the 20× rule at large budgets.
    """
    c = _positive(compute_flops, "Compute budget") / _positive(flops_per_param_token, "FLOPs per parameter per token")
    s = CHINCHILLA_ALPHA + CHINCHILLA_BETA
    g = (CHINCHILLA_ALPHA * CHINCHILLA_A / (CHINCHILLA_BETA * CHINCHILLA_B)) ** (1 / s)
    n_opt = g * c ** (CHINCHILLA_BETA / s)
    return n_opt, c / n_opt


def iso_flop_curve(compute_flops: float, n_params_grid, flops_per_param_token: float = 6) -> list[float]:
    """Fitted loss along one iso-FLOP line: for each N, D = C / (k·N) and L(N, D) (Hoffmann et al. 2022, Fig. 3)."""
    c = _positive(compute_flops, "Compute budget")
    k = _positive(flops_per_param_token, "FLOPs per parameter per token")
    return [chinchilla_loss(n, c / (k * n)) for n in n_params_grid]


def log_grid(low: float, high: float, points: int = 120) -> list[float]:
    """`points` values evenly spaced in log10 between low and high (inclusive)."""
    lo, hi = math.log10(_positive(low, "low")), math.log10(_positive(high, "high"))
    if points < 2:
        return [10 ** lo]
    return [10 ** (lo + (hi - lo) * i / (points - 1)) for i in range(points)]


# --------------------------------------------------------------------------------------------
# A plan: model size, tokens, compute, and what it takes on a cluster
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cluster:
    """GPUs used for the run and the assumptions that turn FLOPs into hours and dollars."""
    gpu_name: str
    peak_flops_per_gpu: float  # dense bf16 FLOP/s (datasheet)
    n_gpus: int
    mfu: float  # fraction, 0 < mfu ≤ 1
    price_per_gpu_hour: float  # dollars

    def __post_init__(self):
        _positive(self.peak_flops_per_gpu, "Peak FLOP/s per GPU")
        _positive(self.n_gpus, "Number of GPUs")
        _mfu(self.mfu)
        training_cost(0.0, self.price_per_gpu_hour)

    @property
    def sustained_flops(self) -> float:
        """FLOP/s the whole cluster delivers: n × peak × MFU."""
        return self.n_gpus * self.peak_flops_per_gpu * self.mfu


@dataclass(frozen=True)
class ComputePlan:
    """One training run in every unit the planner shows."""
    n_params: float
    n_tokens: float
    flops_per_param_token: float
    tokens_per_param_target: float
    flops: float
    pflop_s_days: float
    gpu_name: str
    n_gpus: int
    peak_flops_per_gpu: float
    mfu: float
    gpu_hours: float
    days: float
    price_per_gpu_hour: float
    cost_dollars: float
    inference_flops_per_token: float
    predicted_loss: float

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params

    def as_dict(self) -> dict:
        d = asdict(self)
        d["tokens_per_param"] = self.tokens_per_param
        return d

    def as_rows(self) -> list[dict]:
        """(quantity, value, unit) rows for a table or CSV download."""
        return [
            {"quantity": "Model parameters N", "value": self.n_params, "unit": "parameters"},
            {"quantity": "Training tokens D", "value": self.n_tokens, "unit": "tokens"},
            {"quantity": "Tokens per parameter D/N", "value": self.tokens_per_param, "unit": "tokens/parameter"},
            {"quantity": "FLOPs per parameter per token k", "value": self.flops_per_param_token, "unit": "FLOPs"},
            {"quantity": "Training compute C = k·N·D", "value": self.flops, "unit": "FLOPs"},
            {"quantity": "Training compute", "value": self.pflop_s_days, "unit": "PF/s-days"},
            {"quantity": "GPU type", "value": self.gpu_name, "unit": ""},
            {"quantity": "Peak dense bf16 per GPU", "value": self.peak_flops_per_gpu, "unit": "FLOP/s"},
            {"quantity": "Model FLOPs utilisation", "value": self.mfu, "unit": "fraction of peak"},
            {"quantity": "GPU-hours", "value": self.gpu_hours, "unit": "GPU-hours"},
            {"quantity": "Number of GPUs", "value": self.n_gpus, "unit": "GPUs"},
            {"quantity": "Wall-clock time", "value": self.days, "unit": "days"},
            {"quantity": "Price per GPU-hour", "value": self.price_per_gpu_hour, "unit": "$/GPU-hour"},
            {"quantity": "Cost", "value": self.cost_dollars, "unit": "$"},
            {"quantity": "Inference compute per generated token", "value": self.inference_flops_per_token, "unit": "FLOPs/token"},
            {"quantity": "Chinchilla-fit loss L(N, D)", "value": self.predicted_loss, "unit": "nats/token"},
        ]


def make_plan(n_params: float, n_tokens: float, cluster: Cluster, flops_per_param_token: float = 6,
              tokens_per_param_target: float = 20) -> ComputePlan:
    """All units for training N parameters on D tokens on `cluster` (formulas above)."""
    n = check_range(n_params, MIN_PARAMS, MAX_PARAMS, "Model size", "parameters")
    d = check_range(n_tokens, MIN_TOKENS, MAX_TOKENS, "Training data", "tokens")
    c = training_flops(n, d, flops_per_param_token)
    hours = gpu_hours(c, cluster.peak_flops_per_gpu, cluster.mfu)
    return ComputePlan(
        n_params=n, n_tokens=d, flops_per_param_token=float(flops_per_param_token),
        tokens_per_param_target=float(tokens_per_param_target), flops=c, pflop_s_days=pflop_s_days(c),
        gpu_name=cluster.gpu_name, n_gpus=int(cluster.n_gpus), peak_flops_per_gpu=cluster.peak_flops_per_gpu,
        mfu=cluster.mfu, gpu_hours=hours, days=hours / cluster.n_gpus / 24,
        price_per_gpu_hour=cluster.price_per_gpu_hour, cost_dollars=training_cost(hours, cluster.price_per_gpu_hour),
        inference_flops_per_token=inference_flops(n), predicted_loss=chinchilla_loss(n, d),
    )


def plan_from_budget(compute_flops: float, cluster: Cluster, flops_per_param_token: float = 6,
                     tokens_per_param: float = 20) -> ComputePlan:
    """Compute budget → compute-optimal N and D (Chinchilla, N_opt = sqrt(C/(k·r))) and its time and cost."""
    c = check_range(compute_flops, MIN_FLOPS, MAX_FLOPS, "Compute budget", "FLOPs")
    n, d = chinchilla_optimal(c, tokens_per_param, flops_per_param_token)
    return make_plan(n, d, cluster, flops_per_param_token, tokens_per_param)


def plan_from_params(n_params: float, cluster: Cluster, flops_per_param_token: float = 6,
                     tokens_per_param: float = 20) -> ComputePlan:
    """Model size → compute-optimal tokens D = r·N and the compute that takes."""
    n = check_range(n_params, MIN_PARAMS, MAX_PARAMS, "Model size", "parameters")
    return make_plan(n, chinchilla_tokens(n, tokens_per_param), cluster, flops_per_param_token, tokens_per_param)


def plan_from_data_limit(n_tokens: float, cluster: Cluster, flops_per_param_token: float = 6,
                         tokens_per_param: float = 20) -> ComputePlan:
    """Data limit → the largest compute-optimal model N = D / r, trained on all of D."""
    d = check_range(n_tokens, MIN_TOKENS, MAX_TOKENS, "Data limit", "tokens")
    return make_plan(chinchilla_params(d, tokens_per_param), d, cluster, flops_per_param_token, tokens_per_param)


def run_on_cluster(flops: float, cluster: Cluster) -> dict:
    """GPU-hours, wall-clock days and dollars for `flops` on `cluster` (formulas of `gpu_hours`, `training_days`)."""
    hours = gpu_hours(flops, cluster.peak_flops_per_gpu, cluster.mfu)
    return {"gpu_hours": hours, "days": hours / cluster.n_gpus / 24,
            "cost_dollars": training_cost(hours, cluster.price_per_gpu_hour)}


DATA_LIMIT_MODEL_MULTIPLIERS = (0.5, 1.0, 1.5, 2.0, 3.0, 5.0)


def data_limited_alternatives(n_tokens: float, cluster: Cluster, flops_per_param_token: float = 6,
                              tokens_per_param: float = 20,
                              multipliers=DATA_LIMIT_MODEL_MULTIPLIERS) -> list[dict]:
    """Models of m × the compute-optimal size, all trained on the same D tokens.

    Compares compute, cost and the Chinchilla-fit loss (Hoffmann et al. 2022, Eq. 2): past N = D/r a bigger
    model costs proportionally more compute for a small loss gain — the "waste" of ignoring the data limit.
    The extra compute is measured against the compute-optimal model (m = 1).
    """
    base = plan_from_data_limit(n_tokens, cluster, flops_per_param_token, tokens_per_param)
    rows = []
    for m in multipliers:
        p = make_plan(base.n_params * m, base.n_tokens, cluster, flops_per_param_token, tokens_per_param)
        rows.append({
            "size vs compute-optimal": m,
            "parameters": p.n_params,
            "tokens": p.n_tokens,
            "tokens per parameter": p.tokens_per_param,
            "compute (FLOPs)": p.flops,
            "compute (PF/s-days)": p.pflop_s_days,
            "extra compute vs optimal (FLOPs)": p.flops - base.flops,
            "GPU-hours": p.gpu_hours,
            "days": p.days,
            "cost ($)": p.cost_dollars,
            "fitted loss (nats/token)": p.predicted_loss,
            "loss change vs optimal (nats/token)": p.predicted_loss - base.predicted_loss,
        })
    return rows


# --------------------------------------------------------------------------------------------
# User-facing input: "70B", "1.4T", "5.76e23", "3,640" → numbers, with clear messages
# --------------------------------------------------------------------------------------------

_SUFFIXES = {"": 1.0, "K": 1e3, "M": 1e6, "B": 1e9, "G": 1e9, "T": 1e12}
_NUMBER_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)([KkMmBbGgTt]?)$")


def parse_quantity(text, what: str = "Value") -> float:
    """Parse a count typed by a person: '70B', '1.4T', '700b', '5.76e23', '175,000,000,000', '3 640'.

    Suffixes: K = 1e3, M = 1e6, B/G = 1e9, T = 1e12. Raises ComputeInputError with a message for the page.
    """
    if text is None or not str(text).strip():
        raise ComputeInputError(f"{what} is empty: enter a number such as 70B, 1.4T or 5.76e23.")
    cleaned = re.sub(r"[\s,_']", "", str(text))
    match = _NUMBER_RE.match(cleaned)
    if not match:
        raise ComputeInputError(
            f"{what}: {str(text)!r} is not a number. Use digits with an optional K/M/B/T suffix "
            "(70B, 1.4T) or scientific notation (5.76e23).")
    try:
        value = float(match.group(1)) * _SUFFIXES[match.group(2).upper()]
    except OverflowError:  # pragma: no cover - float() returns inf rather than raising
        value = math.inf
    if not math.isfinite(value):
        raise ComputeInputError(f"{what}: {str(text)!r} is too large to be a real number of anything.")
    return value


def check_range(value: float, low: float, high: float, what: str, unit: str) -> float:
    """value if low ≤ value ≤ high, else ComputeInputError naming the limits and the unit."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ComputeInputError(f"{what} must be a number of {unit}.") from None
    if not math.isfinite(v):
        raise ComputeInputError(f"{what} must be a finite number of {unit}.")
    if v <= 0:
        raise ComputeInputError(f"{what} must be positive, got {format_number(v)} {unit}.")
    if v < low or v > high:
        raise ComputeInputError(
            f"{what} of {format_number(v)} {unit} is outside the plausible range "
            f"{format_number(low)} – {format_number(high)} {unit}.")
    return v


def parse_in_range(text, low: float, high: float, what: str, unit: str) -> float:
    """parse_quantity then check_range: one call for a text field."""
    return check_range(parse_quantity(text, what), low, high, what, unit)


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------


def format_number(value: float, digits: int = 3) -> str:
    """Readable number: thousands separators up to 1e9, scientific beyond, small numbers with `digits` figures."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if abs(v) >= 1e9 or abs(v) < 1e-3:
        return f"{v:.{digits}g}".replace("e+", "e")
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def format_input_count(value: float) -> str:
    """A count as a person would type it back into a field: 7e10 → '70B', 123456789 → '123456789'."""
    v = float(value)
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(v) >= scale:
            short = f"{v / scale:.6g}"
            if "e" not in short and math.isclose(float(short) * scale, v, rel_tol=1e-12):
                return short + suffix
    if v == int(v):
        return str(int(v))
    return f"{v:.6g}"


def format_dollars(value: float) -> str:
    """$ amounts: '$812', '$147,456', '$2.04M', '$1.3B' (2-3 significant figures past a million)."""
    v = float(value)
    if not math.isfinite(v):
        return f"${v}"
    if abs(v) >= 1e12:
        return f"${v:.3g}".replace("e+", "e")
    if abs(v) >= 1e9:
        return f"${v / 1e9:.3g}B"
    if abs(v) >= 1e6:
        return f"${v / 1e6:.3g}M"
    if abs(v) >= 100:
        return f"${v:,.0f}"
    return f"${v:.2f}"


def format_duration_days(days: float) -> str:
    """Wall-clock time in the unit a person would say: '5.2 hours', '30.0 days', '2.3 years'."""
    d = float(days)
    if not math.isfinite(d):
        return str(d)
    if d < 1:
        hours = d * 24
        return f"{hours:.1f} hours" if hours >= 1 else f"{hours * 60:.1f} minutes"
    if d < 365:
        return f"{d:,.1f} days"
    return f"{d / 365.25:,.1f} years"
