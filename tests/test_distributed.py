"""core.distributed on real torch.distributed (gloo, separate rank processes on this CPU): every strategy trains to
the same losses, the bytes each rank communicates per step equal the ZeRO paper's volumes, sharding really shards,
and no rank process outlives Stop or a failure."""
from __future__ import annotations

import threading

import psutil
import pytest

from core import architectures
from core.distributed.launcher import DistributedRunError, StepSpec, run_distributed_step, torchrun_command
from core.distributed.strategies import STRATEGIES, communication_volume_bytes

# A small Llama (4 layers of 256): 4.2 M parameters, 16.9 MB of fp32 weights; seconds per step on one core a rank.
TINY_LLAMA = {"model_type": "llama", "hidden_size": 256, "num_hidden_layers": 4, "num_attention_heads": 4,
              "num_key_value_heads": 4, "intermediate_size": 688, "vocab_size": 2048, "max_position_embeddings": 256,
              "tie_word_embeddings": False}
PARAM_BYTES = architectures.param_count(TINY_LLAMA) * 4


def _volume(rank: dict) -> float:
    return sum(c["bytes"] * c["volume_factor"] for c in rank["collectives"])


def _workers() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if "core.distributed.worker" in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.fixture(scope="module")
def runs():
    return {s: run_distributed_step(StepSpec(TINY_LLAMA, s, seq_len=32), 2) for s in STRATEGIES}


def test_every_strategy_trains_to_the_same_losses(runs):
    reference = runs["ddp"].ranks[0]["losses"]
    assert len(reference) == 3 and reference[0] != reference[-1]
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
