"""The app shell: navigation and the home page, under Streamlit's AppTest."""
from tests.apptest import app_test


def test_app_runs_and_shows_home_with_every_page():
    at = app_test("app.py", timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value.endswith("LLM Lab")
    # Issue 32: a starting point for each of the three uses, not the sidebar's list again.
    uses = [s.value.split(" ", 1)[1] for s in at.subheader]
    assert uses == ["Explore a model", "Give a demo", "Plan hardware"]
    captions = " ".join(c.value for c in at.caption)
    for topic in ("generation", "Attention heatmaps", "logit lens", "fp32", "KV cache", "Chinchilla", "few-shot"):
        assert topic in captions
    # every page still has its one line, in the expander below the three ways in
    assert len(at.expander) == 1 and "Every page" in at.expander[0].label


def test_home_warns_that_the_first_model_load_takes_a_while_only_before_it(monkeypatch, tmp_path):
    from core.run import models

    monkeypatch.setenv("LLM_LAB_CACHE", str(tmp_path))  # an empty cache: the bundled model is not prepared yet
    assert not models.bundled_decoder_is_converted()
    at = app_test("app.py", timeout=60)
    at.run()
    assert not at.exception
    assert any("first page that runs the bundled SmolLM2" in i.value and "30 s to 2 min" in i.value for i in at.info)
    folder = models.bundled_decoder_cache_dir()
    folder.mkdir(parents=True)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (folder / name).write_text("{}")
    at = app_test("app.py", timeout=60)
    at.run()
    assert not at.exception and not at.info


def test_app_switches_to_a_planner_page():
    at = app_test("app.py", timeout=60)
    at.run()
    at.switch_page("views/memory_planner.py").run()
    assert not at.exception
    assert at.title[0].value.startswith("Memory planner")


def test_sidebar_shows_this_machine():
    at = app_test("app.py", timeout=60)
    at.run()
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "This machine" in sidebar
    import torch

    if torch.cuda.is_available():
        assert torch.cuda.get_device_name(0) in sidebar
    else:
        assert "CPU (no CUDA GPU)" in sidebar
