"""core.run.quantization and core.run.quantization_charts: quality metrics checked against independent torch formulas, and
the comparison run for real on the bundled SmolLM2 with real bitsandbytes (short reference slice, few new tokens)."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from core.plan import memory
from core.run import models, quantization as q, quantization_charts as charts

REFERENCE_TOKENS = 48
NEW_TOKENS = 4


# ---------------------------------------------------------------------------------------------------------------------
# Pure metrics


def _random_logits(positions=7, vocab=50, seed=0, scale=3.0):
    return np.random.default_rng(seed).normal(scale=scale, size=(positions, vocab))


def test_kl_divergence_matches_torch_kl_div():
    base, other = _random_logits(seed=1), _random_logits(seed=2)
    expected = torch.nn.functional.kl_div(
        torch.log_softmax(torch.tensor(other), -1), torch.log_softmax(torch.tensor(base), -1),
        reduction="none", log_target=True).sum(-1).numpy()
    got = q.kl_divergence(base, other)
    assert got.shape == (7,)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    assert (got > 0).all()


def test_kl_of_logits_against_themselves_is_exactly_zero_and_shift_invariant():
    logits = _random_logits(positions=130, vocab=300, seed=3)  # > one chunk of 64 positions
    assert np.array_equal(q.kl_divergence(logits, logits), np.zeros(130))
    # softmax ignores a constant added to every logit of a position
    np.testing.assert_allclose(q.kl_divergence(logits, logits + 1234.5), 0, atol=1e-9)


def test_kl_is_stable_for_huge_logits_and_accepts_torch_bf16():
    base = np.array([[1000.0, 0.0, -1000.0]])
    other = np.array([[0.0, 1000.0, -1000.0]])
    kl = q.kl_divergence(base, other)
    assert np.isfinite(kl).all() and kl[0] == pytest.approx(1000.0)
    t = torch.tensor(_random_logits(seed=4), dtype=torch.bfloat16).unsqueeze(0)  # (1, positions, vocab)
    assert q.kl_divergence(t, t).shape == (7,)


def test_kl_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shapes differ"):
        q.kl_divergence(np.zeros((3, 5)), np.zeros((4, 5)))


def test_perplexity_matches_torch_cross_entropy():
    logits = _random_logits(positions=9, vocab=40, seed=5)
    ids = np.random.default_rng(6).integers(0, 40, size=9)
    ce = torch.nn.functional.cross_entropy(torch.tensor(logits[:-1]), torch.tensor(ids[1:])).item()
    assert q.perplexity_from_logits(logits, ids) == pytest.approx(math.exp(ce), rel=1e-10)


def test_perplexity_of_a_uniform_model_is_the_vocab_size():
    assert q.perplexity_from_logits(np.zeros((5, 17)), [1, 2, 3, 4, 5]) == pytest.approx(17.0)


def test_top1_agreement_and_kl_percentile():
    base = np.array([[3.0, 1.0], [0.0, 2.0], [5.0, 4.0], [1.0, 0.0]])
    other = np.array([[2.0, 1.0], [3.0, 0.0], [5.0, 4.5], [1.0, 0.0]])
    assert q.top1_agreement(base, other) == pytest.approx(0.75)
    assert q.kl_percentile(np.arange(101), 99) == pytest.approx(99.0)
    assert math.isnan(q.kl_percentile([]))


def test_first_divergence_and_token_diff():
    assert q.first_divergence([1, 2, 3], [1, 2, 3]) is None
    assert q.first_divergence([1, 2, 3], [1, 5, 3]) == 1
    assert q.first_divergence([1, 2, 3], [1, 2]) == 2  # one output stopped early
    assert q.first_divergence([], [7]) == 0
    diff = q.token_diff([1, 2, 3], [1, 5, 3], ["a", "e", "c"])
    assert [d["same"] for d in diff] == [True, False, True]
    assert [d["after_divergence"] for d in diff] == [False, True, True]
    assert diff[1]["token"] == "e"


def test_input_validation_messages():
    assert q.normalize_variants(["nf4", "FP32", "nf4"]) == ["fp32", "nf4"]
    with pytest.raises(q.QuantizationInputError, match="Unknown variant"):
        q.normalize_variants(["int3"])
    with pytest.raises(q.QuantizationInputError, match="at least one"):
        q.normalize_variants([])
    with pytest.raises(q.QuantizationInputError, match="prompt is empty"):
        q.compare_variants(None, ["fp32"], "   ", "some text")
    with pytest.raises(q.QuantizationInputError, match="Max new tokens"):
        q.compare_variants(None, ["fp32"], "Hi", "some text", max_new_tokens=0)
    with pytest.raises(q.QuantizationInputError, match="Compute dtype"):
        q.compare_variants(None, ["nf4"], "Hi", "some text", compute_dtype="fp8")
    with pytest.raises(q.QuantizationInputError, match="reference text is empty"):
        q.compare_variants(None, ["fp32"], "Hi", "")
    with pytest.raises(q.QuantizationInputError, match="encoder"):
        q.compare_variants("minilm", ["fp32"], "Hi", "some text")


def test_short_reference_text_is_refused_before_any_model_loads():
    with pytest.raises(q.QuantizationInputError, match="only .* tokens"):
        q.compare_variants(None, ["fp32"], "Hi", "Too short.")


def test_unknown_model_raises_model_load_error():
    with pytest.raises(models.ModelLoadError, match="bundled"):
        q.compare_variants("no-such-org/no-such-model", ["fp32"], "Hi", "some text")


def test_reference_text_ships_a_few_hundred_tokens_without_its_header():
    text = q.load_reference_text()
    assert not text.startswith("#") and "public domain" not in text
    assert 250 <= len(text.split()) <= 600
    assert "public domain" in q.REFERENCE_TEXT_PATH.read_text()  # the source is stated in the file's header


def _touch_and_unmap(size: int) -> None:
    """A block of fresh pages, every page written, then unmapped. (Not a numpy array: late in a long test run malloc
    can serve one from memory this process freed earlier and still holds, and the RSS then does not move at all.)"""
    import mmap

    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    block.close()


def test_peak_memory_meter_sees_a_temporary_allocation():
    before = q.process_rss_bytes()
    with q.PeakMemoryMeter(torch.device("cpu")) as meter:
        _touch_and_unmap(200_000_000)
    assert meter.method
    assert meter.peak_bytes - before >= 180e6


def test_peak_memory_meter_samples_where_the_kernel_forgets_unmapped_peaks(monkeypatch):
    """Where VmHWM can't be trusted (no clear_refs, or a kernel that forgets unmapped peaks), the meter samples RSS
    and still sees the block."""
    from core.common import process_memory

    monkeypatch.setattr(process_memory, "peak_rss_keeps_freed_memory", lambda: False)
    before = q.process_rss_bytes()
    with q.PeakMemoryMeter(torch.device("cpu")) as meter:
        _touch_and_unmap(200_000_000)  # tens of ms: many sampling intervals
    assert "sampled" in meter.method
    assert meter.peak_bytes - before >= 180e6


def test_model_weight_bytes_counts_tied_weights_once():
    emb = torch.nn.Embedding(10, 4)
    lin = torch.nn.Linear(4, 10, bias=False)
    lin.weight = emb.weight
    model = torch.nn.ModuleDict({"emb": emb, "head": lin})
    assert q.model_weight_bytes(model) == 10 * 4 * 4


def test_planner_prediction_for_bundled_model_follows_the_planner():
    name = models.BUNDLED_DECODER
    assert q.predicted_weight_bytes(name, "fp32") == pytest.approx(memory.weight_memory(name, "fp32")["weights"])
    nf4 = q.predicted_weight_bytes(name, "nf4", unquantized_dtype="fp32")
    fp4 = q.predicted_weight_bytes(name, "fp4", unquantized_dtype="fp32")
    assert nf4 == fp4  # same storage layout
    assert q.predicted_weight_bytes(name, "nf4", double_quant=True, unquantized_dtype="fp32") < nf4


# ---------------------------------------------------------------------------------------------------------------------
# The real comparison (bundled SmolLM2, real bitsandbytes on this machine)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_measures_allocated_bytes_and_cuda_peaks():
    frame = q.compare_variants(None, ["fp32", "nf4"], "Hi", q.load_reference_text(), max_new_tokens=2,
                               max_reference_tokens=16, device="cuda").set_index("variant")
    assert frame["available"].all(), list(frame["reason"])
    for variant, row in frame.iterrows():
        assert row["device"].startswith("cuda") and row["peak_method"] == "torch.cuda.max_memory_allocated"
        # allocated-bytes growth at load covers the weights (+ at most allocator rounding / small buffers)
        assert row["cuda_allocated_bytes"] == pytest.approx(row["weight_bytes"], rel=0.05), variant
        assert row["peak_bytes"] >= 0.95 * row["weight_bytes"], variant
    assert frame.loc["nf4", "weight_bytes"] < frame.loc["fp32", "weight_bytes"] / 2


@pytest.fixture(scope="module")
def all_variants():
    steps = []
    frame = q.compare_variants(None, list(q.VARIANTS), "Name one planet.", q.load_reference_text(),
                               max_new_tokens=NEW_TOKENS, max_reference_tokens=REFERENCE_TOKENS,
                               progress=lambda fraction, message: steps.append((fraction, message)))
    return frame.set_index("variant", drop=False), steps


@pytest.mark.slow
def test_one_row_per_variant_with_the_contract_columns(all_variants):
    frame, _ = all_variants
    assert list(frame["variant"]) == list(q.VARIANTS)
    for column in ("variant", "weight_bytes", "predicted_weight_bytes", "tokens_per_s", "perplexity", "kl_mean",
                   "top1_agreement", "load_seconds", "peak_bytes", "delta_ppl", "kl_p99", "greedy_text",
                   "sampled_text", "greedy_first_divergence", "prediction_error_pct", "available", "reason"):
        assert column in frame.columns, column


@pytest.mark.slow
def test_progress_is_reported_per_variant_and_ends_at_one(all_variants):
    _, steps = all_variants
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    for variant in ("fp32", "int8", "nf4"):
        assert any(message.startswith(variant) for _, message in steps)


@pytest.mark.slow
def test_generation_works_in_every_variant(all_variants):
    frame, _ = all_variants
    unavailable = frame[~frame["available"]]
    assert unavailable.empty, dict(zip(unavailable["variant"], unavailable["reason"]))
    for variant, row in frame.iterrows():
        assert 1 <= row["generated_tokens"] <= NEW_TOKENS, variant
        assert len(row["greedy_ids"]) == row["generated_tokens"] and row["greedy_text"].strip(), variant
        assert len(row["sampled_ids"]) >= 1, variant
        assert row["tokens_per_s"] > 0 and row["load_seconds"] > 0, variant
        assert row["reference_tokens"] == REFERENCE_TOKENS


@pytest.mark.slow
def test_quantized_footprints_shrink_by_the_factor_the_planner_predicts(all_variants):
    frame, _ = all_variants
    fp32 = frame.loc["fp32"]
    for variant in ("int8", "nf4", "fp16", "bf16", "fp4"):
        row = frame.loc[variant]
        measured_factor = fp32["weight_bytes"] / row["weight_bytes"]
        predicted_factor = fp32["predicted_weight_bytes"] / row["predicted_weight_bytes"]
        assert measured_factor == pytest.approx(predicted_factor, rel=0.05), variant
        assert abs(row["prediction_error_pct"]) < 5, variant
    # the quantized variants really are smaller, and transformers' own footprint omits the 4-bit absmax constants
    assert frame.loc["int8", "weight_bytes"] < frame.loc["bf16", "weight_bytes"] < fp32["weight_bytes"]
    assert frame.loc["nf4", "weight_bytes"] < frame.loc["int8", "weight_bytes"]
    assert frame.loc["nf4", "footprint_bytes"] < frame.loc["nf4", "weight_bytes"]


@pytest.mark.slow
def test_peak_memory_during_generation_follows_the_weights(all_variants):
    frame, _ = all_variants
    assert frame["peak_method"].str.len().gt(0).all()
    # the peak includes the weights; 4-bit variants must not carry the fp32 checkpoint along (detach_from_checkpoint)
    assert frame.loc["fp32", "peak_bytes"] >= 0.9 * frame.loc["fp32", "weight_bytes"]
    assert frame.loc["nf4", "peak_bytes"] < frame.loc["fp32", "peak_bytes"]


@pytest.mark.slow
def test_detach_from_checkpoint_unmaps_the_fp32_checkpoint_and_keeps_ties():
    def tensors_in_mapped_checkpoint(model):
        """This model's tensors whose memory lies inside a mapping of a model.safetensors file (other models in
        the process may map the same file, so the mapping's existence alone proves nothing)."""
        ranges = []
        for line in open("/proc/self/maps"):
            if line.rstrip().endswith("model.safetensors"):
                start, end = (int(x, 16) for x in line.split()[0].split("-"))
                ranges.append((start, end))
        tensors = list(model.parameters()) + list(model.buffers())
        return [t for t in tensors if any(a <= t.data_ptr() < b for a, b in ranges)]

    loaded = models.load_model(None, dtype="fp32", device="cpu", quantization="nf4")
    try:
        # transformers leaves the unquantized layers as views into the mapped file
        assert tensors_in_mapped_checkpoint(loaded.model)
        copied = q.detach_from_checkpoint(loaded.model)
        q.free_released_memory()
        assert tensors_in_mapped_checkpoint(loaded.model) == []
        assert copied >= 49152 * 576 * 4  # at least the fp32 embedding matrix
        model = loaded.model
        assert model.lm_head.weight is model.model.embed_tokens.weight
        ids = loaded.tokenizer("Hello", return_tensors="pt").input_ids
        with torch.inference_mode():
            assert model.generate(ids, max_new_tokens=2, do_sample=False).shape[1] == ids.shape[1] + 2
    finally:
        models.release_model(loaded)
        q.free_released_memory()


@pytest.mark.slow
def test_baseline_row_has_zero_kl_and_full_agreement(all_variants):
    frame, _ = all_variants
    base = frame.loc["fp32"]
    assert (frame["baseline"] == "fp32").all()
    assert base["kl_mean"] == 0 and base["kl_p99"] == 0 and base["delta_ppl"] == 0
    assert base["top1_agreement"] == 100
    assert pd.isna(base["greedy_first_divergence"])


@pytest.mark.slow
def test_bf16_kl_is_far_below_nf4_kl(all_variants):
    frame, _ = all_variants
    bf16, nf4 = frame.loc["bf16"], frame.loc["nf4"]
    assert 0 < bf16["kl_mean"] < nf4["kl_mean"] / 10
    assert bf16["top1_agreement"] >= nf4["top1_agreement"]
    assert 1 < frame.loc["fp32", "perplexity"] < 1000


def test_kl_of_real_model_logits_against_themselves_is_zero():
    loaded = models.load_model(None, dtype="fp32", device="cpu")
    try:
        ids = loaded.tokenizer(q.load_reference_text(), return_tensors="pt").input_ids[:, :16]
        with torch.inference_mode():
            logits = loaded.model(input_ids=ids).logits[0]
        assert np.array_equal(q.kl_divergence(logits, logits), np.zeros(16))
    finally:
        models.release_model(loaded)


@pytest.mark.slow
def test_double_quantization_shrinks_nf4_as_predicted_and_first_variant_is_the_baseline():
    frame = q.compare_variants(None, ["nf4"], "Hi", q.load_reference_text(), max_new_tokens=2,
                               max_reference_tokens=16, double_quant=True, compute_dtype="fp32")
    row = frame.iloc[0]
    assert row["available"], row["reason"]
    assert row["baseline"] == "nf4" and row["kl_mean"] == 0
    assert row["double_quant"] is True or row["double_quant"] == True  # noqa: E712 (numpy bool)
    assert abs(row["prediction_error_pct"]) < 1
    single = q.predicted_weight_bytes(models.BUNDLED_DECODER, "nf4", unquantized_dtype="fp32")
    assert row["weight_bytes"] < single


@pytest.mark.slow
def test_repeated_comparisons_do_not_grow_memory_without_bound(all_variants):
    """Two more comparisons after the module's first: process memory may wobble (allocator, caches) but must not keep
    the models: growth stays below half of the smallest model that could have leaked (nf4, ~173 MB)."""
    frame, _ = all_variants
    bound = 0.5 * frame.loc["nf4", "weight_bytes"]
    args = dict(max_new_tokens=2, max_reference_tokens=16)
    q.compare_variants(None, ["fp32", "nf4"], "Hi", q.load_reference_text(), **args)
    q.free_released_memory()
    first = q.process_rss_bytes()
    q.compare_variants(None, ["fp32", "nf4"], "Hi", q.load_reference_text(), **args)
    q.free_released_memory()
    second = q.process_rss_bytes()
    assert second - first < bound, f"grew {(second - first) / 1e6:.0f} MB between two identical comparisons"


# ---------------------------------------------------------------------------------------------------------------------
# Tables and charts from the real results


@pytest.mark.slow
def test_summary_csv_and_unavailable(all_variants):
    frame, _ = all_variants
    table = q.summary_table(frame.reset_index(drop=True))
    assert len(table) == 6 and "Weights (MB)" in table.columns
    quality = q.summary_table(frame.reset_index(drop=True), q.QUALITY_COLUMNS)
    assert list(quality.columns) == list(q.QUALITY_COLUMNS.values()) and quality["KL mean (nats)"][0] == 0
    assert table["Weights (MB)"].iloc[0] == pytest.approx(frame.loc["fp32", "weight_bytes"] / 1e6)
    csv = q.results_csv(frame.reset_index(drop=True))
    assert csv.splitlines()[0].startswith("variant,") and "greedy_ids" not in csv.splitlines()[0]
    failed = frame.reset_index(drop=True).copy()
    failed.loc[failed["variant"] == "fp4", ["available", "reason"]] = [False, "fp4 failed: no kernel"]
    assert q.unavailable_variants(failed) == [("fp4 (4-bit float)", "fp4 failed: no kernel")]
    assert len(q.summary_table(failed)) == 5


@pytest.mark.slow
def test_charts_have_one_trace_or_bar_per_available_variant(all_variants):
    frame = all_variants[0].reset_index(drop=True)
    scatter = charts.memory_quality_figure(frame, "kl_mean")
    assert [t.name for t in scatter.data] == list(frame["label"])
    assert scatter.data[0].x[0] == pytest.approx(frame["weight_bytes"][0] / 1e6)
    assert "nats" in scatter.layout.yaxis.title.text
    bars = charts.memory_bars_figure(frame)
    assert [t.name for t in bars.data] == ["measured weights", "planner prediction", "peak during generation"]
    assert list(bars.data[0].x) == list(q.VARIANTS) and "MB" in bars.layout.yaxis.title.text
    assert len(charts.speed_figure(frame).data[0].y) == 6
    kl_lines = charts.kl_by_position_figure(frame)
    assert len(kl_lines.data) == 5  # every variant but the baseline
    assert len(kl_lines.data[0].y) == REFERENCE_TOKENS
    with pytest.raises(ValueError):
        charts.memory_quality_figure(frame, "nonsense")


def test_variant_result_is_typed_and_exports_the_result_columns():
    import dataclasses

    record = q.VariantResult(variant="nf4", label="NF4", quantization="nf4")
    assert list(record.to_dict()) == q.RESULT_COLUMNS
    assert record.to_dict()["available"] is False and record.to_dict()["weight_bytes"] is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.available = True
    with pytest.raises(TypeError):  # a misspelt column cannot slip into the table
        q.VariantResult(variant="nf4", label="NF4", weights_bytes=1)
