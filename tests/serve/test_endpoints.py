"""core.serve.endpoints and its siblings (capabilities, sse, endpoint_generation, endpoint_scoring) and
core.serve.load_test against a tiny real HTTP server written here (protocol-error cases a healthy vLLM never produces:
malformed, truncated and error streams, HTTP errors, unknown models), plus configuration safety."""
from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from core.serve import endpoints as E
from core.serve.capabilities import PLAIN_MAX_LOGPROBS, probe
from core.serve.endpoint_generation import generate, request_body, stream_generate
from core.serve.endpoint_scoring import perplexity, prompt_logprobs
from core.serve.load_test import LoadTestInputError, check_parameters, run_load_test_detailed, summarize_level, RequestRecord
from core.run.sampling import DecodingSettings

SECRET = "sk-test-never-shown-0123456789"


def _chunk(text, token_logprob=-0.1, finish=None):
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish,
                         "logprobs": {"tokens": [text], "token_logprobs": [token_logprob],
                                      "top_logprobs": [{text: token_logprob, " other": -2.5}]}}]}


def _events(*chunks, done=True):
    body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks)
    return body + ("data: [DONE]\n\n" if done else "")


STREAMS = {
    "good": _events(_chunk(" Paris"), _chunk(".", finish="length"), {"choices": [], "usage": {"prompt_tokens": 5}}),
    "truncated": _events(_chunk(" Paris"), done=False),
    "bad_usage": _events(_chunk(" Paris"), {"choices": [], "usage": {"completion_tokens": "lots"}}),
    "malformed": "data: {\"choices\": [\n\ndata: [DONE]\n\n",
    "error_event": _events(_chunk(" Pa")) .replace("data: [DONE]", "data: {\"error\": {\"message\": \"engine died\"}}"),
}


class Handler(BaseHTTPRequestHandler):
    mode = "good"
    seen_headers: list = []

    def log_message(self, *args):  # keep test output clean
        pass

    def _json(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        Handler.seen_headers.append(dict(self.headers))
        if self.path == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": "tiny", "object": "model", "owned_by": "me"}]})
        else:
            self._json(404, {"detail": "Not Found"})

    def do_POST(self):
        Handler.seen_headers.append(dict(self.headers))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("model") != "tiny":
            self._json(404, {"error": {"message": f"The model `{body.get('model')}` does not exist."}})
            return
        if self.mode == "http500":
            self._json(500, {"error": {"message": "internal boom"}})
            return
        if not body.get("stream"):  # echo scoring
            self._json(200, {"choices": [{"text": "a b c", "logprobs": {"tokens": ["a", " b", " c"],
                                                                         "token_logprobs": [None, -1.0, -2.0]}}]})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(STREAMS[self.mode].encode())
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def endpoint(server):
    Handler.mode = "good"
    return E.Endpoint("tiny-server", server, "tiny", api_key=SECRET)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_stream_maps_tokens_logprobs_and_usage(endpoint):
    result = generate(endpoint, "The capital of France is", DecodingSettings(max_new_tokens=2))
    assert result.completion == " Paris."
    assert [s.token for s in result.steps] == [" Paris", "."]
    assert result.steps[0].probability == pytest.approx(0.904837, rel=1e-5)  # exp(-0.1)
    assert result.steps[0].raw_rank == 1
    assert [a.token for a in result.steps[0].alternatives["raw"]] == [" Paris", " other"]
    assert result.stop_reason == "max_new_tokens"
    assert result.prompt.prompt_tokens == 5
    assert result.ttft_s is not None and result.total_s >= result.ttft_s


def test_plain_server_is_probed_as_not_vllm_and_key_sent_only_as_header(endpoint):
    Handler.seen_headers.clear()
    caps = probe(endpoint)
    assert caps.models == ("tiny",) and not caps.is_vllm
    assert set(caps.unsupported()) == {"top_k", "repetition_penalty", "beam search"}
    body = request_body(endpoint, "x", DecodingSettings(do_sample=True, top_k=5), 10, caps)
    assert "top_k" not in body and body["logprobs"] == PLAIN_MAX_LOGPROBS
    assert all(h.get("Authorization") == f"Bearer {SECRET}" for h in Handler.seen_headers)


@pytest.mark.parametrize("mode, expected", [
    ("truncated", "ended before the server said it was done"),
    ("malformed", "not JSON"),
    ("error_event", "engine died"),
    ("http500", "HTTP 500: internal boom"),
])
def test_broken_streams_give_clear_errors_and_keep_tokens(endpoint, mode, expected):
    Handler.mode = mode
    stream = stream_generate(endpoint, "Hello", DecodingSettings(max_new_tokens=4))
    with pytest.raises(E.EndpointError, match=expected) as info:
        for _ in stream:
            pass
    assert SECRET not in str(info.value)
    assert stream.result is not None  # tokens received before the failure are kept
    if mode in ("truncated", "error_event"):
        assert stream.result.new_tokens == 1


def test_unknown_model_and_dead_port(server):
    wrong = E.Endpoint("tiny-server", server, "no-such-model")
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'.*serves: tiny"):
        probe(wrong)
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'"):
        generate(wrong, "Hi", DecodingSettings(max_new_tokens=2))
    dead = E.Endpoint("dead", f"http://127.0.0.1:{_closed_port()}/v1", "tiny", api_key=SECRET)
    with pytest.raises(E.EndpointError, match="Cannot connect to 'dead'") as info:
        generate(dead, "Hi")
    assert SECRET not in str(info.value)


def test_echo_scoring_fallback(endpoint):
    assert prompt_logprobs(endpoint, "a b c") == [-1.0, -2.0]
    assert perplexity([-1.0, -2.0]) == pytest.approx(4.481689, rel=1e-6)


def test_load_test_counts_errors(endpoint):
    Handler.mode = "truncated"
    run = run_load_test_detailed(endpoint, [2], 4, 8, 4)
    row = run.rows[0]
    assert row["requests"] == 4 and row["errors"] == 4
    assert all("ended before" in r.error for r in run.records)


def test_load_test_records_a_malformed_usage_as_a_failed_request(endpoint):
    Handler.mode = "bad_usage"
    run = run_load_test_detailed(endpoint, [2], 2, 8, 4)
    assert run.rows[0]["requests"] == 2 and run.rows[0]["errors"] == 2
    assert all("completion_tokens" in r.error for r in run.records)


def test_configuration_reads_key_from_env_and_hides_it(monkeypatch):
    monkeypatch.setenv("MY_KEY", SECRET)
    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps(
        [{"name": "cluster", "base_url": "http://10.0.0.5:8000", "model": "llama", "api_key_env": "MY_KEY"}]))
    (ep,) = E.configured_endpoints()
    assert ep.api_key == SECRET and ep.api_base == "http://10.0.0.5:8000/v1"
    assert SECRET not in repr(ep) and SECRET not in json.dumps(ep.to_dict())
    monkeypatch.setenv(E.ENDPOINTS_ENV, "[{not json")
    with pytest.raises(E.EndpointError, match="not valid JSON"):
        E.configured_endpoints()
    with pytest.raises(E.EndpointError, match="api_key_env"):
        E.endpoints_from_config([{"name": "a", "base_url": "http://x", "model": "m", "api_key": SECRET}])
    with pytest.raises(E.EndpointError, match="not an http"):
        E.endpoints_from_config([{"name": "a", "base_url": "file:///etc/passwd", "model": "m"}])
    for malformed in ("http://[::1", "http://host:abc/v1"):  # urlsplit's ValueError / httpx.InvalidURL later
        with pytest.raises(E.EndpointError, match="not an http"):
            E.endpoints_from_config([{"name": "a", "base_url": malformed, "model": "m"}])
    monkeypatch.delenv(E.ALLOW_CUSTOM_ENV, raising=False)
    assert not E.custom_urls_allowed()


def test_load_test_parameters_and_summary():
    with pytest.raises(LoadTestInputError, match="cap"):
        check_parameters([1, 128], 4, 8, 8, max_concurrency=64)
    with pytest.raises(LoadTestInputError):
        check_parameters([], 4, 8, 8)
    for bad in (["two"], [float("inf")], None):  # was ValueError / OverflowError / TypeError
        with pytest.raises(LoadTestInputError):
            check_parameters(bad, 4, 8, 8)
    with pytest.raises(LoadTestInputError, match="Prompt length"):
        check_parameters([1], 4, 10**30, 8)
    records = [RequestRecord(2, True, 0.1, (0.05, 0.05), 0.2, 3, 8, 0.0),
               RequestRecord(2, True, 0.3, (0.1, 0.1), 0.5, 3, 8, 0.0),
               RequestRecord(2, False, None, (), 0.01, 0, None, 0.0, "boom")]
    row = summarize_level(2, records, duration_s=1.0)
    assert row["errors"] == 1 and row["requests"] == 3
    assert row["output_tokens_per_s"] == 6.0 and row["requests_per_s"] == 2.0
    assert row["tpot_p50_s"] == pytest.approx((0.05 + 0.1) / 2)  # (e2el − ttft)/(n − 1) per request, then median
    assert row["ttft_p50_s"] == pytest.approx(0.2)


def test_pages_without_configuration_explain_how_to_configure(monkeypatch):
    from tests.apptest import app_test

    monkeypatch.delenv(E.ENDPOINTS_ENV, raising=False)
    at = app_test("views/serving_load.py")
    at.run()
    assert not at.exception
    assert any(E.ENDPOINTS_ENV in i.value for i in at.info)


def test_generate_page_disables_controls_a_plain_server_ignores(endpoint, monkeypatch):
    from views.components.endpoint_panel import RUNTIMES
    from tests.apptest import app_test

    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps([{"name": "plain", "base_url": endpoint.base_url, "model": "tiny"}]))
    at = app_test("views/generate.py")
    at.run()
    at.radio(key="gen_runtime").set_value(RUNTIMES[1]).run()
    at.selectbox(key="gen_ep_gen_mode").set_value("sampling").run()
    assert not at.exception
    assert at.number_input(key="gen_ep_gen_top_k").disabled and at.slider(key="gen_ep_gen_penalty").disabled
    assert not at.slider(key="gen_ep_gen_temperature").disabled
    assert any("top k is disabled: not part of the OpenAI Completions API" in c.value for c in at.caption)
    assert "beam search" not in at.selectbox(key="gen_ep_gen_mode").options
    at.button(key="gen_ep_gen_run").click().run()
    assert not at.exception and not at.error
    assert any("Paris" in m.value for m in at.markdown)
    assert at.text_area(key="gen_ep_prompt").value == "The capital of France is"


def test_closing_the_stream_early_gives_a_stopped_result(endpoint):
    stream = stream_generate(endpoint, "Hello", DecodingSettings(max_new_tokens=4))
    iterator = iter(stream)
    next(iterator)
    iterator.close()
    assert stream.result.stop_reason == "stopped" and stream.result.new_tokens == 1


def test_load_test_runs_inside_a_running_event_loop(endpoint):
    import asyncio

    async def caller():  # e.g. a notebook, or Playwright's sync API in the same thread
        return run_load_test_detailed(endpoint, [1], 2, 8, 2)

    out = {}
    # a fresh thread, so the test does not depend on whether this thread already runs a loop (Playwright's does)
    thread = threading.Thread(target=lambda: out.setdefault("run", asyncio.run(caller())))
    thread.start()
    thread.join()
    assert out["run"].rows[0]["requests"] == 2 and out["run"].rows[0]["errors"] == 0


def test_load_test_charts_draw_every_level():
    import pandas as pd

    from core.serve.load_test_charts import knee_figure, latency_distribution_figure

    records = [RequestRecord(c, True, 0.1 * c, (0.05,), 0.3 * c, 2, 8, 0.0) for c in (1, 2, 4) for _ in range(3)]
    rows = [summarize_level(c, [r for r in records if r.concurrency == c], 1.0) for c in (1, 2, 4)]
    fig = knee_figure(pd.DataFrame(rows))
    assert list(fig.data[0].x) == [1, 2, 4] and fig.data[1].yaxis == "y2"  # requests/s on its own axis
    dist = latency_distribution_figure(pd.DataFrame([r.to_dict() for r in records]), "ttft_s")
    assert [t.name for t in dist.data] == ["c=1", "c=2", "c=4"]


def test_quantization_page_scores_a_served_model(endpoint, monkeypatch):
    from tests.apptest import app_test

    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps([{"name": "plain", "base_url": endpoint.base_url, "model": "tiny"}]))
    at = app_test("views/quantization.py")
    at.run()
    at.button(key="q_ep_run").click().run()
    assert not at.exception and not at.error
    served = at.session_state["q_ep_result"]
    assert served["endpoint"] == "plain" and served["perplexity"] == pytest.approx(4.481689, rel=1e-6)


def test_a_bad_concurrency_cap_in_the_environment_is_a_warning_and_the_table_has_units(endpoint, monkeypatch):
    from tests.apptest import app_test

    monkeypatch.setenv("LLM_LAB_LOAD_TEST_MAX_CONCURRENCY", "lots")
    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps([{"name": "plain", "base_url": endpoint.base_url, "model": "tiny"}]))
    at = app_test("views/serving_load.py")
    at.run()
    assert not at.exception
    assert any("LLM_LAB_LOAD_TEST_MAX_CONCURRENCY" in w.value and "using the default" in w.value for w in at.warning)
    at.multiselect(key="load_levels").set_value([1])
    at.number_input(key="load_requests").set_value(2)
    at.button(key="load_run").click().run()
    assert not at.exception and not at.error
    columns = json.loads(at.dataframe[0].proto.columns)
    assert columns["ttft_p50_s"]["label"] == "TTFT p50 (s)" and "seconds" in columns["ttft_p50_s"]["help"]
