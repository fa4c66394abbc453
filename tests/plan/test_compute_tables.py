"""Row builders of the Compute planner (core.plan.compute_tables), checked against core.plan.compute's formulas."""

from core.plan import compute_plan, compute_tables, compute_text
from core.plan.hardware import GPUS
from core.plan.training_runs import reference_table

CLUSTER = compute_plan.Cluster("A100 80GB SXM", 312e12, 1024, 0.4, 2.0)


def test_percent_or_dash():
    assert compute_tables.percent_or_dash(0.477) == "47.7"
    assert compute_tables.percent_or_dash(None) == "–"


def test_data_limit_rows_measure_extra_compute_against_the_optimal_model():
    rows = compute_plan.data_limited_alternatives(1.4e12, CLUSTER, 6, 20)
    shown = compute_tables.data_limit_rows(rows)
    assert len(shown) == len(rows) == len(compute_plan.DATA_LIMIT_MODEL_MULTIPLIERS)
    by_size = {r["model size"].split("×")[0]: r for r in shown}
    assert by_size["1"]["model size"] == "1× = 70B"  # Chinchilla: 1.4T tokens / 20 → 70B parameters
    assert by_size["1"]["extra compute vs optimal (%)"] == 0 and by_size["1"]["tokens/param"] == 20.0
    assert by_size["2"]["extra compute vs optimal (%)"] == 100  # C = 6·N·D: twice N on the same D
    assert by_size["0.5"]["extra compute vs optimal (%)"] == -50
    assert by_size["2"]["loss change vs optimal (nats/token)"] < 0 < by_size["0.5"]["loss change vs optimal (nats/token)"]
    optimal = next(r for r in rows if r["size vs compute-optimal"] == 1.0)
    assert by_size["1"]["GPU-hours"] == round(optimal["GPU-hours"])


def test_reference_run_rows_run_each_model_on_your_cluster():
    rows = reference_table(6, 20)
    shown = compute_tables.reference_run_rows(rows, CLUSTER)
    column = "days on your 1,024 × A100 80GB SXM"
    for raw, row in zip(rows, shown):
        hours = raw["compute k·N·D (FLOPs)"] / (312e12 * 0.4) / 3600
        assert row[column] == round(hours / 1024 / 24, 1)
        assert row["cost on your cluster (US$)"] == compute_text.format_dollars(hours * 2.0)
        assert row["implied MFU (%)"] == compute_tables.percent_or_dash(raw["implied MFU (k·N·D)"])
        assert row["run"] == raw["run"]
    chinchilla = next(r for r in shown if r["run"].startswith("Chinchilla"))
    assert chinchilla["params"] == "70B" and chinchilla["tokens"] == "1.4T"


def test_one_pflop_s_rows_follow_the_datasheet_peaks():
    rows = {r["GPU"]: r for r in compute_tables.one_pflop_s_rows(40)}
    assert set(rows) == set(GPUS)
    a100 = rows["A100 80GB SXM"]
    assert a100["GPUs for 1 PF/s at 100%"] == round(1e15 / 312e12, 2) == 3.21
    assert a100["GPUs for 1 PF/s at 40% MFU"] == round(1e15 / (312e12 * 0.4), 2)
    assert a100["course rule (GPUs)"] == "2" and a100["course rule at datasheet peak (TFLOP/s)"] == "624"
    assert rows["V100 SXM2 16GB"]["course rule at datasheet peak (TFLOP/s)"] == "1,000"
    assert rows["H100 SXM"]["course rule (GPUs)"] == "–"
