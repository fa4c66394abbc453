"""core.distributed on real torch.distributed (gloo, separate rank processes on this CPU): every strategy trains to
the same losses, each rank's measured peak is within 10 % of the prediction and the bytes it communicates per step
within 5 % of the ZeRO paper's volumes (at 2 and 4 ranks, and on AVX2 code paths), sharding really shards, and no
rank process outlives Stop or a failure."""
from __future__ import annotations

import threading

import psutil
import pytest

from core.plan import architectures
from core.distributed import report
from core.distributed.launcher import (DistributedRunError, StepSpec, run_distributed_step, run_strategies,
                                       torchrun_command)
from core.distributed.predict import DistributedRefused, check_fits, predict_rank_peak
from core.distributed.presets import PRESETS
from core.distributed.strategies import STRATEGIES, communication_volume_bytes

# A small Llama (4 layers of 256): 4.2 M parameters, 16.9 MB of fp32 weights; seconds per step on one core a rank.
TINY_LLAMA = PRESETS["tiny-llama"]["architecture"]
TIED = PRESETS["tiny-llama-tied"]["architecture"]  # 8 layers, tied embeddings, GQA: an activation-bound peak
PARAM_BYTES = architectures.param_count(TINY_LLAMA) * 4
AVX2 = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def _volume(rank: dict) -> float:
    return sum(c["bytes"] * c["volume_factor"] for c in rank["collectives"])


def _workers() -> list[psutil.Process]:
    """Rank processes started by this test session (marked by conftest's LLM_LAB_TEST_SESSION), wherever they were
    reparented to."""
    import os

    mark = os.environ["LLM_LAB_TEST_SESSION"]
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "core.distributed.worker" in " ".join(p.info["cmdline"] or []) and \
                    p.environ().get("LLM_LAB_TEST_SESSION") == mark:
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


@pytest.fixture(scope="module")
def runs():
    return {s: run_distributed_step(StepSpec(TINY_LLAMA, s, seq_len=32), 2) for s in STRATEGIES}


@pytest.fixture(scope="module")
def runs_avx2():
    """The same steps with PyTorch and oneDNN capped at AVX2 (the ranks are fresh processes: they read it at start)."""
    with pytest.MonkeyPatch.context() as mp:
        for key, value in AVX2.items():
            mp.setenv(key, value)
        return {s: run_distributed_step(StepSpec(TINY_LLAMA, s, seq_len=32), 2) for s in STRATEGIES}


def _check_against_prediction(run, architecture, seq_len, batch_size=1):
    for rank in run.ranks:
        predicted = predict_rank_peak(architecture, run.spec.strategy, run.world_size, seq_len, batch_size,
                                      rank=rank["rank"])
        param_bytes = predicted["param_bytes"]
        error = (predicted["predicted_peak_bytes"] - rank["peak_bytes"]) / rank["peak_bytes"]
        assert abs(error) < 0.10, (run.spec.strategy, run.world_size, rank["rank"], rank["peak_bytes"], predicted)
        assert _volume(rank) == pytest.approx(communication_volume_bytes(run.spec.strategy, param_bytes), rel=0.05)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_rank_peaks_as_predicted_at_two_ranks(runs, strategy):
    _check_against_prediction(runs[strategy], TINY_LLAMA, 32)


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_each_rank_peaks_as_predicted_at_four_ranks(strategy):
    # the 8-layer tied model at 64 tokens × 2: its peak is the loss's backward, not the FSDP gathers
    architecture = TINY_LLAMA if strategy in ("zero2", "zero3") else TIED
    seq_len, batch = (16, 1) if architecture is TINY_LLAMA else (64, 2)
    run = run_distributed_step(StepSpec(architecture, strategy, seq_len=seq_len, batch_size=batch), 4)
    assert [r["rank"] for r in run.ranks] == [0, 1, 2, 3]
    _check_against_prediction(run, architecture, seq_len, batch)
    assert not _workers()


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_avx2_code_paths_peak_and_communicate_as_predicted(runs, runs_avx2, strategy):
    run = runs_avx2[strategy]
    _check_against_prediction(run, TINY_LLAMA, 32)
    for rank, default in zip(run.ranks, runs[strategy].ranks):
        assert rank["losses"] == pytest.approx(default["losses"], rel=1e-4)


def test_the_report_rows_and_downloads(runs):
    rows = report.rank_rows(runs["zero3"])
    assert [r["rank"] for r in rows] == [0, 1] and all(abs(r["error (%)"]) < 10 for r in rows)
    assert all(abs(r["volume error (%)"]) < 5 for r in rows)
    csv = report.runs_csv(list(runs.values()))
    assert csv.splitlines()[0].startswith("rank,strategy,world size,measured peak (MB)") and len(csv.splitlines()) == 9
    assert '"strategy": "zero1"' in report.runs_json([runs["zero1"]])


def test_a_run_that_would_not_fit_is_refused_with_the_prediction():
    with pytest.raises(DistributedRefused, match=r"4 ranks would need .* GB of RAM .* 0\.10 GB is free") as info:
        check_fits(TINY_LLAMA, ["ddp"], 4, 32, free_bytes=0.1e9)
    assert info.value.predicted_bytes == pytest.approx(predict_rank_peak(TINY_LLAMA, "ddp", 4, 32)["predicted_peak_bytes"])
    with pytest.raises(DistributedRefused, match="minutes of compute"):
        check_fits("HuggingFaceTB/SmolLM2-135M-Instruct", list(STRATEGIES), 8, 4096, free_bytes=1e15)
    with pytest.raises(DistributedRefused):
        run_strategies("HuggingFaceTB/SmolLM2-135M-Instruct", ["ddp"], 8, seq_len=4096)  # refused, never started
    assert not _workers()


def test_run_strategies_reports_each_run_and_its_progress():
    seen, finished = set(), []
    runs = run_strategies(TINY_LLAMA, ["ddp", "zero3"], 2, seq_len=16,
                          on_progress=lambda s, r, step, steps: seen.add((s, r, step, steps)), on_run=finished.append)
    assert [r.spec.strategy for r in runs] == ["ddp", "zero3"] and finished == runs
    assert {("ddp", 0, 4, 4), ("ddp", 1, 4, 4), ("zero3", 0, 4, 4), ("zero3", 1, 4, 4)} <= seen


def test_every_strategy_trains_to_the_same_losses(runs):
    reference = runs["ddp"].ranks[0]["losses"]
    assert len(reference) == 4 and reference[0] != reference[-1]
    for strategy, run in runs.items():
        for rank in run.ranks:
            assert rank["losses"] == pytest.approx(reference, rel=1e-5), strategy


@pytest.mark.parametrize("strategy", list(STRATEGIES))
def test_bytes_communicated_per_step_match_the_zero_volumes(runs, strategy):
    # ZeRO §7: DDP 2Ψ, ZeRO-2 2Ψ, ZeRO-3 3Ψ; PyTorch's ZeRO-1 all-reduces (2Ψ) and broadcasts the update (Ψ)
    expected = communication_volume_bytes(strategy, PARAM_BYTES)
    for rank in runs[strategy].ranks:
        assert _volume(rank) == pytest.approx(expected, rel=0.05)


def test_sharding_divides_what_each_rank_holds(runs):
    parts = {s: run.ranks[0]["parts_bytes"] for s, run in runs.items()}
    assert parts["ddp"]["parameters"] == PARAM_BYTES and parts["ddp"]["optimizer"] == 2 * PARAM_BYTES
    assert parts["zero1"]["parameters"] == PARAM_BYTES
    assert parts["zero1"]["optimizer"] == pytest.approx(PARAM_BYTES, rel=0.02)  # Adam's 2 × 4 bytes, halved
    for s in ("zero2", "zero3"):
        assert parts[s]["parameters"] == pytest.approx(PARAM_BYTES / 2, rel=0.01)
        assert parts[s]["gradients"] == pytest.approx(PARAM_BYTES / 2, rel=0.01)
    peaks = {s: max(r["peak_bytes"] for r in run.ranks) for s, run in runs.items()}
    assert peaks["zero1"] < peaks["ddp"] and peaks["zero2"] < peaks["ddp"]


def test_four_ranks_shard_in_four_and_the_torchrun_command(runs):
    run = run_distributed_step(StepSpec(TINY_LLAMA, "zero3", seq_len=16), 4)
    assert [r["rank"] for r in run.ranks] == [0, 1, 2, 3]
    for rank in run.ranks:
        assert rank["parts_bytes"]["parameters"] == pytest.approx(PARAM_BYTES / 4, rel=0.02)
        assert _volume(rank) == pytest.approx(3 * PARAM_BYTES, rel=0.05)
    assert torchrun_command(run.spec, 8) == ("torchrun --nproc-per-node 8 -m core.distributed.worker --spec spec.json "
                                             "--out results/")
    assert not _workers()


def test_stop_ends_every_rank():
    stop = threading.Event()
    started = threading.Event()

    def progress(rank, step, steps):
        started.set()
        stop.set()

    with pytest.raises(DistributedRunError, match="Stopped"):
        run_distributed_step(StepSpec(TINY_LLAMA, "ddp", seq_len=32, steps=50), 2, stop=stop, on_progress=progress)
    assert started.is_set()
    assert not _workers()


def test_a_failing_rank_is_reported_and_ends_the_others():
    broken = dict(TINY_LLAMA, num_attention_heads=3)  # 256 is not divisible by 3 heads: every rank fails to build it
    with pytest.raises(DistributedRunError, match="Rank [01] failed"):
        run_distributed_step(StepSpec(broken, "zero3"), 2)
    assert not _workers()
