"""The Layers (logit lens) page under Streamlit's AppTest, with the real bundled SmolLM2."""
import json

import pytest

from tests.apptest import app_test

PAGE = "views/layers.py"


@pytest.fixture(scope="module")
def page():
    at = app_test(PAGE, timeout=300)
    at.run()
    return at


def test_default_page_shows_the_lens_of_smollm2(page):
    at = page
    assert not at.exception
    assert at.title[0].value == "Layers: the logit lens"
    heat, rank = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert heat["data"][0]["type"] == "heatmap" and heat["data"][0]["z"]["shape"].startswith("31,")
    assert heat["layout"]["yaxis"]["ticktext"][0] == "embeddings"
    assert "Berlin" in heat["data"][0]["text"][-1][-1]
    assert "Berlin" in rank["layout"]["title"]["text"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Last row vs model output"] == "0.0e+00"
    assert [b.label for b in at.get("download_button")] == ["Logit lens as standalone HTML", "Logit lens as JSON"]
    assert any("nostalgebraist" in c.value for c in at.caption)


def test_empty_text_and_encoder_give_messages_not_tracebacks(page):
    at = page
    at.text_area(key="lens_text").set_value("  ").run()
    assert not at.exception and "empty" in at.warning[0].value
    at.text_area(key="lens_text").set_value("hello").run()
    at.radio(key="lens_model").set_value("custom").run()
    at.text_input(key="lens_custom_model").set_value("sentence-transformers/all-MiniLM-L6-v2").run()
    assert not at.exception
    assert "encoder" in at.error[0].value
