"""Bytes each rank communicates per training step under tensor, pipeline and data parallelism (pure formulas).

Conventions (one for every function here, so a measured run can be set beside them):

- A *step* is one optimizer step: ``num_microbatches`` micro-batches of ``micro_batch`` sequences of ``seq_len``
  tokens each pass forward and backward through the rank's layers.
- ``..._payload_bytes`` counts the size of the tensors handed to the collectives (what a wrapper around
  ``torch.distributed.all_reduce`` / ``all_gather_into_tensor`` / ``reduce_scatter_tensor`` sees as the full,
  unsharded tensor), summed over the calls of one step.
- ``..._bytes_per_step`` (no ``payload``) counts what one rank *sends* on the wire with the bandwidth-optimal ring
  algorithms: an all-reduce of a tensor of P bytes over n ranks sends 2·(n−1)/n·P bytes per rank (a reduce-scatter
  and an all-gather, each (n−1)/n·P; Patarasuk & Yuan 2009, "Bandwidth optimal all-reduce algorithms for clusters of
  workstations"; NCCL's "busbw" uses the same factor: https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md).
  A point-to-point send of P bytes is P bytes.

Tensor parallelism (Shoeybi et al. 2019, "Megatron-LM", §3, Fig. 4; Narayanan et al. 2021, §3.3 / §2.3): each
transformer layer has two all-reduces of the b·s·h layer output in the forward pass (after attention and after the
MLP: the g operators) and two in the backward pass (the f operators), so 4 all-reduces of b·s·h values per layer per
micro-batch. Full recomputation repeats the forward pass, with its 2 all-reduces (Korthikanti et al. 2022, §5).
Sequence parallelism (Korthikanti et al. 2022, §4.2.2) replaces each all-reduce with an all-gather plus a
reduce-scatter of the same b·s·h tensor: the same ring volume 2·(t−1)/t·P ("the communication bandwidth used ... is
the same", §4.2.2); its payload here counts both collectives' full tensors, 2 × b·s·h per former all-reduce.
The embedding's and the vocabulary-parallel cross entropy's collectives are on the first and last stages only and
are left out (§3.3 of Shoeybi et al.: the logits' all-reduce is b·s values, not b·s·v).

Pipeline parallelism (Narayanan et al. 2021, §2.2 and §4.1): per micro-batch, a stage boundary carries the b·s·h
activations forward and their gradient of the same shape back. With tensor parallelism each of the t ranks of a
stage sends the full tensor, or 1/t of it with the scatter/gather optimisation (§4.1; Megatron sends 1/t with
sequence parallelism as the activations are already split along the sequence).

Data parallelism (Rajbhandari et al. 2020, "ZeRO", §7): plain data parallelism and ZeRO stages 1 and 2 move
2·(d−1)/d·Ψ per rank per step (all-reduce, or reduce-scatter of gradients plus all-gather of parameters); stage 3
adds one more all-gather of the parameters in the backward pass: 3·(d−1)/d·Ψ ("1.5x" of baseline, §7.2.2).
"""
from __future__ import annotations

from core.common.checks import check_int, check_positive, check_positive_int

RECOMPUTE_OPTIONS = ("none", "selective", "full")


def ring_allreduce_factor(ranks: int) -> float:
    """Bytes one rank sends per byte of an all-reduced tensor with the ring algorithm: 2·(n−1)/n (0 for n = 1).

    Patarasuk & Yuan 2009; NCCL tests' "bus bandwidth" factor (nccl-tests doc/PERFORMANCE.md).
    """
    n = check_positive_int(ranks, "Ranks in the group")
    return 2.0 * (n - 1) / n


def _activation_values(hidden: int, seq_len: int, micro_batch: int) -> int:
    """b·s·h: the values of one layer's output for one micro-batch."""
    return (check_positive_int(hidden, "Hidden size") * check_positive_int(seq_len, "Sequence length")
            * check_positive_int(micro_batch, "Micro-batch size"))


def tp_allreduces_per_layer(recompute: str = "none") -> int:
    """All-reduces (or SP all-gather + reduce-scatter pairs) per layer per micro-batch: 2 forward + 2 backward,
    plus 2 for the recomputed forward under full recomputation (Shoeybi et al. 2019, Fig. 4; Korthikanti et al. 2022, §5)."""
    if recompute not in RECOMPUTE_OPTIONS:
        raise ValueError(f"Recomputation must be one of {', '.join(RECOMPUTE_OPTIONS)}, got {recompute!r}.")
    return 6 if recompute == "full" else 4


def tp_allreduce_payload_bytes_per_step(hidden: int, seq_len: int, micro_batch: int, layers: int, tp: int,
                                        num_microbatches: int, bytes_per_value: float,
                                        sequence_parallel: bool = False, recompute: str = "none") -> float:
    """Full-tensor bytes handed to tensor-parallel collectives per rank per step (no ring factor).

    ``layers`` is the number of transformer layers this rank holds (the model's layers / pp). Without sequence
    parallelism: (4 all-reduces, 6 with full recomputation) × layers × m × b·s·h × bytes. With sequence
    parallelism every all-reduce becomes an all-gather plus a reduce-scatter of the b·s·h tensor, so the
    payload doubles while the bytes on the wire stay equal (Korthikanti et al. 2022, §4.2.2). 0 when tp = 1.
    """
    t = check_positive_int(tp, "Tensor-parallel size")
    n_layers = check_positive_int(layers, "Layers on the rank")
    m = check_positive_int(num_microbatches, "Micro-batches per step")
    size = check_positive(bytes_per_value, "Bytes per value")
    if t == 1:
        return 0.0
    calls = tp_allreduces_per_layer(recompute) * (2 if sequence_parallel else 1)
    return float(calls * n_layers * m * _activation_values(hidden, seq_len, micro_batch) * size)


def tp_allreduce_bytes_per_step(hidden: int, seq_len: int, micro_batch: int, layers: int, tp: int,
                                num_microbatches: int, bytes_per_value: float, sequence_parallel: bool = False,
                                recompute: str = "none") -> float:
    """Bytes one rank sends for tensor parallelism per step with ring collectives.

    4 all-reduces per layer per micro-batch (6 with full recomputation), each 2·(t−1)/t × b·s·h × bytes
    (Shoeybi et al. 2019, §3; Narayanan et al. 2021, §3.3). Sequence parallelism (an all-gather and a reduce-scatter,
    each (t−1)/t × b·s·h × bytes) gives the same number (Korthikanti et al. 2022, §4.2.2).
    """
    payload = tp_allreduce_payload_bytes_per_step(hidden, seq_len, micro_batch, layers, tp, num_microbatches,
                                                  bytes_per_value, False, recompute)
    return payload * ring_allreduce_factor(tp)


def pp_p2p_bytes_per_step(hidden: int, seq_len: int, micro_batch: int, num_microbatches: int,
                          bytes_per_value: float, tp: int = 1, scatter_gather: bool = False) -> float:
    """Bytes crossing one pipeline stage boundary per step, per sending rank, both directions together.

    Per micro-batch: the b·s·h activations forward and their gradient back, 2·m·b·s·h·bytes (Narayanan et al. 2021,
    §2.2 and §4.1). With ``scatter_gather`` (Megatron's scatter/gather optimisation, §4.1, or sequence parallelism)
    each of the ``tp`` ranks of the stage sends 1/tp of it. Interleaved schedules cross v·p − 1 boundaries instead of
    p − 1 (§2.2.2); multiply per boundary.
    """
    m = check_positive_int(num_microbatches, "Micro-batches per step")
    size = check_positive(bytes_per_value, "Bytes per value")
    t = check_positive_int(tp, "Tensor-parallel size")
    per_rank = _activation_values(hidden, seq_len, micro_batch) / (t if scatter_gather else 1)
    return float(2 * m * per_rank * size)


def dp_allreduce_payload_bytes_per_step(params_per_rank: float, bytes_per_value: float) -> float:
    """Gradient bytes handed to the data-parallel all-reduce per rank per step: Ψ_rank × bytes (no ring factor)."""
    return check_positive(params_per_rank, "Parameters per rank") * check_positive(bytes_per_value, "Bytes per value")


def dp_allreduce_bytes_per_step(params_per_rank: float, bytes_per_value: float, dp: int,
                                zero_stage: int = 0) -> float:
    """Bytes one rank sends for data parallelism per step with ring collectives.

    Stages 0–2: 2·(d−1)/d·Ψ·bytes (an all-reduce, or ZeRO's reduce-scatter of gradients and all-gather of updated
    parameters); stage 3: 3·(d−1)/d·Ψ·bytes (parameters all-gathered in forward and again in backward, gradients
    reduce-scattered; Rajbhandari et al. 2020, §7.2). ``params_per_rank`` is the parameters of the rank's model
    shard (the model / (tp·pp)). 0 when dp = 1.
    """
    d = check_positive_int(dp, "Data-parallel size")
    stage = check_int(zero_stage, "ZeRO stage", 0, 3)
    payload = dp_allreduce_payload_bytes_per_step(params_per_rank, bytes_per_value)
    factor = (3.0 if stage == 3 else 2.0) * (d - 1) / d
    return payload * factor
