"""The serving planner page under Streamlit's AppTest: renders the default plan, writes its inputs to the URL,
restores them from a link (sharing model/GPU keys with the memory planner), survives bad input without losing the
other inputs, and has help text on every control."""
import json

import pytest

from core.plan import serving_capacity
from tests.apptest import app_test, run_page_with_query

PAGE = "views/serving.py"


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def run_page(query: dict | None = None):
    return run_page_with_query(PAGE, query)


@pytest.fixture(scope="module")
def default_page():
    return run_page()


def test_default_plan_matches_core(default_page):
    at = default_page
    assert at.title[0].value == "Serving planner"
    ans = serving_capacity.capacity_answer("meta-llama/Meta-Llama-3-8B", "A100 80GB SXM", target_users=100,
                                           ttft_target_s=1.0, tpot_target_s=0.05, price_per_gpu_hour=1.3)
    shown = metrics(at)
    assert shown["Users per replica"] == f"{ans.users_per_replica:,}"
    assert shown["GPUs for the load"] == f"{ans.gpus:,}"
    assert shown["$ per 1M output tokens"] == f"${ans.cost_per_million_output_tokens:,.3f}"
    assert shown["KV capacity"].endswith("tokens")
    assert not at.error
    assert len(at.get("plotly_chart")) >= 5
    labels = [d.proto.label for d in at.get("download_button")]
    assert any("CSV" in label for label in labels) and any("JSON" in label for label in labels)
    assert any("Cheapest" in s.value for s in at.success)


def test_every_input_in_the_url_and_help_everywhere(default_page):
    qp = default_page.query_params
    for key in ("src", "model", "gpu", "tp", "fmt", "kv", "prompt", "output", "users", "ttft", "tpot", "util",
                "maxseqs", "mbt", "graphs", "bw", "mfu", "price"):
        assert key in qp, key
    widgets = (list(default_page.number_input) + list(default_page.selectbox) + list(default_page.radio)
               + list(default_page.button))
    missing = [w.label for w in widgets if not w.help]
    assert not missing, missing


def test_link_restores_inputs_and_moe_model():
    at = run_page({"model": "mistralai/Mixtral-8x7B-v0.1", "gpu": "H100 SXM", "tp": "2", "users": "20",
                   "tpot": "80"})
    assert at.session_state["mem_model"] == "mistralai/Mixtral-8x7B-v0.1"
    assert at.session_state["srv_tp"] == 2
    assert not at.error
    assert "Mixture of experts" in " ".join(c.value for c in at.caption)
    assert at.query_params["tp"] == "2" and at.query_params["model"] == "mistralai/Mixtral-8x7B-v0.1"


def test_bad_link_values_warn_and_keep_the_rest():
    at = run_page({"prompt": "-4", "users": "lots", "tp": "2"})
    warnings = " ".join(w.value for w in at.warning)
    assert "prompt" in warnings and "users" in warnings
    assert at.session_state["srv_tp"] == 2 and at.session_state["srv_prompt_tokens"] == 1024


def test_model_that_does_not_fit_says_so_and_keeps_inputs():
    at = run_page({"model": "meta-llama/Meta-Llama-3-70B", "gpu": "L4", "users": "5"})
    assert any("does not fit" in e.value for e in at.error)
    assert at.session_state["srv_users"] == 5


def test_bad_config_is_a_message_not_a_traceback():
    at = run_page({"src": "config"})
    at.text_area(key="mem_config_text").set_value('{"model_type": "llama", "hidden_size": -3}').run()
    assert not at.exception
    assert at.error
    assert at.session_state["srv_prompt_tokens"] == 1024


def test_json_export_has_inputs_and_plan(default_page):
    button = next(d for d in default_page.get("download_button") if "JSON" in d.proto.label)
    assert button.proto.label
    from core.io import serving_url

    payload = json.loads(serving_capacity.plan_json({"a": 1}, None, [], serving_url.to_query_params(
        serving_url.defaults())))
    assert payload["query"]["model"] == "meta-llama/Meta-Llama-3-8B" and payload["plan"] == {"a": 1}


def test_request_rate_load_uses_littles_law():
    at = run_page({"load": "rate", "rps": "10"})
    assert any("138 concurrent users" in c.value for c in at.caption)
    assert at.query_params["rps"] == "10" and "users" not in at.query_params
    assert "138" in next(m.help for m in at.metric if m.label == "GPUs for the load")


def test_memory_planner_inputs_survive_a_visit():
    at = app_test("views/memory_planner.py")
    at.query_params["model"] = "google/gemma-2-9b"
    at.query_params["ctx"] = "8192"
    at.run()
    at.switch_page("serving.py").run()
    assert not at.exception
    assert at.session_state["mem_model"] == "google/gemma-2-9b"  # shared model choice
    assert at.session_state["mem_context"] == 8192  # a memory-only input kept while on /serving


def test_measurement_panel_links_to_the_serving_load_test_page(default_page):
    # It used to pass an env-var string to core.serve.load_test.run_load_test (which takes an Endpoint); the page does it.
    assert any("(/serving-load)" in m.value for m in default_page.markdown)


def test_the_speed_tab_shows_a_simulated_run_and_its_timeline(default_page):
    from core.serve.sim.catalog import catalog_engine
    from core.serve.sim.replay import Traffic, check_workload, replay

    at = default_page
    shown = metrics(at)
    assert "TTFT p50 / p90" in shown and "Preemptions" in shown
    kwargs = dict(prompt_tokens=1024, output_tokens=256)
    step_model, config = catalog_engine("meta-llama/Meta-Llama-3-8B", "A100 80GB SXM", **kwargs)
    row = replay(check_workload(1024, 256), 500, Traffic(concurrency=100), config, step_model).row
    assert shown["TTFT p50 / p90"] == f"{row['ttft_p50_s'] * 1e3:,.0f} / {row['ttft_p90_s'] * 1e3:,.0f} ms"
    titles = [json.loads(c.proto.spec)["layout"].get("annotations", [{}])[0].get("text")
              for c in at.get("plotly_chart")]
    assert "Batch of each step" in titles
