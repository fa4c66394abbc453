"""The Generate page under Streamlit's AppTest, with the real bundled SmolLM2."""
import json
import re

import pytest
import torch

from core.run.models import BUNDLED_DECODER, BUNDLED_ENCODER
from tests.apptest import app_test


def fresh_page():
    at = app_test("views/generate.py", timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def expander_labels(at):
    return [e.label for e in at.expander]


def test_page_loads_the_bundled_model_and_shows_the_prompt():
    at = fresh_page()
    assert at.title[0].value == "Generate"
    assert any("134.5 M parameters" in c.value and "8,192" in c.value for c in at.caption)
    assert any("tokens of 8,192" in label for label in expander_labels(at))
    assert at.number_input(key="gen_top_k").value == 50  # GenerationConfig default
    assert at.slider(key="gen_temperature").value == 1.0
    assert at.radio(key="gen_mode").value == "greedy"


def test_generate_streams_a_completion_and_inspects_steps():
    at = fresh_page()
    at.number_input(key="gen_max_new").set_value(4)
    at.button(key="gen_run").click().run()
    assert not at.exception, at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Generated"] == "4 tokens"
    assert metrics["Finished by"] == "token limit"
    assert re.fullmatch(r"[\d.]+ (ms|s)", metrics["Time to first token"]), metrics["Time to first token"]
    html = "".join(md.value for md in at.markdown)
    assert "Par" in html and "background:hsl(" in html
    assert any(c["layout"]["title"]["text"].startswith("Step 0") for c in charts(at) if c["layout"].get("title"))
    step_slider = next(s for s in at.slider if s.key and s.key.endswith("_step"))
    step_slider.set_value(2).run()
    assert not at.exception
    titles = [c["layout"]["title"]["text"] for c in charts(at) if c["layout"].get("title")]
    assert any(t.startswith("Step 2") for t in titles)
    assert len(at.get("download_button")) >= 2


def shown_tokens(at):
    """(token, candidates) per generated step, read from the coloured text's hover titles."""
    html = next(md.value for md in at.markdown if "background:hsl(" in md.value)
    return re.findall(r'title="step \d+: (.*?) · model p=.*? · (\d+) candidates"', html)


def test_sampling_with_top_k_one_matches_greedy_on_the_page():
    at = fresh_page()
    at.number_input(key="gen_max_new").set_value(3)
    at.button(key="gen_run").click().run()
    greedy = shown_tokens(at)
    at.radio(key="gen_mode").set_value("sampling").run()
    at.number_input(key="gen_top_k").set_value(1)
    at.slider(key="gen_temperature").set_value(1.5)
    at.button(key="gen_run").click().run()
    assert not at.exception
    sampled = shown_tokens(at)
    assert len(greedy) == 3 and [t for t, _ in sampled] == [t for t, _ in greedy]
    assert [c for _, c in sampled] == ["1", "1", "1"]


def test_empty_prompt_is_a_message_not_a_traceback():
    at = fresh_page()
    at.text_area(key="gen_prompt").set_value("   ").run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    assert at.button(key="gen_run").disabled


def test_in_context_learning_builder_shows_the_exact_prompt():
    at = fresh_page()
    at.radio(key="gen_prompt_source").set_value("In-context learning builder").run()
    assert not at.exception
    code = at.code[0].value
    assert code.count("Classify this review:") == 4 and code.endswith("Sentiment:")
    few_label = next(l for l in expander_labels(at) if "tokens of" in l)
    at.radio(key="gen_icl_shots").set_value("zero-shot").run()
    assert at.code[0].value.count("Classify this review:") == 1
    zero_label = next(l for l in expander_labels(at) if "tokens of" in l)
    assert int(zero_label.split("—")[1].split("tokens")[0].replace(",", "")) < \
        int(few_label.split("—")[1].split("tokens")[0].replace(",", ""))
    at.selectbox(key="gen_icl_task").set_value("dialogue-summarization").run()
    assert at.code[0].value.endswith("Summary:")


def test_chat_template_toggle_changes_the_prompt():
    at = fresh_page()
    at.toggle(key="gen_chat").set_value(True).run()
    assert not at.exception
    assert "<|im_start|>assistant" in at.code[0].value


def test_shape_the_distribution_runs_the_model_only_when_asked():
    """A page rerun (any control, any tab) does not run the model for the Shape view: a 20,000-character prompt made
    every rerun wait for that forward pass. It runs on its button, once per (model, prompt)."""
    at = fresh_page()
    assert "shape_logits" not in at.session_state
    assert "Entropy (model)" not in {m.label for m in at.metric}
    assert at.button(key="shape_run").label == "Compute the next-token distribution"
    at.button(key="shape_run").click().run()
    assert not at.exception
    assert "Entropy (model)" in {m.label for m in at.metric}
    computed = at.session_state["shape_logits"]
    at.slider(key="shape_temperature").set_value(1.5).run()  # redraw: the stored forward pass is reused
    assert at.session_state["shape_logits"] is computed
    at.text_area(key="gen_prompt").set_value("A different prompt").run()
    assert "Entropy (model)" not in {m.label for m in at.metric}  # a new prompt waits for the button again
    assert any("changed since the last computation" in c.value for c in at.caption)


def test_shape_the_distribution_redraws_without_generating():
    at = fresh_page()
    at.button(key="shape_run").click().run()
    before = {m.label: m.value for m in at.metric}
    at.slider(key="shape_temperature").set_value(2.0).run()
    after = {m.label: m.value for m in at.metric}
    assert float(after["Entropy (sampled from)"].split()[0]) > float(before["Entropy (sampled from)"].split()[0])
    at.slider(key="shape_top_k").set_value(1).run()
    assert {m.label: m.value for m in at.metric}["Candidate tokens"] == "1"
    at.slider(key="shape_temperature").set_value(0.0).run()
    assert any("greedy" in i.value for i in at.info)
    assert not at.exception


def test_compare_runs_settings_side_by_side():
    at = fresh_page()
    at.slider(key="cmp_count").set_value(2)
    at.number_input(key="cmp_max_new").set_value(3)
    at.selectbox(key="cmp_mode_1").set_value("sampling")
    at.slider(key="cmp_temperature_1").set_value(0.0)
    at.button(key="cmp_run").click().run()
    assert not at.exception
    headers = [md.value for md in at.markdown if md.value.startswith("**A:") or md.value.startswith("**B:")]
    assert len(headers) == 2
    # temperature 0 in setting B is explained and decoded greedily, so both columns show the same tokens
    assert any("greedy" in c.value for c in at.caption)
    assert any("3 tokens" in c.value for c in at.caption)
    completions = [md.value for md in at.markdown if md.value.startswith('<div style="font-family')]
    assert len(completions) == 2 and completions[0] == completions[1]


@pytest.mark.parametrize("name, expected", [("no-such-org/missing-model", BUNDLED_DECODER), ("minilm", "encoder")])
def test_unusable_models_give_clear_errors(name, expected):
    at = fresh_page()
    at.text_input(key="gen_model").set_value(name).run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert expected in errors
    if name == "minilm":
        assert BUNDLED_ENCODER in errors


def test_beam_search_runs_on_the_page_with_a_note():
    at = fresh_page()
    at.radio(key="gen_mode").set_value("beam search").run()
    at.number_input(key="gen_beams").set_value(2)
    at.number_input(key="gen_max_new").set_value(3)
    at.button(key="gen_run").click().run()
    assert not at.exception
    assert any("not streamed" in i.value for i in at.info)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Generated"] == "3 tokens"
    # speed over the whole run, and the page says why there is no per-token timing
    assert metrics["Speed"].endswith("tokens/s") and metrics["Time to first token"] == "—"
    assert any("Beam search is not streamed" in c.value and "3 tokens over the whole" in c.value for c in at.caption)


def test_fast_generation_tab_is_offered_and_explains_itself_without_a_gpu():
    at = fresh_page()
    assert "Fast generation (GPU)" in [s.value for s in at.subheader]
    if not torch.cuda.is_available():
        infos = " ".join(m.value for m in at.info)
        assert "Fast generation (static cache + torch.compile) runs on a CUDA GPU; this model is on the CPU." in infos
