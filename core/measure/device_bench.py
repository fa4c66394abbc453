"""This machine as a serving "device": a short microbenchmark of its achieved memory bandwidth, matmul FLOP/s and
per-operation dispatch time, a batched-generate measurement of the bundled model, and the serving planner's
prediction for the same runs (core.plan.serving), side by side with the error.

- Bandwidth: a matrix-vector product over a matrix much larger than the caches (what a decode step does with every
  weight matrix), bytes of the matrix ÷ the median time (STREAM's bandwidth definition, McCalpin 1995, "Memory Bandwidth and
  Machine Balance"; median instead of best so a shared machine's load is seen as the measured run sees it).
- FLOP/s: a 1024³ (CPU) or 8192³ bf16 (GPU) matmul, 2·n³ ÷ the median time.
- Overhead: an eager forward step (no CUDA graphs, no compilation) also pays the framework's time per operator
  (Python, dispatcher, thread hand-offs). It is measured on the model's *tiny twin* — the same architecture and layer
  count with every width shrunk to 64, so the same operators run with negligible bytes and FLOPs. The time of a tiny
  matmul and the operator count of a decode step (``TorchDispatchMode``) are shown for reference.
- Measured runs: ``model.generate`` with a batch of ``b`` prompts; a logits processor stamps the time of every step,
  so TTFT = first stamp − start and TPOT = mean gap between later stamps (the time-per-output-token definition of
  vLLM's benchmarks, vllm/benchmarks/serve.py).
"""
from __future__ import annotations

import statistics
import threading
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.common.device import MEMORY_DEVICE_TYPES, resolve_device
from core.common.units import error_pct
from core.plan import serving
from core.plan.hardware import GPU


_CACHE: dict[str, "DeviceProfile"] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class DeviceProfile:
    """Achieved rates of this machine (measured, not datasheet)."""

    device: str  # "cpu" | "cuda"
    name: str
    bandwidth_bytes_per_s: float
    matmul_flops_per_s: float
    dispatch_s: float  # one small operator, framework overhead
    memory_bytes: float
    threads: int
    dtype: str  # the dtype the FLOP/s were measured in

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def as_gpu(self) -> GPU:
        """The profile in the GPU catalog's shape, for ``core.plan.serving`` (achieved rates as 'peak')."""
        return GPU(f"This machine ({self.name})", self.memory_bytes / 1e9, self.matmul_flops_per_s / 1e12, 0.0,
                   self.bandwidth_bytes_per_s / 1e9, 0.0, "measured by core.measure.device_bench")


def _typical(fn, repeats: int) -> float:
    """Median time of ``repeats`` calls after a warm-up. The median, not STREAM's best-of-N: on a shared machine the
    prediction must see the same share of the CPU (or GPU) that the measured run gets, not its best moment."""
    fn()  # warm-up
    return statistics.median(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def decode_matrix_shapes(model, max_bytes: int = 1024 * 2**20, bytes_per_value: int = 4) -> list[tuple[int, int]]:
    """(in_features, out_features) of every weight matrix one decode step reads (``architectures.linear_layers``),
    in layer order, scaled down to at most ``max_bytes`` (whole layers dropped) for the bandwidth benchmark."""
    from core.plan import architectures

    groups = [(x.in_features, x.out_features, x.count) for x in architectures.linear_layers(model) if x.count]
    if architectures.get_config(model)["tie_word_embeddings"]:
        c = architectures.get_config(model)
        groups.append((c["hidden_size"], c["vocab_size"], 1))  # the tied embedding is read as lm_head
    total = sum(i * o * n for i, o, n in groups) * bytes_per_value
    scale = min(1.0, max_bytes / total) if total else 1.0
    shapes = []
    for i, o, n in groups:
        shapes += [(i, o)] * max(1, round(n * scale))
    return shapes


def measure_device(device: str = "auto", repeats: int = 5, matrix_bytes: int = 256 * 2**20,
                   refresh: bool = False, model=None) -> DeviceProfile:
    """Microbenchmark ``device`` ("auto": CUDA when present, else CPU); cached per device (and model) for the process.

    With ``model``, bandwidth is measured as a decode step sees it: a chain of matrix-vector products over fresh
    random matrices of the model's own shapes (``decode_matrix_shapes``) — many mid-sized matrices stream slower than
    one huge one (measured here: 3.5–4.9 GB/s vs 5.8–7.2 GB/s)."""
    import torch

    from core.plan.hardware import detect_hardware

    dev = resolve_device(device, MEMORY_DEVICE_TYPES)  # DeviceError (a clear message) for unknown/absent devices
    key = f"{dev}|{model if isinstance(model, str) else id(model) if model is not None else ''}"
    with _LOCK:
        if key in _CACHE and not refresh:
            return _CACHE[key]
    info = detect_hardware(str(dev))
    if dev.type == "cuda":
        sync = torch.cuda.synchronize
        dtype, n = torch.bfloat16, 8192
    else:
        def sync():
            return None
        dtype, n = torch.float32, 1024
    rows = max(1024, matrix_bytes // (4096 * 4))
    with torch.no_grad():
        w = torch.randn(rows, 4096, device=dev, dtype=torch.float32 if dev.type == "cpu" else dtype)
        x = torch.randn(1, 4096, device=dev, dtype=w.dtype)

        def matvec():
            x @ w.T
            sync()
        bandwidth = w.nbytes / _typical(matvec, repeats)
        del w
        if model is not None:
            mats = [torch.randn(o, i, device=dev, dtype=x.dtype) for i, o in decode_matrix_shapes(
                model, bytes_per_value=x.element_size())]
            vecs = {i: torch.randn(1, i, device=dev, dtype=x.dtype) for i in {m.shape[1] for m in mats}}

            def chain():
                for m in mats:
                    torch.nn.functional.linear(vecs[m.shape[1]], m)
                sync()
            bandwidth = sum(m.nbytes for m in mats) / _typical(chain, repeats)
            del mats
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)

        def mm():
            a @ b
            sync()
        flops = 2 * n**3 / _typical(mm, max(3, repeats // 2))
        del a, b
        s = torch.randn(1, 64, device=dev, dtype=dtype)
        t = torch.randn(64, 64, device=dev, dtype=dtype)
        for _ in range(50):
            s @ t
        sync()
        samples = []
        for _ in range(7):
            start = time.perf_counter()
            for _ in range(200):
                s @ t
            sync()
            samples.append((time.perf_counter() - start) / 200)
        dispatch = statistics.median(samples)
    name = info["gpu_name"] if dev.type == "cuda" else info["cpu_name"]
    memory = info["total_memory_bytes"]
    profile = DeviceProfile(dev.type, str(name), bandwidth, flops, dispatch, float(memory),
                            torch.get_num_threads(), str(dtype).replace("torch.", ""))
    with _LOCK:
        _CACHE[key] = profile
    return profile


def measure_decode_matmul_flops(model, batch: int, device: str = "cpu", repeats: int = 5,
                                max_bytes: int = 512 * 2**20) -> float:
    """Achieved FLOP/s of the decode step's matrix products at ``batch`` rows: a chain of (batch × in) @ (in × out)
    products over random matrices of the model's shapes, 2·batch·in·out FLOPs each ÷ the median time. Small-row
    products run far below a large matmul's rate on CPUs (and below the tensor-core peak on GPUs)."""
    import torch

    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    dtype = torch.float32 if dev.type == "cpu" else torch.bfloat16
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    with torch.no_grad():
        mats = [torch.randn(o, i, device=dev, dtype=dtype) for i, o in decode_matrix_shapes(
            model, max_bytes, torch.tensor([], dtype=dtype).element_size())]
        vecs = {i: torch.randn(batch, i, device=dev, dtype=dtype) for i in {m.shape[1] for m in mats}}

        def chain():
            for m in mats:
                torch.nn.functional.linear(vecs[m.shape[1]], m)
            sync()
        flops = sum(2 * batch * m.shape[0] * m.shape[1] for m in mats)
        return flops / _typical(chain, repeats)


def count_ops_per_step(model, context_tokens: int = 8) -> int:
    """Operators one decode step of ``model`` runs (aten calls, counted with TorchDispatchMode), after a prompt of
    ``context_tokens`` tokens is cached."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.n += 1
            return func(*args, **(kwargs or {}))

    dev = next(model.parameters()).device
    ids = torch.ones((1, context_tokens), dtype=torch.long, device=dev)
    with torch.no_grad():
        out = model(input_ids=ids, use_cache=True)
        counter = Count()
        with counter:
            model(input_ids=ids[:, :1], past_key_values=out.past_key_values, use_cache=True)
    return counter.n


def tiny_twin_config(model) -> dict:
    """The model's config with every width shrunk (hidden 64, 4 heads, FFN 128, vocab 256) and its layer count kept:
    the same operators per step, with negligible bytes and FLOPs — so its step time is the framework's overhead."""
    from core.plan import architectures

    c = dict(architectures.get_config(model))
    kv = 1 if c["num_key_value_heads"] < c["num_attention_heads"] else 4
    c.update({"hidden_size": 64, "num_attention_heads": 4, "num_key_value_heads": kv, "head_dim": 16,
              "intermediate_size": 128, "vocab_size": 256})
    for key in ("n_embd", "n_head", "n_inner", "d_model", "d_ff", "n_embed"):
        c.pop(key, None)
    return c


def measure_step_overhead(model, batch: int = 1, steps: int = 8, repeats: int = 3) -> float:
    """Seconds of framework overhead per forward step: the median decode-step time of the model's tiny twin
    (``tiny_twin_config``) at ``batch`` sequences, built with random weights on the CPU."""
    import torch
    from transformers import AutoModelForCausalLM

    from core.plan import architectures

    torch.manual_seed(0)
    twin = AutoModelForCausalLM.from_config(architectures.hf_config(tiny_twin_config(model)), dtype=torch.float32)
    twin.eval()
    ids = torch.randint(0, 255, (batch, 8))
    samples = []
    with torch.no_grad():
        for _ in range(repeats):
            out = twin(input_ids=ids, use_cache=True)
            cache, nxt = out.past_key_values, ids[:, -1:]
            t = time.perf_counter()
            for _ in range(steps):
                out = twin(input_ids=nxt, past_key_values=cache, use_cache=True)
                cache = out.past_key_values
            samples.append((time.perf_counter() - t) / steps)
    return statistics.median(samples)


@dataclass(frozen=True)
class BatchRun:
    """One batched-generate measurement (or prediction): ``concurrency`` sequences of prompt → output tokens."""

    concurrency: int
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float

    @property
    def tokens_per_s(self) -> float:
        """Aggregate decode tokens/s: concurrency ÷ TPOT."""
        return self.concurrency / self.tpot_s if self.tpot_s > 0 else float("nan")  # nan TPOT is not > 0 either

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}


def measure_generation(loaded, concurrency: int, prompt_tokens: int = 64, output_tokens: int = 16,
                       seed: int = 0) -> BatchRun:
    """Run ``generate`` on ``concurrency`` random prompts of ``prompt_tokens`` tokens, greedy, exactly
    ``output_tokens`` new tokens; time TTFT and TPOT from per-step stamps."""
    import torch
    from transformers import LogitsProcessor, LogitsProcessorList

    class Stamp(LogitsProcessor):
        def __init__(self):
            self.times: list[float] = []

        def __call__(self, input_ids, scores):
            self.times.append(time.perf_counter())
            return scores

    model = loaded.model
    dev = next(model.parameters()).device
    g = torch.Generator().manual_seed(seed)
    vocab = int(model.config.vocab_size)
    ids = torch.randint(100, max(101, vocab - 1), (concurrency, prompt_tokens), generator=g).to(dev)
    stamp = Stamp()
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer is not None else 0
    start = time.perf_counter()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=output_tokens,
                       min_new_tokens=output_tokens, do_sample=False, logits_processor=LogitsProcessorList([stamp]),
                       pad_token_id=pad)
    times = stamp.times
    tpot = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    ttft = times[0] - start if times else float("nan")  # no step stamped (e.g. zero new tokens): nothing to time
    return BatchRun(concurrency, prompt_tokens, output_tokens, ttft, tpot)


def predict_generation(model, profile: DeviceProfile, concurrency: int, prompt_tokens: int, output_tokens: int,
                       step_overhead_s: float, weight_format: str = "fp32", kv_dtype: str = "fp32",
                       decode_flops_per_s: float | None = None) -> BatchRun:
    """The planner's prediction of ``measure_generation`` on this machine: prefill of the whole batch in one step,
    then decode steps of ``concurrency`` sequences at the mean context, each step paying ``step_overhead_s`` of
    framework overhead (``measure_step_overhead``) on top of the roofline time. Prefill uses the large-matmul
    FLOP/s; decode the rate measured at its own matrix shapes when given."""
    m = serving.serving_model(model)
    gpu = profile.as_gpu()
    if decode_flops_per_s:  # the achieved rate at this batch's matrix shapes (measure_decode_matmul_flops)
        gpu = replace(gpu, bf16_tflops=decode_flops_per_s / 1e12)
    engine = serving.Engine(gpu, weight_format, serving.KV_DTYPES[kv_dtype], 1, 1.0, 1.0, step_overhead_s)
    prefill_engine = serving.Engine(profile.as_gpu(), weight_format, serving.KV_DTYPES[kv_dtype], 1, 1.0, 1.0,
                                    step_overhead_s)
    ttft = serving.prefill_s(m, prefill_engine, prompt_tokens, concurrency)
    step = serving.step_time(m, engine, concurrency, prompt_tokens + output_tokens / 2)
    return BatchRun(concurrency, prompt_tokens, output_tokens, ttft, step.total_s)


def compare_rows(measured: list[BatchRun], predicted: list[BatchRun]) -> list[dict[str, Any]]:
    """Measured and predicted TTFT, TPOT and tokens/s per concurrency, with the error % of each."""
    rows = []
    for me, pr in zip(measured, predicted):
        row: dict[str, Any] = {"concurrency": me.concurrency}
        for metric in ("ttft_s", "tpot_s", "tokens_per_s"):
            mv, pv = getattr(me, metric), getattr(pr, metric)
            row[f"measured_{metric}"] = mv
            row[f"predicted_{metric}"] = pv
            row[f"error_{metric}_pct"] = error_pct(pv, mv, missing=float("nan"))
        rows.append(row)
    return rows


def knee_direction_ok(rows: list[dict[str, Any]], tolerance: float = 0.1) -> bool:
    """The predicted knee direction holds: where the prediction says aggregate tokens/s rises with concurrency by
    more than ``tolerance``, the measurement rises too (and where it says flat, the measurement does not jump)."""
    for a, b in zip(rows, rows[1:]):
        if not (a["predicted_tokens_per_s"] > 0 and a["measured_tokens_per_s"] > 0):
            continue  # no rate to rise from (zero or nan): this pair says nothing about the knee
        pred_rise = b["predicted_tokens_per_s"] / a["predicted_tokens_per_s"] - 1
        meas_rise = b["measured_tokens_per_s"] / a["measured_tokens_per_s"] - 1
        if pred_rise > tolerance and meas_rise <= 0:
            return False
    return True


def measure_and_predict(loaded, model, levels, prompt_tokens: int, output_tokens: int, progress=None) -> dict[str, Any]:
    """The Serving page's check on this machine: the device profile, then at each concurrency in ``levels`` a real
    batched ``generate`` next to ``predict_generation`` with the step overhead and decode FLOP/s measured at that
    batch. ``model`` is the catalog id of ``loaded``. Returns the profile, operators per step, the last level's
    overhead and ``compare_rows``."""
    report = progress or (lambda fraction, message: None)
    report(0.05, "Measuring memory bandwidth, matmul FLOP/s and dispatch time…")
    profile = measure_device(loaded.device.type, refresh=True, model=model)
    ops = count_ops_per_step(loaded.model)
    measured, predicted, overhead = [], [], 0.0
    for i, b in enumerate(levels):
        report(0.15 + 0.85 * i / len(levels), f"Generating {output_tokens} tokens for {b} sequence(s)…")
        overhead = measure_step_overhead(model, b)
        decode_flops = measure_decode_matmul_flops(model, b, loaded.device.type)
        measured.append(measure_generation(loaded, b, prompt_tokens, output_tokens))
        predicted.append(predict_generation(model, profile, b, prompt_tokens, output_tokens, overhead,
                                            decode_flops_per_s=decode_flops))
    return {"profile": profile, "ops": ops, "overhead_s": overhead, "rows": compare_rows(measured, predicted),
            "prompt_tokens": prompt_tokens, "output_tokens": output_tokens}


def display_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``compare_rows`` for a table people read: milliseconds, tokens/s and errors in %, one row per concurrency."""
    return [{"Concurrent sequences": r["concurrency"],
             "TTFT measured (ms)": r["measured_ttft_s"] * 1e3, "TTFT predicted (ms)": r["predicted_ttft_s"] * 1e3,
             "TTFT error (%)": r["error_ttft_s_pct"],
             "TPOT measured (ms)": r["measured_tpot_s"] * 1e3, "TPOT predicted (ms)": r["predicted_tpot_s"] * 1e3,
             "TPOT error (%)": r["error_tpot_s_pct"],
             "tokens/s measured": r["measured_tokens_per_s"], "tokens/s predicted": r["predicted_tokens_per_s"],
             "tokens/s error (%)": r["error_tokens_per_s_pct"]} for r in rows]
