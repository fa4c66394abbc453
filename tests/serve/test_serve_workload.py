"""core.serve without a server: the workload's lengths and distinct prompts (with the bundled model's real
tokenizer), the arrival process, SLOs and goodput, the parsing of vLLM's Prometheus text and the planner's KV
capacity for vLLM's pool."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.serve.load_test import RequestRecord, summarize_level
from core.serve import arrivals, planner_check, slo as S, vllm_metrics, workload as W


@pytest.fixture(scope="module")
def tokenizer():
    from core.run.models import load_tokenizer

    return W.HFTokenizer(load_tokenizer(None))


def test_length_bounds_are_vllms_integer_uniform_ranges():
    # vLLM get_sampling_params: [floor(L(1-r)), ceil(L(1+r))], output at least 1
    assert W.WorkloadSpec(512, 32).length_bounds() == ((512, 512), (32, 32))
    assert W.WorkloadSpec(100, 10, range_ratio=0.25).length_bounds() == ((75, 125), (7, 13))
    assert W.WorkloadSpec(3, 1, range_ratio=0.9).length_bounds() == ((1, 6), (1, 2))
    inputs, outputs = W.sample_lengths(W.WorkloadSpec(100, 10, range_ratio=0.25), 4000, np.random.default_rng(0))
    assert inputs.min() == 75 and inputs.max() == 125 and outputs.min() == 7 and outputs.max() == 13
    assert abs(inputs.mean() - 100) < 1.0


@pytest.mark.parametrize("kwargs, message", [
    (dict(prompt_tokens=0, output_tokens=8), "Prompt length"),
    (dict(prompt_tokens=8, output_tokens=-1), "Output length"),
    (dict(prompt_tokens=8, output_tokens=8, range_ratio=1.0), "range ratio"),
    (dict(prompt_tokens=8, output_tokens=8, prefix_tokens=-3), "Shared prefix"),
    (dict(prompt_tokens="lots", output_tokens=8), "Prompt length"),
])
def test_bad_workloads_are_messages(kwargs, message):
    with pytest.raises(W.WorkloadInputError, match=message):
        W.WorkloadSpec(**kwargs)


def test_prompts_are_distinct_and_exactly_as_long_as_asked(tokenizer):
    spec = W.WorkloadSpec(512, 32, seed=3)
    requests = W.build_requests(spec, 8, tokenizer)
    assert len({r.prompt for r in requests}) == 8
    assert [len(tokenizer.encode([r.prompt])[0]) for r in requests] == [512] * 8
    assert [r.prompt_tokens for r in requests] == [512] * 8
    # no two prompts share even their first 16 tokens (one GPU KV block): no prefix-cache hit between them
    starts = {tuple(tokenizer.encode([r.prompt])[0][:16]) for r in requests}
    assert len(starts) == 8
    # another level of the same run, and another seed, draw other prompts; the same seed and level repeat them
    assert not {r.prompt for r in W.build_requests(spec, 8, tokenizer, level=1)} & {r.prompt for r in requests}
    assert W.build_requests(spec, 8, tokenizer) == requests


def test_shared_prefix_and_length_ranges(tokenizer):
    spec = W.WorkloadSpec(64, 16, range_ratio=0.5, prefix_tokens=40, seed=1)
    requests = W.build_requests(spec, 6, tokenizer)
    ids = [tokenizer.encode([r.prompt])[0] for r in requests]
    assert all(seq[:40] == ids[0][:40] for seq in ids)  # one system prompt
    assert len({tuple(seq[40:48]) for seq in ids}) == 6  # then each its own
    assert all(40 + 32 <= len(seq) <= 40 + 96 for seq in ids) and len({len(s) for s in ids}) > 1
    assert [r.prompt_tokens for r in requests] == [len(s) for s in ids]
    assert all(8 <= r.output_tokens <= 24 for r in requests)


def test_without_a_tokenizer_prompts_are_word_counted_and_still_distinct():
    requests = W.build_requests(W.WorkloadSpec(50, 4, seed=2), 5)
    assert len({r.prompt for r in requests}) == 5
    assert all(len(r.prompt.split()) == 50 and r.prompt_tokens is None for r in requests)


def test_poisson_and_gamma_arrivals_have_the_offered_rate():
    times = arrivals.arrival_times_s(2000, 4.0, 1.0, seed=0)
    assert times[-1] == pytest.approx(2000 / 4.0)  # rescaled to n/R, as vLLM
    gaps = np.diff(times)
    assert gaps.mean() == pytest.approx(0.25, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.08)  # exponential: coefficient of variation 1
    bursty = np.diff(arrivals.arrival_times_s(2000, 4.0, 0.25, seed=0))
    assert bursty.std() / bursty.mean() == pytest.approx(2.0, abs=0.25)  # gamma(k): CV = 1/sqrt(k)
    even = np.diff(arrivals.arrival_times_s(10, 2.0, math.inf))
    assert np.allclose(even, 0.5)
    assert (arrivals.arrival_times_s(5, math.inf) == 0).all()


@pytest.mark.parametrize("text, message", [("", "at least one"), ("1, fast", "not a request rate"),
                                           ("0", "above 0"), ("-2", "above 0"), ("nan", "above 0")])
def test_bad_rates_are_messages(text, message):
    with pytest.raises(arrivals.ArrivalInputError, match=message):
        arrivals.parse_rates(text)
    assert arrivals.parse_rates("4, 0.5 1;2, inf, 1") == [0.5, 1.0, 2.0, 4.0, math.inf]


def _record(ttft, e2e, tokens, ok=True):
    return RequestRecord(None, ok, ttft, (), e2e, tokens, 8, 0.0, None if ok else "boom", 2.0)


def test_goodput_counts_requests_meeting_every_slo():
    records = [_record(0.1, 1.0, 10), _record(0.5, 1.0, 10), _record(0.1, 3.0, 10), _record(0.1, 0.1, 1),
               _record(None, 0.01, 0, ok=False)]
    slo = S.SLO(ttft_s=0.2, tpot_s=0.15)
    # TPOTs: 0.1, 0.0556, 0.322, none (one token: 0, as vLLM); TTFT 0.5 fails the second
    assert S.good_requests(records, slo) == 2
    row = summarize_level(None, records, 2.0, slo=slo, request_rate=2.0, burstiness=1.0)
    assert row["goodput_requests_per_s"] == pytest.approx(1.0)
    assert row["requests_per_s"] == pytest.approx(2.0) and row["request_rate"] == 2.0
    assert math.isnan(summarize_level(None, records, 2.0)["goodput_requests_per_s"])  # no SLO: undefined
    assert not S.within_slo(row, slo)  # a failed request
    with pytest.raises(S.SLOInputError):
        S.SLO(ttft_s=-1)


METRICS_TEXT = """\
# HELP vllm:prefix_cache_queries Prefix cache queries, in terms of number of queried tokens.
# TYPE vllm:prefix_cache_queries counter
vllm:prefix_cache_queries_total{engine="0",model_name="smollm2"} 8192.0
vllm:prefix_cache_queries_created{engine="0",model_name="smollm2"} 1.7e+09
# HELP vllm:prefix_cache_hits Prefix cache hits, in terms of number of cached tokens.
# TYPE vllm:prefix_cache_hits counter
vllm:prefix_cache_hits_total{engine="0",model_name="smollm2"} 5760.0
# HELP vllm:prompt_tokens Number of prefill tokens processed.
# TYPE vllm:prompt_tokens counter
vllm:prompt_tokens_total{engine="0",model_name="smollm2"} 8192.0
# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="128",enable_prefix_caching="True",engine="0",kv_cache_memory_bytes="1073741824",kv_cache_size_tokens="23296",num_gpu_blocks="182"} 1.0
"""


def test_vllm_metrics_text_is_read_and_differenced():
    after = vllm_metrics.parse_metrics(METRICS_TEXT)
    assert (after.prefix_cache_queries_tokens, after.prefix_cache_hits_tokens) == (8192, 5760)
    assert (after.block_size_tokens, after.num_blocks, after.kv_cache_size_tokens) == (128, 182, 23296)
    before = vllm_metrics.EngineCounters(0.0, 0.0, 0.0)
    use = vllm_metrics.prefix_cache_use(before, after)
    assert use.hit_rate == pytest.approx(5760 / 8192)
    with pytest.raises(Exception, match="prefix-cache counters"):
        vllm_metrics.parse_metrics("# nothing here\nother_metric 1.0\n")


def test_planner_kv_capacity_for_vllms_pool_matches_its_count():
    # SmolLM2-135M: 30 layers × 3 KV heads × 64 dims × K and V × 4 bytes (fp32) = 46,080 bytes per token;
    # 1 GiB / 46,080 = 23,301 tokens, 182 whole blocks of 128 = 23,296 — what vLLM logs at startup.
    check = planner_check.kv_capacity_check("HuggingFaceTB/SmolLM2-135M-Instruct", vllm_metrics.parse_metrics(METRICS_TEXT), "fp32")
    assert check.kv_bytes_per_token == 46_080
    assert check.planner_tokens_unblocked == 23_301 and check.planner_tokens == check.engine_tokens == 23_296
    assert planner_check.kv_capacity_check("HuggingFaceTB/SmolLM2-135M-Instruct", vllm_metrics.EngineCounters(0, 0, 0)) is None


def test_planner_predicts_closed_open_and_all_at_once_levels():
    base = {"requests": 4, "errors": 0, "prompt_tokens_mean": 128.0, "output_tokens_mean": 16.0,
            "ttft_p50_s": 0.2, "tpot_p50_s": 0.05, "output_tokens_per_s": 50.0}
    rows = [base | {"concurrency": 2, "request_rate": None}, base | {"concurrency": None, "request_rate": 1.0},
            base | {"concurrency": None, "request_rate": math.inf}]
    got = planner_check.predict_levels(rows, "HuggingFaceTB/SmolLM2-135M-Instruct", "H100 SXM")
    assert [p.level for p in got] == ["concurrency 2", "1 req/s", "all at once"]
    assert [p.planned_concurrency for p in got] == [2, 1, 4]
    assert got[1].predicted_output_tokens_per_s <= 16.0  # an open loop serves at most its offered load
    assert all(p.predicted_ttft_s > 0 and math.isfinite(p.ttft_error_pct) for p in got)
