"""The Optimize page under AppTest on the bundled SmolLM2: pruning measured (zeros cost the same bytes, removed layers
fewer), soft labels, a short prune-then-distil run that lowers the student's KL, and the line-up of fp32, int8, NF4,
pruned and distilled with a task score; bad choices are explained and inputs kept."""
import json

from tests.apptest import app_test

PAGE = "views/optimize.py"


def _frame(at, column):
    """The last table on the page with ``column`` (AppTest lists dataframes in page order, not by key)."""
    return [d.value for d in at.dataframe if column in d.value.columns][-1]


def test_prune_distil_and_line_up():
    at = app_test(PAGE, timeout=600)
    at.run()
    assert not at.exception and at.title[0].value == "Optimize"
    for widget in (at.multiselect(key="op_methods"), at.multiselect(key="op_sparsities"),
                   at.number_input(key="op_remove"), at.button(key="op_prune_run"), at.button(key="op_prune_stop"),
                   at.slider(key="op_temperature"), at.number_input(key="op_d_steps"),
                   at.select_slider(key="op_d_lr"), at.button(key="op_distil_run"),
                   at.multiselect(key="op_lineup_kinds"), at.number_input(key="op_task_items")):
        assert widget.proto.help
    at.multiselect(key="op_methods").set_value(["magnitude", "2:4-wanda", "remove-layers"]).run()
    at.multiselect(key="op_sparsities").set_value([30, 60]).run()
    at.button(key="op_prune_run").click().run()
    assert not at.exception and not at.error
    table = _frame(at, "Zeros (%)").set_index("Variant")
    assert list(table.index) == ["dense (fp32)", "magnitude 30 %", "magnitude 60 %", "2:4-wanda 50 %",
                                 "4 layers removed"]
    assert table.loc["dense (fp32)", "Perplexity"] < table.loc["magnitude 30 %", "Perplexity"] \
        < table.loc["magnitude 60 %", "Perplexity"]
    assert table.loc["magnitude 60 %", "Weights (MB)"] == table.loc["dense (fp32)", "Weights (MB)"]
    assert table.loc["4 layers removed", "Weights (MB)"] < table.loc["dense (fp32)", "Weights (MB)"]
    answers = [t.value for t in at.table if "answer" in t.value.columns][-1]  # a wrapping table, not a grid
    assert len(answers) == 5

    at.button(key="op_soft_run").click().run()
    soft = _frame(at, "p at T=1 (%)")
    assert soft["p at T=1 (%)"].sum() > 99.9 and soft.iloc[0]["p at T=2 (%)"] < soft.iloc[0]["p at T=1 (%)"]
    at.number_input(key="op_d_steps").set_value(4).run()
    at.select_slider(key="op_d_seq").set_value(64).run()
    at.button(key="op_distil_run").click().run()
    assert not at.exception and not at.error
    scores = _frame(at, "KL to teacher (nats)").set_index("model")
    assert scores.loc["distilled student", "KL to teacher (nats)"] < scores.loc["pruned student",
                                                                                "KL to teacher (nats)"]
    assert "recovered" in at.success[0].value

    at.multiselect(key="op_lineup_kinds").set_value(["fp32", "int8", "nf4", "pruned", "distilled"]).run()
    at.number_input(key="op_task_items").set_value(3).run()
    at.button(key="op_lineup_run").click().run()
    assert not at.exception and not at.error
    lineup = _frame(at, "Review sentiment, few-shot (% correct)").set_index("Variant")
    assert list(lineup.index) == ["fp32 (dense)", "int8 (bitsandbytes)", "nf4 (bitsandbytes)",
                                  "pruned: 4 layers removed", "distilled student"]
    weights = lineup["Weights (MB)"]
    assert weights["nf4 (bitsandbytes)"] < weights["int8 (bitsandbytes)"] < weights["fp32 (dense)"]
    assert lineup.loc["distilled student", "Layers"] == 24 and lineup["Parameters (M)"].iloc[:3].nunique() == 1
    assert lineup["Review sentiment, few-shot (% correct)"].notna().all()
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels.count("Download CSV") == 2 and labels.count("Download JSON") == 3


def test_empty_choices_and_a_missing_model_are_explained_and_kept():
    at = app_test(PAGE)
    at.run()
    at.multiselect(key="op_methods").set_value([]).run()
    assert any("at least one pruning method" in w.value for w in at.warning)
    assert at.button(key="op_prune_run").disabled
    at.multiselect(key="op_methods").set_value(["wanda"]).run()
    at.multiselect(key="op_sparsities").set_value([]).run()
    assert any("at least one sparsity" in w.value for w in at.warning)
    at.multiselect(key="op_methods").set_value(["remove-layers"]).run()
    at.text_input(key="op_model").set_value("no-such-org/no-such-model").run()
    at.button(key="op_prune_run").click().run()
    assert not at.exception and at.error and "no-such-org/no-such-model" in at.error[0].value
    assert at.text_input(key="op_model").value == "no-such-org/no-such-model"
    assert at.multiselect(key="op_methods").value == ["remove-layers"]


def test_a_long_paste_keeps_the_first_2000_characters_and_says_so():
    """Issue 32: 10,000 characters pasted into a 2,000-character prompt emptied the field (the browser drops an edit
    over Streamlit's max_chars) and the page said "The prompt is empty". The fields have no browser limit now; the
    page keeps the first 2,000 characters, in the field too, and says so until the field is edited again."""
    at = app_test(PAGE)
    at.run()
    pasted = "".join(f"word{i} " for i in range(2000))[:10_000]
    for key, what in (("op_prompt", "The prompt"), ("op_soft_prompt", "The teacher's prompt")):
        field = at.text_input(key=key)
        assert not field.proto.max_chars and "2,000 characters" in field.proto.help
        field.set_value(pasted).run()
        assert not at.exception
        assert at.text_input(key=key).value == pasted[:2000]
        assert any(w.value == f"{what} had 10,000 characters, more than the 2,000 allowed: the first 2,000 are kept."
                   for w in at.warning)
    assert not any("prompt is empty" in w.value for w in at.warning) and not at.button(key="op_prune_run").disabled
    at.multiselect(key="op_methods").set_value(["remove-layers"]).run()  # another control: the notes stay
    assert sum("10,000 characters" in w.value for w in at.warning) == 2
    at.text_input(key="op_prompt").set_value("A short prompt").run()
    assert at.text_input(key="op_prompt").value == "A short prompt"
    assert [w.value for w in at.warning if "10,000 characters" in w.value] == [
        "The teacher's prompt had 10,000 characters, more than the 2,000 allowed: the first 2,000 are kept."]
    at.text_input(key="op_prompt").set_value("").run()
    assert any("The prompt is empty" in w.value for w in at.warning)  # a prompt really emptied is still refused


def _display(at, column):
    """What the last table with ``column`` shows in that column (its Styler's display values), as text."""
    import pyarrow as pa

    frame = [d for d in at.dataframe if column in d.value.columns][-1]
    shown = pa.ipc.open_stream(frame.proto.arrow_data.styler.display_values).read_all().to_pandas()
    return list(shown[column])


def test_layer_removal_alone_reads_well_and_a_refusal_leaves_no_progress_bar():
    """Issue 32: 30 of 30 layers is refused without a stale "Measuring the dense model…" bar above the message; 29
    removed reads "× 10²⁶" in the table, not 8.72e+26, under one KL name, and with no sparsity (layer removal adds
    no zeros) there is a caption instead of one-dot charts."""
    at = app_test(PAGE, timeout=600)
    at.run()
    at.multiselect(key="op_methods").set_value(["remove-layers"]).run()
    at.number_input(key="op_remove").set_value(30).run()
    at.button(key="op_prune_run").click().run()
    assert not at.exception and "between 1 and 29" in at.error[0].value
    assert not at.get("progress")
    at.number_input(key="op_remove").set_value(29).run()
    at.button(key="op_prune_run").click().run()
    assert not at.exception and not at.error and not at.get("progress")
    table = _frame(at, "Zeros (%)")
    assert "KL to the dense model (nats)" in table.columns and "KL to fp32 (nats)" not in table.columns
    assert table["Perplexity"].iloc[1] > 1e6  # a number underneath, so the column still sorts
    shown = _display(at, "Perplexity")
    columns = json.loads([d for d in at.dataframe if "Zeros (%)" in d.value.columns][-1].proto.columns)
    assert columns["Perplexity"]["type_config"]["type"] == "text"  # a number column flags "8.72 × 10²⁶" invalid
    assert "× 10" in shown[1] and "e+" not in shown[1] and "." in shown[0] and "×" not in shown[0]
    assert not [c for c in at.get("plotly_chart") if "op_sparsity" in str(c.proto.id)]
    assert any("No chart against sparsity" in c.value for c in at.caption)
