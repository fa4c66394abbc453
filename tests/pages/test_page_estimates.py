"""Issue 32: every long action says before it starts about how long it will take, from the pace measured here
once there is one (core.common.pace), else from a stated prior; the count it names is the run's own."""
import pytest

from core.common import pace
from tests.apptest import app_test


@pytest.fixture(autouse=True)
def no_pace_yet():
    pace.forget()
    yield
    pace.forget()


def test_a_pace_is_measured_per_unit_and_scaled_to_the_units_planned():
    first = pace.estimate("k", 10, "variant", 5.8, "the default study took 58 s")
    assert first["seconds"] == pytest.approx(58.0) and first["measured"] is False
    assert first["text"] == ("About 58.0 s for 10 variants, at about 5.80 s per variant (the default study took 58 s; "
                             "nothing measured here yet).")
    assert pace.record("k", 12.0, 4) == 3.0 and pace.record("k", 1.0, 0) is None and pace.measured("k") == 3.0
    after = pace.estimate("k", 1, "variant", 5.8, "unused")
    assert after["seconds"] == 3.0 and after["measured"] is True
    assert after["text"] == "About 3.00 s for 1 variant, at 3.00 s per variant, the pace last measured here."


def _captions(at) -> str:
    return " ".join(c.value for c in at.caption)


def test_optimize_says_how_many_variants_and_how_long_before_pruning():
    at = app_test("views/optimize.py")
    at.run()
    assert not at.exception
    # default: dense + magnitude and Wanda at 4 sparsities + layer removal = 10 variants
    assert "for 10 variants, at about 5.80 s per variant" in _captions(at)
    at.multiselect(key="op_methods").set_value(["remove-layers"]).run()
    assert "About 11.6 s for 2 variants" in _captions(at)
    pace.record("optimize.pruned-variant", 30.0, 10)
    at.run()
    assert "About 6.00 s for 2 variants, at 3.00 s per variant, the pace last measured here." in _captions(at)
    assert "No distillation step measured here yet" in _captions(at)
    pace.record("optimize.distillation-step", 8.0, 4)
    at.run()
    assert "About 60.0 s for 30 steps, at 2.00 s per step, the pace last measured here" in _captions(at)


def test_evaluate_says_how_many_completions_and_how_long_before_running():
    at = app_test("views/evaluate.py")
    at.run()
    assert not at.exception
    assert "About 9.84 s for 24 completions" in _captions(at)  # 3 techniques × 1 variant × 8 items at 0.41 s
    at.selectbox(key="ev_task").set_value("dialogue-summarization").run()
    assert "completions, at about 1.50 s per completion (3.8 × a one-word label's" in _captions(at)


def test_core_says_the_size_and_time_of_a_study_and_of_an_evaluation():
    from core.evaluate import runner
    from core.optimize import variants

    study = variants.study_estimate(["magnitude", "wanda", "remove-layers"], [0.1, 0.3, 0.5, 0.7])
    assert study["variants"] == 10 == len(variants.study_plan(["magnitude", "wanda", "remove-layers"],
                                                              [0.1, 0.3, 0.5, 0.7]))
    assert study["seconds"] == pytest.approx(58.0) and not study["measured"]
    evaluation = runner.run_estimate("review-sentiment", 24)
    assert evaluation["seconds"] == pytest.approx(24 * 0.41) and "24 completions" in evaluation["text"]
    pace.record(f"{runner.EVAL_PACE}.review-sentiment", 12.0, 24)
    assert runner.run_estimate("review-sentiment", 48)["seconds"] == pytest.approx(24.0)
