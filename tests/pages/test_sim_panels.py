"""The simulator panel of the load-test page, driven by AppTest: profiling an endpoint that does not answer shows the
reason and no profile, and leaves no progress bar behind."""
from streamlit.testing.v1 import AppTest


def _panel():
    from core.serve.endpoints import Endpoint
    from views.components.sim_panels import render_load_simulator_panel

    render_load_simulator_panel(Endpoint("nowhere", "http://127.0.0.1:9/v1", "smollm2"), None)


def test_profiling_an_unreachable_endpoint_says_why_and_keeps_no_profile():
    at = AppTest.from_function(_panel, default_timeout=60).run()
    assert not at.exception and any("Profile the endpoint" in i.value for i in at.info)
    at.button(key="load_sim_probe").click().run()
    assert not at.exception
    assert any("Profiling failed" in e.value and "nothing answers there" in e.value for e in at.error), \
        [e.value for e in at.error]
    from core.serve.endpoints import Endpoint
    endpoint = Endpoint("nowhere", "http://127.0.0.1:9/v1", "smollm2")
    assert f"load_sim_profile|{endpoint.api_base}|{endpoint.model}" not in at.session_state
    assert any("Profile the endpoint" in i.value for i in at.info)
