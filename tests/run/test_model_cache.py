"""The page-side model cache under AppTest: the first use of the bundled decoder (a one-time conversion that takes
30 s to 2 min) says what it is doing and how long it usually takes."""
import pytest

from core.run import models

pytestmark = pytest.mark.slow  # converts the bundled .gguf for real: 30 s to 2 min

SCRIPT = """
from views.components.model_cache import load_model_or_error
loaded = load_model_or_error("HuggingFaceTB/SmolLM2-135M-Instruct")
import streamlit as st
st.write("loaded" if loaded is not None else "failed")
"""


def test_first_use_of_the_bundled_model_shows_its_steps_and_usual_time(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("LLM_LAB_CACHE", str(tmp_path))  # an empty model cache: the conversion runs for real
    assert not models.bundled_decoder_is_converted()
    at = AppTest.from_string(SCRIPT, default_timeout=600).run()
    assert not at.exception, at.exception
    assert models.bundled_decoder_is_converted()
    statuses = at.get("status")
    assert len(statuses) == 1
    status = statuses[0].proto
    assert status.label.startswith("Bundled SmolLM2 model prepared in ") and status.state == status.COMPLETE
    steps = [p.proto.text for p in at.get("progress")]
    assert steps and "so far)" in steps[-1]
    assert any("later load" in c.value for c in at.caption)  # says why it is slow only once
    assert any(m.value == "loaded" for m in at.markdown)
