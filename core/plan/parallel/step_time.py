"""Time of one training step of a layout, its FLOPs, teraFLOP/s per GPU, MFU and the time and cost to train.

FLOPs (Narayanan et al. 2021, §5.1, eq. (3)): with full recomputation one iteration of a GPT costs
96·B·s·l·h²·(1 + s/(6h) + V/(16·l·h)): per layer and token 24h² matmul FLOPs and 4sh attention FLOPs forward,
×3 for forward and backward, ×4 with the recomputed forward, and 6·B·s·h·V for the logits (never recomputed).
Without recomputation the factor is 3 (72·B·s·l·h²·...), with selective recomputation only the attention core's
4sh is recomputed (Korthikanti et al. 2022, §5–6). This module writes the same count for any decoder from its
per-layer matmul parameters: per token (3 + r)·l·(2·P_matmul + 4·s·h) + 6·h·V.

teraFLOP/s per GPU counts the FLOPs the GPUs execute, recomputation included, as Narayanan et al. 2021 Table 1 does
(eq. (3)); MFU counts the model's FLOPs only (no recomputation) over the peak (Korthikanti et al. 2022, §6.3;
Chowdhery et al. 2022 "PaLM", App. B) and HFU the executed ones.

Time: compute at ``matmul_efficiency`` of the GPU's dense bf16 peak (one constant, calibrated once on Narayanan et al.
2021 Table 1: see ``MATMUL_EFFICIENCY``); tensor-parallel collectives per layer over the intra-node link, not
overlapped (Megatron 2021 runs them on the critical path, §3.3); the 1F1B bubble (p − 1)/(v·m) of the pipelined
part (§2.2, eq. (1) and §2.2.2); stage-to-stage sends over the inter-node link when a stage boundary leaves the
node (§4.1); the data-parallel gradient reduction over the inter-node link, hidden behind the last micro-batch's
backward pass where ``dp_overlap`` (PyTorch DDP buckets, Li et al. 2020 "PyTorch Distributed", §3.2.3).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from core.common.checks import check_number, check_positive
from core.plan.hardware import GPU
from core.plan.parallel import communication as comm
from core.plan.parallel.layout import Cluster, Layout, ModelShape
from core.plan.parallel.memory import layer_activation_bytes, stage_params

MATMUL_EFFICIENCY = 0.6
"""Fraction of the dense bf16 peak a transformer layer's kernels reach on the GPU's tensor cores (the
memory-bound kernels are timed apart, ``elementwise_seconds``). One constant, calibrated once on Narayanan et al. 2021
Table 1 (A100 80GB, 1.7B–1T parameters): 0.59 minimises the largest error over the ten rows (8.5 %), the round 0.6
gives at most 9.9 % (tests/plan/test_plan_parallel.py holds every row within 15 %)."""

GRADIENT_BYTES = 2  # bf16/fp16 gradients all-reduced (Megatron's --accumulate-allreduce-grads-in-fp32 doubles it)


def matmul_params_per_layer(model: ModelShape) -> float:
    """One layer's matrix parameters (biases and norms left out): 12h² for a GPT, from the exact count otherwise."""
    return model.params_per_layer - 13 * model.hidden if model.ffn == 4 * model.hidden else model.params_per_layer


def flops_per_step(model: ModelShape, global_batch: int, seq_len: int, recompute: str = "none") -> float:
    """FLOPs of one step (Narayanan et al. 2021, eq. (3) and its derivation in §5.1): B·s·[(3 + r)·l·(2·P_matmul +
    4·s·h) + 6·h·V] with r = 1 for full recomputation, r = 0 otherwise, plus one more 4·s·h attention forward per
    layer and token for selective recomputation (Korthikanti et al. 2022, §5)."""
    tokens = global_batch * seq_len
    matmul = 2 * matmul_params_per_layer(model)
    attention = 4 * seq_len * model.hidden
    per_layer = 3 * (matmul + attention)
    if recompute == "full":
        per_layer += matmul + attention
    elif recompute == "selective":
        per_layer += attention
    return float(tokens * (model.layers * per_layer + 6 * model.hidden * model.vocab))


ELEMENTWISE_PASSES = 3
"""Passes over a layer's stored activations that memory-bound kernels (norms, GeLU, softmax, dropout, residual adds)
make per micro-batch: the forward writes them, the backward reads them and writes their gradients (one more with
full recomputation's second forward). A model of the roofline's memory-bound side (Williams et al. 2009,
"Roofline"), with the bytes of Korthikanti et al. 2022, Table 2: it is why small hidden sizes reach fewer
teraFLOP/s (the bytes grow as s·b·h, the matmul FLOPs as s·b·h²)."""


def elementwise_seconds(model: ModelShape, layout: Layout, gpu: GPU, seq_len: int, num_microbatches: int) -> float:
    """Memory-bound time of one GPU's step: passes × (l/p) layers × m micro-batches × the layer's activation bytes
    without recomputation (Korthikanti et al. 2022, Table 2, TP/SP split) ÷ the GPU's HBM bandwidth (datasheet)."""
    stored = replace(layout, recompute="none")
    passes = ELEMENTWISE_PASSES + (1 if layout.recompute == "full" else 0)
    per_layer = layer_activation_bytes(model, seq_len, layout.micro_batch, stored)
    return (passes * model.layers / layout.pp * num_microbatches * per_layer
            / check_positive(gpu.bandwidth_bytes_per_s, f"{gpu.name} memory bandwidth", unit="bytes/s"))


@dataclass(frozen=True)
class StepTime:
    """One step's time, split by where it goes (seconds), and what it yields."""
    compute_s: float  # matmul_s + memory_bound_s
    matmul_s: float
    memory_bound_s: float
    tp_comm_s: float
    pp_bubble_s: float
    pp_p2p_s: float
    dp_comm_s: float
    total_s: float
    hardware_flops: float  # executed, recomputation included
    model_flops: float  # the model's own, no recomputation
    tflops_per_gpu: float  # executed FLOPs / (time · GPUs), as Narayanan et al. 2021 Table 1 reports
    mfu: float
    hfu: float
    tokens_per_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def step_time(model: ModelShape, layout: Layout, cluster: Cluster, gpu: GPU, global_batch: int, seq_len: int,
              matmul_efficiency: float = MATMUL_EFFICIENCY, dp_overlap: bool = True) -> StepTime:
    """The step-time breakdown of a (valid) layout; see the module docstring for each term's source."""
    eff = check_number(matmul_efficiency, "Matmul efficiency", 0.01, 1.0)
    peak = check_positive(gpu.peak_flops, f"{gpu.name} bf16 peak", unit="FLOP/s")
    t, p, v, d, b = layout.tp, layout.pp, layout.virtual_stages, layout.dp, layout.micro_batch
    m = layout.num_microbatches(global_batch)
    hw_flops = flops_per_step(model, global_batch, seq_len, layout.recompute)
    model_flops = flops_per_step(model, global_batch, seq_len, "none")
    matmul_s = hw_flops / layout.gpus / (peak * eff)
    memory_bound_s = elementwise_seconds(model, layout, gpu, seq_len, m)
    compute_s = matmul_s + memory_bound_s

    # Tensor parallelism: ring collectives of b·s·h per layer and micro-batch inside the node (Shoeybi et al. §3).
    layers_per_stage = model.layers // p
    tp_bytes = comm.tp_allreduce_bytes_per_step(model.hidden, seq_len, b, layers_per_stage, t, m, 2,
                                                layout.sequence_parallel, layout.recompute)
    tp_link = (cluster.intra_node_bytes_per_s if t <= cluster.gpus_per_node
               else cluster.inter_node_bytes_per_s_per_gpu)
    tp_comm_s = tp_bytes / tp_link

    # The bubble: (p − 1)/(v·m) of the ideal pipelined time (Narayanan et al. 2021, §2.2.1–2.2.2).
    pp_bubble_s = (p - 1) / (v * m) * (compute_s + tp_comm_s)

    # Ranks are ordered TP fastest, then DP, then PP (Megatron-LM's default, megatron/core/parallel_state.py
    # order "tp-cp-ep-dp-pp"): a TP group spans t consecutive GPUs, a DP group t·d, the pipeline all of them.
    # Stage boundaries: over InfiniBand once the pipeline leaves the node (its slowest boundary sets the pace);
    # interleaving crosses v times as many boundaries per micro-batch (Narayanan et al. 2021, §2.2.2, §4.1).
    pp_p2p_s = 0.0
    if p > 1:
        bw = cluster.inter_node_bytes_per_s_per_gpu if cluster.nodes > 1 else cluster.intra_node_bytes_per_s
        sent = comm.pp_p2p_bytes_per_step(model.hidden, seq_len, b, m, 2, t, scatter_gather=t > 1)
        pp_p2p_s = v * sent / bw

    # Data parallelism: gradient reduction of the rank's shard (ZeRO §7) over the inter-node link once the DP group
    # leaves the node, hidden behind the last micro-batch's backward pass (2/3 of its compute) where overlapped.
    dp_comm_s = 0.0
    if d > 1:
        dp_bytes = comm.dp_allreduce_bytes_per_step(stage_params(model, layout, 0), GRADIENT_BYTES, d,
                                                    layout.zero_stage)
        in_node = t * d <= cluster.gpus_per_node
        bw = cluster.intra_node_bytes_per_s if in_node else cluster.inter_node_bytes_per_s_per_gpu
        dp_comm_s = dp_bytes / bw
        if dp_overlap:
            dp_comm_s = max(0.0, dp_comm_s - compute_s / m * 2 / 3)

    total = compute_s + tp_comm_s + pp_bubble_s + pp_p2p_s + dp_comm_s
    gpus = layout.gpus
    return StepTime(compute_s, matmul_s, memory_bound_s, tp_comm_s, pp_bubble_s, pp_p2p_s, dp_comm_s, total, hw_flops, model_flops,
                    hw_flops / (total * gpus) / 1e12, model_flops / (total * gpus * peak),
                    hw_flops / (total * gpus * peak), global_batch * seq_len / total)


@dataclass(frozen=True)
class TrainingTime:
    """A token budget at a layout's pace."""
    token_budget: float
    steps: float
    time_s: float
    gpu_hours: float
    cost: float | None  # at price_per_gpu_hour, where given

    def to_dict(self) -> dict:
        return asdict(self)


def training_time(step: StepTime, gpus: int, global_batch: int, seq_len: int, token_budget: float,
                  price_per_gpu_hour: float | None = None) -> TrainingTime:
    """Steps = tokens / (B·s); time = steps × step time; GPU-hours and cost (PaLM App. B's accounting)."""
    tokens = check_positive(token_budget, "Token budget", unit="tokens")
    steps = tokens / (global_batch * seq_len)
    time_s = steps * step.total_s
    hours = time_s * gpus / 3600
    cost = None if price_per_gpu_hour is None else hours * check_positive(price_per_gpu_hour, "Price per GPU-hour")
    return TrainingTime(tokens, steps, time_s, hours, cost)
