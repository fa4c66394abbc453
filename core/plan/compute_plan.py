"""A training run planned in every unit: a cluster (GPUs, MFU, price), a model size and token count turned into
FLOPs, PF/s-days, GPU-hours, days, dollars and the Chinchilla-fit loss, from a budget, a model size or a data limit,
and the models a data limit leaves to choose from. The formulas (and their sources) are ``core.plan.compute``."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from core.plan.compute import (check_mfu, chinchilla_loss, chinchilla_optimal, chinchilla_params, chinchilla_tokens,
                               gpu_hours, inference_flops, pflop_s_days, positive_input, training_cost, training_flops)
from core.plan.compute_text import (MAX_FLOPS, MAX_PARAMS, MAX_TOKENS, MIN_FLOPS, MIN_PARAMS, MIN_TOKENS,
                                    check_range)



@dataclass(frozen=True)
class Cluster:
    """GPUs used for the run and the assumptions that turn FLOPs into hours and dollars."""
    gpu_name: str
    peak_flops_per_gpu: float  # dense bf16 FLOP/s (datasheet)
    n_gpus: int
    mfu: float  # fraction, 0 < mfu ≤ 1
    price_per_gpu_hour: float  # dollars

    def __post_init__(self):
        positive_input(self.peak_flops_per_gpu, "Peak FLOP/s per GPU")
        positive_input(self.n_gpus, "Number of GPUs")
        check_mfu(self.mfu)
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
