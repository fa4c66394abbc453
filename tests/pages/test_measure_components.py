"""The hardware panel and the "Measure on this machine" panel, rendered by Streamlit's AppTest on tiny scripts."""
from streamlit.testing.v1 import AppTest

TIMEOUT = 240


def _hardware_script():
    import streamlit as st

    from views.components.hardware_panel import render_hardware_panel

    info = render_hardware_panel()
    st.write(f"detected device: {info['device'] if info else 'none'}")


def _measure_script():
    import streamlit as st

    from views.components.measure_panel import render_measure_panel

    tiny = {"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 128,
            "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 512,
            "tie_word_embeddings": True}
    seq = st.number_input("seq", value=64, key="seq")
    results = render_measure_panel(tiny, int(seq), 2, "fp32", "fp32", key="m")
    st.write(f"results: {len(results)}")


def _bad_input_script():
    from views.components.measure_panel import render_measure_panel

    render_measure_panel("no-such-model-xyz", 128, 1, key="bad")
    render_measure_panel("gpt2", 0, 1, key="zero")
    render_measure_panel("gpt2", 4096, 1, key="too_long")  # GPT-2 has 1024 learned positions
    render_measure_panel(7_000_000_000, 128, 1, key="count_only")  # the planner's raw parameter-count mode


def _results_table(at):
    tables = [d.value for d in at.dataframe if "mode" in d.value.columns]
    assert len(tables) == 1
    return tables[0]


def _texts(at) -> str:
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info]
    return "\n".join(str(p) for p in parts)


def test_hardware_panel_shows_this_machine():
    at = AppTest.from_function(_hardware_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    text = _texts(at)
    assert "This machine" in text
    import torch
    if torch.cuda.is_available():
        assert "GPU memory" in text
    else:
        assert "cores" in text and "GB" in text and "RAM" in text
    assert any("detected device: " in m.value for m in at.markdown)


def test_measure_panel_predicts_then_measures_and_tabulates():
    at = AppTest.from_function(_measure_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    assert "random weights" in _texts(at)
    predicted_before = at.metric[0].value
    assert predicted_before.endswith(" GB")
    assert any("results: 0" in m.value for m in at.markdown)

    at.button(key="m_run").click().run()
    assert not at.exception, at.exception
    assert any("results: 1" in m.value for m in at.markdown)
    table = _results_table(at)
    assert list(table["mode"]) == ["inference"]
    assert table["measured peak (GB)"].iloc[0] > 0 and table["predicted peak (GB)"].iloc[0] > 0
    assert len(at.get("download_button")) == 2

    # Switching to a training step changes the prediction shown, and measuring adds a second row.
    at.segmented_control(key="m_mode").set_value("training").run()
    assert not at.exception
    assert at.metric[0].value != predicted_before
    at.button(key="m_run").click().run()
    assert not at.exception, at.exception
    table = _results_table(at)
    assert list(table["mode"]) == ["inference", "training step"]
    assert table["24 B/param rule (GB)"].iloc[1] > 0

    # LoRA: a real PEFT step on the same architecture, next to the fine-tuning plan's prediction.
    at.segmented_control(key="m_mode").set_value("lora").run()
    assert not at.exception, at.exception
    at.button(key="m_run").click().run()
    assert not at.exception, at.exception
    table = _results_table(at)
    assert list(table["mode"]) == ["inference", "training step", "fine-tune step"]
    assert "lora r=8" in table["setting"].iloc[2]
    assert abs(table["error (%)"].iloc[2]) < 10

    # Prompt tuning: a PEFT soft prompt of the chosen length, measured beside its prediction.
    at.segmented_control(key="m_mode").set_value("prompt-tuning").run()
    assert at.number_input(key="m_virtual").disabled is False and at.number_input(key="m_rank").disabled
    at.number_input(key="m_virtual").set_value(12).run()
    at.button(key="m_run").click().run()
    assert not at.exception, at.exception
    table = _results_table(at)
    assert "prompt-tuning, 12 virtual tokens" in table["setting"].iloc[3]
    assert abs(table["error (%)"].iloc[3]) < 10

    # A longer sequence changes the prediction (the panel follows the page's inputs).
    before = at.metric[0].value
    at.number_input(key="seq").set_value(256).run()
    assert at.metric[0].value != before

    at.button(key="m_clear").click().run()
    assert any("results: 0" in m.value for m in at.markdown)


def test_measure_panel_reports_bad_input_without_crashing():
    at = AppTest.from_function(_bad_input_script, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 3
    assert any("no-such-model-xyz" in e or "Unknown" in e for e in errors)
    assert any("Sequence length" in e for e in errors)
    assert any("1,024" in e for e in errors)
    assert any("not only a parameter count" in i.value for i in at.info)
