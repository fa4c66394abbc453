"""Tensor, pipeline and tensor × pipeline parallelism on real torch.distributed (gloo rank processes on this CPU):
each layout trains to the losses of one process on the same batch, each rank's measured peak is within 10 % of
the prediction for its layout, the bytes it passes to collectives and point-to-point transfers per step are within
5 % of the planner's formulas (core.plan.parallel.communication), and no rank outlives a run or a Stop."""
from __future__ import annotations

import threading

import pytest

from core.distributed import report
from core.distributed.launcher import DistributedRunError, StepSpec, run_distributed_step, torchrun_command
from core.distributed.parallel import LayoutError, check_layout
from core.distributed.parallel_predict import predict_layout_bytes, predict_layout_rank_peak, rank_parameters
from core.distributed.presets import PRESETS
from core.plan import architectures
from core.plan.parallel.communication import pp_p2p_bytes_per_step, tp_allreduce_payload_bytes_per_step
from tests.distributed.test_distributed import _workers

TINY_LLAMA = PRESETS["tiny-llama"]["architecture"]  # 4 layers × 256, 4 heads, untied: 4.2 M parameters
H, LAYERS, SEQ, MICRO = 256, 4, 32, 1
LAYOUTS = {"tp": (2, 1), "pp_gpipe": (2, 2), "pp_1f1b": (2, 2), "tp_pp": (4, 2)}  # strategy: (ranks, micro-batches)


def _volume(rank: dict) -> float:
    return sum(c["bytes"] * c["volume_factor"] for c in rank["collectives"])


def _payload(rank: dict, kind: str) -> float:
    return sum(c["bytes"] for c in rank["collectives"] if c["kind"] == kind)


@pytest.fixture(scope="module")
def runs():
    out = {s: run_distributed_step(StepSpec(TINY_LLAMA, s, seq_len=SEQ, batch_size=MICRO, microbatches=m), world)
           for s, (world, m) in LAYOUTS.items()}
    assert not _workers()
    return out


@pytest.fixture(scope="module")
def single():
    """One process, the whole batch (1 sequence for TP, 2 for the pipelines' 2 micro-batches), same seed and data."""
    return {b: run_distributed_step(StepSpec(TINY_LLAMA, "ddp", seq_len=SEQ, batch_size=b), 1).ranks[0]["losses"]
            for b in (1, 2)}


@pytest.mark.parametrize("strategy", list(LAYOUTS))
def test_each_layout_trains_to_the_single_process_losses(runs, single, strategy):
    reference = single[1 if strategy == "tp" else 2]
    assert len(reference) == 4 and reference[0] != reference[-1]
    for rank in runs[strategy].ranks:
        assert rank["losses"] == pytest.approx(reference, abs=1e-4), (strategy, rank["rank"])


@pytest.mark.parametrize("strategy", list(LAYOUTS))
def test_each_rank_peaks_as_predicted(runs, strategy):
    run = runs[strategy]
    for rank in run.ranks:
        predicted = predict_layout_rank_peak(TINY_LLAMA, strategy, run.world_size, SEQ, MICRO,
                                             run.spec.microbatches, rank=rank["rank"])
        error = (predicted["predicted_peak_bytes"] - rank["peak_bytes"]) / rank["peak_bytes"]
        assert abs(error) < 0.10, (strategy, rank["rank"], rank["peak_bytes"], predicted)


@pytest.mark.parametrize("strategy", list(LAYOUTS))
def test_bytes_per_step_match_the_planner_formulas(runs, strategy):
    run = runs[strategy]
    tp, pp = check_layout(TINY_LLAMA, strategy, run.world_size, run.spec.microbatches)
    m = run.spec.microbatches if pp > 1 else 1
    for rank in run.ranks:
        formula = predict_layout_bytes(TINY_LLAMA, strategy, run.world_size, SEQ, MICRO, run.spec.microbatches,
                                       rank["rank"])
        assert _volume(rank) == pytest.approx(formula["total_bytes"], rel=0.05)
        # and the payloads themselves: Megatron's 4 all-reduces of b·s·h per layer per micro-batch, and one
        # boundary's activations forward plus gradients back
        tp_payload = tp_allreduce_payload_bytes_per_step(H, SEQ, MICRO, LAYERS // pp, tp, m, 4)
        assert _payload(rank, "all_reduce") == pytest.approx(tp_payload, rel=0.05)
        p2p = pp_p2p_bytes_per_step(H, SEQ, MICRO, m, 4) if pp > 1 else 0.0
        assert _payload(rank, "send") + _payload(rank, "recv") == pytest.approx(p2p, rel=0.05)


@pytest.mark.parametrize("strategy, world", [("tp", 2), ("pp_gpipe", 2), ("pp_1f1b", 2), ("tp_pp", 4)])
def test_activation_bound_steps_peak_as_predicted(strategy, world):
    """256 tokens × 4 micro-batches: the peak is in backward (GPipe: every micro-batch's activations; 1F1B: at most
    PP − stage of them, with every gradient already there), not at the optimizer step."""
    run = run_distributed_step(StepSpec(TINY_LLAMA, strategy, seq_len=256, microbatches=4), world)
    for rank in run.ranks:
        predicted = predict_layout_rank_peak(TINY_LLAMA, strategy, world, 256, 1, 4, rank=rank["rank"])
        assert "backward" in predicted["phase"]
        error = (predicted["predicted_peak_bytes"] - rank["peak_bytes"]) / rank["peak_bytes"]
        assert abs(error) < 0.10, (strategy, rank["rank"], rank["peak_bytes"], predicted)
        formula = predict_layout_bytes(TINY_LLAMA, strategy, world, 256, 1, 4, rank["rank"])["total_bytes"]
        assert _volume(rank) == pytest.approx(formula, rel=0.05)
    assert not _workers()


def test_tensor_parallel_splits_the_layers_and_pipeline_stages_hold_their_layers(runs):
    n = architectures.param_count(TINY_LLAMA)
    embed = 2048 * 256
    tp_rank = runs["tp"].ranks[0]["parts_bytes"]
    # embeddings, head and norms whole; every layer's projections halved
    assert tp_rank["parameters"] == 4 * rank_parameters(TINY_LLAMA, 2, 1, 0)["params"]
    assert tp_rank["parameters"] == pytest.approx(4 * (2 * embed + (n - 2 * embed) / 2), rel=0.001)
    stages = [r["parts_bytes"]["parameters"] for r in runs["pp_1f1b"].ranks]
    assert sum(stages) == 4 * n and stages[0] == pytest.approx(stages[1], rel=0.01)
    assert {r["stage"] for r in runs["tp_pp"].ranks} == {0, 1}
    assert max(r["peak_bytes"] for r in runs["tp_pp"].ranks) < min(r["peak_bytes"] for r in runs["tp"].ranks)


def test_the_report_rows_and_the_torchrun_command(runs):
    rows = report.rank_rows(runs["tp_pp"])
    assert [r["rank"] for r in rows] == [0, 1, 2, 3] and {r["strategy"] for r in rows} == {"TP × PP"}
    assert all(abs(r["error (%)"]) < 10 and abs(r["volume error (%)"]) < 5 for r in rows)
    assert '"strategy": "tp_pp"' in report.runs_json([runs["tp_pp"]])
    command = torchrun_command(runs["tp_pp"].spec, 8, nnodes=2)
    assert command.startswith("torchrun --nnodes 2 --rdzv-backend c10d") and "--nproc-per-node 8" in command


def test_stop_ends_every_rank_of_a_pipeline():
    stop = threading.Event()
    started = threading.Event()

    def progress(rank, step, steps):
        started.set()
        stop.set()

    with pytest.raises(DistributedRunError, match="Stopped"):
        run_distributed_step(StepSpec(TINY_LLAMA, "pp_1f1b", seq_len=SEQ, steps=50, microbatches=2), 2, stop=stop,
                             on_progress=progress)
    assert started.is_set()
    assert not _workers()


@pytest.mark.parametrize("strategy, world, microbatches, message", [
    ("tp", 3, 1, "4 attention heads and 4 key/value heads cannot be split over 3"),
    ("tp", 8, 1, "cannot be split over 8 tensor-parallel ranks"),
    ("pp_gpipe", 3, 4, "4 layers cannot be cut into 3 equal pipeline stages"),
    ("pp_1f1b", 2, 1, "2 pipeline stages need at least 2 micro-batches"),
    ("tp_pp", 2, 2, "TP × PP needs an even number of ranks, at least 4"),
    ("tp", 1, 1, "at least 2 ranks"),
])
def test_a_layout_that_does_not_divide_is_refused_before_any_rank_starts(strategy, world, microbatches, message):
    with pytest.raises(LayoutError, match=message):
        check_layout(TINY_LLAMA, strategy, world, microbatches)
    with pytest.raises(LayoutError, match=message):
        run_distributed_step(StepSpec(TINY_LLAMA, strategy, microbatches=microbatches), world)
    assert not _workers()


def test_too_many_ranks_and_tied_embeddings_get_a_plain_message():
    with pytest.raises(ValueError, match="World size"):
        run_distributed_step(StepSpec(TINY_LLAMA, "tp"), 9)
    with pytest.raises(LayoutError, match="ties its input embedding"):
        check_layout(PRESETS["tiny-llama-tied"]["architecture"], "pp_gpipe", 2, 2)
    with pytest.raises(ValueError, match="Unknown strategy 'sp'"):
        StepSpec(TINY_LLAMA, "sp")
