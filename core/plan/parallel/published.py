"""Published 3-D-parallel training runs (docs/references/parallel-runs.md) and the planner's prediction for each.

Narayanan et al. 2021, "Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM" (SC '21,
arXiv:2104.04473), Table 1: ten GPT models (vocabulary 51,200, sequence 2,048, §5.1) on 80 GB A100s, with the
tensor- and pipeline-parallel sizes, GPUs, global batch, achieved teraFLOP/s per GPU and % of the 312 TFLOP/s peak.
Those runs use activation recomputation (§5.1: eq. (3) counts it) and no ZeRO; the micro-batch size is not in the
table: the planner uses 1 (an assumption, stated in each row).

Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (arXiv:2205.05198),
Table 3 (configurations: 80 GB A100s, sequence 2,048, micro-batch 4 / 1 / 1 / 1, the interleaved schedule with 3
virtual stages for 175B and 530B, sequence parallelism + selective recomputation) and Table 5 /
the Megatron-LM README (model and hardware FLOPs utilisation: 22B 41.5 / 43.7 %, 175B 51.4 / 52.8 %, 530B 56.0 /
57.0 %, 1T 56.3 / 57.0 %).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from core.common.units import error_pct
from core.plan.hardware import get_gpu
from core.plan.parallel.layout import Layout, default_cluster, gpt_shape
from core.plan.parallel.memory import peak_stage_memory
from core.plan.parallel.step_time import step_time

NARAYANAN_2021 = ("Narayanan et al. 2021, Efficient Large-Scale Language Model Training on GPU Clusters Using "
                  "Megatron-LM, Table 1 (arXiv:2104.04473)")
KORTHIKANTI_2022 = ("Korthikanti et al. 2022, Reducing Activation Recomputation in Large Transformer Models, "
                    "Tables 3 and 5 (arXiv:2205.05198)")


@dataclass(frozen=True)
class PublishedRun:
    name: str
    params_b: float  # as published, billions
    heads: int
    hidden: int
    layers: int
    tp: int
    pp: int
    gpus: int
    global_batch: int
    source: str
    published_tflops_per_gpu: float | None = None
    published_peak_pct: float | None = None
    published_mfu_pct: float | None = None
    published_hfu_pct: float | None = None
    micro_batch: int = 1  # not published in Narayanan et al. Table 1: assumed
    virtual_stages: int = 1
    sequence_parallel: bool = False
    recompute: str = "full"
    seq_len: int = 2048
    gpu: str = "A100 80GB SXM"

    @property
    def dp(self) -> int:
        return self.gpus // (self.tp * self.pp)

    def layout(self) -> Layout:
        return Layout(tp=self.tp, pp=self.pp, dp=self.dp, micro_batch=self.micro_batch, virtual_stages=self.virtual_stages,
                      sequence_parallel=self.sequence_parallel, recompute=self.recompute)

    def to_dict(self) -> dict:
        return {**asdict(self), "dp": self.dp}


def _table1(name, params_b, heads, hidden, layers, tp, pp, gpus, batch, tflops, pct) -> PublishedRun:
    return PublishedRun(name, params_b, heads, hidden, layers, tp, pp, gpus, batch, NARAYANAN_2021,
                        published_tflops_per_gpu=tflops, published_peak_pct=pct)


NARAYANAN_TABLE1: tuple[PublishedRun, ...] = (
    _table1("GPT 1.7B", 1.7, 24, 2304, 24, 1, 1, 32, 512, 137, 44),
    _table1("GPT 3.6B", 3.6, 32, 3072, 30, 2, 1, 64, 512, 138, 44),
    _table1("GPT 7.5B", 7.5, 32, 4096, 36, 4, 1, 128, 512, 142, 46),
    _table1("GPT 18.4B", 18.4, 48, 6144, 40, 8, 1, 256, 1024, 135, 43),
    _table1("GPT 39.1B", 39.1, 64, 8192, 48, 8, 2, 512, 1536, 138, 44),
    _table1("GPT 76.1B", 76.1, 80, 10240, 60, 8, 4, 1024, 1792, 140, 45),
    _table1("GPT 145.6B", 145.6, 96, 12288, 80, 8, 8, 1536, 2304, 148, 47),
    _table1("GPT 310.1B", 310.1, 128, 16384, 96, 8, 16, 1920, 2160, 155, 50),
    _table1("GPT 529.6B", 529.6, 128, 20480, 105, 8, 35, 2520, 2520, 163, 52),
    _table1("GPT 1008B", 1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 163, 52),
)


def _korthikanti(name, params_b, heads, hidden, layers, tp, pp, gpus, batch, micro, v, mfu, hfu) -> PublishedRun:
    return PublishedRun(name, params_b, heads, hidden, layers, tp, pp, gpus, batch, KORTHIKANTI_2022,
                        published_mfu_pct=mfu, published_hfu_pct=hfu, micro_batch=micro, virtual_stages=v,
                        sequence_parallel=True, recompute="selective")


KORTHIKANTI_TABLE: tuple[PublishedRun, ...] = (
    _korthikanti("GPT 22B (SP + selective)", 22, 64, 6144, 48, 8, 1, 8, 4, 4, 1, 41.5, 43.7),
    _korthikanti("GPT 175B (SP + selective)", 175, 96, 12288, 96, 8, 8, 64, 64, 1, 3, 51.4, 52.8),
    _korthikanti("GPT 530B (SP + selective)", 530, 128, 20480, 105, 8, 35, 280, 280, 1, 3, 56.0, 57.0),
    _korthikanti("GPT 1T (SP + selective)", 1000, 160, 25600, 128, 8, 64, 512, 512, 1, 1, 56.3, 57.0),
)

PUBLISHED_RUNS: tuple[PublishedRun, ...] = NARAYANAN_TABLE1 + KORTHIKANTI_TABLE


def predict_published(run: PublishedRun, **step_kwargs) -> dict:
    """The run as published beside the planner's prediction for its layout: feasibility, per-GPU peak bytes,
    teraFLOP/s per GPU, MFU / HFU and the errors against the published figures."""
    model = gpt_shape(run.name, run.layers, run.hidden, run.heads, seq_len=run.seq_len)
    layout = run.layout()
    gpu = get_gpu(run.gpu)
    cluster = default_cluster(run.gpu, run.gpus)
    m = layout.num_microbatches(run.global_batch)
    memory = peak_stage_memory(model, layout, run.seq_len, m)
    step = step_time(model, layout, cluster, gpu, run.global_batch, run.seq_len, **step_kwargs)
    row = {**run.to_dict(), "predicted_params_b": model.params / 1e9,
           "feasible": memory.total_bytes <= gpu.memory_bytes, "per_gpu_peak_bytes": memory.total_bytes,
           "predicted_tflops_per_gpu": step.tflops_per_gpu, "predicted_mfu_pct": 100 * step.mfu,
           "predicted_hfu_pct": 100 * step.hfu, "step_time_s": step.total_s, "tflops_error_pct": None,
           "mfu_error_pct": None}
    if run.published_tflops_per_gpu:
        row["tflops_error_pct"] = error_pct(step.tflops_per_gpu, run.published_tflops_per_gpu)
    if run.published_mfu_pct:
        row["mfu_error_pct"] = error_pct(100 * step.mfu, run.published_mfu_pct)
    return row


def published_comparison(runs: tuple[PublishedRun, ...] = PUBLISHED_RUNS, **step_kwargs) -> list[dict]:
    """``predict_published`` for every bundled run."""
    return [predict_published(r, **step_kwargs) for r in runs]


def markdown_table(rows: list[dict]) -> str:
    """The published runs beside the planner (README and docs/references/parallel-runs.md)."""
    lines = ["| run | TP | PP | v | DP | GPUs | batch | mb | recompute | published TFLOP/s/GPU | planner | error | "
             "published MFU | planner MFU | per-GPU peak (GB) |", "|---|" + "---:|" * 14]
    for r in rows:
        def pct(value):
            return "–" if value is None else f"{value:+.1f} %"
        lines.append(
            f"| {r['name']} | {r['tp']} | {r['pp']} | {r['virtual_stages']} | {r['dp']} | {r['gpus']:,} | "
            f"{r['global_batch']:,} | {r['micro_batch']} | {r['recompute']}{' + SP' if r['sequence_parallel'] else ''}"
            f" | {r['published_tflops_per_gpu'] or '–'} | {r['predicted_tflops_per_gpu']:.1f} | "
            f"{pct(r['tflops_error_pct'])} | {r['published_mfu_pct'] or '–'}{' %' if r['published_mfu_pct'] else ''}"
            f" | {r['predicted_mfu_pct']:.1f} % | {r['per_gpu_peak_bytes'] / 1e9:.1f} |")
    return "\n".join(lines)
