"""Quantization page under Streamlit's AppTest: the form renders, a small real comparison (fp32 + bf16 of the bundled
SmolLM2) fills the table, charts, diffs and CSV, and bad input shows a message while keeping the other inputs."""
import json

import pytest

from tests.apptest import app_test

PAGE = "views/quantization.py"


def _texts(elements) -> str:
    return " ".join(str(e.value) for e in elements)


def _small_run(at, variants=("fp32", "bf16")):
    at.multiselect(key="q_variants").set_value(list(variants))
    at.slider(key="q_max_new_tokens").set_value(3)
    at.slider(key="q_reference_tokens").set_value(24)
    at.button(key="q_run").click().run()
    return at


def _tradeoff_y_title(at) -> str:
    """Vertical-axis title of the memory-vs-quality chart (the first chart of the results)."""
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    return spec["layout"]["yaxis"]["title"]["text"]


@pytest.fixture(scope="module")
def ran_page():
    at = app_test(PAGE, timeout=600)
    at.run()
    assert not at.exception
    return _small_run(at)


def test_form_renders_with_help_on_every_control():
    at = app_test(PAGE)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Quantization"
    assert at.text_input(key="q_model").value == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert at.multiselect(key="q_variants").value == ["fp32", "bf16", "int8", "nf4"]
    assert set(at.multiselect(key="q_variants").options) == {"fp32", "fp16", "bf16", "int8", "nf4", "fp4"}
    for widget in [at.text_input(key="q_model"), at.multiselect(key="q_variants"), at.text_area(key="q_prompt"),
                   at.slider(key="q_max_new_tokens"), at.slider(key="q_reference_tokens"),
                   at.number_input(key="q_seed"), at.checkbox(key="q_double_quant"),
                   at.selectbox(key="q_compute_dtype"), at.selectbox(key="q_unquantized_dtype"),
                   at.checkbox(key="q_chat_template"), at.checkbox(key="q_fresh"),
                   at.text_area(key="q_reference_text")]:
        assert widget.help, widget.key
    assert "Run comparison" in _texts(at.info)  # nothing has run yet: the page says what to do
    assert len(at.dataframe) == 0


def test_small_comparison_shows_table_metrics_and_outputs(ran_page):
    at = ran_page
    assert not at.exception
    assert len(at.error) == 0, _texts(at.error)
    memory_table, quality_table = at.dataframe[0].value, at.dataframe[1].value
    assert list(memory_table["Variant"]) == ["fp32", "bf16"] == list(quality_table["Variant"])
    fp32, bf16 = memory_table.iloc[0], memory_table.iloc[1]
    assert fp32["Weights (MB)"] == pytest.approx(538.06, rel=0.001)
    assert bf16["Weights (MB)"] == pytest.approx(fp32["Weights (MB)"] / 2, rel=0.001)
    assert abs(bf16["Error (%)"]) < 1
    assert bf16["Speed (tok/s)"] > 0 and bf16["Load (s)"] > 0
    assert quality_table["KL mean (nats)"][0] == 0 and quality_table["KL mean (nats)"][1] > 0
    assert quality_table["Perplexity"][0] > 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["fp32"].endswith("MB") and metrics["bf16"].endswith("MB")
    markdown = _texts(at.markdown)
    assert "fp32" in markdown and "bf16" in markdown and "<span" in markdown  # side-by-side token diffs
    assert "baseline" in _texts(at.caption)


def test_changing_the_output_kind_changes_the_shown_tokens(ran_page):
    at = ran_page
    greedy = _texts(at.markdown)
    at.radio(key="q_output_kind").set_value("sampled").run()
    assert not at.exception
    assert _texts(at.markdown) != greedy
    # results were cached, not recomputed: the table is still there
    assert list(at.dataframe[0].value["Variant"]) == ["fp32", "bf16"]
    assert len(at.get("download_button")) == 1
    tradeoff_axis = _tradeoff_y_title(at)
    at.radio(key="q_quality_metric").set_value("delta_ppl").run()
    assert not at.exception
    assert tradeoff_axis.startswith("KL divergence")
    assert _tradeoff_y_title(at) == "ΔPPL vs baseline (perplexity points)"  # the chart follows the radio


def test_no_variant_shows_a_message_and_keeps_other_inputs():
    at = app_test(PAGE)
    at.run()
    at.text_area(key="q_prompt").set_value("My own prompt")
    at.multiselect(key="q_variants").set_value([])
    at.button(key="q_run").click().run()
    assert not at.exception
    assert "at least one variant" in _texts(at.error)
    assert at.text_area(key="q_prompt").value == "My own prompt"


def test_empty_prompt_and_unknown_model_show_messages():
    at = app_test(PAGE, timeout=180)
    at.run()
    at.text_area(key="q_prompt").set_value("   ")
    at.button(key="q_run").click().run()
    assert not at.exception
    assert "prompt is empty" in _texts(at.error)

    at.text_area(key="q_prompt").set_value("Hello")
    at.text_input(key="q_model").set_value("no-such-org/no-such-model")
    at.multiselect(key="q_variants").set_value(["fp32"])
    at.button(key="q_run").click().run()
    assert not at.exception
    errors = _texts(at.error)
    assert "no-such-org/no-such-model" in errors and "bundled" in errors
    assert at.text_input(key="q_model").value == "no-such-org/no-such-model"


def test_encoder_model_is_refused_with_a_message():
    at = app_test(PAGE)
    at.run()
    at.text_input(key="q_model").set_value("minilm")
    at.button(key="q_run").click().run()
    assert not at.exception
    assert "encoder" in _texts(at.error)
