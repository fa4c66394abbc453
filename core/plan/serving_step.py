"""The roofline time of one engine iteration of a continuous-batching server, for any batch composition: prompt
tokens being prefilled (and the keys they attend to) beside sequences decoding one token each (and their contexts).

One step streams every weight once (plus the experts its tokens touch) and every cached key and value the batch
attends to, and does 2·N_matmul FLOPs per token plus 2·heads·(d_qk + d_v) per token and attended key; its time is
max(bytes ÷ bandwidth, FLOPs ÷ FLOP/s) + all-reduces + a fixed per-step overhead (the roofline model: Williams,
Waterman & Patterson 2009, CACM 52(4); per-step decode/prefill costs: Pope et al. 2022, "Efficiently Scaling
Transformer Inference", §2–3; attention FLOPs: Kaplan et al. 2020, Table 1). The same terms as
``core.plan.serving.step_time``, precomputed once so a simulator can evaluate thousands of steps (numpy arrays in,
arrays out). Sliding-window layers are counted as full attention: an upper bound of their work.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from core.plan.serving import (
    ACTIVATION_BYTES,
    WEIGHT_FORMATS,
    Engine,
    ServingModel,
    decode_weight_bytes,
    kv_bytes_per_sequence,
)


@dataclass(frozen=True)
class StepRoofline:
    """Per-step constants of one replica: bytes and FLOPs per unit of batch, and the hardware rates they meet."""

    dense_weight_bytes: float  # weights every step streams (all but the routed experts)
    per_expert_bytes: float  # one routed expert of one MoE layer (0: dense)
    num_experts: int
    experts_per_token: int
    moe_layers: int
    kv_bytes_per_token: float  # K and V of one cached token, all layers (whole replica)
    matmul_flops_per_token: float  # 2 · matmul parameters
    attention_flops_per_key: float  # 2 · heads · (d_qk + d_v) · layers, per (query token, key) pair
    bandwidth_bytes_per_s: float
    flops_per_s: float
    allreduce_bytes_per_token: float  # 2 per layer × hidden × 16-bit, × 2(t−1)/t (0 without tensor parallel)
    allreduce_latency_per_step_s: float
    link_bytes_per_s: float
    overhead_s: float

    def weight_bytes(self, tokens):
        """Weight bytes of a step of ``tokens`` tokens (experts touched by uniform routing: E·(1 − (1 − k/E)^b))."""
        if not self.num_experts:
            return np.zeros_like(np.asarray(tokens, dtype=float)) + self.dense_weight_bytes
        b = np.maximum(np.asarray(tokens, dtype=float), 1.0)
        touched = self.num_experts * (1.0 - (1.0 - self.experts_per_token / self.num_experts) ** b)
        return self.dense_weight_bytes + self.moe_layers * self.per_expert_bytes * touched

    def parts_s(self, prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens):
        """(memory seconds, compute seconds, all-reduce + overhead seconds) of the steps given elementwise."""
        p = np.asarray(prefill_tokens, dtype=float)
        d = np.asarray(decode_seqs, dtype=float)
        ctx = np.asarray(decode_context_tokens, dtype=float)
        keys = np.asarray(prefill_keys, dtype=float)
        tokens = p + d
        memory = (self.weight_bytes(tokens) + self.kv_bytes_per_token * (ctx + keys_read(p, keys))) \
            / self.bandwidth_bytes_per_s
        compute = (self.matmul_flops_per_token * tokens + self.attention_flops_per_key * (keys + ctx + d)) \
            / self.flops_per_s
        fixed = self.overhead_s + np.where(tokens > 0, self.allreduce_latency_per_step_s, 0.0)
        if self.link_bytes_per_s > 0:
            fixed = fixed + self.allreduce_bytes_per_token * tokens / self.link_bytes_per_s
        return memory, compute, fixed

    def step_s(self, prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens):
        """Seconds of each step: max(memory, compute) + all-reduces + overhead."""
        memory, compute, fixed = self.parts_s(prefill_tokens, prefill_keys, decode_seqs, decode_context_tokens)
        return np.maximum(memory, compute) + fixed

    def to_dict(self) -> dict:
        return asdict(self)


def keys_read(prefill_tokens, prefill_keys):
    """Cached keys a prefill chunk reads from memory: the keys before the chunk. With s cached tokens and n new ones
    the chunk attends to n·s + n(n+1)/2 (query, key) pairs, so s = (keys − n(n+1)/2) ÷ n."""
    p = np.asarray(prefill_tokens, dtype=float)
    own = p * (p + 1) / 2
    return np.where(p > 0, np.maximum(np.asarray(prefill_keys, dtype=float) - own, 0.0) / np.maximum(p, 1.0), 0.0)


def step_roofline(m: ServingModel, engine: Engine) -> StepRoofline:
    """``StepRoofline`` of ``m`` on ``engine`` (the planner's Engine: bandwidth efficiency, MFU, TP, overhead)."""
    per = WEIGHT_FORMATS[engine.weight_format]
    dense = decode_weight_bytes(m, engine.weight_format, 1.0)
    per_expert = 0.0
    if m.num_experts and m.moe_layers:
        per_expert = m.expert_params / (m.num_experts * m.moe_layers) * per
        dense -= m.moe_layers * per_expert * engine_touched_one(m)
    kv_per_token = kv_bytes_per_sequence(m, 1, engine.kv_bytes_per_value, 1)
    attention = sum(g.layers for g in m.kv_groups) * 2 * m.num_heads * (m.qk_dim + m.v_dim)
    t = engine.tensor_parallel
    ar_bytes = 2 * m.num_layers * 2 * (t - 1) / t * m.hidden_size * ACTIVATION_BYTES if t > 1 else 0.0
    ar_latency = 2 * m.num_layers * engine.allreduce_latency_s if t > 1 else 0.0
    return StepRoofline(dense, per_expert, m.num_experts, m.experts_per_token, m.moe_layers, kv_per_token,
                        2.0 * m.matmul_params, float(attention), engine.bandwidth_bytes_per_s, engine.flops_per_s,
                        ar_bytes, ar_latency, engine.gpu.interconnect_bytes_per_s if t > 1 else 0.0,
                        engine.step_overhead_s)


def engine_touched_one(m: ServingModel) -> float:
    """Experts one token touches per MoE layer (k), as decode_weight_bytes counts them at batch 1."""
    return float(m.experts_per_token) if m.num_experts else 0.0
