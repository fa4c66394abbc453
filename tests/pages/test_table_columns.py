"""Issue 32 item 6: at 1,400 px a table cut its own headers ("optimizer state h…", "backward (activations + logit
gradier…") because Streamlit sizes a column to its cells. Every planner table now carries a width that holds its
whole header, and its cells up to a cap."""
import json

import pandas as pd
import streamlit as st

from tests.apptest import app_test
from views.components.columns import CHAR_PX, HEADER_PAD_PX, MAX_COLUMN_PX, fitted_columns


def test_widths_hold_the_header_and_the_cells_up_to_a_cap_and_keep_the_settings():
    frame = pd.DataFrame({"optimizer state held (MB)": [1.5, 2.25],
                          "peak at": ["backward (activations + logit gradients)", "optimizer step"],
                          "answer": ["word " * 200, "short"]})
    config = fitted_columns(frame, {"optimizer state held (MB)": st.column_config.NumberColumn(format="%.2f MB",
                                                                                              help="held")})
    held = config["optimizer state held (MB)"]
    assert held["width"] >= len("optimizer state held (MB)") * CHAR_PX + HEADER_PAD_PX
    assert held["help"] == "held" and held["type_config"]["format"] == "%.2f MB"  # settings kept
    assert config["peak at"]["width"] >= len("backward (activations + logit gradients)") * CHAR_PX
    assert config["answer"]["width"] == MAX_COLUMN_PX  # long text is capped (it belongs in a wrapping table)
    assert fitted_columns(frame, {"peak at": {"width": 99}})["peak at"]["width"] == 99  # an explicit width stays
    # uncapped: a many-row table of sentences is as wide as its longest one (it scrolls sideways, nothing is cut)
    assert fitted_columns(frame, max_px=None)["answer"]["width"] >= len("word " * 200) * CHAR_PX


def test_run_it_here_predicted_table_fits_its_headers_and_phases():
    at = app_test("views/memory_planner.py")
    at.run()
    grid = next(d for d in at.dataframe if "peak at" in d.value.columns)
    columns = json.loads(grid.proto.columns)
    for name in grid.value.columns:
        width = columns[name]["width"]
        assert width >= len(name) * CHAR_PX + HEADER_PAD_PX, (name, width)
    longest_phase = max(grid.value["peak at"].str.len())
    assert columns["peak at"]["width"] >= min(longest_phase * CHAR_PX, MAX_COLUMN_PX)
