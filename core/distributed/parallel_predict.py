"""What one rank of a tensor- / pipeline-parallel training step holds at its peak and communicates per step,
predicted before it runs (the layouts of core.distributed.parallel, fp32 AdamW).

Memory (Shoeybi et al. 2019 §3: each rank keeps 1/t of every split weight matrix; Narayanan et al. 2021 §2.2:
each pipeline stage keeps its own layers, the first the embeddings and the last the head): the rank's local
parameters N_r are counted on the model built on the meta device, each split projection divided by TP and every
other tensor (embeddings, norms, LM head) whole. Between steps it holds weights and AdamW's two moments,
(4 + 8)·N_r bytes; in the step it adds

- at the optimizer step (the peak of these small-activation runs): the gradients 4·N_r, AdamW's two per-parameter
  temporaries of the rank's largest parameter (``foreach=False``: 2 × 4 bytes × its size), and on the last
  pipeline stage the logits of every micro-batch, which the schedule keeps until the step ends;
- in backward: the activations of the micro-batches in flight (every one under GPipe; at most PP − stage under
  1F1B, Narayanan et al. 2021 §2.2.1) and the logits' gradient, from LLM Lab's single-device ledger
  (core.plan.peak_memory.predict_training_step, Korthikanti et al. 2022 Table 2 terms) for this stage's share of
  the layers, the split part of each layer divided by TP.

Communication: the planner's formulas (core.plan.parallel.communication): Megatron's 4 all-reduces of b·s·h per
layer per micro-batch, each rank sending 2(t−1)/t of each (ring), and one stage boundary's activations forward and
gradients back (2·m·b·s·h) for an end stage, two boundaries for a middle one.
"""
from __future__ import annotations

import functools
import json

from core.distributed.parallel import check_layout, stage_layers
from core.plan import architectures
from core.plan.parallel import Layout, model_shape, pp_p2p_bytes_per_step, stage_memory, tp_allreduce_bytes_per_step
from core.plan.peak_memory.predict import predict_training_step

SPLIT = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ROW_PARALLEL = ("o_proj", "down_proj")  # their bias (if any) is added after the all-reduce: replicated
BYTES_PER_VALUE = 4


@functools.lru_cache(maxsize=64)
def _parameters(cfg_json: str) -> tuple:
    """(name, numel) of every parameter and buffer of the model, built on the meta device (no memory)."""
    import torch
    from transformers import AutoModelForCausalLM

    cfg = json.loads(cfg_json)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(architectures.hf_config(cfg))
    params = tuple((name, p.numel()) for name, p in model.named_parameters())
    buffers = tuple((name, b.numel() * b.element_size()) for name, b in model.named_buffers())
    return params, buffers


def _owner_stage(name: str, n_layers: int, pp: int) -> int | None:
    """The pipeline stage that holds parameter ``name`` (None: every stage, e.g. the rotary buffers)."""
    if ".layers." in name:
        index = int(name.split(".layers.", 1)[1].split(".", 1)[0])
        return next(s for s in range(pp) if index in stage_layers(n_layers, pp, s))
    if "embed_tokens" in name:
        return 0
    if name.startswith("lm_head") or name.startswith("model.norm"):
        return pp - 1
    return None


def rank_parameters(architecture, tp: int, pp: int, stage: int) -> dict:
    """The local parameters of a rank of ``stage``: total ``params``, ``largest`` (elements), ``buffer_bytes``."""
    cfg = architectures.get_config(architecture)
    params, buffers = _parameters(json.dumps(cfg, sort_keys=True, default=str))
    n_layers = cfg["num_hidden_layers"]
    local = []
    for name, numel in params:
        owner = _owner_stage(name, n_layers, pp)
        if owner is not None and owner != stage:
            continue
        module = name.rsplit(".", 2)[-2] if name.count(".") >= 2 else ""
        split = module in SPLIT and not (name.endswith(".bias") and module in ROW_PARALLEL)
        local.append(numel // tp if split else numel)
    buffer_bytes = sum(b for name, b in buffers if _owner_stage(name, n_layers, pp) in (None, stage))
    return {"params": sum(local), "largest": max(local), "buffer_bytes": buffer_bytes}


# The single-device ledger's per-layer tensors that tensor parallelism splits (per head or per MLP column); the
# norms' inputs and outputs and the projections' shared input stay whole on every rank (Korthikanti et al. 2022,
# §4.1: without sequence parallelism the layer-norm and dropout activations are not split).
SPLIT_ACTIVATIONS = ("query", "key, value", "attention output", "log-sum-exp", "MLP activation",
                     "up projection output", "down projection input")


def _layer_bytes(single: dict, tp: int) -> float:
    """Bytes per token one layer keeps for backward on a rank of ``tp`` (the ledger's entries, split ones / tp)."""
    return sum(v / tp if any(k in name for k in SPLIT_ACTIVATIONS) else v for name, v in single["ledger"])


def local_layer_params(architecture, tp: int) -> list[int]:
    """Each transformer layer's parameters on one rank of ``tp`` (split projections / TP, norms whole)."""
    cfg = architectures.get_config(architecture)
    params, _ = _parameters(json.dumps(cfg, sort_keys=True, default=str))
    per: dict[int, int] = {}
    for name, numel in params:
        if ".layers." not in name:
            continue
        index = int(name.split(".layers.", 1)[1].split(".", 1)[0])
        module = name.rsplit(".", 2)[-2]
        split = module in SPLIT and not (name.endswith(".bias") and module in ROW_PARALLEL)
        per[index] = per.get(index, 0) + (numel // tp if split else numel)
    return [per[i] for i in sorted(per)]


def _in_flight(strategy: str, pp: int, stage: int, microbatches: int) -> int:
    if pp == 1:
        return 1
    return microbatches if strategy == "pp_gpipe" else min(microbatches, pp - stage)


def predict_layout_rank_peak(architecture, strategy: str, world_size: int, seq_len: int, batch_size: int = 1,
                             microbatches: int = 1, rank: int | None = None) -> dict:
    """Peak bytes of ``rank`` (None: the busiest) in one steady-state step of a TP / PP layout, as
    core.distributed.predict.predict_rank_peak returns for the data-parallel strategies (``predicted_peak_bytes``,
    ``components``, ``phase``, ``candidates``) plus ``planner_bytes``: the training-layout planner's per-GPU bytes
    for this stage (core.plan.parallel.stage_memory: 16 bytes per parameter of the stage's TP shard — Megatron's
    vocabulary-parallel embeddings split too, where these runs keep them whole — and Korthikanti et al. 2022's
    half-precision activations; no CUDA overhead)."""
    tp, pp = check_layout(architecture, strategy, world_size, microbatches)
    cfg = architectures.get_config(architecture)
    m = int(microbatches) if pp > 1 else 1
    ranks = range(int(world_size)) if rank is None else [int(rank)]
    best = None
    n_total = architectures.param_count(cfg)
    single = predict_training_step(cfg, "fp32", seq_len, batch_size, False, "cpu")
    logits = BYTES_PER_VALUE * batch_size * seq_len * cfg["vocab_size"]
    for r in ranks:
        stage = r // tp
        local = rank_parameters(cfg, tp, pp, stage)
        n = local["params"]
        resident = {"weights": 4.0 * n, "optimizer_states": 8.0 * n, "buffers": float(local["buffer_bytes"])}
        layers_here = len(stage_layers(cfg["num_hidden_layers"], pp, stage))
        last = stage == pp - 1
        tokens = batch_size * seq_len
        in_flight = _in_flight(strategy, pp, stage, m)
        # one micro-batch's kept activations on this rank: its layers (split parts / TP), and on the last stage
        # the final norm's and the loss's kept tensors (the ledger's kept bytes outside the layers)
        micro_acts = _layer_bytes(single, tp) * tokens * layers_here
        loss_extra = 0.0
        if last:
            full_layers = _layer_bytes(single, 1) * tokens * cfg["num_hidden_layers"]
            micro_acts += single["activations_kept_bytes"] - full_layers
            # the logits' gradient, alive in the loss's backward
            loss_extra = single["candidates"]["loss backward"] - 12.0 * single["n_params"] - \
                single["activations_kept_bytes"]
        # one layer's backward: its weight gradients and the ledger's temporaries around them
        layer_params = max(local_layer_params(cfg, tp))
        layer_grads = 4.0 * layer_params
        top = f"backward of layer {cfg['num_hidden_layers']} of {cfg['num_hidden_layers']}"
        transient = max(0.0, (single["candidates"][top] - 12.0 * single["n_params"]
                              - _layer_bytes(single, 1) * tokens * cfg["num_hidden_layers"]
                              - 4.0 * max(local_layer_params(cfg, 1)))) / tp
        kept_logits = float(m * logits) if (pp > 1 and last) else 0.0
        others = max(0.0, kept_logits - logits)  # the schedule keeps every micro-batch's output until the step ends
        candidates = {
            "optimizer step": {**resident, "gradients": 4.0 * n, "optimizer_temporaries": 2 * 4.0 * local["largest"],
                               "kept_logits": kept_logits},
            "first backward (activations in flight)": {
                **resident, "activations": in_flight * micro_acts,
                "logit_gradients": loss_extra,
                "layer_gradients_and_temporaries": 0.0 if last else layer_grads + transient,
                "kept_logits": others},
        }
        if pp > 1 and m > 1:
            # after the first micro-batch's backward every gradient exists; GPipe still holds the others'
            # activations, 1F1B starts the next forward so its stages are back at their in-flight count
            steady = m - 1 if strategy == "pp_gpipe" else (in_flight if m > in_flight else in_flight - 1)
            candidates["later backward (all gradients exist)"] = {
                **resident, "gradients": 4.0 * n, "activations": steady * micro_acts, "logit_gradients": loss_extra,
                "layer_temporaries": transient, "kept_logits": others}
        activations = in_flight * micro_acts
        totals = {k: sum(v.values()) for k, v in candidates.items()}
        phase = max(totals, key=totals.get)
        planner = stage_memory(model_shape(cfg), Layout(tp=tp, pp=pp, micro_batch=int(batch_size)), int(seq_len),
                               m, stage, overhead_bytes=0.0).total_bytes
        result = {"strategy": strategy, "world_size": int(world_size), "rank": r, "tp": tp, "pp": pp,
                  "stage": stage, "n_params": n_total, "local_params": n, "param_bytes": 4.0 * n_total,
                  "predicted_peak_bytes": float(totals[phase]), "phase": phase,
                  "components": {k: float(v) for k, v in candidates[phase].items() if v},
                  "candidates": {k: float(v) for k, v in totals.items()},
                  "planner_bytes": float(planner), "zero_paper_bytes": float(planner),
                  "activations_bytes": float(activations)}
        if best is None or result["predicted_peak_bytes"] > best["predicted_peak_bytes"]:
            best = result
    return best


def predict_layout_bytes(architecture, strategy: str, world_size: int, seq_len: int, batch_size: int = 1,
                         microbatches: int = 1, rank: int = 0) -> dict:
    """Bytes ``rank`` communicates per step by the planner's formulas: ``tp_bytes`` (ring all-reduces it sends),
    ``pp_bytes`` (its stage boundaries' activations and gradients, both directions), and their ``total_bytes``."""
    tp, pp = check_layout(architecture, strategy, world_size, microbatches)
    cfg = architectures.get_config(architecture)
    m = int(microbatches) if pp > 1 else 1
    h, stage = cfg["hidden_size"], int(rank) // tp
    layers = len(stage_layers(cfg["num_hidden_layers"], pp, stage))
    tp_bytes = tp_allreduce_bytes_per_step(h, seq_len, batch_size, layers, tp, m, BYTES_PER_VALUE)
    boundaries = 0 if pp == 1 else (1 if stage in (0, pp - 1) else 2)
    pp_bytes = boundaries * pp_p2p_bytes_per_step(h, seq_len, batch_size, m, BYTES_PER_VALUE)
    return {"tp": tp, "pp": pp, "stage": stage, "tp_bytes": float(tp_bytes), "pp_bytes": float(pp_bytes),
            "total_bytes": float(tp_bytes + pp_bytes)}
