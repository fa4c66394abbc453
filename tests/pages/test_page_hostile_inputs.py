"""Hostile inputs on the pages (AppTest): clear messages, inputs kept, no Markdown from user text, the model policy.

The core side (sizes, JSON caps, policy rules) is in tests/common/test_hostile_inputs.py.
"""
import json

import pytest
from markdown_it import MarkdownIt
from streamlit import config as st_config

from core.run.models import BUNDLED_DECODER, bundled_encoder_dir
from tests.apptest import app_test

IMAGE_NAME = "![x](http://127.0.0.1:9/x.png)"


@pytest.fixture
def server_address():
    """Set Streamlit's server.address for the AppTest run (the pages read it with st.get_option)."""
    before = st_config.get_option("server.address")

    def set_address(value):
        st_config.set_option("server.address", value)

    yield set_address
    st_config.set_option("server.address", before)


def rendered_html(elements) -> str:
    """The message bodies rendered as CommonMark (what the browser's Markdown renderer builds from them)."""
    return "".join(MarkdownIt("commonmark").render(e.value) for e in elements)


def messages(at) -> list:
    return list(at.error) + list(at.warning) + list(at.info) + list(at.markdown) + list(at.caption)


# ---- 4. Markdown in a typed model name ------------------------------------------------------------------------
def test_markdown_in_a_model_name_is_shown_as_text_on_generate(server_address):
    server_address("127.0.0.1")
    at = app_test("views/generate.py", timeout=300)
    at.run()
    at.text_input(key="gen_model").set_value(IMAGE_NAME).run()
    assert not at.exception
    assert at.error and any(IMAGE_NAME in e.value for e in at.error)
    html = rendered_html(messages(at))
    assert "<img" not in html and "x.png" in html  # the name is there, as text in <code>
    assert at.text_input(key="gen_model").value == IMAGE_NAME


def test_markdown_in_a_model_name_is_shown_as_text_on_layers(server_address):
    server_address("127.0.0.1")
    at = app_test("views/layers.py")
    at.session_state["lens_model"] = "custom"  # from the first run, so the bundled model is never loaded
    at.session_state["lens_custom_model"] = IMAGE_NAME
    at.run()
    assert not at.exception
    assert at.error and any(IMAGE_NAME in e.value for e in at.error)
    html = rendered_html(messages(at))
    assert "<img" not in html and "x.png" in html
    assert at.text_input(key="lens_custom_model").value == IMAGE_NAME


def test_markdown_in_a_config_value_is_shown_as_text_on_the_memory_planner():
    at = app_test("views/memory_planner.py")
    at.run()
    at.radio(key="mem_source").set_value("config").run()
    at.text_area(key="mem_config_text").set_value(json.dumps({"model_type": "gpt2", "n_layer": IMAGE_NAME})).run()
    assert not at.exception and at.error
    assert "<img" not in rendered_html(messages(at))


def test_markdown_in_a_link_value_is_shown_as_text(server_address):
    for page, key in (("views/memory_planner.py", "ctx"), ("views/compute_planner.py", "gpus")):
        at = app_test(page)
        at.query_params[key] = IMAGE_NAME
        at.run()
        assert not at.exception and at.warning, page
        assert "<img" not in rendered_html(messages(at)), page


def test_a_backtick_in_a_serving_link_value_cannot_break_out_of_the_code_span():
    # A backtick in the value used to close the hand-made code span early, leaving the rest as live Markdown.
    at = app_test("views/serving.py")
    at.query_params["users"] = "`" + IMAGE_NAME.replace("x.png", "a.png")
    at.run()
    assert not at.exception and any("users=" in w.value for w in at.warning)
    html = rendered_html(messages(at))
    assert "<img" not in html and "a.png" in html  # the value is shown, as text in <code>


# ---- 3. crashes turned into clear messages, inputs kept ---------------------------------------------------------
def test_a_5000_character_model_name_is_a_clear_message(server_address):
    server_address("127.0.0.1")
    at = app_test("views/generate.py", timeout=300)
    at.run()
    name = "a" * 5000
    at.text_input(key="gen_model").set_value(name).run()
    assert not at.exception
    assert any("5,000 characters long" in e.value for e in at.error)
    assert at.text_input(key="gen_model").value == name


@pytest.mark.parametrize("text, expected", [
    ("[" * 10_000 + "]" * 10_000, "nests 10,000 levels deep"),
    ('{"model_type": "llama", "hidden_size": ' + "9" * 5000 + "}", "5,000-digit number"),
    ('{"model_type": "llama", "architectures": 5}', "must be a list of class names"),
    ('{"model_type": "gpt2", "n_embd": ' + " " * 1_200_000 + "768}", "longer than 1,000,000 characters"),
])
def test_hostile_config_json_on_the_memory_planner(text, expected):
    at = app_test("views/memory_planner.py")
    at.run()
    at.radio(key="mem_source").set_value("config").run()
    at.text_area(key="mem_config_text").set_value(text).run()
    assert not at.exception
    assert at.error and expected in at.error[0].value, at.error[0].value[:300] if at.error else None
    assert at.text_area(key="mem_config_text").value == text[:1_000_001]  # kept (as much as the box holds)
    assert at.selectbox(key="mem_gpu").value == "A100 80GB SXM"  # and the rest of the page still works


def test_a_deeply_nested_config_in_the_link_is_a_warning_not_a_crash():
    import base64

    token = base64.urlsafe_b64encode(("[" * 1500 + "]" * 1500).encode()).decode().rstrip("=")
    at = app_test("views/memory_planner.py")
    at.query_params["cfg"] = token
    at.run()
    assert not at.exception
    assert any("levels deep" in w.value for w in at.warning)


# ---- 5. impossible numbers --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["-100", "99999999999", "nan", "1e400"])
def test_impossible_context_length_in_the_link_is_refused_with_a_message(value):
    at = app_test("views/memory_planner.py")
    at.query_params["ctx"] = value
    at.run()
    assert not at.exception
    assert any("ctx=" in w.value and "using the default" in w.value for w in at.warning), [w.value for w in at.warning]
    assert at.number_input(key="mem_context").value == 4096


@pytest.mark.parametrize("key, value, widget, default", [("gpus", "-100", "compute_n_gpus", 256),
                                                         ("gpus", "99999999999", "compute_n_gpus", 256),
                                                         ("mfu", "-5", "compute_mfu_percent", None),
                                                         ("days", "1e400", "compute_budget_days", 30.0)])
def test_impossible_numbers_in_a_compute_planner_link_are_refused_with_a_message(key, value, widget, default):
    at = app_test("views/compute_planner.py")
    at.query_params[key] = value
    at.run()
    assert not at.exception
    assert any(f"{key}=" in w.value and "using the default" in w.value for w in at.warning)
    if default is not None:
        assert at.number_input(key=widget).value == default


# ---- 2. model policy on the pages ---------------------------------------------------------------------------
def _generate_error(at, name):
    at.text_input(key="gen_model").set_value(name).run()
    assert not at.exception
    return " ".join(e.value for e in at.error).replace(name, "NAME")


def test_exposed_server_pages_do_not_reveal_which_paths_exist(server_address, tmp_path):
    server_address("0.0.0.0")
    (tmp_path / "real").mkdir()
    at = app_test("views/generate.py", timeout=300)
    at.run()
    shown = {_generate_error(at, name) for name in (str(tmp_path / "real"), str(tmp_path / "missing"), "/etc")}
    assert len(shown) == 1 and "is not a model this server loads" in shown.pop()
    at.text_input(key="gen_model").set_value(BUNDLED_DECODER).run()  # the bundled model keeps working
    assert not at.exception and not at.error


def test_exposed_server_quantization_page_refuses_paths_alike(server_address, tmp_path):
    server_address("0.0.0.0")
    at = app_test("views/quantization.py", timeout=180)
    at.run()
    shown = set()
    for name in ("/etc", str(tmp_path / "missing")):
        at.text_input(key="q_model").set_value(name)
        at.button(key="q_run").click().run()
        assert not at.exception
        shown.add(" ".join(e.value for e in at.error).replace(name, "NAME"))
        assert at.text_input(key="q_model").value == name
    assert len(shown) == 1 and "is not a model this server loads" in shown.pop()


def test_exposed_server_attention_page_accepts_the_bundled_folder_only(server_address):
    server_address("0.0.0.0")
    at = app_test("views/attention.py", timeout=180)
    at.run()
    at.radio(key="model").set_value("custom").run()
    at.text_input(key="custom_model").set_value("/etc").run()
    assert not at.exception and any("is not a model this server loads" in e.value for e in at.error)
    at.text_input(key="custom_model").set_value(str(bundled_encoder_dir())).run()
    assert not at.exception and not at.error


def test_loopback_server_keeps_todays_messages(server_address, tmp_path):
    server_address("127.0.0.1")
    at = app_test("views/generate.py", timeout=300)
    at.run()
    assert "does not exist" in _generate_error(at, str(tmp_path / "missing"))
