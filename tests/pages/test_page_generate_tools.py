"""The Generate page's new tools under AppTest with the real SmolLM2: more samplers, each processor's effect,
branching from a token, and the standalone HTML export of the per-token view."""
import json

from tests.apptest import app_test


def fresh_page():
    at = app_test("views/generate.py", timeout=300)
    at.run()
    assert not at.exception, at.exception
    return at


def charts(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def titles(at):
    out = []
    for spec in charts(at):
        title = spec["layout"].get("title", {})
        out.append(title.get("text", "") if isinstance(title, dict) else str(title))
    return out


def test_more_samplers_are_disabled_with_the_reason_outside_sampling():
    at = fresh_page()
    assert at.slider(key="gen_min_p").disabled and "greedy decoding" in at.slider(key="gen_min_p").help
    assert not at.number_input(key="gen_ngram").disabled  # acts in every mode
    at.radio(key="gen_mode").set_value("sampling").run()
    assert not at.slider(key="gen_min_p").disabled
    assert any("contrastive search, DoLa and group beam search" in c.value for c in at.caption)


def test_shape_tab_draws_one_panel_per_processor_in_generates_order():
    at = fresh_page()
    at.button(key="shape_run").click().run()  # the Shape view runs its forward pass only on this button
    at.slider(key="shape_min_p").set_value(0.2)
    at.slider(key="shape_top_p").set_value(0.9).run()
    assert not at.exception
    spec = next(s for s in charts(at) if "after each processor" in str(s["layout"].get("title", "")))
    panels = [a["text"].split("<br>")[0] for a in spec["layout"]["annotations"]]
    assert panels == ["model (raw softmax)", "1. top-k", "2. top-p", "3. min-p"]


def test_branch_from_a_token_and_export_the_per_token_view():
    at = fresh_page()
    at.number_input(key="gen_max_new").set_value(5)
    at.button(key="gen_run").click().run()
    assert not at.exception, at.exception
    labels = [b.label for b in at.get("download_button")]
    assert "Per-token view as standalone HTML" in labels
    html_button = next(b for b in at.get("download_button") if b.label == "Per-token view as standalone HTML")
    assert html_button.proto.label  # rendered
    go = next(b for b in at.button if b.key and b.key.endswith("_branch_go"))
    go.click().run()
    assert not at.exception, at.exception
    rows = at.dataframe[-1].value
    assert list(rows["branch"]) == [0, 1] and rows["fork_step"].iloc[1] == 0
    assert rows["completion"].iloc[0] != rows["completion"].iloc[1]
    assert any(t.startswith("How likely the model found") for t in titles(at))
    toggle = next(t for t in at.toggle if t.key and t.key.endswith("_pipeline_on"))
    toggle.set_value(True).run()
    assert not at.exception
    assert any("the distribution after each processor (greedy)" in t for t in titles(at))


def test_speculative_panel_compares_methods_and_proves_identical_output():
    at = fresh_page()
    at.radio(key="spec_prompt").set_value("copying")
    at.number_input(key="spec_tokens").set_value(8)
    at.button(key="spec_run").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert list(table["method"]) == ["plain greedy decoding", "prompt-lookup decoding",
                                     "assisted generation (draft model)"]
    assert table["same_tokens_as_plain"].all()
    assert table["tokens_per_forward"].iloc[1] > 1.0
    assert any("Identical output" in s.value for s in at.success)


def test_reasoning_techniques_show_token_costs():
    at = fresh_page()
    at.radio(key="gen_prompt_source").set_value("Reasoning techniques").run()
    at.selectbox(key="gen_technique").set_value("zero-shot-cot").run()
    assert not at.exception
    costs = at.dataframe[0].value
    assert len(costs) == 6 and (costs["prompt_tokens"] > 0).all()
    assert any("Let's think step by step." in c.value for c in at.code)
