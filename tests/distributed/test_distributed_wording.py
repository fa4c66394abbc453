"""What "Run it here" says before and after a run, without starting ranks: the time estimate, the wording of a
refusal, and errors as the table shows them (issue 32)."""
import pytest

from core.distributed import predict, report
from core.distributed.predict import DistributedRefused, check_fits, estimated_run_seconds
from core.distributed.presets import PRESETS
from core.distributed.strategies import STRATEGIES, STRATEGY_LABELS

TINY_LLAMA = PRESETS["tiny-llama"]["architecture"]


def test_the_estimate_is_six_n_flops_per_token_plus_process_start():
    n, world, seq, batch, steps, k = 4_200_000, 2, 32, 1, 4, 4
    compute = 6 * n * seq * batch * steps * world * k / (predict.CPU_FLOPS_PER_S * 2)
    assert estimated_run_seconds(n, world, seq, batch, steps, k, cores=2) == pytest.approx(
        compute + k * predict.RANK_START_S)
    assert estimated_run_seconds(n, world, seq, batch, steps, k, cores=2, include_start=False) == pytest.approx(
        compute)
    # ten times the steps: ten times the compute, the same start-up
    longer = estimated_run_seconds(n, world, seq, batch, 10 * steps, k, cores=2)
    assert longer - k * predict.RANK_START_S == pytest.approx(10 * compute)


def test_one_rank_is_one_rank_in_a_refusal():
    with pytest.raises(DistributedRefused, match=r"Not run: 1 rank would need"):
        check_fits(TINY_LLAMA, ["ddp"], 1, 32, free_bytes=0.1e9)
    with pytest.raises(DistributedRefused, match=r"Not run: 3 ranks would need"):
        check_fits(TINY_LLAMA, ["ddp"], 3, 32, free_bytes=0.1e9)


def test_errors_never_show_a_negative_zero_and_every_strategy_has_one_name():
    assert f"{report._shown(-0.04):+.1f}" == "+0.0" and f"{report._shown(-0.06):+.1f}" == "-0.1"
    assert report._shown(3.14159) == 3.1
    assert set(STRATEGY_LABELS) == set(STRATEGIES)
