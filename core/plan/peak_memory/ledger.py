"""The activation ledger: what each layer of a Hugging Face model keeps for backward, tensor by tensor.

Korthikanti et al. 2022, "Reducing Activation Recomputation in Large Transformer Models" (§4, Table 2) count the
tensors one transformer layer keeps; this module lists them for the Hugging Face implementation of each family,
with the dtypes torch.autocast gives them and the kernels PyTorch picks on the device (rules below).
``core.plan.peak_memory.predict`` turns the rows into peaks.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from core.plan import architectures
from core.plan.peak_memory.inputs import DTYPE_BYTES

# ---------------------------------------------------------------------------------------------------------------
# Korthikanti et al. 2022 (§4, Table 2) count the tensors one transformer layer keeps for backward; their
# s·b·h·(34 + 5·a·s/h) assumes Megatron's fused kernels and 16-bit activations. The Hugging Face models built here
# keep other tensors: torch.autocast leaves the residual stream and the norms in fp32 and casts every matmul input to
# 16 bits (one copy per consumer); GPT-2's "gelu_new" runs as seven elementwise ops; PyTorch's SDPA kernels keep the
# attention output and its log-sum-exp instead of the s×s scores (flash / memory-efficient), or fp32 scores on the
# math fallback. The ledgers below list those tensors with their bytes per token, read off the transformers 5 model
# code (modeling_gpt2 / modeling_llama / modeling_bert / modeling_t5) and PyTorch's documented rules:
#   - autocast op lists (PyTorch "Automatic Mixed Precision package" docs): on CUDA layer_norm, pow, rsqrt, softmax
#     and log_softmax run in fp32; on CPU only matmul-like ops change dtype; the 16-bit copy of every fp32 weight is
#     cached for the whole autocast region ("cache_enabled"), activations are cast per consumer;
#   - autograd saves an input only when its backward formula needs it (tools/autograd/derivatives.yaml);
#   - dropout keeps a 1-byte mask on CUDA (native_dropout) and a noise tensor of the input's dtype on CPU;
#   - SDPA kernel choice (torch.nn.attention docs): flash for 16-bit inputs without a float mask (GQA included),
#     memory-efficient for fp32 or a float mask (no GQA), else the math path, which upcasts 16-bit q/k/v to fp32
#     and keeps the s×s softmax; on CPU the flash kernel runs unless dropout is on or the mask needs a gradient;
#   - AdamW (torch.optim; foreach on CUDA) allocates one fp32 temporary per parameter in its step (``_foreach_sqrt``
#     of the second moments); the CPU loop needs two temporaries of one tensor at a time.
AUTOCAST_FP32_OPS_CUDA = ("layer_norm", "pow", "rsqrt", "softmax", "log_softmax")


@dataclass(frozen=True)
class Runtime:
    """How a setting runs: device type, training or not, autocast, bytes of compute and residual-stream values."""
    device: str  # "cuda" | "cpu"
    training: bool
    autocast: bool  # training with torch.autocast: 16-bit matmuls, fp32 weights
    p: int  # bytes of a matmul output (the compute dtype)
    r: int  # bytes of the residual stream, norms and embeddings (fp32 under autocast: the weights are fp32)
    flash: bool = True  # CUDA: flash attention kernels exist (compute capability ≥ 8.0)

    def upcast(self, op: str) -> bool:
        """True when autocast runs ``op`` in fp32 on this device."""
        return self.autocast and self.device == "cuda" and op in AUTOCAST_FP32_OPS_CUDA

    def mask_bytes(self, value_bytes: int) -> int:
        """Bytes per element a dropout keeps for backward (CUDA: bool mask; CPU: the scaled noise tensor)."""
        return 1 if self.device == "cuda" else value_bytes

    def matmul_input(self, value_bytes: int, consumers: int = 1) -> int:
        """Bytes per element kept by ``consumers`` matmuls reading one activation: under autocast each one casts
        its own 16-bit copy of an fp32 activation; otherwise they all keep the same tensor."""
        if self.autocast and value_bytes > 2:
            return 2 * consumers
        return value_bytes


def runtime(device_type: str, training: bool, recipe: str | None = None, dtype: str | None = None,
             flash: bool = True) -> Runtime:
    if device_type not in ("cuda", "cpu"):
        raise ValueError(f"device_type must be 'cuda' or 'cpu', got {device_type!r}.")
    if training:
        mixed = recipe == "mixed_precision"
        return Runtime(device_type, True, mixed, 2 if mixed else 4, 4, flash)
    p = DTYPE_BYTES[dtype]
    return Runtime(device_type, False, False, p, p, flash)


def cuda_has_flash_attention(device=None) -> bool:
    """PyTorch's flash-attention kernels need compute capability 8.0+ (Ampere or newer)."""
    import torch

    return torch.cuda.is_available() and torch.cuda.get_device_capability(device) >= (8, 0)


def hf_value(hf, name: str, default=0.0):
    value = getattr(hf, name, None)
    return default if value is None else value


def _sdpa_backend(rt: Runtime, head_dim: int, float_mask: bool, gqa: bool, dropout: float,
                  mask_needs_grad: bool = False) -> str:
    """The kernel ``scaled_dot_product_attention`` picks for this setting (rules above)."""
    dropout = dropout if rt.training else 0.0
    if rt.device == "cuda":
        if rt.flash and rt.p == 2 and head_dim <= 256 and not float_mask:
            return "flash"  # also serves GQA (enable_gqa), which the memory-efficient kernel does not
        return "efficient" if not gqa else "math"
    if dropout > 0 or (mask_needs_grad and rt.training):
        return "math"
    return "flash"


def _activation(rt: Runtime, act: str) -> tuple[float, int, str]:
    """(bytes per element kept by the activation apart from its output, bytes per element of its output, label)."""
    act = (act or "gelu").lower()
    if act in ("gelu_new", "gelu_fast", "gelu_python", "gelu_pytorch_tanh_python"):
        # 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) as separate ops: pow keeps x, tanh its output, the product
        # both factors (0.5·x and 1 + tanh). Under CUDA autocast pow runs in fp32, which promotes the rest.
        wide = 4 if rt.upcast("pow") else rt.p
        return wide + wide + rt.p + wide, wide, "gelu_new (tanh GELU as separate ops)"
    if act == "relu":
        return 0, rt.p, "ReLU (keeps its output)"
    return rt.p, rt.p, f"{act} (keeps its input)"


@dataclass
class LayerSpec:
    """The parts of a transformer block that decide what it keeps."""
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    norm: str  # "layernorm" (nn.LayerNorm) | "rmsnorm" (HF python RMSNorm / T5LayerNorm)
    post_ln: bool  # BERT: LayerNorm after each residual add
    fused_qkv: bool  # GPT-2's c_attn: q, k, v are views of one matmul output
    rope: bool
    act: str
    gated: bool
    attn_dropout: float
    resid_dropout: float
    ffn_inner_dropout: float = 0.0  # T5: dropout on the gated product inside the FFN
    float_mask: bool = False  # T5: relative position bias passed as a float mask
    mask_needs_grad: bool = False
    cross_attention: bool = False  # T5 decoder
    cross_mask_needs_grad: bool = False  # T5 under checkpointing marks its zero cross-attention bias as trainable


def _norm_rows(rt: Runtime, spec: LayerSpec, n: int, label: str) -> tuple[list, int]:
    """Rows a pre-norm keeps (input and, for RMSNorm, the fp32 normalized tensor) and its output's bytes."""
    h = spec.hidden
    if spec.norm == "layernorm":
        return [(f"{label} input (residual stream)", rt.r * h * n), (f"{label} mean/rstd (fp32)", 8 * n)], rt.r
    # HF RMSNorm / T5LayerNorm: x·rsqrt(mean(x²)) in fp32 keeps x; weight·normalized keeps the fp32 normalized x.
    return [(f"{label} input (residual stream)", rt.r * h * n), (f"{label} normalized (fp32)", 4 * h * n)], 4


def _attention_rows(rt: Runtime, spec: LayerSpec, n: int, s_q: int, s_k: int, b: int, in_bytes: int,
                    label: str, cross: bool = False, kv_input_rows: bool = True) -> list:
    """Rows one attention sub-block keeps: projections' inputs, q/k/v, the SDPA kernel's own tensors."""
    h, a, kv, d = spec.hidden, spec.heads, spec.kv_heads, spec.head_dim
    ad, kvd = a * d, kv * d
    n_k = s_k * b
    backend = _sdpa_backend(rt, d, spec.float_mask, kv != a, spec.attn_dropout,
                            spec.cross_mask_needs_grad if cross else spec.mask_needs_grad)
    replaced = backend == "math"  # the math path keeps its own fp32 / contiguous copies of q, k, v instead
    rows = []
    if spec.fused_qkv:
        rows.append((f"{label} c_attn input", rt.matmul_input(in_bytes) * h * n))
        if not replaced:
            rows.append((f"{label} q, k, v (views keep c_attn's output whole)", rt.p * (ad + 2 * kvd) * n))
    else:
        consumers = 1 if cross else 3
        rows.append((f"{label} q/k/v projections' input" if not cross else f"{label} query projection input",
                     rt.matmul_input(in_bytes, consumers) * h * n))
        if cross and kv_input_rows and rt.autocast:
            rows.append((f"{label} key/value projections' input (encoder output, two 16-bit copies)",
                         2 * 2 * h * n_k))
        if not replaced:
            # Llama's q·cos with fp32 cos/sin promotes q, k to fp32; SDPA's autocast keeps 16-bit copies.
            qk_bytes = 2 if (spec.rope and rt.autocast) else rt.p
            rows += [(f"{label} query", qk_bytes * ad * n), (f"{label} key, value", (qk_bytes + rt.p) * kvd * n_k)]
    if backend in ("flash", "efficient"):
        rows += [(f"{label} attention output", rt.p * ad * n), (f"{label} softmax log-sum-exp (fp32)", 4 * a * n)]
        if spec.float_mask and backend == "efficient" and rt.training and not cross:
            rows.append((f"{label} position-bias mask (16-bit, s×s)", rt.p * a * s_q * s_k))
    else:
        rows += [(f"{label} scaled query (fp32)", 4 * ad * n), (f"{label} scaled key (fp32)", 4 * ad * n_k)]
        rows.append((f"{label} value (fp32 contiguous / expanded copy)", 4 * ad * n_k))
        rows.append((f"{label} softmax (fp32, s×s)", 4 * a * s_k * n))
        if spec.attn_dropout > 0 and rt.training:
            rows += [(f"{label} attention dropout mask (s×s)", rt.mask_bytes(4) * a * s_k * n),
                     (f"{label} attention dropout output (fp32, s×s)", 4 * a * s_k * n)]
        rows.append((f"{label} attention output", rt.p * ad * n))
    if spec.resid_dropout > 0 and rt.training:
        rows.append((f"{label} output dropout mask", rt.mask_bytes(rt.p) * h * n))
    return rows


def _ffn_rows(rt: Runtime, spec: LayerSpec, n: int, in_bytes: int) -> list:
    h, f = spec.hidden, spec.ffn
    kept, out_bytes, act_label = _activation(rt, spec.act)
    rows = [("MLP input" + (" (two 16-bit copies)" if spec.gated and rt.autocast else ""),
             rt.matmul_input(in_bytes, 2 if spec.gated else 1) * h * n)]
    rows.append((f"MLP activation: {act_label}", kept * f * n))
    if spec.gated:
        prod_bytes = max(out_bytes, rt.p)
        rows += [("MLP activation output (kept by the gate product)", out_bytes * f * n),
                 ("MLP up projection output", rt.p * f * n)]
        if spec.ffn_inner_dropout > 0 and rt.training:
            rows.append(("MLP inner dropout mask", rt.mask_bytes(prod_bytes) * f * n))
        rows.append(("down projection input", rt.matmul_input(prod_bytes) * f * n))
    else:
        rows.append(("down projection input (activation output)", rt.matmul_input(out_bytes) * f * n))
    if spec.resid_dropout > 0 and rt.training:
        rows.append(("MLP output dropout mask", rt.mask_bytes(rt.p) * h * n))
    return rows


def _layer_rows(rt: Runtime, spec: LayerSpec, s: int, b: int, s_enc: int | None = None) -> list:
    """Everything one block keeps for backward (bytes), in forward order."""
    n, h = s * b, spec.hidden
    if spec.post_ln:  # BERT: the block input is the previous LayerNorm's output (fp32), not kept by that norm
        rows = [] if rt.autocast else [("block input (kept by q/k/v)", rt.r * h * n)]
        att = _attention_rows(rt, spec, n, s, s, b, rt.r, "self-attention")
        if not rt.autocast:
            att = [r for r in att if "projections' input" not in r[0]]
        rows += att
        rows += [("attention LayerNorm input (fp32)", rt.r * h * n), ("attention LayerNorm mean/rstd", 8 * n)]
        rows += _ffn_rows(rt, spec, n, rt.r)
        rows += [("output LayerNorm input (fp32)", rt.r * h * n), ("output LayerNorm mean/rstd", 8 * n)]
        return rows
    norm, out = _norm_rows(rt, spec, n, "attention norm")
    rows = norm + _attention_rows(rt, spec, n, s, s, b, out, "self-attention")
    if spec.cross_attention:
        norm, out = _norm_rows(rt, spec, n, "cross-attention norm")
        rows += norm + _attention_rows(rt, replace_spec(spec, rope=False), n, s, s_enc or s, b, out,
                                       "cross-attention", cross=True)
    norm, out = _norm_rows(rt, spec, n, "MLP norm")
    return rows + norm + _ffn_rows(rt, spec, n, out)


def replace_spec(spec: LayerSpec, **changes) -> LayerSpec:
    from dataclasses import replace

    return replace(spec, **changes)


def _layer_params(spec: LayerSpec, biases: bool) -> int:
    """Weights of one block's linear layers (what autocast casts to 16 bits)."""
    h, f, ad, kvd = spec.hidden, spec.ffn, spec.heads * spec.head_dim, spec.kv_heads * spec.head_dim
    attn = h * (ad + 2 * kvd) + ad * h
    if spec.cross_attention:
        attn *= 2
    mlp = (3 if spec.gated else 2) * h * f
    bias = (ad + 2 * kvd + h + f + h) if biases else 0
    return attn + mlp + bias


FAMILIES = {"gpt2": "gpt2", "llama": "llama", "mistral": "llama", "qwen2": "llama", "bert": "bert",
            "roberta": "bert", "t5": "t5"}


def family(cfg: Mapping) -> str:
    """Which ledger describes the model's Hugging Face implementation ("generic" = Korthikanti's formula)."""
    return FAMILIES.get(cfg["model_type"], "generic")


def layer_spec(cfg: Mapping, hf, decoder_block: bool = False) -> LayerSpec:
    fam = family(cfg)
    common = dict(hidden=cfg["hidden_size"], ffn=cfg["intermediate_size"], heads=cfg["num_attention_heads"],
                  kv_heads=cfg["num_key_value_heads"], head_dim=cfg["head_dim"])
    if fam == "gpt2":
        return LayerSpec(**common, norm="layernorm", post_ln=False, fused_qkv=True, rope=False,
                         act=str(hf_value(hf, "activation_function", "gelu_new")), gated=False,
                         attn_dropout=float(hf_value(hf, "attn_pdrop")),
                         resid_dropout=float(hf_value(hf, "resid_pdrop")))
    if fam == "llama":
        return LayerSpec(**common, norm="rmsnorm", post_ln=False, fused_qkv=False, rope=True,
                         act=str(hf_value(hf, "hidden_act", "silu")), gated=True,
                         attn_dropout=float(hf_value(hf, "attention_dropout")), resid_dropout=0.0)
    if fam == "bert":
        return LayerSpec(**common, norm="layernorm", post_ln=True, fused_qkv=False, rope=False,
                         act=str(hf_value(hf, "hidden_act", "gelu")), gated=False,
                         attn_dropout=float(hf_value(hf, "attention_probs_dropout_prob")),
                         resid_dropout=float(hf_value(hf, "hidden_dropout_prob")))
    if fam == "t5":
        proj = str(cfg.get("feed_forward_proj", "relu"))
        gated = proj.startswith("gated-")
        act = proj.split("-")[-1]
        act = "gelu_new" if act == "gelu" else act  # transformers maps T5's "gelu" to gelu_new (tanh form)
        drop = float(hf_value(hf, "dropout_rate"))
        return LayerSpec(**common, norm="rmsnorm", post_ln=False, fused_qkv=False, rope=False, act=act,
                         gated=gated, attn_dropout=drop, resid_dropout=drop, ffn_inner_dropout=drop if gated else 0.0,
                         float_mask=True, mask_needs_grad=True, cross_attention=decoder_block)
    raise ValueError("no ledger for this family")


@dataclass
class Block:
    count: int
    rows: list
    casts: float  # bytes of this block's 16-bit weight copies (autocast)
    checkpoint_input: float  # bytes kept per block under gradient checkpointing
    backward_temp: float  # temporaries while this block runs backward
    mlp_moment: float = 0.0  # temporaries (and weight gradients written) at the MLP's backward
    attn_moment: float = 0.0  # the same at the attention's backward (math path), MLP's kept tensors released
    param_bytes: float = 0.0  # fp32 gradient bytes of one block's parameters (weights, biases, norms)
    mlp_cast_bytes: float = 0.0  # 16-bit copies of the MLP weights (autocast), released by the MLP's backward
    down_cast_bytes: float = 0.0  # 16-bit copy of the down projection, released first


def _block(rt: Runtime, spec: LayerSpec, count: int, s: int, b: int, biases: bool, s_enc: int | None = None) -> Block:
    n = s * b
    rows = [r for r in _layer_rows(rt, spec, s, b, s_enc) if r[1]]
    casts = 2 * _layer_params(spec, biases) if rt.autocast else 0.0
    # Backward temporaries: the fp32 gradient of the residual stream, the layer's own fp32 weight gradients, and the
    # widest gradients of the moment — the MLP's (an elementwise product's backward holds three ffn-wide tensors: the
    # incoming gradient and one per factor; a plain GELU two) or, on the math attention path, two fp32 s×s ones.
    product = spec.gated or _activation(rt, spec.act)[2].startswith("gelu_new")
    mlp = (3 if product else 2) * rt.p * spec.ffn
    math = any("softmax (fp32, s×s)" in name for name, _ in rows)
    bias_grad = any("position-bias mask" in name for name, _ in rows)  # efficient kernel: dense bias gradient
    attn = 2 * 4 * spec.heads * (s_enc or s) if math else (rt.p * spec.heads * s if bias_grad else 0)
    # Weight gradients already written when that moment comes: the down projection's (MLP) or the whole MLP's and
    # the output projection's (attention, which runs backward after the MLP).
    h, f, ad = spec.hidden, spec.ffn, spec.heads * spec.head_dim
    # By the attention's moment the MLP's kept tensors have been released.
    mlp_kept = sum(v for name, v in rows if name.startswith(("MLP", "down projection", "output LayerNorm")))
    mlp_moment = n * (2 * rt.r * h + mlp) + 4 * h * f
    attn_moment = (n * (2 * rt.r * h + attn) + 4 * ((3 if spec.gated else 2) * h * f + ad * h) - mlp_kept
                   if attn else 0)
    backward = max(mlp_moment, attn_moment)
    norms = (4 if spec.norm == "layernorm" else 2) * h * (2 if spec.cross_attention else 1)
    mlp_cast = 2 * (3 if spec.gated else 2) * h * f if rt.autocast else 0.0
    return Block(count, rows, casts, rt.r * spec.hidden * n, backward, mlp_moment, attn_moment,
                 4.0 * (_layer_params(spec, biases) + norms), mlp_cast, 2.0 * h * f if rt.autocast else 0.0)


def training_parts(cfg: Mapping, hf, rt: Runtime, s: int, b: int,
                    checkpointing: bool = False) -> tuple[list[Block], list, float]:
    """Blocks, model-level rows (embeddings, final norm, loss) and the 16-bit copies of non-block weights."""
    fam = family(cfg)
    h, V, n = cfg["hidden_size"], cfg["vocab_size"], s * b
    spec = layer_spec(cfg, hf)
    lm_cast = 2 * V * h if rt.autocast else 0.0
    loss_rows = [("log-softmax of the logits (fp32, kept by the loss)", 4 * V * n), ("labels (int64)", 16 * n)]
    if fam == "gpt2":
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=True)]
        model = []
        if float(hf_value(hf, "embd_pdrop")) > 0:
            model.append(("embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
        model += [("ln_f input", rt.r * h * n), ("ln_f mean/rstd", 8 * n),
                  ("lm_head input", rt.matmul_input(rt.r) * h * n)]
        return blocks, model + loss_rows, lm_cast
    if fam == "llama":
        bias = bool(cfg.get("attention_bias")) or cfg["model_type"] == "qwen2"
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=False)]
        if bias:
            blocks[0].casts += 2 * spec.heads * spec.head_dim + 4 * spec.kv_heads * spec.head_dim if rt.autocast else 0
        model = [("rotary cos/sin (fp32)", 2 * 4 * s * spec.head_dim), ("final norm input", rt.r * h * n),
                 ("final norm normalized (fp32)", 4 * h * n), ("lm_head input", rt.matmul_input(4) * h * n)]
        return blocks, model + loss_rows, lm_cast
    if fam == "bert":
        blocks = [_block(rt, spec, cfg["num_hidden_layers"], s, b, biases=True)]
        act_kept, act_out, _ = _activation(rt, spec.act)
        ln_in = 4 if (rt.upcast("layer_norm") or not rt.autocast) else rt.p
        model = [("embedding LayerNorm input (fp32)", rt.r * h * n + 8 * n)]
        if spec.resid_dropout > 0:
            model.append(("embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
        model += [("MLM head transform input", rt.matmul_input(rt.r) * h * n),
                  ("MLM head activation", act_kept * h * n), ("MLM head LayerNorm input", ln_in * h * n + 8 * n),
                  ("MLM decoder input", rt.matmul_input(4 if ln_in == 4 else rt.p) * h * n)]
        other = lm_cast + (2 * (h * h + h) if rt.autocast else 0.0)
        return blocks, model + loss_rows[:1] + [("labels (int64)", 8 * n)], other
    if fam == "t5":
        drop = spec.resid_dropout
        enc = _block(rt, spec, cfg["num_hidden_layers"], s, b, biases=False)
        dec_spec = replace_spec(layer_spec(cfg, hf, decoder_block=True), cross_mask_needs_grad=checkpointing)
        dec = _block(rt, dec_spec, cfg["num_decoder_layers"], s, b, biases=False, s_enc=s)
        model = []
        for stack in ("encoder", "decoder"):
            if drop > 0:
                model.append((f"{stack} embedding dropout mask", rt.mask_bytes(rt.r) * h * n))
            model += [(f"{stack} relative-position buckets (int64, s×s)", 8 * s * s),
                      (f"{stack} final norm input", rt.r * h * n), (f"{stack} final norm normalized (fp32)", 4 * h * n)]
            if drop > 0:
                model.append((f"{stack} final dropout mask", rt.mask_bytes(4) * h * n))
        if not rt.autocast:
            model.append(("encoder output (kept by every cross-attention's k/v)", 4 * h * n))
        model += [("cross-attention zero position bias (shared, s×s)", rt.p * spec.heads * s * s),
                  ("lm_head input", rt.matmul_input(4) * h * n)]
        return [enc, dec], model + loss_rows, lm_cast
    raise ValueError("no ledger for this family")


def largest_param_count(cfg: Mapping) -> int:
    h, f, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    ad = cfg["num_attention_heads"] * cfg["head_dim"]
    return max(V * h, h * f, h * (ad + 2 * cfg["num_key_value_heads"] * cfg["head_dim"]))


def training_param_count(architecture) -> int:
    """Parameters of the model a training step updates: the architecture with its language-modelling head
    (encoders get BERT's masked-LM head: transform dense + LayerNorm + a vocabulary bias; no pooler)."""
    cfg = architectures.get_config(architecture)
    n = architectures.param_count(cfg)
    if cfg["kind"] == "encoder":
        h, V = cfg["hidden_size"], cfg["vocab_size"]
        pooler = architectures.param_breakdown(cfg).get("pooler", 0)
        n += -pooler + (h * h + h) + 2 * h + V
    return int(n)


def optimizer_temp_bytes(cfg: Mapping, n_params: int, device_type: str) -> float:
    """AdamW step temporaries: foreach (CUDA) one fp32 copy of all parameters; CPU loop two of the largest."""
    return 4.0 * n_params if device_type == "cuda" else 2 * 4.0 * largest_param_count(cfg)
