"""Per-GPU memory of a training layout: model states and activations, one function per term, each beside its paper.

Ledger (bytes, 16-bit activations; s sequence, b micro-batch, h hidden, a heads, f MLP width, t TP, p PP, v virtual
stages, d DP):
- model states: mixed-precision Adam, 2 + 2 + 12 bytes per parameter (Rajbhandari et al. 2020, "ZeRO", §3.1 and
  Fig. 1), over the parameters this GPU holds: its l/p layers / t, plus the embedding on the first stage and the
  output layer on the last (Narayanan et al. 2021, §2.2); ZeRO stages 1/2/3 shard the optimizer state / gradients /
  weights over d (ZeRO Fig. 1, ``core.plan.memory.zero_model_states_breakdown``);
- activations of one layer, Korthikanti et al. 2022, Table 2 and §4.1–4.2: attention 11sbh + 5as²b, MLP 19sbh
  (with f = 4h; 3sbh + 4sbf in general, as Megatron-LM's theoretical_memory_usage.py writes 18 + 4f/h), two layer
  norms 4sbh; tensor parallelism divides 24sbh and 5as²b by t and leaves 10sbh (``sbh(10 + 24/t + 5as/(ht))``),
  sequence parallelism divides the 10sbh too (``sbh(34/t + 5as/(ht))``), selective recomputation drops 5as²b
  (§5, ``34sbh/t``), full recomputation keeps only each layer's 2sbh input (§5; /t with sequence parallelism);
- in flight: under 1F1B the first stage holds p micro-batches (Narayanan et al. 2021, §2.2.1), i.e. l layers'
  worth; the interleaved schedule holds (1 + (p − 1)/(p·v)) times that (Korthikanti et al. 2022, §4.2.3; Megatron-LM
  megatron/training/theoretical_memory_usage.py, "interleaved_schedule_memory_penalty"); fewer if m < p;
- embedding and output layer (Korthikanti et al. 2022, §4.3): the embedding's dropout mask sbh per micro-batch in
  flight on the first stage; on the last stage the output layer's 2sbh input and the fp32 logits 4sbV/t for the
  cross entropy;
- full recomputation's working set: one layer's activations re-created during its backward pass (§5);
- a fixed CUDA context / allocator reserve (``core.plan.memory.DEFAULT_CUDA_OVERHEAD_BYTES``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from core.plan.memory import DEFAULT_CUDA_OVERHEAD_BYTES, zero_model_states_breakdown
from core.plan.parallel.layout import Layout, ModelShape

ACTIVATION_BYTES = 2  # 16-bit activations (Korthikanti et al. 2022, §4.1: "stored in 16-bit floating point")


def _sbh(model: ModelShape, seq_len: int, micro_batch: int) -> float:
    return float(seq_len * micro_batch * model.hidden)


def attention_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """One layer's self-attention block: 11sbh + 5as²b (Korthikanti et al. 2022, §4.1): QKV input 2sbh and dropout
    mask sbh unsplit by TP (split by SP), Q·K 4sbh, V 2sbh and output-projection input 2sbh split by t; the
    attention core (softmax 2as²b, its dropout mask as²b and output 2as²b) split by t, dropped by selective
    recomputation (§5). FlashAttention never stores the core either: it keeps one fp32 log-sum-exp per query row
    and head, 4·a·s·b bytes, and recomputes the scores in the backward pass (Dao et al. 2022, "FlashAttention",
    §3.1 and Algorithm 2; Dao 2023, "FlashAttention-2", §3.1)."""
    sbh = _sbh(model, seq_len, micro_batch)
    t = layout.tp
    replicated = 3 * sbh / (t if layout.sequence_parallel else 1)
    if layout.flash_attention:
        core = 4 * model.heads * seq_len * micro_batch / t
    elif layout.recompute == "selective":
        core = 0.0
    else:
        core = 5 * model.heads * seq_len * seq_len * micro_batch / t
    return replicated + 8 * sbh / t + core


def mlp_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """One layer's MLP: 19sbh at f = 4h (Korthikanti et al. 2022, §4.1): input 2sbh and dropout mask sbh unsplit by TP
    (split by SP); the first linear's output and the GeLU's output, 2·2·sbf = 16sbh, split by t."""
    sbh = _sbh(model, seq_len, micro_batch)
    t = layout.tp
    return 3 * sbh / (t if layout.sequence_parallel else 1) + 4 * seq_len * micro_batch * model.ffn / t


def layernorm_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """Two layer norms' inputs, 2 × 2sbh, replicated under TP and split by SP (Korthikanti et al. 2022, §4.1–4.2.2)."""
    return 4 * _sbh(model, seq_len, micro_batch) / (layout.tp if layout.sequence_parallel else 1)


def layer_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """One layer's stored activations (Korthikanti et al. 2022, Table 2): the three blocks above, or under full
    recomputation only its 2sbh input (split by t with SP)."""
    if layout.recompute == "full":
        return 2 * _sbh(model, seq_len, micro_batch) / (layout.tp if layout.sequence_parallel else 1)
    return (attention_activation_bytes(model, seq_len, micro_batch, layout)
            + mlp_activation_bytes(model, seq_len, micro_batch, layout)
            + layernorm_activation_bytes(model, seq_len, micro_batch, layout))


def recompute_working_bytes(model: ModelShape, seq_len: int, layout: Layout) -> float:
    """Under full recomputation the backward pass re-runs one layer's forward and holds all of that layer's
    activations until its gradients are done (Korthikanti et al. 2022, §5; Chen et al. 2016, "Training Deep Nets
    with Sublinear Memory Cost", §3): one layer's Table 2 bytes without recomputation. 0 otherwise."""
    if layout.recompute != "full":
        return 0.0
    stored = replace(layout, recompute="none")
    return layer_activation_bytes(model, seq_len, layout.micro_batch, stored)


def in_flight_microbatches(layout: Layout, num_microbatches: int, stage: int = 0) -> float:
    """Micro-batches whose activations stage ``stage`` holds at its peak under 1F1B: p − stage, at most m
    (Narayanan et al. 2021, §2.2.1), times (1 + (p − 1)/(p·v)) with v virtual stages on the first stage
    (Korthikanti et al. 2022, §4.2.3)."""
    held = min(layout.pp - stage, num_microbatches)
    if layout.virtual_stages > 1 and stage == 0:
        held *= 1 + (layout.pp - 1) / (layout.pp * layout.virtual_stages)
    return float(held)


def stage_params(model: ModelShape, layout: Layout, stage: int) -> float:
    """Parameters one GPU of pipeline stage ``stage`` holds: its l/p layers and, on the first stage, the embedding;
    on the last, the output layer; all split over t (Shoeybi et al. 2019, §3; Narayanan et al. 2021, §2.2)."""
    params = model.layers / layout.pp * model.params_per_layer
    if stage == 0:
        params += model.embedding_params
    if stage == layout.pp - 1 and (layout.pp > 1 or model.lm_head_params):
        params += model.last_stage_head_params
    return params / layout.tp


def embedding_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """The embedding's dropout mask, sbh per micro-batch (Korthikanti et al. 2022, §4.3), split by t with SP."""
    return _sbh(model, seq_len, micro_batch) / (layout.tp if layout.sequence_parallel else 1)


def output_activation_bytes(model: ModelShape, seq_len: int, micro_batch: int, layout: Layout) -> float:
    """The output layer's 2sbh input and the fp32 logits 4sbV/t for the cross entropy (Korthikanti et al. 2022, §4.3)."""
    sbh = _sbh(model, seq_len, micro_batch)
    return 2 * sbh / (layout.tp if layout.sequence_parallel else 1) + 4 * seq_len * micro_batch * model.vocab / layout.tp


@dataclass(frozen=True)
class StageMemory:
    """One GPU's bytes at the peak of a step on one pipeline stage."""
    stage: int
    params: float
    weights_bytes: float
    gradients_bytes: float
    optimizer_bytes: float
    activations_bytes: float
    overhead_bytes: float

    @property
    def total_bytes(self) -> float:
        return (self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes
                + self.overhead_bytes)

    def to_dict(self) -> dict:
        return {"stage": self.stage, "params": self.params, "weights_bytes": self.weights_bytes,
                "gradients_bytes": self.gradients_bytes, "optimizer_bytes": self.optimizer_bytes,
                "activations_bytes": self.activations_bytes, "overhead_bytes": self.overhead_bytes,
                "total_bytes": self.total_bytes}


def stage_memory(model: ModelShape, layout: Layout, seq_len: int, num_microbatches: int, stage: int,
                 overhead_bytes: float = DEFAULT_CUDA_OVERHEAD_BYTES) -> StageMemory:
    """Model states (ZeRO over DP) and activations in flight for one GPU of pipeline stage ``stage``."""
    params = stage_params(model, layout, stage)
    states = zero_model_states_breakdown(params, layout.dp, layout.zero_stage)
    if layout.zero_stage == 3:  # the gathered parameters of the layer being computed and the next, prefetched
        states["weights"] += 2 * 2 * model.params_per_layer / layout.tp
    b = layout.micro_batch
    per_microbatch = model.layers / layout.pp * layer_activation_bytes(model, seq_len, b, layout)
    if stage == 0:
        per_microbatch += embedding_activation_bytes(model, seq_len, b, layout)
    activations = per_microbatch * in_flight_microbatches(layout, num_microbatches, stage)
    activations += recompute_working_bytes(model, seq_len, layout)
    if stage == layout.pp - 1:
        activations += output_activation_bytes(model, seq_len, b, layout)
    return StageMemory(stage, params, states["weights"], states["gradients"], states["optimizer"], activations,
                       float(overhead_bytes))


def peak_stage_memory(model: ModelShape, layout: Layout, seq_len: int, num_microbatches: int,
                      overhead_bytes: float = DEFAULT_CUDA_OVERHEAD_BYTES) -> StageMemory:
    """The fuller of the first and last stages (the first holds the most activations and the embedding, the last
    the output layer and the logits); middle stages hold less than the first."""
    first = stage_memory(model, layout, seq_len, num_microbatches, 0, overhead_bytes)
    if layout.pp == 1:
        return first
    last = stage_memory(model, layout, seq_len, num_microbatches, layout.pp - 1, overhead_bytes)
    return first if first.total_bytes >= last.total_bytes else last
