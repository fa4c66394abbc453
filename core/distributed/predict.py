"""What one rank of a data-parallel training step holds at its peak, predicted before it runs.

Two answers, side by side:

- ``zero_paper``: the memory planner's Multi-GPU formula (ZeRO paper, Rajbhandari et al. 2020, Figure 1 and §5:
  weights, gradients and K bytes of optimizer state per parameter, sharded by stage) with this step's fp32 AdamW
  (4 + 4 + 8 bytes per parameter), plus the activation peak of one micro-batch;
- ``predicted_peak_bytes``: the same model states as PyTorch holds them, plus what its implementation gathers or
  keeps in flight at the peak. FSDP2 (``fully_shard``) keeps every parameter sharded between steps (also with
  ``reshard_after_forward=False``, which only keeps the gathered parameters from forward to backward), gathers one
  FSDP unit at a time into a separate buffer, prefetches the next unit in backward, and reduce-scatters each unit's
  gradients as its backward ends (https://pytorch.org/docs/stable/distributed.fsdp.fully_shard.html; ZeRO-3's
  "largest layer gathered at a time" is DeepSpeed's estimator's term). DDP keeps every gradient in its flat
  buckets from construction on (``gradient_as_bucket_view``; https://pytorch.org/docs/stable/notes/ddp.html).

Activations come from LLM Lab's single-device ledger (core.measure.predict_training_step: every tensor a
transformer layer keeps for backward, Korthikanti et al. 2022's terms, per kernel), the same for every strategy,
since data parallelism does not split a micro-batch.
"""
from __future__ import annotations

import functools
import json
from core.plan import architectures, memory
from core.distributed.parallel import is_layout
from core.distributed.parallel_predict import predict_layout_rank_peak
from core.distributed.strategies import ZERO_STAGE, check_strategy
from core.plan.peak_memory.predict import predict_training_step

BYTES = {"weights": 4, "gradients": 4, "optimizer": 8}  # fp32 AdamW: weights, gradients, two moments


def fsdp_units(architecture) -> dict:
    """Parameter counts of the FSDP units core.distributed.strategies.wrap makes: one per transformer layer and the
    root (embeddings, final norm, LM head). Counted on the model built on the meta device (no memory, no weights)."""
    cfg = architectures.get_config(architecture)
    return dict(_units(json.dumps(cfg, sort_keys=True, default=str)))


@functools.lru_cache(maxsize=64)
def _units(cfg_json: str) -> dict:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = json.loads(cfg_json)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(architectures.hf_config(cfg))
    base = getattr(model, "model", model)
    layers = [sum(p.numel() for p in layer.parameters()) for layer in base.layers]
    total = sum(p.numel() for p in model.parameters())  # tied weights once
    embedding = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embedding
    sizes = [p.numel() for p in model.parameters()]
    return {"total": total, "layers": layers, "root": total - sum(layers), "input_embedding": embedding.numel(),
            "tied_embeddings": tied, "largest_parameter": max(sizes), "parameter_sizes": sizes}


def zero1_partition(parameter_sizes, world_size: int) -> list[dict]:
    """Which parameters' optimizer state each rank keeps under ZeroRedundancyOptimizer: largest first, each to the
    rank with the fewest so far (PyTorch's ``_partition_parameters``). Per rank: ``params`` (its total) and
    ``largest`` (its largest parameter, which sets the optimizer step's temporaries)."""
    ranks = [{"params": 0, "largest": 0} for _ in range(int(world_size))]
    for size in sorted(parameter_sizes, reverse=True):
        target = min(range(len(ranks)), key=lambda r: ranks[r]["params"])
        ranks[target]["params"] += size
        ranks[target]["largest"] = max(ranks[target]["largest"], size)
    return ranks


def predict_rank_peak(architecture, strategy: str, world_size: int, seq_len: int, batch_size: int = 1,
                      rank: int | None = None, microbatches: int = 1) -> dict:
    """Peak bytes of ``rank`` (None: the busiest rank) in one steady-state step of ``strategy`` on ``world_size``
    ranks (fp32 AdamW). Ranks differ only under ZeRO-1, whose optimizer shards are whole parameters.

    Returns ``predicted_peak_bytes`` with its ``components``, the peak's ``phase``, ``zero_paper_bytes`` (the
    planner's Figure 1 formula + activations) and the unit sizes used. A tensor / pipeline layout
    (core.distributed.parallel) is predicted by core.distributed.parallel_predict.
    """
    if is_layout(strategy):
        return predict_layout_rank_peak(architecture, strategy, world_size, seq_len, batch_size, microbatches, rank)
    strategy = check_strategy(strategy)
    n_ranks = int(world_size)
    if n_ranks < 1:
        raise ValueError("World size must be at least 1.")
    cfg = architectures.get_config(architecture)
    units = fsdp_units(cfg)
    n = units["total"]
    single = predict_training_step(cfg, "fp32", seq_len, batch_size, False, "cpu")
    # Activations kept for backward + the logits' gradient (the single-device ledger's loss-backward moment,
    # model states taken out): the busiest point before any weight gradient exists.
    activations = single["candidates"]["loss backward"] - 12.0 * n
    stage = ZERO_STAGE[strategy]
    paper = memory.zero_model_states_breakdown(n, n_ranks, stage, BYTES["weights"], BYTES["gradients"],
                                               BYTES["optimizer"])
    zero_paper = sum(paper.values()) + activations
    w, g, s = (BYTES[k] * n for k in ("weights", "gradients", "optimizer"))
    layer = 4.0 * max(units["layers"])
    root = 4.0 * units["root"]
    optimizer_temp = 2 * 4.0 * units["largest_parameter"]  # AdamW's per-parameter loop (foreach=False): two temporaries

    if strategy in ("ddp", "zero1"):
        if strategy == "zero1":
            shards = zero1_partition(units["parameter_sizes"], n_ranks)
            mine = shards[rank] if rank is not None else max(shards, key=lambda r: r["params"])
            owned_state, optimizer_temp = 8.0 * mine["params"], 2 * 4.0 * mine["largest"]
        else:
            owned_state = s
        states = {"weights": w, "gradient_buckets": g, "optimizer_states": owned_state}
        # The input embedding's backward, last of all: its dense gradient (vocab × hidden) is built and added into
        # its bucket; with tied embeddings the LM head's gradient already there and the sum are alive with it
        # (measured on SmolLM2's shape: exactly 3 × vocab × hidden × 4 bytes above the model states).
        embedding_grads = (3 if units["tied_embeddings"] else 1) * 4.0 * units["input_embedding"]
        candidates = {
            "backward (activations + logit gradients)": {**states, "activations": activations},
            "input embedding's backward": {**states, "embedding_gradient_temporaries": embedding_grads},
            "optimizer step": {**states, "optimizer_temporaries": optimizer_temp},
        }
    else:
        sharded = {"weights_shard": w / n_ranks, "optimizer_states": s / n_ranks}
        layer_count = len(units["layers"])
        forward_end = single["candidates"]["forward end (loss computed)"] - 12.0 * n  # activations + logits
        if strategy == "zero2":
            # every unit gathered in forward and kept until its backward (reshard_after_forward=False); at forward's
            # end the last unit's all-gather buffer is not yet copied out
            candidates = {
                "forward end": {**sharded, "unsharded_parameters": w, "all_gather_buffer": max(layer, root),
                                "activations": forward_end},
                "loss backward": {**sharded, "unsharded_parameters": w, "activations": activations},
            }
        else:
            # FSDP2 does not reshard the root after forward; backward starts by prefetching the last layer. In a
            # layer's backward: the current layer and the prefetched next one gathered, the current layer's full
            # gradients and the root's (the LM head's and final norm's: the input embedding's come last), the
            # sharded gradients of the layers already done, and the layers' kept activations.
            root_grads = root if units["tied_embeddings"] else root - 4.0 * units["input_embedding"]
            done = max(0, layer_count - 2)
            candidates = {
                "loss backward": {**sharded, "root_unit_gathered": root, "layers_gathered": layer,
                                  "activations": activations},
                "backward, next layer prefetched": {
                    **sharded, "root_unit_gathered": root, "layers_gathered": 2 * layer,
                    "gradients_unsharded": layer + root_grads, "gradients_sharded": done * layer / n_ranks,
                    "activations": single["activations_kept_bytes"]},
            }
        candidates["optimizer step"] = {**sharded, "gradients_sharded": g / n_ranks,
                                        "optimizer_temporaries": optimizer_temp / n_ranks}
    totals = {name: sum(parts.values()) for name, parts in candidates.items()}
    phase = max(totals, key=totals.get)
    return {"strategy": strategy, "world_size": n_ranks, "n_params": n, "param_bytes": w,
            "predicted_peak_bytes": float(totals[phase]), "phase": phase,
            "components": {k: float(v) for k, v in candidates[phase].items() if v},
            "candidates": {k: float(v) for k, v in totals.items()},
            "zero_paper_bytes": float(zero_paper), "zero_paper_states": {k: float(v) for k, v in paper.items()},
            "activations_bytes": float(activations), "unit_bytes": {"largest_layer": layer, "root": root}}


# Each rank is a Python process with torch and transformers loaded: 497 MB of RSS measured per rank here (tiny
# Llama, 2026-12-06), before its tensors.
RANK_PROCESS_BYTES = 0.5e9
GUARD_MARGIN = 1.10
CPU_FLOPS_PER_S = 2e10  # per core, a conservative figure for PyTorch on CPU; only used to refuse very long runs
MAX_SECONDS = 600.0
# Starting a strategy's rank processes (Python, torch and transformers imported, the process group formed) before
# its first step: the four default strategies on 2 ranks took 25 s on a 2-core machine (issue 32, 2026-12-07).
RANK_START_S = 6.0


def estimated_run_seconds(n_params: int, world_size: int, seq_len: int, batch_size: int, steps: int,
                          n_strategies: int, cores: int | None = None, include_start: bool = True) -> float:
    """Wall time of a "Run it here" on this CPU: 6·N FLOPs per token for forward and backward (Kaplan et al. 2020,
    eq. 2.1 and §2.1) over every rank's tokens of every step and strategy, at ``CPU_FLOPS_PER_S`` per core (the
    ranks share the cores), plus ``RANK_START_S`` per strategy for starting its processes. A conservative guess, to
    say before a run how long it may take and to refuse hour-long ones; the run itself reports what it took."""
    import os

    cores = max(1, cores or os.cpu_count() or 1)
    compute = 6 * n_params * seq_len * batch_size * steps * world_size * n_strategies / (CPU_FLOPS_PER_S * cores)
    return compute + (RANK_START_S * n_strategies if include_start else 0.0)


class DistributedRefused(ValueError):
    """The step would not fit in this machine's free RAM, or would take too long; the message has the prediction."""

    def __init__(self, message: str, predicted_bytes: float):
        super().__init__(message)
        self.predicted_bytes = predicted_bytes


def check_fits(architecture, strategies, world_size: int, seq_len: int, batch_size: int = 1, steps: int = 4,
               free_bytes: float | None = None, microbatches: int = 1) -> dict[str, dict]:
    """The predictions for each strategy; DistributedRefused when world_size ranks of the largest one would not fit
    in the free RAM (+10 %, + a Python process per rank) or the run would take longer than MAX_SECONDS
    (6·N FLOPs per token, Kaplan et al. 2020, at CPU_FLOPS_PER_S per core)."""
    from core.plan.hardware import free_device_memory_bytes

    predictions = {s: predict_rank_peak(architecture, s, world_size, seq_len, batch_size, microbatches=microbatches)
                   for s in strategies}
    worst = max(p["predicted_peak_bytes"] for p in predictions.values())
    need = world_size * (worst + RANK_PROCESS_BYTES) * GUARD_MARGIN
    free = float(free_device_memory_bytes("cpu") if free_bytes is None else free_bytes)
    if need > free:
        raise DistributedRefused(
            f"Not run: {world_size} {'rank' if world_size == 1 else 'ranks'} would need {need / 1e9:.2f} GB of RAM (predicted peak {worst / 1e9:.2f} GB "
            f"per rank + {RANK_PROCESS_BYTES / 1e9:.1f} GB per rank process, 10 % margin) and {free / 1e9:.2f} GB is "
            "free. Choose fewer ranks, a sharding strategy, a smaller model or a shorter sequence.", worst)
    n = next(iter(predictions.values()))["n_params"]
    import os

    cores = max(1, os.cpu_count() or 1)
    seconds = estimated_run_seconds(n, world_size, seq_len, batch_size, steps, len(predictions), cores,
                                    include_start=False)
    if seconds > MAX_SECONDS:
        raise DistributedRefused(
            f"Not run: about {seconds / 60:.0f} minutes of compute on {cores} cores ({n / 1e6:.0f} M parameters, "
            f"{world_size} ranks × {steps} steps × {len(predictions)} strategies). Choose a smaller model or "
            "sequence, or run the torchrun command on GPUs.", worst)
    return predictions
