"""The Multi-GPU tab's tensor / pipeline choice under Streamlit's AppTest: the layouts are offered with their
predictions and formulas, a layout that does not divide is refused in words, and a real TP run shows each rank's
measured peak and bytes beside the predictions and the torchrun command for the same layout on a cluster."""
from __future__ import annotations

import pytest

from tests.pages.test_page_memory_planner import _frame_with, run_page


def _model_mode():
    at = run_page()
    at.radio(key="dist_mode").set_value("model").run()
    assert not at.exception
    return at


def test_the_tab_offers_tp_pp_and_tp_x_pp_with_their_predictions():
    at = _model_mode()
    assert at.multiselect(key="dist_layouts").proto.help and at.number_input(key="dist_micro").proto.help
    predicted = _frame_with(at, "predicted peak per rank (MB)")
    assert list(predicted["strategy"]) == ["TP", "PP (1F1B)"]
    assert (predicted["sent per rank per step (MB)"] > 0).all()
    at.multiselect(key="dist_layouts").set_value(["tp", "pp_gpipe", "pp_1f1b", "tp_pp"]).run()
    # TP × PP needs 4 ranks: refused in a sentence, nothing to run
    assert any("TP × PP needs an even number of ranks, at least 4" in w.value for w in at.warning)
    assert at.button(key="dist_run").disabled and not at.exception
    at.number_input(key="dist_world").set_value(4).run()
    # four pipeline stages need four micro-batches: said, then set
    assert any("4 pipeline stages need at least 4 micro-batches per step" in w.value for w in at.warning)
    at.number_input(key="dist_micro").set_value(4).run()
    predicted = _frame_with(at, "predicted peak per rank (MB)")
    assert list(predicted["strategy"]) == ["TP", "PP (GPipe)", "PP (1F1B)", "TP × PP"]
    assert not at.button(key="dist_run").disabled


def test_a_layout_that_does_not_divide_is_refused_in_words():
    at = _model_mode()
    at.number_input(key="dist_world").set_value(3).run()
    assert any("cannot be split over 3 tensor-parallel ranks" in w.value for w in at.warning)
    assert at.button(key="dist_run").disabled and not at.exception
    at.multiselect(key="dist_layouts").set_value(["pp_gpipe"]).run()
    assert any("4 layers cannot be cut into 3 equal pipeline stages" in w.value for w in at.warning)


@pytest.mark.long  # two rank processes
def test_a_tensor_parallel_run_shows_measured_beside_predicted_and_the_cluster_command():
    from tests.distributed.test_distributed import _workers

    at = _model_mode()
    at.multiselect(key="dist_layouts").set_value(["tp"]).run()
    at.button(key="dist_run").click().run(timeout=300)
    assert not at.exception and not at.error
    table = _frame_with(at, "volume error (%)")
    assert list(table["strategy"]) == ["TP", "TP"] and list(table["rank"]) == [0, 1]
    assert (table["error (%)"].abs() < 10).all() and (table["volume error (%)"].abs() < 5).all()
    at.number_input(key="dist_nodes").set_value(2).run()
    at.number_input(key="dist_gpus").set_value(8).run()
    assert any(c.value.startswith("torchrun --nnodes 2 --rdzv-backend c10d") and "--nproc-per-node 8" in c.value
               for c in at.code)
    assert not _workers()
