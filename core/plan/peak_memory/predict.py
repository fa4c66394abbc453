"""Predictions: the planner's formulas (core.plan.memory) for model states, weights and KV cache, plus the activation
ledger (``core.plan.peak_memory.ledger``) for what is alive at each candidate peak of a training step or a prefill."""
from __future__ import annotations

from collections.abc import Mapping

from core.plan import architectures, memory
from core.plan.peak_memory.inputs import DTYPE_BYTES, check_setting, normalize_dtype, normalize_recipe
from core.plan.peak_memory.ledger import (family, hf_value, layer_spec, optimizer_temp_bytes, runtime, training_param_count,
                                 training_parts)
from core.plan.peak_memory.components import labelled

# Course notes' 24 B/param (weights 4 + Adam 8 + gradients 4 + activations/temp 8), from core.plan.memory's recipe table.
RULE_OF_THUMB_BYTES_PER_PARAM = sum(memory.training_bytes_per_param("rule_of_thumb").values())


def predict_training_step(architecture, recipe: str, seq_len: int, batch_size: int,
                          gradient_checkpointing: bool = False, device_type: str = "cuda",
                          flash_attention: bool = True) -> dict:
    """The planner's prediction of one steady-state training step's peak on ``device_type`` ("cuda" / "cpu").

    Model states: fp32 weights 4 + fp32 gradients 4 + AdamW moments 8 bytes per parameter (the ZeRO paper's 16 B/param
    of mixed-precision Adam, §3.1, with PyTorch AMP's fp32 gradients in place of fp16 gradients + fp32 master copy);
    autocast's 16-bit weight copies (2 B per matmul parameter) while the forward graph is alive. Activations from
    the ledger (``ledger`` in the result: one layer, bytes per token). The peak is the largest of: the loss's
    backward (every activation kept + the fp32 gradients of the logits), the forward's end, the first layer's
    backward, the end of backward (+ all gradients) and the optimizer step (+ its temporaries). Returns
    ``predicted_peak_bytes``, ``components``, ``phase`` (where the peak is), ``candidates``, ``ledger`` and
    ``rule_of_thumb_bytes`` / ``textbook_peak_bytes``.
    """
    cfg, seq_len, batch_size = check_setting(architecture, seq_len, batch_size)
    recipe = normalize_recipe(recipe)
    rt = runtime(device_type, True, recipe=recipe, flash=flash_attention)
    n_params = training_param_count(cfg)
    hf = architectures.hf_config(cfg)
    W, S, G = 4.0 * n_params, 8.0 * n_params, 4.0 * n_params
    textbook = _textbook_training(cfg, n_params, recipe, seq_len, batch_size, gradient_checkpointing)
    result = {"n_params": n_params, "rule_of_thumb_bytes": RULE_OF_THUMB_BYTES_PER_PARAM * n_params,
              "textbook_peak_bytes": textbook, "family": family(cfg)}
    if family(cfg) == "generic":
        act = memory.model_activation_bytes(cfg, seq_len, batch_size, "full" if gradient_checkpointing else "none")
        act *= 2 if recipe == "fp32" else 1
        comps = {"weights": W, "optimizer_states": S, "gradients": G, "activations": act}
        return {**result, "predicted_peak_bytes": sum(comps.values()), "components": labelled(comps),
                "phase": "model states + Korthikanti activations (no ledger for this family)", "candidates": {},
                "ledger": []}
    blocks, model_rows, other_casts = training_parts(cfg, hf, rt, seq_len, batch_size, gradient_checkpointing)
    n = seq_len * batch_size
    V, h = cfg["vocab_size"], cfg["hidden_size"]
    model_saved = sum(v for _, v in model_rows)
    block_casts = sum(blk.count * blk.casts for blk in blocks)
    if gradient_checkpointing:
        kept = sum(blk.count * blk.checkpoint_input for blk in blocks)
    else:
        kept = sum(blk.count * sum(v for _, v in blk.rows) for blk in blocks)
    saved = kept + model_saved
    casts_fwd = block_casts + other_casts
    casts_bwd = other_casts if gradient_checkpointing else casts_fwd
    logits_fwd = (rt.p * V + 4 * V) * n if rt.autocast else 4 * V * n
    loss_bwd = 8 * V * n
    head_grad = 4 * V * h + (2 * V * h if rt.autocast else 0)
    last = blocks[-1]
    first_layer_bwd = saved - 4 * V * n + head_grad + last.backward_temp
    if gradient_checkpointing:
        first_layer_bwd += sum(v for _, v in last.rows) + last.casts
    opt_temp = optimizer_temp_bytes(cfg, n_params, device_type)
    base = W + S
    candidates = {
        "forward end (loss computed)": base + casts_fwd + saved + logits_fwd,
        "loss backward": base + casts_bwd + saved + loss_bwd,
        "first layer's backward": base + casts_bwd + first_layer_bwd,
    }
    if device_type == "cpu" and len(blocks) == 1:
        # Measured on CPU (profiler allocation log, every tensor): once the head's backward is done, its inputs and
        # the 16-bit head weights are released, while each finished layer leaves its fp32 weight gradients behind —
        # so with few layers or checkpointing the busiest backward moment is the LAST layer to run backward, not
        # the first. ``_layer_backward_moments`` walks the layers in backward order.
        del candidates["first layer's backward"]
        moments = _layer_backward_moments(blocks[0], model_rows, cfg, rt, n, gradient_checkpointing)
        candidates.update({name: base + sum(parts.values()) for name, parts in moments.items()})
    else:
        moments = {}
    candidates |= {
        "end of backward": base + G,
        "optimizer step": base + G + opt_temp,
    }
    phase = max(candidates, key=candidates.get)
    peak = candidates[phase]
    comps = {"weights": W, "optimizer_states": S}
    if phase in ("end of backward", "optimizer step"):
        comps["gradients"] = G
        if phase == "optimizer step":
            comps["optimizer_temporaries"] = opt_temp
    else:
        comps["weight_copies_16bit"] = casts_fwd if phase.startswith("forward") else casts_bwd
        comps["activations"] = saved
        if phase == "loss backward":
            comps["logit_gradients_temporary"] = loss_bwd
        elif phase.startswith("forward"):
            comps["logits_temporary"] = logits_fwd
        elif phase in moments:
            del comps["weight_copies_16bit"], comps["activations"]
            comps.update(moments[phase])
        else:
            comps["activations"] = first_layer_bwd - head_grad - last.backward_temp
            comps["gradients"] = head_grad
            comps["backward_temporaries"] = last.backward_temp
    comps = {k: float(v) for k, v in comps.items() if v}
    ledger = [(name, value / n) for name, value in blocks[0].rows] if n else []
    return {**result, "predicted_peak_bytes": float(peak), "components": labelled(comps), "phase": phase,
            "candidates": {k: float(v) for k, v in candidates.items()}, "ledger": ledger,
            "activations_kept_bytes": float(saved), "weight_copies_bytes": float(casts_fwd)}


# Tensors of the model head, released once the head's backward has run (the embedding side stays until the end).
_HEAD_ROWS = ("ln_f", "final norm", "lm_head", "log-softmax", "labels", "MLM")
# A layer's tensors its MLP backward releases before the activation's backward runs.
_AFTER_ACTIVATION_ROWS = ("down projection input", "MLP output dropout mask", "output LayerNorm")


def _layer_backward_moments(block, model_rows, cfg: Mapping, rt, n: int, checkpointing: bool) -> dict[str, dict]:
    """What is alive (bytes by component id) at the busiest moment of each layer's backward, walking the layers in
    backward order (last layer first). Alive then: the embedding side's tensors; the kept tensors of the layers not
    yet done (under checkpointing only their inputs, plus the current layer's recomputed tensors and its 16-bit
    weight copies); the fp32 gradients written so far (the head's, then one set per finished layer); and the
    current layer's backward temporaries — at its MLP (the down projection's kept input, dropout mask and weight copy
    already released) or, on the math attention path, at its attention (the MLP's tensors released).

    Checked against the PyTorch profiler's allocation log on CPU (``torch.autograd`` frees a node's saved tensors
    when it has run; ``torch.utils.checkpoint`` non-reentrant recomputes one layer at a time)."""
    L, h, V = block.count, cfg["hidden_size"], cfg["vocab_size"]
    embedding_side = sum(v for name, v in model_rows if not name.startswith(_HEAD_ROWS) and "MLM" not in name)
    rows = sum(v for _, v in block.rows)
    after_act = sum(v for name, v in block.rows if name.startswith(_AFTER_ACTIVATION_ROWS))
    mlp_kept = sum(v for name, v in block.rows if name.startswith(("MLP", "down projection", "output LayerNorm")))
    head_grads = 4.0 * V * h
    if family(cfg) == "bert":
        head_grads += 4.0 * (h * h + 3 * h + V)  # MLM transform dense + LayerNorm + decoder bias
    moments = {}
    for done in range(L):
        remaining = L - done - 1  # layers below the current one, not yet run backward
        if checkpointing:
            kept = block.checkpoint_input * (remaining + 1)
            current = rows - block.checkpoint_input
            casts = block.casts
        else:
            kept = rows * remaining
            current = rows
            casts = block.casts * (remaining + 1)
        grads = head_grads + block.param_bytes * done
        mlp = {"activations": embedding_side + kept + current - after_act,
               "weight_copies_16bit": casts - block.down_cast_bytes, "gradients": grads,
               "backward_temporaries": block.mlp_moment}
        best = mlp
        if block.attn_moment:
            attn = {"activations": embedding_side + kept + current - mlp_kept,
                    "weight_copies_16bit": casts - block.mlp_cast_bytes, "gradients": grads,
                    "backward_temporaries": block.attn_moment}
            best = max(mlp, attn, key=lambda parts: sum(parts.values()))
        label = "last layer's backward" if done == L - 1 else f"backward of layer {L - done} of {L}"
        moments[label] = {k: float(v) for k, v in best.items()}
    return moments


def _textbook_training(cfg, n_params, recipe, s, b, gradient_checkpointing) -> float:
    """The plain textbook sum: 16 B/param of model states (ZeRO §3.1) + Korthikanti Table 2 activations of every
    layer (16-bit; doubled for the fp32 recipe)."""
    states = sum(memory.training_bytes_per_param("mixed_precision").values()) * n_params
    act = memory.model_activation_bytes(cfg, s, b, "full" if gradient_checkpointing else "none")
    return float(states + act * (2 if recipe == "fp32" else 1))


def emulated_bf16_copy_bytes(m: int, k: int, n: int, bias: bool = False, layout: str = "linear") -> int:
    """The workspace of one bf16 product on a CPU whose oneDNN emulates bf16 (AVX-512 without AVX512-BF16 or AMX;
    measured 2026-12-06): an fp32 copy of the m × n output plus 128 bytes, with or without a bias."""
    return 4 * m * n + 128


def _no_workspace(m: int, k: int, n: int, bias: bool = False, layout: str = "linear") -> int:
    return 0


def _inference_transient(cfg: Mapping, hf, p: int, s: int, b: int, device_type: str,
                         flash: bool = True, workspace=_no_workspace) -> tuple[float, str]:
    """Activations and temporaries alive at the busiest moment of one prefill pass (no autograd), bytes.

    Read off each model's forward code: tensors still referenced by Python locals (embeddings, the block's input
    and residual) plus the widest moment of one block, in the last layer (when every layer's KV cache exists):
    GPT-2's gelu_new holds its input and three temporaries (4 × ffn), a SiLU-gated MLP three ffn-wide tensors,
    BERT's GELU two; T5 also keeps its position biases (heads × s × s) and the encoder output. ``workspace(m, k, n,
    bias, layout)``: the bytes a product allocates beyond its output while it runs (a property of the CPU's kernels:
    ``core.measure.trackers.matmul_workspace_bytes`` asks them; ``emulated_bf16_copy_bytes`` is the fp32 copy of an
    emulating oneDNN). Each MLP's first products are computed while their input is alive (the up projection also
    beside act(gate)), so with a large enough workspace one of them becomes the block's busiest moment: Llama's up,
    BERT's intermediate dense (a bias: oneDNN's sum post-op), GPT-2's c_fc and c_attn, T5's gated wi_1; and each
    MLP's down projection, whose workspace grows with its inner dimension (K = ffn): on native AVX512-BF16 oneDNN
    (2026-12-07, 2 threads) BERT's output dense (128 × 256 by 256 × 64, bias) took 99,968 B beyond its output against
    83,584 B for the intermediate dense, and became the peak (6.9 % low without it).
    """
    fam = family(cfg)
    h, f, L, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    a, kv, d = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["head_dim"]
    n = s * b
    more = 1 if L > 1 else 0
    logits = b * V * p
    if fam == "gpt2":
        act = str(hf_value(hf, "activation_function", "gelu_new"))
        act_peak = 4 * f if act in ("gelu_new", "gelu_fast", "gelu_python") else 2 * f
        keep = n * p * (2 * h + more * h) + s * h * p  # token + position embeddings, their sum, the block input
        mlp = keep + n * p * (2 * h + act_peak)  # + residual, ln_2 output, the activation's tensors
        mlp = max(mlp, keep + n * p * (2 * h + f) + workspace(n, h, f, True, "conv1d"))  # c_fc's product
        mlp = max(mlp, keep + n * p * (3 * h + f) + workspace(n, f, h, True, "conv1d"))  # c_proj's, beside act
        attn = keep + n * p * 6 * h  # ln_1 output, fused q/k/v, attention output, projection
        attn = max(attn, keep + n * p * 4 * h + workspace(n, h, 3 * h, True, "conv1d"))  # c_attn's product
        return max(mlp, attn) + logits, "last layer's MLP (gelu_new temporaries)" if mlp >= attn else "attention"
    if fam == "llama":
        ad, kvd = a * d, kv * d
        keep = n * p * (h + more * h) + 2 * s * d * p  # embeddings, block input, rotary cos/sin
        mlp = keep + n * p * (2 * h + 3 * f)  # residual, norm output, act(gate), up, their product
        # up's product: residual, norm output, act(gate), up's output and the product's workspace
        mlp = max(mlp, keep + n * p * (2 * h + 2 * f) + workspace(n, h, f, False, "linear"))
        # down's product: residual, norm output, act(gate)·up and down's output (the factors were temporaries)
        mlp = max(mlp, keep + n * p * (3 * h + f) + workspace(n, f, h, False, "linear"))
        norm = keep + n * (p * h + 4 * h + (4 * h if p < 4 else 0))  # RMSNorm's fp32 copy and product
        attn = keep + n * p * (h + 2 * ad + 3 * kvd + ad)
        if device_type == "cuda" and (p == 4 or not flash) and kv != a:  # GQA without flash: math path, s×s
            attn += n * 4 * ad * 2 + 2 * b * a * s * s * 4
        best = max(mlp, norm, attn)
        return best + logits, "last layer's MLP" if best == mlp else ("RMSNorm" if best == norm else "attention")
    if fam == "bert":
        keep = n * p * (h + more * h)
        layer = keep + n * p * (h + 2 * f)
        # the intermediate dense's product (with its bias): its input, its output and the product's workspace
        layer = max(layer, keep + n * p * (h + f) + workspace(n, h, f, True, "linear"))
        # the output dense's (BertOutput, with its bias): attention output, GELU output, its output and workspace
        layer = max(layer, keep + n * p * (2 * h + f) + workspace(n, f, h, True, "linear"))
        emb = n * p * 4 * h + s * h * p
        return max(layer, emb) + b * h * p, "last layer's MLP"
    if fam == "t5":
        spec = layer_spec(cfg, hf)
        inner = a * d
        act_peak = (4 if spec.act == "gelu_new" else 2) * f
        ff = max(act_peak, 3 * f) if spec.gated else act_peak
        ws = workspace(n, h, f, False, "linear")
        ff = max(ff, (2 * f if spec.gated else f) + ws / (n * p))  # wi (gated: wi_1 beside act(wi_0)) + workspace
        # wo's product: its input (gated: beside act(wi_0) and wi_1, still locals), its output and workspace
        ff = max(ff, (3 * f if spec.gated else f) + h + workspace(n, f, h, False, "linear") / (n * p))
        Ld = cfg["num_decoder_layers"]
        biases = 2 * a * s * s * p  # decoder self-attention bias and the cross-attention zero bias
        keep = n * p * (2 * h + (h if Ld > 1 else 0))  # encoder output, decoder embeddings, block input
        ffn = keep + biases + n * p * (2 * h + ff)
        attn = keep + biases + n * p * (2 * h + 4 * inner) + a * s * s * p  # + this layer's masked bias copy
        # Relative-position bucketing (T5Attention._relative_position_bucket, layer 0 of each stack), measured with
        # the profiler on transformers 5.23 at s = 128 and 256: 47 B per s² for the encoder's bidirectional buckets
        # (beside its embeddings), 39 B for the decoder's causal ones (beside the encoder output); int64, so the same
        # at every precision, where the old single 48 B beside the decoder's tensors made it bf16's false peak.
        buckets = max(n * p * h + 47 * s * s, keep + 39 * s * s) + n * p * (h + 3 * inner)
        best = max(ffn, attn, buckets)
        label = "last decoder layer's MLP" if best == ffn else ("attention with position bias" if best == attn
                                                                 else "relative-position bucketing")
        return best + logits, label
    # Generic: the planner's editable assumption (activation workspace = 20 % of the weights).
    return 0.0, "generic"


def predict_inference(architecture, dtype, seq_len: int, batch_size: int, device_type: str = "cuda",
                      flash_attention: bool = True, bf16_matmul_scratch=False) -> dict:
    """The planner's prediction of a prefill's peak: weights (core.plan.memory.weights_bytes) + KV cache
    (core.plan.memory.model_kv_cache_bytes) + the activations alive at the busiest moment (``_inference_transient``).
    ``bf16_matmul_scratch``: what this CPU's bf16 products allocate beyond their output, either a function
    ``(m, k, n, bias, layout) -> bytes`` (``core.measure.trackers.matmul_workspace_bytes``, probed from the kernels)
    or ``True`` for the fp32 copy of an emulating oneDNN (``emulated_bf16_copy_bytes``); it applies to bf16 runs on
    the CPU only."""
    cfg, seq_len, batch_size = check_setting(architecture, seq_len, batch_size)
    dtype = normalize_dtype(dtype)
    p = DTYPE_BYTES[dtype]
    n_params = architectures.param_count(cfg)
    hf = architectures.hf_config(cfg)
    weights = memory.weights_bytes(n_params, dtype)
    kv = memory.model_kv_cache_bytes(cfg, seq_len, batch_size, p)
    workspace = _no_workspace
    if bf16_matmul_scratch and dtype == "bf16" and device_type == "cpu":
        workspace = bf16_matmul_scratch if callable(bf16_matmul_scratch) else emulated_bf16_copy_bytes
    transient, where = _inference_transient(cfg, hf, p, seq_len, batch_size, device_type, flash_attention, workspace)
    if family(cfg) == "generic":
        transient = weights * memory.DEFAULT_INFERENCE_WORKSPACE_PCT / 100
    textbook = weights + kv + weights * memory.DEFAULT_INFERENCE_WORKSPACE_PCT / 100
    comps = {"weights": float(weights), "kv_cache": float(kv), "activations_peak": float(transient)}
    return {"n_params": n_params, "predicted_peak_bytes": float(sum(comps.values())), "components": labelled(comps),
            "phase": where, "textbook_peak_bytes": float(textbook), "family": family(cfg)}
