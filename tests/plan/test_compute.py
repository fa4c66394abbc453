"""core.plan.compute, compute_plan, compute_text, core.plan.training_runs and core.plan.compute_charts against the
numbers the papers publish."""
import math

import plotly.graph_objects as go
import pytest

from core.plan import compute, compute_charts, compute_plan, compute_text
from core.plan.compute import ComputeInputError
from core.plan.hardware import GPUS, get_gpu
from core.plan.training_runs import REFERENCE_RUNS, get_run, reference_table, run_summary

A100 = get_gpu("A100 80GB SXM")


def a100_cluster(n_gpus=256, mfu=0.4, price=2.0):
    return compute_plan.Cluster(A100.name, A100.peak_flops, n_gpus, mfu, price)


# ---------------------------------------------------------------- units and the 6ND rule


def test_pflop_s_day_is_1e15_flops_per_second_for_a_day():
    assert compute.PFLOP_S_DAY == 8.64e19
    assert compute.pflop_s_days(8.64e19) == 1.0
    assert compute.flops_from_pflop_s_days(3640) == pytest.approx(3640 * 8.64e19)


def test_training_flops_is_6nd_and_8nd_with_recompute():
    assert compute.training_flops(1e9, 1e9) == 6e18
    assert compute.training_flops(1e9, 1e9, flops_per_param_token=8) == 8e18
    assert compute.inference_flops(7e9) == 1.4e10
    assert compute.inference_flops(7e9, n_tokens=1000) == 1.4e13


def test_gpt3_175b_on_300b_tokens_is_about_3640_pflop_s_days():
    """Brown et al. 2020 Table D.1: 3.64e3 PF/s-days, 3.14e23 FLOPs; course notes: 'close to 3,700'."""
    flops = compute.training_flops(175e9, 300e9)
    assert flops == pytest.approx(3.14e23, rel=0.01)
    assert compute.pflop_s_days(flops) == pytest.approx(3640, rel=0.01)
    assert 3500 < compute.pflop_s_days(flops) < 3700


def test_chinchilla_uses_about_gophers_compute():
    """Hoffmann et al. 2022: Chinchilla 70B × 1.4T and Gopher 280B × 300B share a 5.76e23-FLOP budget.

    6·N·D lands Chinchilla within 3% of the published budget; Gopher within 15% (the paper's own FLOP
    count adds attention and embedding FLOPs, which matter more for Gopher's shorter training)."""
    chinchilla = compute.training_flops(70e9, 1.4e12)
    gopher = compute.training_flops(280e9, 300e9)
    assert chinchilla == pytest.approx(5.76e23, rel=0.03)
    assert gopher == pytest.approx(5.76e23, rel=0.15)
    assert chinchilla / gopher == pytest.approx(1.0, abs=0.2)


def test_chinchilla_optimal_for_gophers_budget_is_70b_on_1_4t():
    n, d = compute.chinchilla_optimal(5.76e23)
    assert n == pytest.approx(70e9, rel=0.02)
    assert d == pytest.approx(1.4e12, rel=0.02)
    assert d / n == pytest.approx(20)
    # N_opt = sqrt(C / 120) exactly, and the pair spends the whole budget at 6ND
    assert n == pytest.approx(math.sqrt(5.76e23 / 120))
    assert compute.training_flops(n, d) == pytest.approx(5.76e23)


def test_chinchilla_optimal_with_other_ratio_and_factor_spends_the_budget():
    n, d = compute.chinchilla_optimal(1e24, tokens_per_param=40, flops_per_param_token=8)
    assert d / n == pytest.approx(40)
    assert compute.training_flops(n, d, 8) == pytest.approx(1e24)


def test_time_gpu_hours_cost_and_implied_mfu_are_consistent():
    flops = compute.training_flops(65.2e9, 1.4e12)
    hours = compute.gpu_hours(flops, A100.peak_flops, 0.5)
    assert hours == pytest.approx(flops / (312e12 * 0.5) / 3600)
    assert compute.training_days(flops, 2048, A100.peak_flops, 0.5) == pytest.approx(hours / 2048 / 24)
    assert compute.implied_mfu(flops, hours, A100.peak_flops) == pytest.approx(0.5)
    assert compute.training_cost(hours, 2.0) == pytest.approx(2 * hours)
    assert compute.cluster_flops(2048, 10, A100.peak_flops, 0.5) == pytest.approx(2048 * 10 * 86400 * 156e12)


def test_llama_65b_implied_mfu_from_published_gpu_hours():
    """Touvron et al. 2023: 1,022,362 A100-80GB hours; 380 tokens/s/GPU on 2048 GPUs, ~21 days."""
    row = run_summary(get_run("LLaMA-65B"))
    assert row["implied MFU (k·N·D)"] == pytest.approx(0.477, abs=0.005)
    # same MFU from the published throughput: 6 · N · tokens/s/GPU ÷ peak
    assert row["implied MFU (k·N·D)"] == pytest.approx(6 * 65.2e9 * 380 / 312e12, rel=0.01)
    assert row["days on published cluster"] == pytest.approx(21, abs=0.5)


def test_bloomberggpt_published_flops_match_8nd_and_imply_a_third_of_peak():
    """Wu et al. 2023: 2.36e23 FLOPs with activation checkpointing, 102 TFLOP/s per A100-40GB (~33% MFU)."""
    run = get_run("BloombergGPT")
    six_nd = compute.training_flops(run.n_params, run.n_tokens)
    eight_nd = compute.training_flops(run.n_params, run.n_tokens, 8)
    assert six_nd == pytest.approx(1.73e23, rel=0.01)  # 6·N·D is 27% short of the published count ...
    assert eight_nd == pytest.approx(2.36e23, rel=0.03)  # ... which matches full recompute, 8·N·D
    row = run_summary(run)
    assert row["implied utilisation (published FLOPs)"] == pytest.approx(102 / 312, abs=0.01)
    assert 0.30 < row["implied utilisation (published FLOPs)"] < 0.35
    assert row["implied MFU (k·N·D)"] == pytest.approx(0.236, abs=0.005)
    assert row["days on published cluster"] == pytest.approx(53, abs=0.5)


def test_bloomberggpt_data_limit_gives_a_35b_compute_optimal_model():
    n = compute.chinchilla_params(700e9)
    assert n == pytest.approx(35e9)
    assert get_run("BloombergGPT").n_params > n  # they trained a bigger model on less than all of it


def test_reference_runs_cover_the_reference_file_and_have_sane_numbers():
    names = [r.name for r in REFERENCE_RUNS]
    for expected in ["GPT-3", "Gopher", "Chinchilla", "LLaMA-65B", "Llama 2 70B", "BloombergGPT", "BLOOM", "OPT-175B"]:
        assert expected in names
    rows = reference_table()
    assert len(rows) == len(REFERENCE_RUNS)
    for row, run in zip(rows, REFERENCE_RUNS):
        assert row["compute (PF/s-days)"] == pytest.approx(6 * run.n_params * run.n_tokens / 8.64e19)
        if run.gpu_hours:
            assert run.gpu in GPUS
            assert 0.15 < row["implied MFU (k·N·D)"] < 0.6, row
        else:
            assert row["implied MFU (k·N·D)"] is None
    assert get_run("Chinchilla").tokens_per_param == pytest.approx(20)
    assert get_run("GPT-3").tokens_per_param == pytest.approx(300 / 175)
    with pytest.raises(KeyError, match="Known"):
        get_run("GPT-5")


def test_course_rule_8_v100_or_2_a100_against_the_catalog():
    assert compute.gpus_for_one_pflop_s(get_gpu("V100 SXM2 32GB").peak_flops) == pytest.approx(8.0)
    assert compute.gpus_for_one_pflop_s(A100.peak_flops) == pytest.approx(1e15 / 312e12)  # 3.2, not 2
    assert 2 * A100.bf16_tflops == 624
    assert compute.gpus_for_one_pflop_s(A100.peak_flops, mfu=0.4) == pytest.approx(8.01, abs=0.01)


# ---------------------------------------------------------------- Chinchilla loss fit


def test_chinchilla_loss_formula_and_monotonicity():
    assert compute.chinchilla_loss(70e9, 1.4e12) == pytest.approx(
        1.69 + 406.4 / 70e9 ** 0.34 + 410.7 / 1.4e12 ** 0.28)
    assert compute.chinchilla_loss(70e9, 1.4e12) < compute.chinchilla_loss(70e9, 300e9)
    assert compute.chinchilla_loss(280e9, 300e9) < compute.chinchilla_loss(70e9, 300e9)
    assert compute.chinchilla_loss(1e15, 1e17) > 1.69  # never below the irreducible loss E
    # Chinchilla beats Gopher at equal compute under the fit, as in the paper
    assert compute.chinchilla_loss(70e9, 1.4e12) < compute.chinchilla_loss(280e9, 300e9)


def test_loss_optimal_allocation_is_the_minimum_of_the_iso_flop_curve():
    c = 5.76e23
    n_fit, d_fit = compute.loss_optimal_allocation(c)
    assert 6 * n_fit * d_fit == pytest.approx(c)
    grid = compute.log_grid(n_fit / 100, n_fit * 100, 2001)
    losses = compute.iso_flop_curve(c, grid)
    n_best = grid[losses.index(min(losses))]
    assert n_best == pytest.approx(n_fit, rel=0.01)
    # exponent a = β/(α+β) ≈ 0.45 (formulas.md): 10× the compute → 10^0.45 × the parameters
    n_10x, _ = compute.loss_optimal_allocation(10 * c)
    assert math.log10(n_10x / n_fit) == pytest.approx(0.28 / 0.62)


# ---------------------------------------------------------------- plans


def test_plan_from_budget_params_and_data_limit():
    cluster = a100_cluster()
    p = compute_plan.plan_from_budget(5.76e23, cluster)
    assert p.n_params == pytest.approx(69.3e9, rel=0.01) and p.tokens_per_param == pytest.approx(20)
    assert p.gpu_hours == pytest.approx(5.76e23 / (312e12 * 0.4) / 3600)
    assert p.days == pytest.approx(p.gpu_hours / 256 / 24)
    assert p.cost_dollars == pytest.approx(2 * p.gpu_hours)
    q = compute_plan.plan_from_params(7e9, cluster)
    assert q.n_tokens == 140e9 and q.flops == pytest.approx(6 * 7e9 * 140e9)
    r = compute_plan.plan_from_data_limit(700e9, cluster, flops_per_param_token=8)
    assert r.n_params == pytest.approx(35e9) and r.flops == pytest.approx(8 * 35e9 * 700e9)
    rows = {row["quantity"]: row for row in q.as_rows()}
    assert rows["Training compute"]["unit"] == "PF/s-days"
    assert q.as_dict()["tokens_per_param"] == pytest.approx(20)


def test_budget_from_a_cluster_round_trips_to_its_days():
    cluster = a100_cluster(n_gpus=256)
    budget = compute.cluster_flops(256, 30, A100.peak_flops, 0.4)
    plan = compute_plan.plan_from_budget(budget, cluster)
    assert plan.days == pytest.approx(30)


def test_data_limited_alternatives_spend_more_for_less():
    rows = compute_plan.data_limited_alternatives(700e9, a100_cluster())
    by_size = {r["size vs compute-optimal"]: r for r in rows}
    assert by_size[1.0]["parameters"] == pytest.approx(35e9)
    assert by_size[2.0]["extra compute vs optimal (FLOPs)"] == pytest.approx(by_size[1.0]["compute (FLOPs)"])
    assert by_size[0.5]["extra compute vs optimal (FLOPs)"] < 0
    gain_first = by_size[1.0]["fitted loss (nats/token)"] - by_size[2.0]["fitted loss (nats/token)"]
    gain_next = by_size[2.0]["fitted loss (nats/token)"] - by_size[3.0]["fitted loss (nats/token)"]
    assert gain_first > gain_next > 0  # diminishing returns on fixed data


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("text, value", [
    ("70B", 70e9), ("1.4T", 1.4e12), ("700b", 700e9), ("5.76e23", 5.76e23), ("175,000,000,000", 175e9),
    (" 3 640 ", 3640), ("12k", 12e3), ("2.5M", 2.5e6), ("1e9", 1e9)])
def test_parse_quantity_accepts_what_people_type(text, value):
    assert compute_text.parse_quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text, message", [
    ("", "empty"), ("   ", "empty"), (None, "empty"), ("abc", "not a number"), ("7 B B", "not a number"),
    ("1e400", "too large"), ("nan", "not a number"), ("inf", "not a number")])
def test_parse_quantity_rejects_garbage_with_a_message(text, message):
    with pytest.raises(ComputeInputError, match=message):
        compute_text.parse_quantity(text, "Model size")


@pytest.mark.parametrize("text, message", [("0", "positive"), ("-5B", "positive"), ("1e40", "plausible range"),
                                           ("10", "plausible range")])
def test_parse_in_range_rejects_zero_negative_and_absurd(text, message):
    with pytest.raises(ComputeInputError, match=message):
        compute_text.parse_in_range(text, compute_text.MIN_PARAMS, compute_text.MAX_PARAMS, "Model size", "parameters")


def test_formulas_reject_zero_negative_and_impossible_mfu():
    with pytest.raises(ComputeInputError):
        compute.training_flops(0, 1e9)
    with pytest.raises(ComputeInputError):
        compute.chinchilla_optimal(-1)
    with pytest.raises(ComputeInputError):
        compute.training_days(1e20, 8, A100.peak_flops, 1.5)
    with pytest.raises(ComputeInputError):
        compute_plan.Cluster("x", A100.peak_flops, 8, 0.0, 1.0)
    with pytest.raises(ComputeInputError):
        compute.training_cost(10, -1)
    with pytest.raises(ComputeInputError):
        compute.chinchilla_loss(float("nan"), 1e9)


def test_formatting():
    assert compute_text.format_count(175e9) == "175B"
    assert compute_text.format_count(1.4e12) == "1.4T"
    assert compute_text.format_input_count(7e10) == "70B"
    assert compute_text.parse_quantity(compute_text.format_input_count(6.7e9)) == 6.7e9
    assert compute_text.format_number(3.14e23) == "3.14e23"
    assert compute_text.format_number(1022362) == "1,022,362"
    assert compute_text.format_dollars(2.04e6) == "$2.04M"
    assert compute_text.format_duration_days(840) == "2.3 years"
    assert compute_text.format_duration_days(0.5) == "12.0 hours"


# ---------------------------------------------------------------- charts


def test_iso_flop_figure_has_a_curve_and_minimum_per_budget_and_the_plan():
    budgets = [1e21, 1e22, 1e23]
    fig = compute_charts.iso_flop_figure(budgets, plan=(7e9, 140e9))
    assert isinstance(fig, go.Figure)
    curves = [t for t in fig.data if t.mode == "lines"]
    assert len(curves) == 3
    minima = [t for t in fig.data if t.marker.symbol == "diamond"]
    assert len(minima) == 3
    for curve, marker in zip(curves, minima):  # the marked minimum is the lowest point of its curve
        assert marker.y[0] <= min(curve.y) + 1e-9
    star = [t for t in fig.data if t.name == "your plan"]
    assert star and star[0].x[0] == 7e9
    assert fig.layout.xaxis.type == "log"


def test_reference_runs_figure_is_log_log_with_the_20x_line():
    rows = reference_table()
    fig = compute_charts.reference_runs_figure(rows, 20, plan=(35e9, 700e9))
    line = fig.data[0]
    assert line.y[0] / line.x[0] == pytest.approx(20) and line.y[1] / line.x[1] == pytest.approx(20)
    runs = fig.data[1]
    assert list(runs.text) == [r.name for r in REFERENCE_RUNS]
    assert fig.layout.xaxis.type == "log" and fig.layout.yaxis.type == "log"
    assert fig.data[-1].name == "your plan"


def test_data_limit_figure_marks_the_optimal_model():
    rows = compute_plan.data_limited_alternatives(700e9, a100_cluster())
    fig = compute_charts.data_limit_figure(rows)
    assert len(fig.data[0].x) == len(rows)
    assert fig.data[1].y[0] == pytest.approx(rows[1]["fitted loss (nats/token)"])


def test_format_duration_s_picks_a_readable_unit():
    assert compute_text.format_duration_s(0.0123) == "12.3 ms"
    assert compute_text.format_duration_s(0.2) == "200 ms"
    assert compute_text.format_duration_s(0.9994) == "999 ms"
    assert compute_text.format_duration_s(1.234) == "1.23 s"
    assert compute_text.format_duration_s(117.645) == "117.6 s"  # was shown as "117,645 ms"
    assert compute_text.format_duration_s(205) == "3 min 25 s"
    assert compute_text.format_duration_s(7500) == "2 h 05 min"
    assert compute_text.format_duration_s(0) == "0 ms"
    assert compute_text.format_duration_s(float("nan")) == "nan"
