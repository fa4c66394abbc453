"""Published training runs (each with its paper: docs/references/training-runs.md) as data, and the planner's view of them.

Each run carries the paper's parameter and token counts, the hardware, and — where the paper publishes
them — GPU-hours, cluster size and its own FLOP count. `run_summary` adds what the planner computes:
6·N·D compute, PF/s-days, tokens per parameter and the MFU implied by the published GPU-hours.

Pure Python: no Streamlit here.
"""
from __future__ import annotations

from dataclasses import dataclass

from core.plan import compute
from core.plan.hardware import get_gpu


@dataclass(frozen=True)
class TrainingRun:
    name: str
    n_params: float
    n_tokens: float
    hardware: str  # as published
    source: str
    gpu: str | None = None  # catalog name in core.plan.hardware, where GPU-hours are published
    gpu_hours: float | None = None
    n_gpus: int | None = None
    published_flops: float | None = None  # the paper's own FLOP count, where it gives one
    note: str = ""

    @property
    def tokens_per_param(self) -> float:
        return self.n_tokens / self.n_params


def _a100_80gb_run(name: str, n_params: float, n_tokens: float, source: str, gpu_hours: float, **extra) -> TrainingRun:
    """A run on A100-80GB whose paper publishes GPU-hours (the LLaMA / Llama 2 / OPT rows)."""
    return TrainingRun(name, n_params, n_tokens, "A100-80GB", source, gpu="A100 80GB SXM", gpu_hours=gpu_hours, **extra)


REFERENCE_RUNS: tuple[TrainingRun, ...] = (
    TrainingRun("GPT-3", 175e9, 300e9, "V100 cluster", "Brown et al. 2020, Table D.1",
                published_flops=3.14e23, note="Paper: 3.64e3 PF/s-days; course notes: 'close to 3,700'."),
    TrainingRun("Gopher", 280e9, 300e9, "TPUv3", "Rae et al. 2021; Hoffmann et al. 2022, Tables 1 and 3",
                published_flops=5.76e23, note="Chinchilla was trained with Gopher's budget."),
    TrainingRun("Jurassic-1", 178e9, 300e9, "–", "Hoffmann et al. 2022, Table 1"),
    TrainingRun("MT-NLG", 530e9, 270e9, "A100", "Hoffmann et al. 2022, Table 1"),
    TrainingRun("LaMDA", 137e9, 168e9, "–", "Hoffmann et al. 2022, Table 1"),
    TrainingRun("Chinchilla", 70e9, 1.4e12, "TPUv3/v4", "Hoffmann et al. 2022",
                published_flops=5.76e23, note="Same compute as Gopher."),
    _a100_80gb_run("LLaMA-7B", 6.7e9, 1.0e12, "Touvron et al. 2023, Table 15", 82_432),
    _a100_80gb_run("LLaMA-13B", 13.0e9, 1.0e12, "Touvron et al. 2023, Table 15", 135_168),
    _a100_80gb_run("LLaMA-33B", 32.5e9, 1.4e12, "Touvron et al. 2023, Table 15", 530_432),
    _a100_80gb_run("LLaMA-65B", 65.2e9, 1.4e12, "Touvron et al. 2023, Table 15 and §2.4", 1_022_362, n_gpus=2048,
                   note="380 tokens/s/GPU on 2048 GPUs, ~21 days."),
    _a100_80gb_run("Llama 2 7B", 7e9, 2.0e12, "Touvron et al. 2023b, Table 2", 184_320),
    _a100_80gb_run("Llama 2 13B", 13e9, 2.0e12, "Touvron et al. 2023b, Table 2", 368_640),
    _a100_80gb_run("Llama 2 70B", 70e9, 2.0e12, "Touvron et al. 2023b, Table 2", 1_720_320),
    TrainingRun("BloombergGPT", 50.6e9, 569e9, "512 × A100-40GB", "Wu et al. 2023",
                gpu="A100 40GB SXM", gpu_hours=651_000, n_gpus=512, published_flops=2.36e23,
                note="708B-token dataset; ~53 days; 102 TFLOP/s per GPU average (activation checkpointing, "
                     "so the published count ≈ 8·N·D)."),
    TrainingRun("BLOOM", 176e9, 366e9, "384 × A100-80GB", "BigScience 2022",
                gpu="A100 80GB SXM", gpu_hours=1_082_990, n_gpus=384,
                note="~3.5 months; ~156 TFLOP/s per GPU reported."),
    _a100_80gb_run("OPT-175B", 175e9, 180e9, "Touvron et al. 2023, Table 15", 809_472),
)

RUNS_BY_NAME: dict[str, TrainingRun] = {r.name: r for r in REFERENCE_RUNS}


def get_run(name: str) -> TrainingRun:
    """Reference run by name; KeyError lists the known names."""
    try:
        return RUNS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"Unknown training run {name!r}. Known: {', '.join(RUNS_BY_NAME)}") from None


def run_summary(run: TrainingRun, flops_per_param_token: float = 6, tokens_per_param: float = 20) -> dict:
    """The planner's numbers for one published run.

    - compute k·N·D (Kaplan et al. 2020) in FLOPs and PF/s-days (GPT-3 paper, Appendix D);
    - tokens per parameter, against the Chinchilla ratio (Hoffmann et al. 2022);
    - implied MFU = C / (GPU-hours × 3,600 × peak) (PaLM, Appendix B) where GPU-hours are published, both
      from k·N·D and, where the paper gives one, from its own FLOP count.
    """
    flops = compute.training_flops(run.n_params, run.n_tokens, flops_per_param_token)
    row = {
        "run": run.name,
        "parameters": run.n_params,
        "tokens": run.n_tokens,
        "tokens per parameter": run.tokens_per_param,
        "vs compute-optimal ratio": run.tokens_per_param / tokens_per_param,
        "compute k·N·D (FLOPs)": flops,
        "compute (PF/s-days)": compute.pflop_s_days(flops),
        "published compute (FLOPs)": run.published_flops,
        "hardware": run.hardware,
        "published GPU-hours": run.gpu_hours,
        "implied MFU (k·N·D)": None,
        "implied utilisation (published FLOPs)": None,
        "days on published cluster": None,
        "source": run.source,
        "note": run.note,
    }
    if run.gpu_hours and run.gpu:
        peak = get_gpu(run.gpu).peak_flops
        row["implied MFU (k·N·D)"] = compute.implied_mfu(flops, run.gpu_hours, peak)
        if run.published_flops:
            row["implied utilisation (published FLOPs)"] = compute.implied_mfu(run.published_flops, run.gpu_hours, peak)
        if run.n_gpus:
            row["days on published cluster"] = run.gpu_hours / run.n_gpus / 24
    return row


def reference_table(flops_per_param_token: float = 6, tokens_per_param: float = 20,
                    runs: tuple[TrainingRun, ...] = REFERENCE_RUNS) -> list[dict]:
    """`run_summary` for every reference run, in the order of the reference file."""
    return [run_summary(r, flops_per_param_token, tokens_per_param) for r in runs]
