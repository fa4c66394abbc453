"""The Attention page under Streamlit's AppTest, with the real bundled models."""
import json

import pytest

from tests.apptest import app_test

PAGE = "views/attention.py"


def _charts(at):
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def _title(spec):
    title = spec["layout"].get("title", {})
    return title.get("text", "") if isinstance(title, dict) else str(title)


@pytest.fixture(scope="module")
def smollm2_page():
    at = app_test(PAGE, timeout=300)
    at.run()
    return at


def test_default_page_shows_a_single_head_heatmap_of_smollm2(smollm2_page):
    at = smollm2_page
    assert not at.exception
    assert at.title[0].value == "Attention"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Layers × heads"] == "30 × 9" and metrics["Architecture"] == "decoder"
    (spec,) = _charts(at)
    assert _title(spec) == "Self-attention: layer 0, head 0"
    assert spec["data"][0]["type"] == "heatmap"
    assert "teacher" in spec["layout"]["xaxis"]["ticktext"]
    assert [b.label for b in at.get("download_button")] == ["Current view as CSV", "All layers as .npz",
                                                            "Current chart as standalone HTML"]
    assert any("Layer 0, head 0 over all tokens" in m.value for m in at.markdown)


def test_changing_layer_and_head_changes_the_heatmap(smollm2_page):
    at = smollm2_page
    before = _charts(at)[0]
    at.slider(key="layer").set_value(12).run()
    at.slider(key="head").set_value(4).run()
    assert not at.exception
    after = _charts(at)[0]
    assert _title(after) == "Self-attention: layer 12, head 4"
    assert after["data"][0]["z"] != before["data"][0]["z"]
    assert any("Layer 12, head 4 over all tokens" in m.value for m in at.markdown)


def test_every_view_renders_its_own_content(smollm2_page):
    at = smollm2_page
    at.radio(key="view").set_value("model").run()
    assert not at.exception
    (grid,) = _charts(at)
    assert grid["layout"]["yaxis"]["ticktext"][-1] == "layer 29" and len(grid["layout"]["xaxis"]["ticktext"]) == 9
    assert len(grid["layout"]["shapes"]) == 1  # the chosen head is framed

    at.radio(key="view").set_value("layers").run()
    at.slider(key="layer").set_value(12).run()
    titles = [_title(s) for s in _charts(at)]
    assert not at.exception and "Layer 12: mean over 9 heads" in titles
    assert "Attention rollout through layer 12" in titles
    at.radio(key="across_layers").set_value("mean").run()
    assert "Mean over all 30 layers and heads" in [_title(s) for s in _charts(at)]

    at.radio(key="view").set_value("stats").run()
    assert not at.exception
    assert len(at.dataframe[0].value) == 30 * 9
    assert _charts(at)[0]["layout"]["title"]["text"].startswith("entropy_bits")
    at.selectbox(key="statistic").set_value("sink_share").run()
    assert _charts(at)[0]["layout"]["title"]["text"].startswith("sink_share")

    at.radio(key="view").set_value("focus").run()
    assert not at.exception
    out_chart, in_chart = _charts(at)
    assert "in every layer" in _title(out_chart) and len(out_chart["data"]) == 30
    assert "Attention paid to" in _title(in_chart)


def test_model_view_button_opens_the_chosen_head(smollm2_page):
    at = smollm2_page
    at.radio(key="view").set_value("model").run()
    at.slider(key="layer").set_value(3).run()
    at.slider(key="head").set_value(2).run()
    at.button(key="open_head").click().run()
    assert not at.exception
    assert at.radio(key="view").value == "head"
    assert _title(_charts(at)[0]) == "Self-attention: layer 3, head 2"


def test_empty_text_shows_a_message_not_a_traceback():
    at = app_test(PAGE)
    at.run()
    at.text_area(key="text").set_value("   ").run()
    assert not at.exception
    assert any("empty" in w.value for w in at.warning)
    assert not at.get("plotly_chart")


def test_minilm_long_text_offers_a_token_window():
    at = app_test(PAGE)
    at.run()
    at.radio(key="model").set_value("minilm").run()
    at.text_area(key="text").set_value("word " * 600).run()
    assert not at.exception
    assert any("context window is 512 tokens" in w.value for w in at.warning)
    assert any("Pick a window" in i.value for i in at.info)
    first = _charts(at)[0]
    assert len(first["layout"]["xaxis"]["ticktext"]) == 128
    at.slider(key="window_start").set_value(300).run()
    moved = _charts(at)[0]
    assert moved["layout"]["xaxis"]["tickvals"][0] == 300 and first["layout"]["xaxis"]["tickvals"][0] == 0


def test_tiny_t5_shows_encoder_decoder_and_cross_attention():
    at = app_test(PAGE)
    at.run()
    at.radio(key="model").set_value("tiny-t5").run()
    assert not at.exception
    assert any("RANDOM weights" in w.value for w in at.warning)
    assert _title(_charts(at)[0]).startswith("Encoder self-attention")
    at.text_input(key="target_text").set_value("Der Lehrer gab ihm ein Buch.").run()
    at.radio(key="component").set_value("cross").run()
    assert not at.exception
    spec = _charts(at)[0]
    assert _title(spec).startswith("Cross-attention")
    assert spec["layout"]["yaxis"]["ticktext"][0] == "⟨start⟩"       # queries: the decoder's tokens
    assert spec["layout"]["xaxis"]["ticktext"][0] == "[CLS]"         # keys: the encoder's input
    assert any(t.value == "der lehrer gab ihm ein buch." for t in at.text)  # MiniLM's tokenizer lower-cases
    at.radio(key="view").set_value("focus").run()
    assert not at.exception
    labels = [tab.label for tab in at.tabs]
    assert labels[1] == "What attends to '[CLS]'"          # an input token, read by the output tokens
    assert labels[0].startswith("What '") and "[CLS]" not in labels[0]


def test_unreachable_hub_model_is_an_error_message_and_inputs_are_kept():
    at = app_test(PAGE)
    at.run()
    at.radio(key="model").set_value("custom").run()
    assert any("Hugging Face model id" in i.value for i in at.info)
    at.text_input(key="custom_model").set_value("google/flan-t5-small").run()
    assert not at.exception
    assert any("bundled" in e.value for e in at.error)
    assert at.text_area(key="text").value.startswith("The teacher gave")


def test_encoder_vs_decoder_view():
    at = app_test(PAGE, timeout=300)
    at.run()
    at.radio(key="view").set_value("compare").run()
    assert not at.exception
    (spec,) = _charts(at)
    assert len(spec["data"]) == 2
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Decoder: weight on later tokens"] == "0%"
    assert metrics["Encoder: weight on later tokens"] != "0%"


def test_a_local_model_folder_loads_as_another_model():
    from core.run.models import bundled_encoder_dir

    at = app_test(PAGE)
    at.run()
    at.radio(key="model").set_value("custom").run()
    at.text_input(key="custom_model").set_value(str(bundled_encoder_dir())).run()
    assert not at.exception and not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Layers × heads"] == "6 × 12" and metrics["Architecture"] == "encoder"
