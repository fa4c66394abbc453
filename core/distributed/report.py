"""A distributed step's results as tables: per rank, measured beside predicted (peak bytes and bytes sent per step),
with the errors; CSV and JSON for download."""
from __future__ import annotations

import io
import json

import pandas as pd

from core.common.units import error_pct
from core.distributed.launcher import DistributedRun
from core.distributed.predict import predict_rank_peak
from core.distributed.parallel import LAYOUT_LABELS, LAYOUTS, is_layout
from core.distributed.parallel_predict import predict_layout_bytes
from core.distributed.strategies import STRATEGIES, STRATEGY_LABELS, communication_volume_bytes

LABELS = {**STRATEGY_LABELS, **LAYOUT_LABELS}
NAMES = {**STRATEGIES, **LAYOUTS}


def communicated_bytes(rank: dict) -> float:
    """Bytes one rank moved in the last step: data parallel in the ZeRO paper's accounting (an all-reduce counts
    twice); tensor parallel the ring all-reduce's 2(t−1)/t of each payload it sends; pipeline parallel the
    activations and gradients it sends and receives across its stage boundaries."""
    return float(sum(c["bytes"] * c["volume_factor"] for c in rank["collectives"]))


def predicted_volume_bytes(architecture, strategy: str, world_size: int, seq_len: int, batch_size: int,
                           microbatches: int, prediction: dict) -> float:
    """Bytes the busiest rank communicates per step by the formulas (ZeRO §7 volumes for data parallelism, the
    planner's TP/PP formulas for a layout); ``prediction``: predict_rank_peak's result for the same step."""
    if not is_layout(strategy):
        return communication_volume_bytes(strategy, prediction["param_bytes"])
    return max(predict_layout_bytes(architecture, strategy, world_size, seq_len, batch_size, microbatches,
                                    r)["total_bytes"] for r in range(int(world_size)))


def _shown(pct: float) -> float:
    """An error as the table shows it (0.1 %), without a minus sign on a zero: −0.04 % reads "+0.0 %", not "-0.0 %"."""
    return round(pct, 1) + 0.0


def rank_rows(run: DistributedRun) -> list[dict]:
    """One row per rank: measured and predicted peak (MB), error, the ZeRO paper's formula, bytes sent per step."""
    spec = run.spec
    rows = []
    for rank in run.ranks:
        prediction = predict_rank_peak(spec.architecture, spec.strategy, run.world_size, spec.seq_len,
                                       spec.batch_size, rank=rank["rank"], microbatches=spec.microbatches)
        if is_layout(spec.strategy):  # Megatron's TP all-reduces and the pipeline's point-to-point (planner)
            volume = predict_layout_bytes(spec.architecture, spec.strategy, run.world_size, spec.seq_len,
                                          spec.batch_size, spec.microbatches, rank["rank"])["total_bytes"]
        else:
            volume = communication_volume_bytes(spec.strategy, prediction["param_bytes"])
        measured = float(rank["peak_bytes"])
        sent = communicated_bytes(rank)
        parts = rank["parts_bytes"]
        rows.append({
            "rank": rank["rank"], "strategy": LABELS[spec.strategy], "world size": run.world_size,
            "measured peak (MB)": measured / 1e6, "predicted peak (MB)": prediction["predicted_peak_bytes"] / 1e6,
            "error (%)": _shown(error_pct(prediction["predicted_peak_bytes"], measured)),
            "ZeRO paper formula (MB)": prediction["zero_paper_bytes"] / 1e6,
            "parameters held (MB)": parts.get("parameters", 0) / 1e6,
            "optimizer state held (MB)": parts.get("optimizer", 0) / 1e6,
            "sent per step (MB)": sent / 1e6, "ZeRO volume (MB)": volume / 1e6,
            "volume error (%)": _shown(error_pct(volume, sent)),
            "peak at": rank.get("peak_at", ""),
        })
    return rows


def predicted_components(run: DistributedRun) -> dict[str, float]:
    spec = run.spec
    return predict_rank_peak(spec.architecture, spec.strategy, run.world_size, spec.seq_len,
                             spec.batch_size, microbatches=spec.microbatches)["components"]


def runs_table(runs: list[DistributedRun]) -> pd.DataFrame:
    rows = [row for run in runs for row in rank_rows(run)]
    return pd.DataFrame(rows)


def runs_csv(runs: list[DistributedRun]) -> str:
    buffer = io.StringIO()
    runs_table(runs).to_csv(buffer, index=False)
    return buffer.getvalue()


def runs_json(runs: list[DistributedRun]) -> str:
    return json.dumps([{**run.to_dict(), "rows": rank_rows(run), "strategy_name": NAMES[run.spec.strategy]}
                       for run in runs], indent=2, default=str)
