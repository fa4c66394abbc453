"""The Evaluate page under AppTest: runs the bundled SmolLM2 over zero- and few-shot prompts, shows the verdict, the
summary, every answer side by side and downloads; bad choices are explained, inputs kept."""
from core.evaluate import runner
from tests.apptest import app_test, stray_writes

PAGE = "views/evaluate.py"


def test_evaluate_runs_and_says_which_setup_is_best():
    at = app_test(PAGE, timeout=300)
    at.run()
    assert not at.exception and at.title[0].value == "Evaluate"
    for widget in (at.selectbox(key="ev_task"), at.multiselect(key="ev_techniques"), at.multiselect(key="ev_variants"),
                   at.button(key="ev_run"), at.button(key="ev_stop")):
        assert widget.proto.help
    at.multiselect(key="ev_techniques").set_value(["zero-shot", "few-shot"]).run()
    at.number_input(key="ev_limit_review-sentiment").set_value(4).run()
    at.button(key="ev_run").click().run()
    assert not at.exception and not at.error
    assert stray_writes(at) == []  # a bare expression once printed the run's EvalRun(...) above the verdict
    verdict = at.success[0].value
    assert verdict == runner.verdict(at.session_state["ev_result"])  # core's wording, ties named as ties
    assert verdict.startswith(("Best on this task: SmolLM2-135M fp32 · ",
                               "Best on this task: none, SmolLM2-135M fp32 · "))
    assert "few-shot" in verdict
    assert "4 items" in verdict and "1 items" not in verdict
    summary = at.dataframe[-1].value
    assert list(summary["technique"]) and set(summary["technique"]) == {"zero-shot", "few-shot"}
    assert (summary["items"] == 4).all()
    side_by_side = at.table[-1].value  # every answer in a wrapping table (issue 32: a grid cut summaries)
    assert len(side_by_side) == 4 and "SmolLM2-135M fp32 · few-shot" in side_by_side.columns
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download CSV", "Download JSON"]
    assert len(at.get("plotly_chart")) == 1


def test_empty_choices_are_explained_and_kept():
    at = app_test(PAGE)
    at.run()
    at.multiselect(key="ev_techniques").set_value([]).run()
    assert any("at least one prompt technique" in w.value for w in at.warning)
    assert at.button(key="ev_run").disabled
    at.multiselect(key="ev_variants").set_value([]).run()
    assert at.selectbox(key="ev_task").value == "review-sentiment" and not at.exception


def test_chain_of_thought_runs_from_the_page_and_shows_its_reasoning():
    at = app_test(PAGE, timeout=300)
    at.run()
    assert "zero-shot-cot" in at.multiselect(key="ev_techniques").options
    assert "zero-shot-cot" not in at.multiselect(key="ev_techniques").value  # slower: not run by default
    at.multiselect(key="ev_techniques").set_value(["zero-shot", "zero-shot-cot"]).run()
    at.number_input(key="ev_limit_review-sentiment").set_value(2).run()
    at.button(key="ev_run").click().run()
    assert not at.exception and not at.error
    assert any(e.label.startswith("Chain-of-thought reasoning (2 answers)") for e in at.expander)
    reasoning = [t.value for t in at.table if "reasoning" in t.value.columns][-1]  # wraps: long text is read whole
    assert len(reasoning) == 2 and reasoning["reasoning"].str.len().min() > 0


def test_a_pruned_variant_runs_from_the_page():
    at = app_test(PAGE, timeout=300)
    at.run()
    at.multiselect(key="ev_techniques").set_value(["zero-shot"]).run()
    at.multiselect(key="ev_variants").set_value(["fp32", "layers-4"]).run()
    at.number_input(key="ev_limit_review-sentiment").set_value(2).run()
    at.button(key="ev_run").click().run()
    assert not at.exception and not at.error
    summary = at.dataframe[-1].value
    assert set(summary["model"]) == {"SmolLM2-135M fp32", "SmolLM2-135M 4 layers removed"}


def test_the_endpoint_variant_without_a_server_says_so(monkeypatch):
    monkeypatch.delenv("LLM_LAB_ENDPOINTS", raising=False)
    at = app_test(PAGE)
    at.run()
    at.multiselect(key="ev_variants").set_value(["fp32", "endpoint"]).run()
    assert not at.exception
    assert any("No endpoint is configured" in i.value for i in at.info)
    assert any("Choose the endpoint" in w.value for w in at.warning)
    assert at.button(key="ev_run").disabled
    assert at.multiselect(key="ev_variants").value == ["fp32", "endpoint"]


def test_a_failed_run_shows_its_error_and_nothing_else(monkeypatch):
    """An endpoint that refuses the connection fails the run: the page says why, and no stray ``None`` (what magic
    wrote for the bare expression in the run's ``finally:``) follows the error."""
    monkeypatch.setenv("LLM_LAB_ENDPOINTS", '[{"name": "closed", "base_url": "http://127.0.0.1:9/v1", '
                                            '"model": "smollm2"}]')
    at = app_test(PAGE)
    at.run()
    at.multiselect(key="ev_techniques").set_value(["zero-shot"]).run()
    at.multiselect(key="ev_variants").set_value(["endpoint"]).run()
    at.number_input(key="ev_limit_review-sentiment").set_value(1).run()
    at.button(key="ev_run").click().run()
    assert not at.exception and at.error
    assert stray_writes(at) == []


def test_a_stopped_run_marks_the_setups_with_fewer_items():
    """Stop mid-run (the page's next rerun finds the run's partial rows): the setup cut short is named in the verdict,
    and the Stop notice counts its completions (issue 32)."""
    from core.evaluate.tasks import eval_task

    items = eval_task("review-sentiment").items
    partial = runner.EvalRun("review-sentiment")
    for technique, n in (("zero-shot", 4), ("few-shot", 1)):
        for i in range(n):
            partial.rows.append({"setup": f"m · {technique}", "model": "m", "technique": technique, "item": i,
                                 "input": items[i].input, "reference": items[i].reference, "completion": "positive",
                                 "reasoning": "", "seconds": 0.1, "answer": "positive",
                                 "correct": items[i].reference == "positive"})
    at = app_test(PAGE)
    at.session_state["ev_partial"] = partial
    at.session_state["ev_planned"] = 8  # what the page said before the run: 2 setups × 4 items
    at.run()
    assert not at.exception and stray_writes(at) == []
    assert any(w.value == "Stopped after 5 of 8 completions; the finished ones are scored below."
               for w in at.warning)
    verdict = at.success[0].value
    assert "m · few-shot was scored on only 1 item, the others on 4 (the run was stopped)" in verdict
    assert verdict == runner.verdict(at.session_state["ev_result"])


def test_log_likelihood_mode_scores_with_stderr_compares_and_exports():
    at = app_test(PAGE, timeout=600)
    at.run()
    at.radio(key="ev_mode").set_value("Log-likelihood (lm-eval)").run()
    assert not at.exception
    for widget in (at.selectbox(key="ll_task"), at.multiselect(key="ll_variants"), at.button(key="ll_run")):
        assert widget.proto.help
    at.selectbox(key="ll_task").set_value("llmlab_facts").run()
    at.number_input(key="ll_limit_llmlab_facts").set_value(6).run()
    at.multiselect(key="ll_variants").set_value(["fp32", "layers-4"]).run()
    at.button(key="ll_run").click().run()
    assert not at.exception and not at.error
    runs = at.session_state["ll_runs"]
    assert set(runs) == {"fp32", "layers-4"} and all(len(r.items) == 6 for r in runs.values())
    scores = at.dataframe[0].value
    assert all(" ± " in v for v in scores["acc"])
    assert at.success[0].value.startswith("SmolLM2-135M fp32 vs SmolLM2-135M 4 layers removed: ")
    assert "significant" in at.success[0].value
    diff = at.dataframe[1].value
    assert len(diff) == 6 and {"A logliks", "B logliks", "flips"} <= set(diff.columns)
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Download lm-eval results JSON", "Download CSV"]


def test_log_likelihood_mode_explains_missing_choices():
    at = app_test(PAGE)
    at.run()
    at.radio(key="ev_mode").set_value("Log-likelihood (lm-eval)").run()
    at.multiselect(key="ll_variants").set_value([]).run()
    assert any("at least one model variant" in w.value for w in at.warning) and at.button(key="ll_run").disabled
    at.selectbox(key="ll_task").set_value("(upload your own items)").run()
    assert any("Upload a task file" in w.value for w in at.warning) and not at.exception
