"""The app shell: navigation and the home page, under Streamlit's AppTest."""
from tests.apptest import app_test


def test_app_runs_and_shows_home_with_every_page():
    at = app_test("app.py", timeout=60)
    at.run()
    assert not at.exception
    assert at.title[0].value.endswith("LLM Lab")
    assert [s.value for s in at.subheader] == ["Explore a model", "Plan hardware"]
    captions = " ".join(c.value for c in at.caption)
    for topic in ("generation", "Attention heatmaps", "logit lens", "fp32", "KV cache", "Chinchilla"):
        assert topic in captions


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
