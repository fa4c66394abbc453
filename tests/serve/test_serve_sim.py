"""The serving simulator (core.serve.sim) pinned against hand-worked traces of vLLM V1's policy, the roofline bound
for catalog GPUs, the replay of the load test's workload, the profile fit and save/load, and bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from core.plan import serving
from core.plan.serving_step import step_roofline
from core.serve import load_test
from core.serve.sim.profile import Observation, fit_step_model, load_profile, profile_from_dict, save_profile, Profile
from core.serve.sim.replay import Traffic, check_workload, replay, replicas_for_traffic, simulated_saturation, \
    workload_lengths, send_times
from core.serve.sim.scheduler import EngineConfig, EngineState, SimRequest, SimulationInputError
from core.serve.sim.simulation import simulate
from core.serve.sim.step_model import LinearStepModel, chunk_keys, roofline_step_model
from core.serve.slo import SLO
from core.serve.workload import WorkloadSpec, build_requests

# A step model whose times are easy to add up by hand: 10 ms per step, 1 ms per prompt token, 2 ms per decode seq.
HAND = LinearStepModel(0.010, 0.001, 0.0, 0.002, 0.0)


def cfg(**kw):
    return EngineConfig(**({"num_blocks": 1000, "block_size_tokens": 16, "max_num_seqs": 256,
                            "max_num_batched_tokens": 2048} | kw))


def test_two_requests_arriving_together_are_prefilled_in_one_step_then_decode_together():
    r = simulate(cfg(), HAND, [100, 100], [3, 3], [0.0, 0.0])
    # step 1: both prompts (200 tokens) → 10 + 200 = 210 ms, each samples its first token
    # steps 2, 3: both decode → 10 + 2·2 = 14 ms each
    for q in r.requests:
        assert q.ttft_s == pytest.approx(0.210)
        assert q.itl_s == pytest.approx((0.014, 0.014))
        assert q.e2el_s == pytest.approx(0.238)
        assert q.tpot_s == pytest.approx(0.014)
    assert r.steps == 3
    assert r.timeline.prefill_tokens.tolist() == [200, 0, 0]
    assert r.timeline.decode_seqs.tolist() == [0, 2, 2]


def test_a_3000_token_prompt_is_chunked_under_a_2048_budget_beside_the_running_decode():
    # request 0 (10 tokens) arrives first and decodes; request 1 (3,000 tokens) arrives at 5 ms
    r = simulate(cfg(), HAND, [10, 3000], [6, 2], [0.0, 0.005])
    line = r.timeline
    # step 1 (0–20 ms): request 0's prompt alone. step 2: request 0 decodes (1 token) and request 1 takes the rest
    # of the budget, 2,047 tokens; step 3: its last 953 tokens beside the decode, then its first token.
    assert line.prefill_tokens.tolist()[:3] == [10, 2047, 953]
    assert line.decode_seqs.tolist()[:3] == [0, 1, 1]
    assert line.step_s.tolist()[:3] == pytest.approx([0.020, 0.010 + 2.047 + 0.002, 0.010 + 0.953 + 0.002])
    first = r.requests[1]
    assert first.ttft_s == pytest.approx(0.020 + 2.059 + 0.965 - 0.005)
    # request 0's second token waited for the 2,047-token chunk: its first gap is that whole step
    assert r.requests[0].itl_s[0] == pytest.approx(2.059)


def test_when_the_pool_is_full_the_last_running_request_is_preempted_and_recomputed():
    # 4 blocks of 16 tokens. Two prompts of 30 tokens (2 blocks each) fill the pool. Step 1 prefills both (60
    # tokens, first tokens sampled); steps 2 and 3 decode both (31 and 32 tokens: still 2 blocks each); in step 4
    # request 0's 33rd token needs a third block: request 1 (the last running) is preempted and request 0 decodes
    # alone, its 4th and last token, and frees its 3 blocks; step 5 recomputes request 1's 30 + 3 tokens in one
    # prefill, which samples its 4th token.
    config = cfg(num_blocks=4)
    r = simulate(config, HAND, [30, 30], [4, 4], [0.0, 0.0])
    assert r.preemptions == 1
    a, b = r.requests
    assert a.preemptions == 0 and b.preemptions == 1
    line = r.timeline
    assert line.prefill_tokens.tolist() == [60, 0, 0, 0, 33]
    assert line.decode_seqs.tolist() == [0, 2, 2, 1, 0]
    assert line.kv_blocks_used.tolist()[:4] == [4, 4, 4, 3]  # in use during each step
    assert a.e2el_s == pytest.approx(0.070 + 0.014 * 2 + 0.012)
    assert b.e2el_s == pytest.approx(a.e2el_s + 0.010 + 0.033)
    assert a.e2el_s < b.e2el_s
    assert len(b.itl_s) == 3  # all four of its tokens arrive, the recompute step between two of them


def test_state_step_functions_free_every_block():
    state = EngineState(cfg(num_blocks=10))
    reqs = [SimRequest(i, 40, 5) for i in range(2)]
    state.waiting.extend(reqs)
    batch = state.schedule()
    assert [n for _, n in batch] == [40, 40]
    assert state.used_blocks() == 6
    state.complete(batch, 1.0)
    assert all(r.generated == 1 for r in reqs)
    for r in list(state.running):
        state.free(r)
    assert state.free_blocks == 10


def test_a_shared_prefix_is_served_from_the_cache_after_the_first_request_computes_it():
    # prefix 64 tokens = 4 blocks of 16; the first request computes and caches them, the second (arriving later)
    # takes 64 tokens from the cache and prefills only its own 36
    r = simulate(cfg(), HAND, [100, 100], [2, 2], [0.0, 1.0], prefix_tokens=64)
    assert r.requests[0].cached_tokens == 0
    assert r.requests[1].cached_tokens == 64
    assert r.timeline.prefill_tokens.tolist() == [100, 0, 36, 0]
    assert r.requests[1].ttft_s == pytest.approx(0.010 + 0.036)
    # a prompt made only of the prefix still computes its last token (at most prompt − 1 tokens from the cache)
    r = simulate(cfg(), HAND, [64, 64], [1, 1], [0.0, 1.0], prefix_tokens=64)
    assert r.requests[1].cached_tokens == 48


def test_max_num_seqs_holds_the_rest_in_the_queue():
    r = simulate(cfg(max_num_seqs=2), HAND, [10] * 3, [2] * 3, [0.0] * 3)
    assert r.timeline.prefill_tokens.tolist()[0] == 20
    assert r.requests[2].ttft_s > r.requests[0].e2el_s - 1e-12


def test_pure_decode_runs_priced_at_once_match_step_by_step():
    # a context term makes every decode step different: the fast path must add up the same times
    model = LinearStepModel(0.010, 0.001, 1e-7, 0.002, 1e-5, c5_s_per_prefill_seq=0.003)
    args = (cfg(num_blocks=60), model, [300, 200, 100, 250], [40, 30, 50, 20], [0.0, 0.2, 5.0, 5.01])
    fast, slow = simulate(*args), simulate(*args, fast_decode=False)
    for a, b in zip(fast.requests, slow.requests):
        assert a.ttft_s == pytest.approx(b.ttft_s) and a.e2el_s == pytest.approx(b.e2el_s)
        assert a.itl_s == pytest.approx(b.itl_s)
    assert fast.steps == slow.steps == len(fast.timeline)
    assert fast.timeline.step_s == pytest.approx(slow.timeline.step_s)
    # and one request alone, by hand
    alone = simulate(cfg(), model, [300], [40], [0.0])
    t = 0.010 + 0.300 + 1e-7 * float(chunk_keys(300, 0)) + 0.003
    times = [t]
    for j in range(39):
        t += 0.010 + 0.002 + 1e-5 * (300 + j)
        times.append(t)
    assert alone.requests[0].e2el_s == pytest.approx(times[-1])
    assert alone.requests[0].itl_s == pytest.approx(tuple(np.diff(times)))


@pytest.mark.parametrize("gpu", ["H100 SXM", "A100 80GB SXM", "L4", "RTX 4090"])
def test_no_simulated_step_on_a_catalog_gpu_is_faster_than_its_roofline(gpu):
    model = roofline_step_model("meta-llama/Meta-Llama-3-8B", gpu)
    m, engine = model.model, model.engine
    weights = serving.decode_weight_bytes(m, "bf16", 1)
    peak_bw, peak_flops = engine.gpu.bandwidth_bytes_per_s, engine.gpu.peak_flops
    spec = WorkloadSpec(512, 32, 0.5, 0, 3)
    r = replay(spec, 200, Traffic(request_rate=20.0), EngineConfig(num_blocks=4000), model)
    line = r.simulation.timeline
    tokens = line.prefill_tokens + line.decode_seqs
    assert (line.step_s >= weights / peak_bw).all()
    assert (line.step_s >= 2 * m.matmul_params * tokens / peak_flops).all()
    # the per-step roofline is the planner's step time for a decode batch
    st = serving.step_time(m, engine, 8, 700)
    assert float(model.step_s(0, 0, 8, 8 * 700)) == pytest.approx(st.total_s, rel=1e-6)


def test_batch_one_decode_matches_the_planner_and_its_published_check():
    # the planner's batch-1 TPOT (checked against published decode runs in tests/test_serving*.py) is what one
    # simulated request decodes at
    model = roofline_step_model("meta-llama/Meta-Llama-3-8B", "A100 80GB SXM")
    plan = serving.serving_plan("meta-llama/Meta-Llama-3-8B", "A100 80GB SXM", prompt_tokens=128, output_tokens=64)
    r = simulate(EngineConfig(num_blocks=10000), model, [128], [64], [0.0])
    assert np.median(r.requests[0].itl_s) == pytest.approx(plan.tpot_s, rel=0.05)


def test_replay_uses_the_load_tests_lengths_and_arrival_times():
    spec = WorkloadSpec(200, 20, 0.5, 0, 42)
    prompts, outputs = workload_lengths(spec, 12, level=3)
    real = build_requests(spec, 12, level=3)  # word tokenizer: output lengths are the same draws
    assert outputs.tolist() == [r.output_tokens for r in real]
    assert len(set(prompts.tolist())) > 1
    times = send_times(Traffic(request_rate=2.0), 12, 42, 3)
    expected = load_test.arrival_times_s(12, 2.0, 1.0, seed=int(np.random.default_rng([42, 3, 1]).integers(2**62)))
    assert times == pytest.approx(expected)


def test_closed_loop_keeps_exactly_c_in_flight():
    r = simulate(cfg(), HAND, [50] * 6, [4] * 6, [0.0] * 6, max_in_flight=2)
    sends = sorted(q.send_s for q in r.requests)
    assert sends[:2] == [0.0, 0.0]
    ends = sorted(q.send_s + q.e2el_s for q in r.requests)
    assert sends[2] == pytest.approx(ends[0]) and sends[3] == pytest.approx(ends[1])


def test_saturation_and_replicas_search_the_simulator():
    spec = WorkloadSpec(256, 16, 0.0, 0, 1)
    config = cfg(num_blocks=5000)
    slo = SLO(ttft_s=1.0, tpot_s=0.05)
    sat = simulated_saturation(spec, 100, config, HAND, slo, start_rate=0.5, max_rate=64)
    assert sat.saturation_rate is not None and sat.first_failing_rate > sat.saturation_rate
    # one replica saturates near 1 / (prefill of 256 tokens + its share of decode): a few requests/s
    assert 1.0 < sat.saturation_rate < 4.5
    answer = replicas_for_traffic(spec, 4 * sat.saturation_rate, config, HAND, slo, num_requests=200)
    assert 3 <= answer.replicas <= 6


def test_profile_fit_recovers_known_coefficients_and_round_trips(tmp_path):
    truth = LinearStepModel(0.02, 0.0011, 2e-8, 0.003, 4e-6, request_overhead_s=0.015)
    obs = []
    for p in (64, 256, 512, 1024, 1536):
        keys = float(chunk_keys(p, 0))
        obs.append(Observation("prefill", p, keys, 0, 0.0, float(truth.step_s(p, keys, 0, 0)) + 0.015))
        obs.append(Observation("decode", 0, 0.0, 1, p + 10.0, float(truth.step_s(0, 0, 1, p + 10))))
    for k in (2, 4, 8):
        obs.append(Observation("decode", 0, 0.0, k, k * 48.0, float(truth.step_s(0, 0, k, k * 48))))
    model, fitted = fit_step_model(obs)
    assert model.coefficients() == pytest.approx(truth.coefficients(), rel=1e-3, abs=1e-9)
    assert model.request_overhead_s == pytest.approx(0.015, rel=1e-3)
    assert all(abs(o.error_pct) < 0.1 for o in fitted)
    profile = Profile("smollm2", "http://127.0.0.1:1/v1", model, {"num_blocks": 100, "block_size_tokens": 128,
                      "max_num_seqs": 128, "max_num_batched_tokens": 2048, "max_model_len": 2048}, fitted)
    path = save_profile(profile, tmp_path / "p.json")
    again = load_profile(path)
    assert again.step_model == model and again.engine_config().num_blocks == 100
    with pytest.raises(ValueError, match="six timed steps"):
        fit_step_model(obs[:3])


@pytest.mark.parametrize("bad", [{}, {"version": 1}, {"version": 1, "step_model": {"c0_s": -1}, "engine": {}},
                                 {"version": 1, "step_model": {"c0_s": 0.1, "c1_s_per_prefill_token": 0,
                                  "c2_s_per_prefill_key": 0, "c3_s_per_decode_seq": 0, "c4_s_per_context_token": 0},
                                  "engine": {"num_blocks": 0}}])
def test_a_malformed_profile_is_refused_with_a_sentence(bad):
    with pytest.raises(SimulationInputError):
        profile_from_dict(bad)


def test_bad_inputs_get_plain_messages(tmp_path):
    with pytest.raises(SimulationInputError, match="above 0"):
        Traffic(request_rate=0)
    with pytest.raises(SimulationInputError, match="above 0"):
        Traffic(request_rate=-2)
    with pytest.raises(SimulationInputError, match="either"):
        Traffic()
    with pytest.raises(SimulationInputError, match="at least 1"):
        Traffic(concurrency=0)
    with pytest.raises(SimulationInputError, match="context"):
        simulate(cfg(max_model_len=2048), HAND, [2040], [32], [0.0])
    with pytest.raises(SimulationInputError, match="too small for one request"):
        simulate(cfg(num_blocks=2), HAND, [100], [10], [0.0])
    with pytest.raises(SimulationInputError):
        EngineConfig(num_blocks=-5)
    with pytest.raises(SimulationInputError, match="Prompt length"):
        check_workload(0, 10)
    with pytest.raises(load_test.LoadTestInputError if False else SimulationInputError):
        load_profile(tmp_path / "missing.json")


def _cli(capsys, *args):
    """core.serve.simulate's main in this process: (exit status, stdout, stderr)."""
    from core.serve.simulate import main

    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_predicts_from_a_saved_profile_and_refuses_bad_input(tmp_path, capsys):
    profile = Profile("smollm2", "http://127.0.0.1:9/v1", HAND, {"num_blocks": 500, "block_size_tokens": 16,
                      "max_num_seqs": 256, "max_num_batched_tokens": 2048, "max_model_len": 4096})
    path = str(save_profile(profile, tmp_path / "p.json"))
    # port 9 has no server: a prediction from the profile sends no request at all (python -m, as documented)
    out = subprocess.run([sys.executable, "-m", "core.serve.simulate", "--base-url", "http://127.0.0.1:9/v1",
                          "--model", "smollm2", "--concurrency", "2", "--num-requests", "2", "--prompt-tokens", "100",
                          "--output-tokens", "3", "--profile", path], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    row = json.loads(out.stdout)
    assert row["ttft_p50_s"] == pytest.approx(0.210) and row["tpot_p50_s"] == pytest.approx(0.014)
    for key in ("ttft_p90_s", "tpot_p90_s", "itl_p50_s", "e2e_p50_s", "output_tokens_per_s", "requests_per_s"):
        assert key in row
    code, _, err = _cli(capsys, "--request-rate", "0", "--num-requests", "2", "--prompt-tokens", "100",
                        "--output-tokens", "3", "--profile", path)
    assert code == 2 and "above 0" in err and "Traceback" not in err
    code, _, err = _cli(capsys, "--request-rate", "-1", "--num-requests", "2", "--prompt-tokens", "100",
                        "--output-tokens", "3", "--profile", path)
    assert code == 2 and "above 0" in err
    code, _, err = _cli(capsys, "--concurrency", "1", "--num-requests", "2", "--prompt-tokens", "4090",
                        "--output-tokens", "30", "--profile", path)
    assert code == 2 and "context" in err
    code, _, err = _cli(capsys, "--concurrency", "1", "--num-requests", "2", "--prompt-tokens", "100",
                        "--output-tokens", "3", "--profile", path, "--num-blocks", "3")
    assert code == 2 and "too small for one request" in err
    code, _, err = _cli(capsys, "--concurrency", "1", "--num-requests", "2", "--prompt-tokens", "x")
    assert code == 2 and "invalid int" in err
    code, _, err = _cli(capsys, "--base-url", "http://127.0.0.1:9/v1", "--model", "x", "--profile-only",
                        str(tmp_path / "q.json"))
    assert code == 2 and "Traceback" not in err and not (tmp_path / "q.json").exists()
    code, _, err = _cli(capsys, "--concurrency", "1", "--num-requests", "2", "--prompt-tokens", "10",
                        "--output-tokens", "3", "--profile", str(tmp_path / "missing.json"))
    assert code == 2 and "Cannot read the profile" in err
    code, out, err = _cli(capsys, "--model", "meta-llama/Meta-Llama-3-8B", "--gpu", "H100 SXM", "--request-rate", "4",
                          "--num-requests", "50", "--prompt-tokens", "512", "--output-tokens", "64")
    assert code == 0, err
    assert json.loads(out)["tpot_p50_s"] > 0
    code, _, err = _cli(capsys, "--model", "meta-llama/Meta-Llama-3-8B", "--gpu", "No Such GPU", "--concurrency",
                        "1", "--num-requests", "5", "--prompt-tokens", "10", "--output-tokens", "3")
    assert code == 2 and "Unknown GPU" in err


def test_charts_draw_the_timeline_and_the_predicted_curves():
    from core.serve.sim.charts import predicted_over_measured_figure, prediction_rows, timeline_figure

    r = simulate(cfg(), HAND, [100, 3000], [3, 2], [0.0, 0.0])
    fig = timeline_figure(r.timeline)
    bars = fig.data[0]
    assert list(bars.y) == r.timeline.prefill_tokens.tolist() and list(bars.width) == r.timeline.step_s.tolist()
    measured = [{"concurrency": 1, "ttft_p50_s": 1.0, "ttft_p90_s": 2.0, "tpot_p50_s": 0.1, "tpot_p90_s": 0.2}]
    predicted = [{"ttft_p50_s": 1.1, "ttft_p90_s": 1.0, "tpot_p50_s": 0.1, "tpot_p90_s": 0.3}]
    rows = prediction_rows(measured, predicted, "concurrency")
    assert [round(x["error_pct"]) for x in rows] == [10, -50, 0, 50]
    from core.serve.sim.charts import METRICS, prediction_table
    (row,) = prediction_table(measured, predicted, "concurrency")  # the page's table: one row per level, in ms
    label = METRICS[0][1]
    assert row["concurrency"] == 1 and row[f"{label} measured (ms)"] == 1000.0
    assert row[f"{label} predicted (ms)"] == pytest.approx(1100.0) and round(row[f"{label} error (%)"]) == 10
    assert len(row) == 1 + 3 * len(METRICS)
    fig = predicted_over_measured_figure(measured, predicted)
    assert len(fig.data) == 8 and fig.data[1].text == ("+10%",)


def test_profiling_an_unreachable_endpoint_says_so_and_writes_nothing():
    from core.serve.endpoints import Endpoint, EndpointError
    from core.serve.sim.profile import run_probe

    with pytest.raises(EndpointError):
        run_probe(Endpoint("nowhere", "http://127.0.0.1:9/v1", "smollm2"))


def _records(sim, concurrency):
    return [load_test.RequestRecord(concurrency, True, q.ttft_s, q.itl_s, q.e2el_s, q.output_tokens, q.prompt_tokens,
                                    q.send_s) for q in sim.requests]


def test_the_probe_recovers_a_known_engine_from_its_own_simulated_requests():
    """The probe's levels run through the simulator of a known engine (front end staggering the requests sent
    together, 20 ms per new sequence): fitting their records gives the engine back."""
    from core.serve.sim.profile import (PROBE_BATCH_OUTPUT, PROBE_BATCH_PROMPT, PROBE_BATCHES, PROBE_PROMPTS,
                                        PROBE_SINGLE_OUTPUT, observations_from_records)

    truth = LinearStepModel(0.05, 0.0008, 1.5e-6, 0.001, 5e-6, request_overhead_s=0.12, c5_s_per_prefill_seq=0.02,
                            frontend_serial_s=0.004)
    config = EngineConfig(num_blocks=182, block_size_tokens=128, max_num_seqs=128)
    obs = []
    for p in PROBE_PROMPTS:
        sim = simulate(config, truth, [p] * 2, [PROBE_SINGLE_OUTPUT] * 2, [0.0, 0.0], max_in_flight=1)
        obs += observations_from_records(_records(sim, 1), 1)
    for k in PROBE_BATCHES:
        sim = simulate(config, truth, [PROBE_BATCH_PROMPT] * k, [PROBE_BATCH_OUTPUT] * k, [0.0] * k, max_in_flight=k)
        got = observations_from_records(_records(sim, k), k)
        assert [o.kind for o in got][:2] == ["prefill", "step"]  # the first request alone, then the rest
        obs += got
    model, fitted = fit_step_model(obs)
    assert model.c5_s_per_prefill_seq == pytest.approx(0.02, rel=0.05)
    assert model.c0_s == pytest.approx(0.05, rel=0.05)
    assert model.c1_s_per_prefill_token == pytest.approx(0.0008, rel=0.05)
    assert model.request_overhead_s == pytest.approx(0.12, rel=0.05)
    assert max(abs(o.error_pct) for o in fitted) < 3
