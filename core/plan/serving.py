"""Serving planner: memory per GPU, KV capacity, and roofline speed (TTFT, TPOT, tokens/s) of one model replica.

Units: bytes, seconds, FLOP/s, tokens/s. GB = 1e9 bytes (``core.common.units.GB``), GiB = 2**30.

Sources:
- Decode is memory-bound at small batch: each step streams the weights (and the KV cache) from memory; it turns
  compute-bound when 2·N_active·batch FLOPs outweigh the bytes ÷ bandwidth (Pope et al. 2022, "Efficiently Scaling
  Transformer Inference", §2 and §3.1; the roofline model: Williams, Waterman & Patterson 2009, "Roofline: an
  insightful visual performance model", CACM 52(4)).
- Forward FLOPs ≈ 2·N per token plus attention 2·n_heads·(d_qk + d_v) per token and cached key (Kaplan et al. 2020,
  "Scaling Laws for Neural Language Models", Table 1; Pope et al. 2022, §2.1).
- Paged KV cache in blocks of 16 tokens, a memory budget of gpu_memory_utilization × GPU memory, chunked prefill with a
  per-step token budget (Kwon et al. 2023, "Efficient Memory Management for Large Language Model Serving with
  PagedAttention", §4; vLLM engine arguments: https://docs.vllm.ai/en/latest/configuration/engine_args.html).
- Tensor parallelism: two all-reduces of the activations per layer (Shoeybi et al. 2019, "Megatron-LM", §3); a ring
  all-reduce moves 2(t−1)/t of the data per GPU (Patarasuk & Yuan 2009, "Bandwidth optimal all-reduce algorithms").
- ggml block formats: Q4_0 = 32 4-bit values + one fp16 scale (18 B / 32 weights), Q4_1 adds an fp16 minimum
  (20 B / 32), Q8_0 = 32 int8 + fp16 scale (34 B / 32) — ggml/src/ggml-common.h (block_q4_0, block_q4_1, block_q8_0).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

from core.common import checks
from core.plan import architectures
from core.plan.hardware import GPU, get_gpu
from core.plan.memory import DEFAULT_CUDA_OVERHEAD_BYTES

GIB = 2**30
# Bytes per weight. fp8/int8/int4 as vLLM stores them (embeddings and lm_head stay 16-bit); ggml formats quantize all.
WEIGHT_FORMATS: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5,
                                    "q8_0": 34 / 32, "q4_1": 20 / 32, "q4_0": 18 / 32, "fp32": 4.0}
_GGML_FORMATS = ("q8_0", "q4_1", "q4_0")
KV_DTYPES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0}
KV_BLOCK_TOKENS = 16  # vLLM --block-size default
DEFAULT_MAX_NUM_SEQS = 256  # vLLM --max-num-seqs default
DEFAULT_MAX_BATCHED_TOKENS = 2048  # vLLM --max-num-batched-tokens with chunked prefill (V1 online-serving default)
# CUDA graphs: vLLM logs show 0.21 GiB for Llama-3.2-1B (vllm-project/vllm PR #11349) and 0.36 GiB estimated for a
# small model (gpustack/runner PR #251: "CUDA graph memory profiling is enabled (default since v0.21.0)", i.e. inside
# gpu_memory_utilization); users report 1.4–6.6 GiB per GPU for large models. Default: 1.4 GiB (editable).
DEFAULT_CUDA_GRAPH_BYTES = 1.4 * GIB
CUDA_CONTEXT_BYTES = DEFAULT_CUDA_OVERHEAD_BYTES  # CUDA context and kernels (Hugging Face, "Model training anatomy")
# Share of peak bandwidth a tuned engine reaches at batch 1: the vLLM and MLC runs in benchmarks/published_decode.json
# (A100 40GB, RTX 4090) imply 72–79 %; llama.cpp runs of small models imply less (per-step overhead, README table).
DEFAULT_BANDWIDTH_EFFICIENCY = 0.75
DEFAULT_MFU = 0.5  # prefill share of peak FLOP/s; large-batch GEMMs reach 50–80 % of peak (an editable assumption)
ALLREDUCE_LATENCY_S = 10e-6  # per small all-reduce (order of NCCL's small-message latency; an editable assumption)
ACTIVATION_BYTES = 2  # 16-bit activations
LOGITS_BYTES = 4  # the sampler's fp32 logits


class ServingInputError(ValueError):
    """A user-facing problem with a serving input (message names the input and the allowed range)."""


def _num(value, what: str, low: float, high: float, unit: str, integer: bool = False) -> float:
    check = checks.check_int if integer else checks.check_number
    return check(value, what, low, high, unit=unit, error=ServingInputError)


# ---------------------------------------------------------------------------------------------------------------
# Model facts the planner needs
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServingModel:
    """Per-token facts of a decoder: parameters (total for memory, active for FLOPs) and its KV/attention layout."""

    name: str
    total_params: int
    active_params: int
    matmul_params: int  # active parameters used in matmuls (input embedding lookup excluded; tied lm_head counted)
    embedding_params: int  # input embedding + untied lm_head (kept 16-bit by vLLM's fp8/int8/int4 methods)
    expert_params: int  # routed-expert parameters of all MoE layers (all experts)
    num_experts: int
    experts_per_token: int
    moe_layers: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    qk_dim: int
    v_dim: int
    mla: bool
    kv_groups: tuple  # architectures.kv_groups rows
    vocab_size: int
    ffn_per_token: int  # intermediate width one token passes through (dense, or k experts + shared)
    exact: bool  # False when the shape is borrowed from the nearest catalog model (a bare parameter count)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kv_groups"] = [asdict(g) for g in self.kv_groups]
        return d


def serving_model(model) -> ServingModel:
    """``ServingModel`` of a catalog id / alias, a config dict, or a bare parameter count (treated as dense; the
    attention/KV shape comes from the nearest catalog decoder by parameter count)."""
    if isinstance(model, (int, float)) and not isinstance(model, bool):
        n = _num(model, "Parameter count", 1e6, 1e13, "parameters")
        shape = serving_model(nearest_dense_decoder(n))
        return replace(shape, name=f"{n / 1e9:.3g}B-parameter model", total_params=int(n), active_params=int(n),
                       matmul_params=int(n), embedding_params=0, expert_params=0, num_experts=0,
                       experts_per_token=0, moe_layers=0, exact=False)
    c = architectures.get_config(model)
    if c["kind"] != "decoder":
        raise ServingInputError(f"{c.get('_name_or_path') or c['model_type']} is an {c['kind']}: the serving planner "
                                "plans text generation with decoder models.")
    total = architectures.param_count(c)
    active = architectures.active_param_count(c)
    V, h = c["vocab_size"], c["hidden_size"]
    untied = not c["tie_word_embeddings"]
    experts = c.get("num_experts_total", 0) or 0
    moe_layers = len(c.get("moe_layer_ids") or [])
    expert_params = moe_layers * experts * 3 * h * c.get("expert_intermediate_size", 0) if experts else 0
    mla = c.get("mla")
    if mla:
        qk, v = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"], mla["v_head_dim"]
    else:
        qk = v = c["head_dim"]
    if experts and moe_layers:
        f = c["experts_per_token"] * c["expert_intermediate_size"] + c.get("shared_experts", 0) * c[
            "expert_intermediate_size"]
    else:
        f = c["intermediate_size"]
    return ServingModel(
        name=str(c.get("_name_or_path") or c["model_type"]), total_params=total, active_params=active,
        matmul_params=active - (V * h if untied else 0), embedding_params=V * h * (2 if untied else 1),
        expert_params=expert_params, num_experts=experts, experts_per_token=c.get("experts_per_token", 0) or 0,
        moe_layers=moe_layers, hidden_size=h, num_layers=c["num_hidden_layers"],
        num_heads=c["num_attention_heads"], num_kv_heads=c["num_key_value_heads"], qk_dim=qk, v_dim=v,
        mla=bool(mla), kv_groups=tuple(architectures.kv_groups(c)), vocab_size=V, ffn_per_token=f, exact=True)


def nearest_dense_decoder(n_params: float) -> str:
    """Catalog decoder without experts or MLA whose parameter count is closest (log scale) to ``n_params``: the shape
    a bare parameter count borrows for its attention and KV cache."""
    best, gap = None, math.inf
    for cid in architectures.catalog_ids():
        c = architectures.get_config(cid)
        if c["kind"] != "decoder" or c.get("num_experts_total") or c.get("mla"):
            continue
        g = abs(math.log(architectures.param_count(cid) / n_params))
        if g < gap:
            best, gap = cid, g
    return best


def weight_bytes(m: ServingModel, weight_format: str) -> float:
    """Bytes of all weights in ``weight_format`` (``WEIGHT_FORMATS``); vLLM's fp8/int8/int4 keep embeddings 16-bit."""
    if weight_format not in WEIGHT_FORMATS:
        raise ServingInputError(f"Unknown weight format {weight_format!r}. Known: {', '.join(WEIGHT_FORMATS)}.")
    per = WEIGHT_FORMATS[weight_format]
    if weight_format in _GGML_FORMATS or per >= 2:
        return m.total_params * per
    return (m.total_params - m.embedding_params) * per + m.embedding_params * 2.0


def expected_experts_touched(num_experts: int, experts_per_token: int, batch: float) -> float:
    """Distinct experts a batch of tokens visits per MoE layer when routing is uniform: E·(1 − (1 − k/E)^b)."""
    if not num_experts:
        return 0.0
    return num_experts * (1.0 - (1.0 - experts_per_token / num_experts) ** max(batch, 0.0))


def decode_weight_bytes(m: ServingModel, weight_format: str, batch: float) -> float:
    """Weight bytes one decode step streams at ``batch`` sequences: the lm_head and every non-expert weight, plus the
    experts the batch touches (an untied input embedding is only indexed, one row per token: left out)."""
    weight_bytes(m, weight_format)  # validates the format
    per = WEIGHT_FORMATS[weight_format]
    emb_per = per if (weight_format in _GGML_FORMATS or per >= 2) else 2.0
    unread = m.active_params - m.matmul_params  # untied input embedding
    dense = (m.total_params - m.expert_params - m.embedding_params) * per + (m.embedding_params - unread) * emb_per
    if not m.num_experts or not m.moe_layers:
        return dense
    per_expert = m.expert_params / (m.num_experts * m.moe_layers) * per
    return dense + m.moe_layers * per_expert * expected_experts_touched(m.num_experts, m.experts_per_token, batch)


def kv_bytes_per_sequence(m: ServingModel, tokens: float, kv_bytes_per_value: float,
                          block_tokens: int = KV_BLOCK_TOKENS) -> float:
    """KV bytes (all GPUs) of one sequence of ``tokens`` tokens in whole blocks of ``block_tokens`` (PagedAttention
    §4.1); sliding-window layers hold at most the window (rounded up to blocks)."""
    total = 0.0
    for g in m.kv_groups:
        held = min(tokens, g.window) if g.window else tokens
        if block_tokens > 1:
            held = math.ceil(held / block_tokens) * block_tokens
        total += g.layers * g.values_per_token * held * kv_bytes_per_value
    return total


def kv_shards(m: ServingModel, tensor_parallel: int) -> int:
    """GPUs the KV cache is split over: KV heads are split across tensor-parallel ranks (replicated when there are
    fewer heads than ranks); MLA's single latent is replicated on every rank (vLLM's MLA backend)."""
    if m.mla:
        return 1
    return max(1, min(tensor_parallel, m.num_kv_heads))


def _keys_sum(tokens: float, start: float, window: int | None) -> float:
    """Σ over new tokens i = start+1 … start+tokens of the keys each attends to (causal, capped by the window)."""
    def s(n: float) -> float:  # Σ_{i=1..n} min(i, W)
        if window is None or n <= window:
            return n * (n + 1) / 2
        return window * (window + 1) / 2 + (n - window) * window
    return s(start + tokens) - s(start)


def attention_flops(m: ServingModel, tokens: float, start: float = 0.0) -> float:
    """Score and value FLOPs of ``tokens`` new tokens after ``start`` cached ones: 2·heads·(d_qk + d_v) per key."""
    return sum(g.layers * 2 * m.num_heads * (m.qk_dim + m.v_dim) * _keys_sum(tokens, start, g.window)
               for g in m.kv_groups)


# ---------------------------------------------------------------------------------------------------------------
# Step times
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Engine:
    """The hardware and engine settings one replica runs with (per GPU numbers, ``tensor_parallel`` GPUs)."""

    gpu: GPU
    weight_format: str = "bf16"
    kv_bytes_per_value: float = 2.0
    tensor_parallel: int = 1
    bandwidth_efficiency: float = DEFAULT_BANDWIDTH_EFFICIENCY
    mfu: float = DEFAULT_MFU
    step_overhead_s: float = 0.0  # fixed time per forward step (framework dispatch); ~0 with CUDA graphs
    allreduce_latency_s: float = ALLREDUCE_LATENCY_S

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.gpu.bandwidth_bytes_per_s * self.bandwidth_efficiency * self.tensor_parallel

    @property
    def flops_per_s(self) -> float:
        return self.gpu.peak_flops * self.mfu * self.tensor_parallel


@dataclass(frozen=True)
class StepTime:
    """One forward step of a replica: memory time, compute time, all-reduce time, fixed overhead (seconds)."""

    memory_s: float
    compute_s: float
    allreduce_s: float
    overhead_s: float

    @property
    def total_s(self) -> float:
        return max(self.memory_s, self.compute_s) + self.allreduce_s + self.overhead_s

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s > self.memory_s else "memory"


def allreduce_s(m: ServingModel, engine: Engine, tokens: float) -> float:
    """Two all-reduces per layer of tokens × hidden 16-bit activations over the GPU link (ring: 2(t−1)/t per GPU)."""
    t = engine.tensor_parallel
    if t <= 1:
        return 0.0
    link = engine.gpu.interconnect_bytes_per_s
    if link <= 0:
        raise ServingInputError(f"{engine.gpu.name} has no interconnect bandwidth: enter one to plan tensor parallel.")
    size = tokens * m.hidden_size * ACTIVATION_BYTES
    return 2 * m.num_layers * (2 * (t - 1) / t * size / link + engine.allreduce_latency_s)


def step_time(m: ServingModel, engine: Engine, decode_batch: float, context_tokens: float,
              prefill_tokens: float = 0.0, prefill_start: float = 0.0) -> StepTime:
    """A step that decodes ``decode_batch`` sequences at ``context_tokens`` cached tokens each and prefills
    ``prefill_tokens`` prompt tokens (after ``prefill_start`` cached ones): roofline max(memory, compute)."""
    bytes_read = decode_weight_bytes(m, engine.weight_format, max(decode_batch + prefill_tokens, 1.0))
    bytes_read += decode_batch * kv_bytes_per_sequence(m, context_tokens, engine.kv_bytes_per_value, 1)
    flops = 2.0 * m.matmul_params * (decode_batch + prefill_tokens)
    flops += decode_batch * attention_flops(m, 1, context_tokens)
    if prefill_tokens:
        flops += attention_flops(m, prefill_tokens, prefill_start)
    return StepTime(bytes_read / engine.bandwidth_bytes_per_s, flops / engine.flops_per_s,
                    allreduce_s(m, engine, decode_batch + prefill_tokens), engine.step_overhead_s)


def prefill_s(m: ServingModel, engine: Engine, prompt_tokens: float, sequences: int = 1,
              max_batched_tokens: int | None = None) -> float:
    """Time to prefill ``sequences`` prompts of ``prompt_tokens`` (chunks of at most ``max_batched_tokens``)."""
    total = prompt_tokens * sequences
    chunk = total if not max_batched_tokens else min(total, max_batched_tokens)
    chunks = max(1, math.ceil(total / chunk))
    step = step_time(m, engine, 0, 0, chunk, 0)
    attn = sequences * attention_flops(m, prompt_tokens) / engine.flops_per_s  # exact causal attention
    compute = 2.0 * m.matmul_params * total / engine.flops_per_s + attn  # real tokens: the last chunk may be short
    return max(chunks * step.memory_s, compute) + chunks * (step.allreduce_s + step.overhead_s)


# ---------------------------------------------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ServingPlan:
    """One replica (``tensor_parallel`` GPUs) serving ``concurrency`` users of one workload. Bytes are per GPU unless
    the name says otherwise; times in seconds; tokens/s per sequence or aggregate as named."""

    model: str
    gpu: str
    weight_format: str
    kv_dtype: str
    tensor_parallel: int
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    gpu_memory_utilization: float
    bandwidth_efficiency: float
    mfu: float
    total_params: int
    active_params: int
    memory_budget_bytes: float
    weights_bytes: float
    activation_reserve_bytes: float
    runtime_overhead_bytes: float
    kv_pool_bytes: float
    kv_bytes_per_token: float  # whole replica, averaged over one sequence of prompt + output tokens
    kv_bytes_per_sequence: float  # whole replica, in whole blocks
    kv_capacity_tokens: int  # tokens the replica's KV pool holds (whole blocks)
    max_concurrent_sequences: int  # sequences of this workload that fit at once (≤ max_num_seqs)
    fits: bool
    running_batch: int  # sequences decoding together: min(concurrency, max_concurrent_sequences)
    prefill_s: float  # one prompt alone
    ttft_s: float  # under this load (chunked prefill beside the running batch, plus queueing for a slot)
    tpot_s: float  # time per output token under this load
    decode_tokens_per_s: float  # per sequence: 1 / tpot
    throughput_tokens_per_s: float  # aggregate output tokens/s of the replica
    decode_ceiling_tokens_per_s: float  # batch 1 at 100 % of peak bandwidth (weights + KV of one sequence)
    memory_time_s: float
    compute_time_s: float
    allreduce_time_s: float
    bound: str
    knee_batch: int | None  # smallest batch whose decode step is compute-bound (None: not below 1e6)
    notes: tuple = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["notes"] = list(self.notes)
        return d


def resolve_gpu(gpu) -> GPU:
    """A catalog name or a ``GPU``."""
    if isinstance(gpu, GPU):
        if gpu.memory_gb <= 0 or gpu.bandwidth_gbs <= 0 or gpu.bf16_tflops <= 0:
            raise ServingInputError("The GPU needs positive memory (GB), bandwidth (GB/s) and TFLOP/s.")
        return gpu
    try:
        return get_gpu(str(gpu))
    except KeyError as exc:
        raise ServingInputError(str(exc.args[0])) from None


def knee_batch(m: ServingModel, engine: Engine, context_tokens: float, limit: int = 1_000_000) -> int | None:
    """Smallest decode batch whose step is compute-bound (aggregate throughput stops growing ~linearly there)."""
    lo, hi = 1, limit
    if step_time(m, engine, hi, context_tokens).bound == "memory":
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        if step_time(m, engine, mid, context_tokens).bound == "compute":
            hi = mid
        else:
            lo = mid + 1
    return lo


def plan_serving(model, gpu, *, weight_format: str = "bf16", kv_dtype: str = "bf16", tensor_parallel: int = 1,
                 prompt_tokens: int = 1024, output_tokens: int = 256, concurrency: int = 1,
                 gpu_memory_utilization: float = 0.9, bandwidth_efficiency: float | None = None,
                 mfu: float | None = None, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
                 max_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS,
                 cuda_graph_bytes: float = DEFAULT_CUDA_GRAPH_BYTES, step_overhead_s: float = 0.0) -> dict:
    """Plan one replica; returns ``ServingPlan.to_dict()``. See ``serving_plan`` for the dataclass."""
    return serving_plan(model, gpu, weight_format=weight_format, kv_dtype=kv_dtype, tensor_parallel=tensor_parallel,
                        prompt_tokens=prompt_tokens, output_tokens=output_tokens, concurrency=concurrency,
                        gpu_memory_utilization=gpu_memory_utilization, bandwidth_efficiency=bandwidth_efficiency,
                        mfu=mfu, max_num_seqs=max_num_seqs, max_batched_tokens=max_batched_tokens,
                        cuda_graph_bytes=cuda_graph_bytes, step_overhead_s=step_overhead_s).to_dict()


def make_engine(gpu, *, weight_format="bf16", kv_dtype="bf16", tensor_parallel=1, bandwidth_efficiency=None,
                mfu=None, step_overhead_s=0.0) -> Engine:
    """Validated ``Engine`` from the planner's inputs."""
    g = resolve_gpu(gpu)
    if weight_format not in WEIGHT_FORMATS:
        raise ServingInputError(f"Unknown weight format {weight_format!r}. Known: {', '.join(WEIGHT_FORMATS)}.")
    if kv_dtype not in KV_DTYPES:
        raise ServingInputError(f"Unknown KV-cache dtype {kv_dtype!r}. Known: {', '.join(KV_DTYPES)}.")
    tp = _num(tensor_parallel, "GPUs per replica (tensor parallel)", 1, 64, "GPUs", integer=True)
    eff = DEFAULT_BANDWIDTH_EFFICIENCY if bandwidth_efficiency is None else _num(
        bandwidth_efficiency, "Achieved share of memory bandwidth", 0.01, 1.0, "(fraction)")
    u = DEFAULT_MFU if mfu is None else _num(mfu, "Prefill MFU", 0.01, 1.0, "(fraction)")
    over = _num(step_overhead_s, "Step overhead", 0, 10, "s")
    return Engine(g, weight_format, KV_DTYPES[kv_dtype], tp, eff, u, over)


def serving_plan(model, gpu, *, weight_format: str = "bf16", kv_dtype: str = "bf16", tensor_parallel: int = 1,
                 prompt_tokens: int = 1024, output_tokens: int = 256, concurrency: int = 1,
                 gpu_memory_utilization: float = 0.9, bandwidth_efficiency: float | None = None,
                 mfu: float | None = None, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS,
                 max_batched_tokens: int = DEFAULT_MAX_BATCHED_TOKENS,
                 cuda_graph_bytes: float = DEFAULT_CUDA_GRAPH_BYTES, step_overhead_s: float = 0.0) -> ServingPlan:
    """The ``ServingPlan`` of ``model`` (catalog id, parameter count or config dict) on ``gpu`` (catalog name or GPU).

    Memory per GPU (vLLM's accounting): budget = utilization × GPU memory; weights ÷ TP; an activation reserve for the
    largest prefill chunk (max_batched_tokens × (4·hidden + 2·ffn) 16-bit values ÷ TP, plus fp32 logits for
    max_num_seqs rows); runtime overhead = CUDA context + CUDA graphs; the rest is the paged KV pool.
    Speed: see ``step_time``. Under load, the others' prompts are prefilled in chunks beside the decoding batch
    ((users − 1) · prompt ÷ output tokens per step), so TPOT grows with load even while memory-bound.
    """
    m = serving_model(model)
    engine = make_engine(gpu, weight_format=weight_format, kv_dtype=kv_dtype, tensor_parallel=tensor_parallel,
                         bandwidth_efficiency=bandwidth_efficiency, mfu=mfu, step_overhead_s=step_overhead_s)
    g, tp = engine.gpu, engine.tensor_parallel
    P = _num(prompt_tokens, "Prompt tokens", 1, 10_000_000, "tokens", integer=True)
    O = _num(output_tokens, "Output tokens", 1, 10_000_000, "tokens", integer=True)
    users = _num(concurrency, "Concurrent users", 1, 10_000_000, "users", integer=True)
    util = _num(gpu_memory_utilization, "GPU memory utilization", 0.05, 1.0, "(fraction)")
    max_seqs = _num(max_num_seqs, "Max concurrent sequences", 1, 100_000, "sequences", integer=True)
    budget_tokens = _num(max_batched_tokens, "Max batched tokens", 16, 10_000_000, "tokens", integer=True)
    graphs = _num(cuda_graph_bytes, "CUDA graph memory", 0, 1e12, "bytes")
    notes = []
    if not m.exact:
        notes.append("Attention and KV shape borrowed from the nearest catalog model; dense model assumed.")

    budget = util * g.memory_bytes
    weights = weight_bytes(m, engine.weight_format) / tp
    activation = (budget_tokens * (4 * m.hidden_size + 2 * m.ffn_per_token) * ACTIVATION_BYTES / tp
                  + max_seqs * m.vocab_size * LOGITS_BYTES)
    overhead = CUDA_CONTEXT_BYTES + graphs
    pool = max(0.0, budget - weights - activation - overhead)
    seq_len = P + O
    shards = kv_shards(m, tp)
    per_seq = kv_bytes_per_sequence(m, seq_len, engine.kv_bytes_per_value)
    per_seq_gpu = per_seq / shards
    per_token = per_seq / seq_len
    capacity_tokens = int(pool / (per_token / shards) // KV_BLOCK_TOKENS * KV_BLOCK_TOKENS) if per_token else 0
    fit_seqs = int(pool // per_seq_gpu) if per_seq_gpu else max_seqs
    max_conc = min(fit_seqs, max_seqs)
    fits = pool > 0 and max_conc >= 1
    if not fits:
        notes.append("The weights and reserves leave no room for one sequence's KV cache: add GPUs (tensor parallel),"
                     " a smaller weight format or a GPU with more memory.")
    batch = max(1, min(users, max_conc)) if fits else 1
    context = P + O / 2  # mean cached tokens over a sequence's decode
    one = prefill_s(m, engine, P, 1, budget_tokens)
    prefill_per_step = min((batch - 1) * P / O, budget_tokens)
    step = step_time(m, engine, batch, context, prefill_per_step, P / 2)
    tpot = step.total_s
    # TTFT: the prompt in chunks beside the batch's other decoders, plus waiting for a free slot.
    others = batch - 1
    chunk = max(1, budget_tokens - others)
    chunks = math.ceil(P / chunk)
    chunk_step = step_time(m, engine, others, context, min(P, chunk), 0)
    ttft = max(chunks * chunk_step.memory_s,
               (2.0 * m.matmul_params * (P + chunks * others) + attention_flops(m, P)
                + chunks * others * attention_flops(m, 1, context)) / engine.flops_per_s) \
        + chunks * (chunk_step.allreduce_s + chunk_step.overhead_s)
    if users > batch:
        waves = math.ceil((users - batch) / batch)
        ttft += waves * (ttft + O * tpot)
        notes.append(f"{users - batch} of {users} users wait for a free slot (only {batch} sequences fit at once).")
    cycle = ttft + O * tpot
    throughput = min(users, batch) * O / cycle
    peak = replace(engine, bandwidth_efficiency=1.0, step_overhead_s=0.0)
    ceiling_step = step_time(m, peak, 1, context)
    ceiling = 1.0 / max(ceiling_step.memory_s, 1e-30)
    return ServingPlan(
        model=m.name, gpu=g.name, weight_format=engine.weight_format, kv_dtype=kv_dtype, tensor_parallel=tp,
        prompt_tokens=P, output_tokens=O, concurrency=users, gpu_memory_utilization=util,
        bandwidth_efficiency=engine.bandwidth_efficiency, mfu=engine.mfu, total_params=m.total_params,
        active_params=m.active_params, memory_budget_bytes=budget, weights_bytes=weights,
        activation_reserve_bytes=activation, runtime_overhead_bytes=overhead, kv_pool_bytes=pool,
        kv_bytes_per_token=per_token, kv_bytes_per_sequence=per_seq, kv_capacity_tokens=capacity_tokens,
        max_concurrent_sequences=max_conc if fits else 0, fits=fits, running_batch=batch, prefill_s=one,
        ttft_s=ttft, tpot_s=tpot, decode_tokens_per_s=1.0 / tpot, throughput_tokens_per_s=throughput,
        decode_ceiling_tokens_per_s=ceiling, memory_time_s=step.memory_s, compute_time_s=step.compute_s,
        allreduce_time_s=step.allreduce_s, bound=step.bound, knee_batch=knee_batch(m, engine, context),
        notes=tuple(notes))
