"""Pruning methods for a causal LM's transformer blocks, and what they do, measured.

- ``magnitude``: unstructured, the smallest |W| of each linear layer set to zero (``torch.nn.utils.prune.
  l1_unstructured``, then made permanent with ``prune.remove``; Han et al. 2015).
- ``wanda``: unstructured, score |W_ij| · ‖X_j‖₂ (the weight times the norm of its input feature over calibration
  tokens), the lowest scores of each output row removed (Sun et al. 2023, "A Simple and Effective Pruning Approach for
  Large Language Models", Eq. 1 and §3: per-output comparison groups).
- ``2:4-magnitude`` / ``2:4-wanda``: semi-structured, in every group of 4 consecutive inputs of a row the 2 lowest
  scores removed (50 %; the pattern NVIDIA Ampere+ sparse tensor cores run, Mishra et al. 2021).
- ``remove_layers``: structured, whole transformer layers taken out of the model (ShortGPT, Men et al. 2024;
  Minitron's depth pruning, Muralidharan et al. 2024): parameters, memory and time really shrink.
- ``remove_head_groups``: structured, attention heads taken out of every layer (Michel et al. 2019, "Are Sixteen
  Heads Really Better than One?"; Minitron's width pruning of heads, Muralidharan et al. 2024, §2.2). With grouped-
  query attention a key/value head serves a group of query heads, so a whole group goes: its rows of q_proj,
  k_proj and v_proj and its columns of o_proj. A group's importance is the norm of what it adds to the layer's
  output on calibration tokens, ‖X_g‖₂ · ‖W_o[:, g]‖_F (Wanda's |W|·‖X‖ at head granularity). The matrices, the KV
  cache and the attention work really shrink.

Zeros in a dense tensor save no memory and no time in PyTorch's dense kernels (on this CPU or a GPU); only the
removed layers do. Embeddings and the LM head are not pruned (as in Wanda).
"""
from __future__ import annotations

import numpy as np

METHODS = ("magnitude", "wanda", "2:4-magnitude", "2:4-wanda")


class PruningError(ValueError):
    """Bad pruning input; the message is user-facing."""


def layer_count(model) -> int:
    """How many transformer layers ``model`` has (model.model.layers)."""
    return len(_blocks(model)[1])


def _blocks(model):
    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None)
    if layers is None:
        raise PruningError("This model has no list of transformer layers (model.model.layers) to prune.")
    return base, layers


def prunable_linears(model) -> dict:
    """name → nn.Linear of every linear layer inside the transformer blocks."""
    import torch

    _, layers = _blocks(model)
    return {f"layers.{i}.{name}": module for i, layer in enumerate(layers)
            for name, module in layer.named_modules() if isinstance(module, torch.nn.Linear)}


def input_norms(model, input_ids) -> dict:
    """‖X_j‖₂ of every input feature j of every prunable linear, over the tokens of ``input_ids`` (Wanda's
    calibration statistic), from forward pre-hooks."""
    return {name: s.sqrt() for name, s in _input_square_sums(model, prunable_linears(model), input_ids).items()}


def _input_square_sums(model, linears: dict, input_ids) -> dict:
    """Σ over the tokens of ``input_ids`` of x_j² for every input feature j of each linear in ``linears`` (name →
    module), from forward pre-hooks during one forward pass of ``model``."""
    import torch

    sums = {name: torch.zeros(m.in_features, dtype=torch.float64) for name, m in linears.items()}
    hooks = []
    for name, module in linears.items():
        def hook(mod, args, _name=name):
            x = args[0].detach().reshape(-1, args[0].shape[-1]).double().cpu()
            sums[_name] += (x * x).sum(dim=0)
        hooks.append(module.register_forward_pre_hook(hook))
    try:
        with torch.inference_mode():
            model(input_ids=input_ids.to(next(model.parameters()).device))
    finally:
        for h in hooks:
            h.remove()
    return sums


def _mask(scores, sparsity: float, semi_structured: bool):
    import torch

    if semi_structured:  # keep the 2 largest of every 4 consecutive inputs
        rows, cols = scores.shape
        if cols % 4:
            raise PruningError(f"2:4 sparsity needs input widths divisible by 4 (got {cols}).")
        groups = scores.reshape(rows, cols // 4, 4)
        keep = torch.zeros_like(groups, dtype=torch.bool)
        keep.scatter_(-1, groups.topk(2, dim=-1).indices, True)
        return keep.reshape(rows, cols)
    k = int(round(sparsity * scores.shape[1]))  # per output row
    keep = torch.ones_like(scores, dtype=torch.bool)
    if k:
        keep.scatter_(1, scores.topk(k, dim=1, largest=False).indices, False)
    return keep


def prune_model(model, method: str, sparsity: float = 0.5, calibration_ids=None) -> dict:
    """Prune ``model`` in place; returns {"method", "sparsity" (measured zeros / weights of the pruned layers)}.
    ``sparsity`` (0–0.95) is ignored by the 2:4 methods (always 50 %); Wanda needs ``calibration_ids``."""
    import torch
    from torch.nn.utils import prune

    method = str(method).strip().lower()
    if method not in METHODS:
        raise PruningError(f"Unknown pruning method {method!r}; choose one of {', '.join(METHODS)}.")
    try:
        sparsity = float(sparsity)
    except (TypeError, ValueError):
        raise PruningError("Sparsity must be a number between 0 and 0.95.") from None
    if not 0.0 <= sparsity <= 0.95:
        raise PruningError(f"Sparsity must be between 0 and 0.95 (got {sparsity:g}).")
    linears = prunable_linears(model)
    wanda = method.endswith("wanda")
    if wanda and calibration_ids is None:
        raise PruningError("Wanda needs calibration text (its input norms).")
    norms = input_norms(model, calibration_ids) if wanda else {}
    semi = method.startswith("2:4")
    with torch.no_grad():
        for name, module in linears.items():
            if method == "magnitude":
                prune.l1_unstructured(module, "weight", amount=sparsity)
            else:
                scores = module.weight.detach().abs().double().cpu()
                if wanda:
                    scores = scores * norms[name][None, :]
                prune.custom_from_mask(module, "weight", _mask(scores, sparsity, semi).to(module.weight.device))
            prune.remove(module, "weight")  # the zeros become the weight itself
    return {"method": method, "sparsity": measured_sparsity(model)}


def measured_sparsity(model) -> float:
    """Zeros / weights over the prunable linear layers."""
    linears = prunable_linears(model).values()
    zeros = sum(int((m.weight == 0).sum()) for m in linears)
    total = sum(m.weight.numel() for m in linears)
    return zeros / total if total else 0.0


def follows_2_4(weight) -> bool:
    """Every group of 4 consecutive inputs of every row has at most 2 non-zero weights."""
    w = weight.detach()
    if w.shape[1] % 4:
        return False
    return bool(((w.reshape(w.shape[0], -1, 4) != 0).sum(dim=-1) <= 2).all())


def remove_layers(model, indices) -> dict:
    """Take the transformer layers at ``indices`` out of ``model`` in place (their memory is freed); the rest are
    renumbered so the KV cache and config stay consistent. Returns the kept and removed indices."""
    import torch

    base, layers = _blocks(model)
    n = len(layers)
    drop = sorted({int(i) for i in indices})
    if any(i < 0 or i >= n for i in drop):
        raise PruningError(f"Layer indices must be between 0 and {n - 1}.")
    if len(drop) >= n:
        raise PruningError("At least one layer must stay.")
    kept = [i for i in range(n) if i not in drop]
    base.layers = torch.nn.ModuleList([layers[i] for i in kept])
    for new_index, layer in enumerate(base.layers):
        attention = getattr(layer, "self_attn", None)
        if attention is not None and hasattr(attention, "layer_idx"):
            attention.layer_idx = new_index
    model.config.num_hidden_layers = len(kept)
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in kept]
    return {"kept": kept, "removed": drop}


def block_influence(model, input_ids) -> list[float]:
    """ShortGPT's Block Influence of each layer (Men et al. 2024, Eq. 1): 1 − the mean cosine similarity between a
    layer's input and output hidden states over the calibration tokens; low = the layer changes little."""
    import torch

    with torch.inference_mode():
        hidden = model(input_ids=input_ids.to(next(model.parameters()).device), output_hidden_states=True).hidden_states
    _, layers = _blocks(model)
    out = []
    for i in range(len(layers)):
        x, y = hidden[i][0].double(), hidden[i + 1][0].double()
        out.append(float(1.0 - torch.nn.functional.cosine_similarity(x, y, dim=-1).mean()))
    return out


def least_influential_layers(model, input_ids, count: int) -> list[int]:
    """The ``count`` layers of lowest Block Influence (ShortGPT's choice of what to remove)."""
    _, layers = _blocks(model)
    count = int(count)
    if not 0 <= count < len(layers):
        raise PruningError(f"Remove between 0 and {len(layers) - 1} layers.")
    influence = block_influence(model, input_ids)
    return sorted(sorted(range(len(layers)), key=influence.__getitem__)[:count])


def quality(dense_logits, logits, token_ids) -> dict:
    """Perplexity of the text, mean KL to the dense model (nats) and top-1 agreement, as the Quantization page."""
    from core.run.quantization import kl_divergence, perplexity_from_logits, top1_agreement

    ids = np.asarray(token_ids).reshape(-1)
    return {"perplexity": perplexity_from_logits(logits, ids),
            "kl_mean_nats": float(np.mean(kl_divergence(dense_logits, logits))),
            "top1_agreement": top1_agreement(dense_logits, logits)}


def _attention_modules(model):
    _, layers = _blocks(model)
    modules = [getattr(layer, "self_attn", None) for layer in layers]
    if any(m is None or not all(hasattr(m, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim",
                                                          "num_key_value_groups")) for m in modules):
        raise PruningError("Head pruning needs Llama-style attention (q/k/v/o projections with grouped KV heads).")
    return modules


def head_group_scores(model, input_ids) -> list[list[float]]:
    """Per layer, one score per key/value head group: ‖X_g‖₂ · ‖W_o[:, g]‖_F, X_g the group's attention output (the
    o_proj input columns of its query heads) over the calibration tokens."""
    attentions = _attention_modules(model)
    sums = _input_square_sums(model, dict(enumerate(a.o_proj for a in attentions)), input_ids)
    scores = []
    for i, attn in enumerate(attentions):
        s = sums[i]
        width = attn.head_dim * attn.num_key_value_groups  # o_proj input columns per KV group
        w = attn.o_proj.weight.detach().double().cpu()
        groups = attn.k_proj.out_features // attn.head_dim
        scores.append([float(s[g * width:(g + 1) * width].sum().sqrt() * w[:, g * width:(g + 1) * width].norm())
                       for g in range(groups)])
    return scores


def _keep_rows(linear, rows):
    import torch

    new = torch.nn.Linear(linear.in_features, len(rows), bias=linear.bias is not None,
                          device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[rows])
        if linear.bias is not None:
            new.bias.copy_(linear.bias[rows])
    return new


def _keep_columns(linear, columns):
    import torch

    new = torch.nn.Linear(len(columns), linear.out_features, bias=linear.bias is not None,
                          device=linear.weight.device, dtype=linear.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(linear.weight[:, columns])
        if linear.bias is not None:
            new.bias.copy_(linear.bias)
    return new


def drop_head_groups(model, groups_by_layer) -> dict:
    """Take the given key/value head groups out of each layer of ``model`` in place (``groups_by_layer[i]``: group
    indices of layer i, the same count in every layer): their rows of q_proj, k_proj, v_proj and columns of o_proj."""
    attentions = _attention_modules(model)
    groups = attentions[0].k_proj.out_features // attentions[0].head_dim
    drops = [sorted({int(g) for g in layer}) for layer in groups_by_layer]
    if len(drops) != len(attentions) or len({len(d) for d in drops}) != 1:
        raise PruningError("Name the same number of head groups to remove in every layer.")
    if any(g < 0 or g >= groups for d in drops for g in d) or not 0 < len(drops[0]) < groups:
        raise PruningError(f"Remove between 1 and {groups - 1} of the {groups} key/value head groups per layer.")
    for attn, drop in zip(attentions, drops):
        keep = [g for g in range(groups) if g not in drop]
        d, n = attn.head_dim, attn.num_key_value_groups
        q_rows = [r for g in keep for r in range(g * n * d, (g + 1) * n * d)]
        kv_rows = [r for g in keep for r in range(g * d, (g + 1) * d)]
        attn.q_proj = _keep_rows(attn.q_proj, q_rows)
        attn.k_proj = _keep_rows(attn.k_proj, kv_rows)
        attn.v_proj = _keep_rows(attn.v_proj, kv_rows)
        attn.o_proj = _keep_columns(attn.o_proj, q_rows)
    left = groups - len(drops[0])
    return {"removed_groups": drops, "query_heads_per_layer": left * attentions[0].num_key_value_groups,
            "kv_heads_per_layer": left}


def remove_head_groups(model, input_ids, groups_per_layer: int = 1) -> dict:
    """Take the ``groups_per_layer`` least important key/value head groups (``head_group_scores``) out of every
    layer of ``model`` in place. Returns the removed groups of each layer and the heads left per layer."""
    attentions = _attention_modules(model)
    groups = attentions[0].k_proj.out_features // attentions[0].head_dim
    count = int(groups_per_layer)
    if not 0 < count < groups:
        raise PruningError(f"Remove between 1 and {groups - 1} of the {groups} key/value head groups per layer.")
    scores = head_group_scores(model, input_ids)
    return drop_head_groups(model, [sorted(range(len(s)), key=s.__getitem__)[:count] for s in scores])
