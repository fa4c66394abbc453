"""Issue 32's fine-tune findings without training a model: the loss chart's axes hold the data with round ticks and
its legend covers no point, the status line says the state once, and a run's time is estimated before it starts
(from the measured pace, or a stated assumption)."""
import pytest

from core.finetune import pace
from core.finetune.charts import loss_curve_figure, nice_axis
from core.finetune.results import FinetuneProgress, FinetuneStep
from core.finetune.settings import FinetuneSettings, check_settings

ROWS = [{"step": 1, "loss": 3.387, "tokens_per_s": 72.8}, {"step": 2, "loss": 2.9, "tokens_per_s": 48.6},
        {"step": 3, "loss": 2.1, "tokens_per_s": 24.3}]


def test_the_first_loss_is_inside_the_axis_and_the_legend_is_below_the_plot():
    fig = loss_curve_figure(ROWS, 12)
    low, high = fig.layout.yaxis.range
    assert low == 0 and high >= 3.387 * 1.05  # 3.387 sat above an autoranged 0–3 axis
    legend = fig.layout.legend
    assert legend.orientation == "h" and legend.yanchor == "top" and legend.y < 0  # under the plot, over no point


def test_the_speed_axis_has_round_ticks_with_its_unit():
    fig = loss_curve_figure(ROWS, 12)
    axis = fig.layout.yaxis2
    assert axis.range[0] == 0 and axis.range[1] >= 72.8 and axis.tick0 == 0
    assert axis.dtick in (10, 20, 25, 50) and axis.range[1] % axis.dtick == 0  # 0, 20, 40, 60, 80: not 72.8 / 48.6
    assert axis.tickformat == ",.0f" and "tokens/s" in axis.title.text


@pytest.mark.parametrize("values, expected", [([3.387], (4, 1)), ([72.8, 48.6], (80, 20)), ([1234], (1500, 500)),
                                              ([], (1.5, 0.5))])
def test_nice_axis(values, expected):
    assert nice_axis(values) == pytest.approx(expected)


@pytest.mark.parametrize("phase, message, head", [("training", "Training…", "Training… step 3/12"),
                                                  ("done", "Finished.", "Finished: step 3/12"),
                                                  ("loading", "", "Loading: step 3/12")])
def test_the_status_line_says_the_state_once(phase, message, head):
    line = FinetuneProgress(phase, 3, 12, 2.5, 210.0, 5.0, message).status_line()
    assert line.startswith(head) and "loss 2.500" in line
    assert line.lower().count(phase[:4]) <= 1 and "done" not in line  # not "Training… training", "Finished. done"


def test_an_estimate_before_any_run_states_its_assumption():
    pace.forget_paces()
    settings = FinetuneSettings(steps=10_000)
    estimate = pace.estimate_run(settings, check_settings(settings, free_bytes=16e9))
    assert estimate["measured"] is False and estimate["seconds"] > 3600
    assert "assumed" in estimate["text"] and "no run has been measured" in estimate["text"]
    assert "10,000 steps" in estimate["text"] and " h " in estimate["text"]


def test_the_estimate_follows_the_last_measured_pace_scaled_to_the_batch():
    pace.forget_paces()
    try:
        steps = [FinetuneStep(1, 3.4, 240, 9.0, 9.0), FinetuneStep(2, 3.0, 240, 2.4, 11.4),
                 FinetuneStep(3, 2.6, 240, 2.4, 13.8)]
        record = pace.record_pace("lora", "cpu", steps, batch_size=4)
        assert record["s_per_step"] == pytest.approx(2.4)  # the warm-up step left out
        estimate = pace.estimate_run(FinetuneSettings(steps=1000, batch_size=8, seq_len=80))
        per_step = 2.4 / 240 * 8 * pace.EXAMPLE_TOKENS
        assert estimate["measured"] and estimate["s_per_step"] == pytest.approx(per_step)
        assert estimate["seconds"] == pytest.approx(1000 * per_step)
        assert "last measured here" in estimate["text"] and "about" in estimate["text"]
        assert pace.estimate_run(FinetuneSettings(method="prompt-tuning"))["measured"] is None  # lora's pace only
    finally:
        pace.forget_paces()
