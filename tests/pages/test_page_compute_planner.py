"""The compute planner page under Streamlit's AppTest: renders, reacts to its controls, survives bad input,
restores its inputs from the URL and links to the memory planner."""
import pytest

from core.plan import compute, compute_plan, compute_text
from tests.apptest import app_test, run_page_with_query

PAGE = "views/compute_planner.py"
LAYOUT_METRICS = {"Layouts evaluated", "Feasible", "Fastest step", "Its MFU"}  # the Training layout tab


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at, column: str):
    """The first st.dataframe whose columns include `column` (AppTest does not expose dataframe keys)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a {column!r} column")


def run_page(query: dict | None = None):
    return run_page_with_query(PAGE, query)


@pytest.fixture(scope="module")
def default_page():
    return run_page()


def test_page_renders_the_default_plan(default_page):
    at = default_page
    assert at.title[0].value == "Compute planner"
    shown = metrics(at)
    # default: 256 A100-80GB for 30 days at 40% MFU → C = 8.28e22 FLOPs, N_opt = sqrt(C/120) ≈ 26.3B
    budget = compute.cluster_flops(256, 30, 312e12, 0.4)
    n_opt, d_opt = compute.chinchilla_optimal(budget)
    assert shown["Model size N (parameters)"] == compute_text.format_count(n_opt) == "26.3B"
    assert shown["Training tokens D"] == "525B"
    assert shown["Wall-clock time"] == "30.0 days"
    assert shown["Training compute (PF/s-days)"] == "958"
    assert shown["Cost (US$)"] == compute_text.format_dollars(256 * 30 * 24 * 2.0)
    assert not at.error and not at.warning
    # charts, tables and downloads
    assert len([c for c in at.get("plotly_chart") if c.key.startswith("compute_")]) == 2
    runs_table = table_with(at, "implied MFU (%)")
    assert "LLaMA-65B" in list(runs_table["run"])
    llama = runs_table[runs_table["run"] == "LLaMA-65B"].iloc[0]
    assert float(llama["implied MFU (%)"]) == pytest.approx(47.7, abs=0.1)
    rule = table_with(at, "course rule (GPUs)")
    a100 = rule[rule["GPU"] == "A100 80GB SXM"].iloc[0]
    assert a100["course rule at datasheet peak (TFLOP/s)"] == "624"
    assert a100["GPUs for 1 PF/s at 100%"] == pytest.approx(3.21, abs=0.01)
    labels = [d.proto.label for d in at.get("download_button")]
    assert any("CSV" in label for label in labels) and any("JSON" in label for label in labels)


def test_every_input_is_written_to_the_url(default_page):
    qp = default_page.query_params
    for key in ("mode", "unit", "flops", "pfsd", "days", "params", "tokens", "gpu", "gpus", "mfu", "price", "k",
                "recompute", "ratio"):
        assert key in qp, key
    assert qp["params"] == "7000000000"  # shared with the memory planner as a plain count
    assert qp["gpu"] == "A100 80GB SXM"


def test_every_control_has_help_text(default_page):
    at = default_page
    widgets = list(at.text_input) + list(at.number_input) + list(at.selectbox) + list(at.radio) + list(at.checkbox)
    assert widgets
    for w in widgets:
        assert w.help, w.label


def test_more_gpus_finish_sooner_and_a_longer_run_buys_a_bigger_model():
    at = run_page()
    before = metrics(at)
    at.number_input(key="compute_n_gpus").set_value(512).run()
    assert not at.exception
    after = metrics(at)
    # a 'GPUs × days' budget: twice the GPUs for the same 30 days doubles compute → √2 × the parameters
    assert after["Model size N (parameters)"] == "37.2B" != before["Model size N (parameters)"]
    at.number_input(key="compute_budget_days").set_value(60.0).run()
    assert metrics(at)["Model size N (parameters)"] == "52.5B"
    assert metrics(at)["Wall-clock time"] == "60.0 days"


def test_budget_in_pflop_s_days_gives_gpt3_scale():
    at = run_page({"mode": "budget", "unit": "pfsd", "pfsd": "3640"})
    n, d = compute.chinchilla_optimal(compute.flops_from_pflop_s_days(3640))
    assert metrics(at)["Model size N (parameters)"] == compute_text.format_count(n)
    assert metrics(at)["Training compute (PF/s-days)"] == "3,640"
    at.radio(key="compute_budget_unit").set_value("flops").run()
    at.text_input(key="compute_budget_flops").set_value("5.76e23").run()
    assert metrics(at)["Model size N (parameters)"] == "69.3B"  # Chinchilla for Gopher's budget
    assert metrics(at)["Training tokens D"] == "1.39T"


def test_model_size_mode_changes_with_the_size():
    at = run_page()
    at.radio(key="compute_mode").set_value("params").run()
    assert metrics(at)["Training tokens D"] == "140B"  # 7B × 20
    at.text_input(key="compute_params").set_value("70B").run()
    assert not at.exception
    shown = metrics(at)
    assert shown["Model size N (parameters)"] == "70B" and shown["Training tokens D"] == "1.4T"
    assert shown["Training compute (FLOPs)"] == "5.88e23"
    assert at.query_params["params"] == "70000000000"
    # full recompute: 8·N·D
    at.checkbox(key="compute_recompute").check().run()
    assert metrics(at)["Training compute (FLOPs)"] == "7.84e23"
    assert at.query_params["recompute"] == "true"


def test_data_limit_mode_sizes_the_model_and_shows_the_waste():
    at = run_page({"mode": "data", "tokens": "700000000000"})
    assert at.text_input(key="compute_tokens").value == "700B"
    assert metrics(at)["Model size N (parameters)"] == "35B"
    table = table_with(at, "extra compute vs optimal (%)")
    assert list(table["extra compute vs optimal (%)"]) == [-50, 0, 50, 100, 200, 400]
    assert len([c for c in at.get("plotly_chart") if c.key.startswith("compute_")]) == 3


@pytest.mark.parametrize("text, message", [
    ("0", "must be positive"), ("-70B", "must be positive"), ("1e400", "too large"), ("", "empty"),
    ("seventy", "not a number"), ("1e30", "plausible range")])
def test_bad_model_size_shows_a_message_and_keeps_other_inputs(text, message):
    at = run_page({"mode": "params", "gpus": "64"})
    at.text_input(key="compute_params").set_value(text).run()
    assert not at.exception
    assert at.error and message in at.error[0].value
    assert not [m for m in at.metric if m.label not in LAYOUT_METRICS]  # no plan from a bad number ...
    assert at.number_input(key="compute_n_gpus").value == 64  # ... and the other inputs are kept
    assert table_with(at, "implied MFU (%)").shape[0] > 10  # the rest of the page still works
    at.text_input(key="compute_params").set_value("13B").run()
    assert not at.error and metrics(at)["Model size N (parameters)"] == "13B"


def test_bad_budget_in_flops_shows_a_message():
    at = run_page({"mode": "budget", "unit": "flops"})
    at.text_input(key="compute_budget_flops").set_value("1e99").run()
    assert not at.exception
    assert "plausible range" in at.error[0].value


def test_query_params_restore_every_input():
    query = {"mode": "params", "params": "13000000000", "gpu": "H100 SXM", "gpus": "1024", "mfu": "50",
             "price": "3.5", "k": "6", "recompute": "false", "ratio": "20"}
    at = run_page(query)
    assert at.radio(key="compute_mode").value == "params"
    assert at.text_input(key="compute_params").value == "13B"
    assert at.selectbox(key="compute_gpu").value == "H100 SXM"
    assert at.number_input(key="compute_n_gpus").value == 1024
    assert at.number_input(key="compute_mfu_percent").value == 50.0
    plan = compute_plan.plan_from_params(13e9, compute_plan.Cluster("H100 SXM", 989e12, 1024, 0.5, 3.5))
    assert metrics(at)["Cost (US$)"] == compute_text.format_dollars(plan.cost_dollars)
    assert metrics(at)["GPU-hours"] == compute_text.format_number(plan.gpu_hours)


def test_a_link_with_only_params_opens_the_model_size_view():
    """The memory planner links here with ?params=<N>."""
    at = run_page({"params": "6738415616"})
    assert at.radio(key="compute_mode").value == "params"
    assert metrics(at)["Model size N (parameters)"] == "6.74B"


def test_invalid_url_values_fall_back_to_defaults_with_a_warning():
    at = run_page({"gpus": "-3", "gpu": "Voodoo 5", "mfu": "250", "params": "lots", "mode": "params"})
    warnings = " ".join(w.value for w in at.warning)
    for key in ("gpus=-3", "gpu=Voodoo 5", "mfu=250", "params=lots"):
        assert key in warnings
    assert at.number_input(key="compute_n_gpus").value == 256
    assert at.selectbox(key="compute_gpu").value == "A100 80GB SXM"
    assert metrics(at)["Model size N (parameters)"] == "7B"  # default size, still planned


def test_memory_planner_link_carries_the_plans_size():
    at = app_test("app.py")
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception
    links = [p.proto for p in at.get("page_link") if p.proto.page == "memory"]
    assert links and links[0].query_string == "params=26269641794"


# --- Training layout tab (core.plan.parallel) -----------------------------------------------------------------------

def _layout_widgets(at):
    return [w for kind in ("selectbox", "number_input", "multiselect", "checkbox")
            for w in at.get(kind) if str(w.key).startswith("layout_")]


def test_training_layout_tab_ranks_70b_on_64_h100(default_page):
    at = default_page
    shown = metrics(at)
    assert int(shown["Layouts evaluated"].replace(",", "")) > 1000
    assert int(shown["Feasible"].replace(",", "")) > 10
    ranked = table_with(at, "TFLOP/s per GPU")
    assert list(ranked["rank"][:3]) == [1, 2, 3]
    assert list(ranked["step time (s)"]) == sorted(ranked["step time (s)"])
    assert (ranked["per-GPU peak (GB)"] <= 80).all() and (ranked["TP"] <= 8).all()
    why = table_with(at, "why infeasible")
    assert why["why infeasible"].str.len().min() > 10  # every infeasible layout says why
    reasons = table_with(at, "reason")
    assert "does not fit in GPU memory" in set(reasons["reason"])
    keys = {c.key for c in at.get("plotly_chart")}
    assert {"layout_memory_chart", "layout_step_chart"} <= keys
    assert {"layout_csv", "layout_json"} <= {d.key for d in at.get("download_button")}
    assert all(w.help for w in _layout_widgets(at)), [w.key for w in _layout_widgets(at) if not w.help]


def test_training_layout_published_preset_and_bad_input():
    at = run_page()
    at.selectbox(key="layout_preset").set_value("GPT 1.7B").run()
    assert not at.exception
    info = " ".join(i.value for i in at.info)
    assert "Published layout TP1 · PP1 · DP32" in info and "published 137 TFLOP/s per GPU" in info
    assert at.query_params["lpreset"] == "GPT 1.7B"  # a shared link reopens the preset
    at.selectbox(key="layout_preset").set_value("Your model (catalog)").run()
    at.number_input(key="layout_gpus").set_value(12).run()
    assert not at.exception
    assert any("whole nodes" in e.value for e in at.error)
    at.number_input(key="layout_gpus").set_value(0).run()
    assert any("GPUs must be from 1 to 65,536; 0 was entered" in e.value for e in at.error)


def test_training_layout_inputs_live_in_the_url():
    at = run_page({"lmodel": "meta-llama/Llama-2-7b-hf", "lgpu": "A100 80GB SXM", "lgpus": "16", "lseq": "2048",
                   "lbatch": "256", "ltokens": "100"})
    assert at.selectbox(key="layout_model").value == "meta-llama/Llama-2-7b-hf"
    assert at.number_input(key="layout_gpus").value == 16
    ranked = table_with(at, "TFLOP/s per GPU")
    assert (ranked["TP"] * ranked["PP"] * ranked["DP"] == 16).all()
    bad = run_page({"lgpus": "many"})
    assert any("lgpus=many" in w.value for w in bad.warning)
    assert bad.number_input(key="layout_gpus").value == 64  # the default
