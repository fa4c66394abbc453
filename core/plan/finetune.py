"""Fine-tuning plans: trainable parameters, memory per component and FLOPs of full, LoRA, QLoRA and prompt-tuning
fine-tuning.

Sources:
- LoRA: Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", §4.1: a frozen W0 (d_out × d_in) gets
  ΔW = B·A with A (r × d_in) and B (d_out × r), so each adapted matrix trains r·(d_in + d_out) parameters; only
  A and B get gradients and optimizer states.
- QLoRA: Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs", §3: the frozen base in 4-bit NF4
  (blocksize 64, fp32 absmax; double quantization stores the absmax in 8 bits with one fp32 constant per 256),
  dequantized to the 16-bit compute dtype layer by layer in forward and backward; adapters in 16/32 bits.
- Storage of the frozen base in each format: ``core.plan.memory.weight_memory`` (bitsandbytes constants).
- FLOPs: Kaplan et al. 2020 (§2.1) count 2·N per token forward and 4·N backward; with a frozen base the backward
  still computes the activation gradients (2·N) but no weight gradients, so LoRA costs ≈ 4·N + 6·N_adapter per
  token (Hu et al. §4.2 report the matching ~25 % speed-up on GPT-3 175B); gradient checkpointing adds one forward
  (2·N) per token (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost").
- Optimizer states: AdamW keeps two fp32 moments (8 B/param; Loshchilov & Hutter 2019); 8-bit AdamW keeps them in
  8 bits with one fp32 absmax per 256 values (Dettmers et al. 2022, "8-bit Optimizers via Block-wise Quantization",
  bitsandbytes ``optim.AdamW8bit``; tensors under 4,096 values stay 32-bit); SGD with momentum one fp32 buffer.
- Activations of a LoRA step (frozen 16-bit base, fp32 adapters, PEFT ``peft.tuners.lora.layer.Linear``): autograd
  keeps an input only when a gradient needs it (PyTorch ``tools/autograd/derivatives.yaml``), so a frozen linear
  keeps nothing while an adapted one keeps the fp32 copy of its input PEFT makes for ``lora_A`` (and ``lora_A``'s
  r-wide output for ``lora_B``); norms, attention (SDPA's output and log-sum-exp) and the gated MLP keep what full
  training keeps. Read off transformers' ``modeling_llama`` and checked against PyTorch's profiler on CPU.
- Prompt tuning: Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt Tuning", §2: the model stays
  frozen and only ``num_virtual_tokens`` soft-token embeddings (hidden size each) train; PEFT's
  ``PromptTuningConfig`` prepends them to every sequence, so each step runs ``seq_len + num_virtual_tokens``
  positions. The gradient flows back through every layer to the input, which keeps what a LoRA step with no adapted
  matrix keeps (the rule above); the soft prompt is fp32 (PEFT builds its ``PromptEmbedding`` in fp32) with its
  gradient and optimizer states.

Plain Python (no torch, no Streamlit).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.plan import architectures, memory
from core.common import checks
from core.common.units import GB

METHODS = ("full", "lora", "qlora", "prompt-tuning")
PROMPT_TUNING = "prompt-tuning"
MAX_VIRTUAL_TOKENS = 100_000
BASE_PRECISIONS = ("bf16", "fp16", "int8", "nf4", "nf4-dq")
OPTIMIZERS = ("adamw", "adamw8bit", "sgd")
OPTIMIZER_LABELS = {"adamw": "AdamW (fp32 states, 8 B/param)", "adamw8bit": "8-bit AdamW (bitsandbytes, ~2 B/param)",
                    "sgd": "SGD with momentum (4 B/param)"}
# Target-module groups people pick, as the short names of the projections.
TARGET_GROUPS = {"attention": ("q", "k", "v", "o"), "mlp": ("gate", "up", "down"),
                 "all-linear": ("q", "k", "v", "o", "gate", "up", "down")}
PROJECTIONS = ("q", "k", "v", "o", "gate", "up", "down")
MAX_RANK = 65_536
BNB_8BIT_OPTIM_BLOCKSIZE = 256  # bitsandbytes blockwise 8-bit optimizer states
BNB_8BIT_OPTIM_MIN_SIZE = 4096  # bitsandbytes keeps smaller tensors' states in 32 bits (min_8bit_size)


class FinetuneError(ValueError):
    """Bad fine-tuning input (user-facing message)."""


@dataclass(frozen=True)
class AdaptedMatrix:
    """One kind of weight matrix LoRA can adapt: ``count`` copies of d_in → d_out, PEFT module name ``module``."""
    projection: str  # "q" | "k" | "v" | "o" | "gate" | "up" | "down"
    module: str  # PEFT target name (module-name suffix)
    d_in: int
    d_out: int
    count: int


def adaptable_matrices(model) -> list[AdaptedMatrix]:
    """The linear layers of ``model`` LoRA can target, per projection, with their PEFT module names.

    Names follow transformers' modeling files: Llama/Mistral/Qwen2 ``q_proj … down_proj``; GPT-2 ``c_attn`` (q, k
    and v fused in one h → 3h matrix, so any of them adapts it), ``attn.c_proj``, ``mlp.c_fc``, ``mlp.c_proj``;
    T5 ``q, k, v, o`` (self- and cross-attention), ``wi``/``wi_0``, ``wi_1``, ``wo``; BERT ``query, key, value``,
    ``attention.output.dense``, ``intermediate.dense``."""
    c = architectures.get_config(model)
    mtype, L, h = c["model_type"], c["num_hidden_layers"], c["hidden_size"]
    a, kv, d, f = c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"], c["intermediate_size"]
    if mtype in ("llama", "mistral", "qwen2"):
        return [AdaptedMatrix("q", "q_proj", h, a * d, L), AdaptedMatrix("k", "k_proj", h, kv * d, L),
                AdaptedMatrix("v", "v_proj", h, kv * d, L), AdaptedMatrix("o", "o_proj", a * d, h, L),
                AdaptedMatrix("gate", "gate_proj", h, f, L), AdaptedMatrix("up", "up_proj", h, f, L),
                AdaptedMatrix("down", "down_proj", f, h, L)]
    if mtype == "gpt2":
        return [AdaptedMatrix("qkv", "c_attn", h, 3 * h, L), AdaptedMatrix("o", "attn.c_proj", h, h, L),
                AdaptedMatrix("up", "mlp.c_fc", h, f, L), AdaptedMatrix("down", "mlp.c_proj", f, h, L)]
    if mtype == "t5":
        n_attn = c["num_hidden_layers"] + 2 * c["num_decoder_layers"]
        n_ffn = c["num_hidden_layers"] + c["num_decoder_layers"]
        inner = a * d
        gated = str(c.get("feed_forward_proj", "relu")).startswith("gated-")
        out = [AdaptedMatrix(p, p, h, inner, n_attn) for p in ("q", "k", "v")]
        out.append(AdaptedMatrix("o", "o", inner, h, n_attn))
        if gated:
            out += [AdaptedMatrix("gate", "wi_0", h, f, n_ffn), AdaptedMatrix("up", "wi_1", h, f, n_ffn)]
        else:
            out.append(AdaptedMatrix("up", "wi", h, f, n_ffn))
        return out + [AdaptedMatrix("down", "wo", f, h, n_ffn)]
    if mtype in ("bert", "roberta"):
        return [AdaptedMatrix("q", "query", h, h, L), AdaptedMatrix("k", "key", h, h, L),
                AdaptedMatrix("v", "value", h, h, L), AdaptedMatrix("o", "attention.output.dense", h, h, L),
                AdaptedMatrix("up", "intermediate.dense", h, f, L)]
    raise FinetuneError(f"No LoRA target table for model type {mtype!r}: use a Llama-, Mistral-, Qwen2-, GPT-2-, "
                        "T5- or BERT-style model.")


def _projections(target_modules) -> tuple[str, ...]:
    """Target modules as projection short names: a group ("attention", "mlp", "all-linear"), or names such as
    "q", "q_proj", "c_attn"; unknown names are kept (they may be PEFT module names of the model)."""
    if target_modules is None or (isinstance(target_modules, str) and not target_modules.strip()):
        raise FinetuneError("Choose at least one target module (e.g. attention q/k/v/o, or all linear layers).")
    items = [target_modules] if isinstance(target_modules, str) else list(target_modules)
    if not items:
        raise FinetuneError("Choose at least one target module (e.g. attention q/k/v/o, or all linear layers).")
    out = []
    for item in items:
        raw = str(item).strip()
        group = raw.lower().replace("_", "-")
        if group in TARGET_GROUPS:
            out += TARGET_GROUPS[group]
        elif raw.lower().removesuffix("_proj") in PROJECTIONS:
            out.append(raw.lower().removesuffix("_proj"))
        else:
            out.append(raw)  # a PEFT module name of the model ("c_attn", "wi_0", …)
    return tuple(dict.fromkeys(out))


def resolve_targets(model, target_modules) -> list[AdaptedMatrix]:
    """The matrices ``target_modules`` adapts in ``model``; FinetuneError when none of them exists there."""
    wanted = _projections(target_modules)
    chosen = []
    for m in adaptable_matrices(model):
        names = {m.projection, m.module, m.module.split(".")[-1]} | (set("qkv") if m.projection == "qkv" else set())
        if names & set(wanted) and m.count:
            chosen.append(m)
    if not chosen:
        known = ", ".join(dict.fromkeys(m.projection for m in adaptable_matrices(model)))
        raise FinetuneError(f"None of the target modules {', '.join(map(str, wanted))} exists in this model "
                            f"(its adaptable projections: {known}).")
    return chosen


def peft_target_modules(model, target_modules) -> list[str]:
    """PEFT ``LoraConfig(target_modules=...)`` names for the chosen projections of ``model``."""
    return [m.module for m in resolve_targets(model, target_modules)]


def _check_rank(rank, matrices: Iterable[AdaptedMatrix]) -> int:
    if isinstance(rank, bool) or not isinstance(rank, (int, float)) or not math.isfinite(rank) or rank != int(rank):
        raise FinetuneError(f"LoRA rank r must be a whole number, got {rank!r}.")
    rank = int(rank)
    if rank < 1:
        raise FinetuneError(f"LoRA rank r must be at least 1, got {rank}.")
    smallest = min(min(m.d_in, m.d_out) for m in matrices)
    if rank > smallest:
        raise FinetuneError(f"LoRA rank r = {rank:,} is larger than the smallest adapted layer ({smallest:,} wide): "
                            f"a rank above min(d_in, d_out) adds parameters without adding expressiveness. "
                            f"Choose r ≤ {smallest:,}.")
    return rank


def lora_trainable_params(model, rank, target_modules) -> int:
    """Trainable parameters of LoRA on ``model``: r·(d_in + d_out) per adapted matrix (Hu et al. 2021, §4.1), summed
    over every copy (layers; T5's self- and cross-attention). Equal to PEFT's ``get_nb_trainable_parameters()``
    for ``LoraConfig(r=rank, target_modules=peft_target_modules(model, target_modules), bias="none")``."""
    matrices = resolve_targets(model, target_modules)
    rank = _check_rank(rank, matrices)
    return int(sum(rank * (m.d_in + m.d_out) * m.count for m in matrices))


def prompt_tuning_trainable_params(model, num_virtual_tokens) -> int:
    """Trainable parameters of prompt tuning (Lester et al. 2021, "The Power of Scale for Parameter-Efficient Prompt
    Tuning", §2): a learned embedding of ``num_virtual_tokens`` soft tokens prepended to the input, hidden size
    each, once per transformer stack that reads the input (encoder-decoder models: encoder and decoder), and nothing
    else trained. Equal to PEFT's ``get_nb_trainable_parameters()`` for ``PromptTuningConfig(num_virtual_tokens=…)``
    (its prompt encoder is an Embedding of num_virtual_tokens × num_transformer_submodules rows, token_dim wide)."""
    cfg = architectures.get_config(model)
    tokens = checks.check_int(num_virtual_tokens, "Virtual tokens", 1, MAX_VIRTUAL_TOKENS, error=FinetuneError)
    stacks = 2 if cfg["kind"] == "encoder-decoder" else 1
    return int(tokens * cfg["hidden_size"] * stacks)


# ---------------------------------------------------------------------------------------------------------------
# Memory plan
# ---------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FinetunePlan:
    """A fine-tuning plan for one setting: parameters, bytes per component (stable ids, see
    ``core.plan.peak_memory.components.COMPONENT_LABELS``) at the predicted peak, and FLOPs per token."""
    method: str
    base_precision: str
    optimizer: str
    rank: int | None
    target_modules: tuple[str, ...]
    seq_len: int
    batch_size: int
    gradient_checkpointing: bool
    device_type: str
    n_params: int
    trainable_params: int
    components: tuple[tuple[str, float], ...]
    peak_phase: str
    flops_per_token: float
    candidates: tuple[tuple[str, float], ...] = field(default=())

    @property
    def total_bytes(self) -> float:
        return float(sum(v for _, v in self.components))

    @property
    def trainable_pct(self) -> float:
        return 100.0 * self.trainable_params / self.n_params if self.n_params else 0.0

    def to_dict(self) -> dict:
        from core.plan.peak_memory.components import labelled

        return {"method": self.method, "base_precision": self.base_precision, "optimizer": self.optimizer,
                "rank": self.rank, "target_modules": list(self.target_modules), "seq_len": self.seq_len,
                "batch_size": self.batch_size, "gradient_checkpointing": self.gradient_checkpointing,
                "device_type": self.device_type, "n_params": self.n_params,
                "trainable_params": self.trainable_params, "trainable_pct": self.trainable_pct,
                "total_bytes": self.total_bytes, "components": labelled(dict(self.components)),
                "component_ids": dict(self.components), "peak_phase": self.peak_phase,
                "flops_per_token": self.flops_per_token, "candidates": dict(self.candidates)}


def _adapter_tensors(matrices: Iterable[AdaptedMatrix], rank: int) -> list[int]:
    """Element counts of every adapter tensor (lora_A: r·d_in, lora_B: d_out·r, per copy)."""
    out = []
    for m in matrices:
        out += [rank * m.d_in, rank * m.d_out] * m.count
    return out


def optimizer_state_bytes(optimizer: str, tensor_sizes: Iterable[int]) -> float:
    """Optimizer state bytes for trainable tensors of these element counts: AdamW two fp32 moments (8 B/value);
    8-bit AdamW two uint8 states + one fp32 absmax per 256 values each, fp32 states for tensors under 4,096 values
    (bitsandbytes ``min_8bit_size``); SGD with momentum one fp32 buffer (4 B/value)."""
    if optimizer not in OPTIMIZERS:
        raise FinetuneError(f"Unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}.")
    total = 0.0
    for n in tensor_sizes:
        if optimizer == "adamw":
            total += 8.0 * n
        elif optimizer == "sgd":
            total += 4.0 * n
        elif n < BNB_8BIT_OPTIM_MIN_SIZE:
            total += 8.0 * n
        else:
            total += 2.0 * n + 2 * 4.0 * math.ceil(n / BNB_8BIT_OPTIM_BLOCKSIZE)
    return total


def check_base_precision(method: str, base_precision: str, device_type: str = "cuda",
                         bf16_supported: bool | None = None) -> str:
    """The base precision for ``method`` on ``device_type``; FinetuneError when it makes no sense there (QLoRA
    with an unquantized base, bf16 on a GPU without bf16, 8/4-bit without bitsandbytes)."""
    key = str(base_precision).strip().lower().replace("nf4+dq", "nf4-dq").replace("bfloat16", "bf16")
    if key not in BASE_PRECISIONS:
        raise FinetuneError(f"Unknown base precision {base_precision!r}: use one of {', '.join(BASE_PRECISIONS)}.")
    if method == "qlora" and key not in ("nf4", "nf4-dq", "int8"):
        raise FinetuneError("QLoRA keeps the frozen base quantized: choose NF4 (with or without double "
                            "quantization) or int8 as the base precision, or use LoRA for a 16-bit base.")
    if key == "bf16" and device_type == "cuda" and bf16_supported is False:
        raise FinetuneError("This GPU has no bf16 support (compute capability < 8.0): choose fp16 or a quantized "
                            "base with fp16 compute.")
    if key in ("int8", "nf4", "nf4-dq"):
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise FinetuneError(f"A {key} base needs bitsandbytes, which is not installed here.")
    return key


def _lora_layer_bytes_per_token(c: Mapping, matrices: list[AdaptedMatrix], rank: int, p: int, dropout: float,
                                device_type: str) -> tuple[float, float]:
    """(bytes one layer keeps per token for backward, backward temporaries per token) in a LoRA step.

    Read off the Llama family (the bundled SmolLM2; Mistral and Qwen2 share the layout) and checked against the
    PyTorch profiler on CPU; GPT-2, T5 and BERT layers are approximated with the same rules (their LayerNorm /
    GELU / attention-dropout tensors differ by a few bytes per value)."""
    h, a, kv, d, f = (c["hidden_size"], c["num_attention_heads"], c["num_key_value_heads"], c["head_dim"],
                      c["intermediate_size"])
    norms = 2 * (4 * h + 4)  # HF RMSNorm upcasts its input to fp32 and keeps it (and rsqrt), weight frozen
    attention = p * (2 * a * d + 2 * kv * d) + 4 * a  # q, k after RoPE, v, SDPA output; log-sum-exp (fp32)
    gated = c["model_type"] in ("llama", "mistral", "qwen2") or str(c.get("feed_forward_proj", "")).startswith(
        "gated-")
    mlp = 3 * p * f if gated else 2 * p * f  # act(gate) keeps gate, the product keeps both factors
    per_layer = {m.projection: m for m in matrices}
    adapters = 0.0
    for m in per_layer.values():
        share = m.count / max(1, c["num_hidden_layers"])  # T5: cross-attention adds copies per layer
        mask = (1 if device_type == "cuda" else 4) * m.d_in if dropout > 0 else 0
        adapters += share * (4 * m.d_in + 4 * rank + mask)  # fp32 input copy for lora_A, lora_A's output
    temps = 2 * 4 * h + 3 * p * f  # residual-stream gradients, the MLP product's backward
    return norms + attention + mlp + adapters, temps


def plan_finetune(model, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing=False,
                  optimizer="adamw", *, base_precision: str | None = None, dropout: float = 0.0,
                  device_type: str = "cuda", bf16_supported: bool | None = None, num_virtual_tokens: int = 20
                  ) -> dict:
    """Memory and FLOPs of one fine-tuning step of ``model`` (catalog id / config dict).

    ``method``: "full" (every weight trained, mixed precision: fp32 master weights and gradients), "lora" (frozen
    16-bit base + adapters), "qlora" (frozen NF4/int8 base + adapters) or "prompt-tuning" (frozen 16-bit base, a
    soft prompt of ``num_virtual_tokens`` trained). ``rank`` and ``target_modules`` (a group "attention" / "mlp" /
    "all-linear", or projections "q", "k", "v", "o", "gate", "up", "down") are ignored for "full" and
    "prompt-tuning". Returns ``FinetunePlan.to_dict()``: ``trainable_params``, ``trainable_pct``, ``total_bytes`` (the
    predicted peak), ``components`` (frozen base weights, adapter weights / gradients / optimizer states,
    activations, logits and backward temporaries, QLoRA's dequantized weight buffer, runtime overhead),
    ``peak_phase``, ``flops_per_token``. FinetuneError (a ValueError) with a clear message for bad input.
    """
    return finetune_plan(model, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing,
                         optimizer, base_precision=base_precision, dropout=dropout, device_type=device_type,
                         bf16_supported=bf16_supported, num_virtual_tokens=num_virtual_tokens).to_dict()


def finetune_plan(model, method, rank, target_modules, seq_len, batch_size, gradient_checkpointing=False,
                  optimizer="adamw", *, base_precision: str | None = None, dropout: float = 0.0,
                  device_type: str = "cuda", bf16_supported: bool | None = None, num_virtual_tokens: int = 20
                  ) -> FinetunePlan:
    """``plan_finetune`` as a typed ``FinetunePlan``."""
    from core.common.checks import check_int

    method = str(method).strip().lower()
    if method not in METHODS:
        raise FinetuneError(f"Unknown method {method!r}: use one of {', '.join(METHODS)}.")
    if device_type not in ("cuda", "cpu"):
        raise FinetuneError(f"device_type must be 'cuda' or 'cpu', got {device_type!r}.")
    c = architectures.get_config(model)
    s = check_int(seq_len, "Sequence length (tokens)", 1, 131_072, error=FinetuneError)
    b = check_int(batch_size, "Micro-batch (sequences)", 1, 4096, error=FinetuneError)
    if not (isinstance(dropout, (int, float)) and 0 <= dropout < 1):
        raise FinetuneError(f"LoRA dropout must be in [0, 1), got {dropout!r}.")
    if optimizer not in OPTIMIZERS:
        raise FinetuneError(f"Unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}.")
    n_params = architectures.param_count(c)
    n = s * b
    V, h, L = c["vocab_size"], c["hidden_size"], c["num_hidden_layers"]
    ckpt = bool(gradient_checkpointing)
    if method == "full":
        return _full_plan(c, n_params, s, b, ckpt, optimizer, device_type)
    base_precision = check_base_precision(method, base_precision or ("nf4-dq" if method == "qlora" else "bf16"),
                                          device_type, bf16_supported)
    positions = s  # per sequence, in every layer
    if method == PROMPT_TUNING:
        if base_precision not in ("bf16", "fp16"):
            raise FinetuneError("Prompt tuning is planned over a 16-bit base (bf16 or fp16).")
        trainable = prompt_tuning_trainable_params(c, num_virtual_tokens)
        matrices, rank, tensors = [], None, [trainable]
        positions = s + int(num_virtual_tokens)  # the soft prompt's positions run in every step too
        n = positions * b
    else:
        matrices = resolve_targets(c, target_modules)
        rank = _check_rank(rank, matrices)
        trainable = int(sum(rank * (m.d_in + m.d_out) * m.count for m in matrices))
        tensors = _adapter_tensors(matrices, rank)
    p = 2  # 16-bit compute (the base's dtype, or bnb's compute dtype)
    compute = "fp16" if base_precision == "fp16" else "bf16"
    frozen = float(sum(memory.weight_memory(c, base_precision if base_precision not in ("bf16", "fp16") else compute,
                                            compute_dtype=compute).values()))
    adapter_w = 4.0 * trainable  # PEFT keeps adapters in fp32 over a 16-bit base (autocast_adapter_dtype=True)
    adapter_g = 4.0 * trainable
    adapter_s = optimizer_state_bytes(optimizer, tensors)
    layer, temps = _lora_layer_bytes_per_token(c, matrices, rank or 0, p, dropout, device_type)
    head = 4 * V * n + 8 * n  # log-softmax of the fp32 logits kept by the loss, int64 shifted labels
    rotary = 2 * p * positions * c["head_dim"]
    kept_layers = (L * p * h * n) if ckpt else L * layer * n
    kept = kept_layers + head + rotary
    dequant = 0.0
    if base_precision in ("nf4", "nf4-dq", "int8"):
        dequant = 2.0 * max(lin.in_features * lin.out_features for lin in architectures.linear_layers(c)
                            if lin.quantizable and lin.count)
    states = frozen + adapter_w + adapter_s
    candidates = {
        "forward end (logits to loss)": states + kept + 6 * V * n,  # 16-bit logits + their fp32 copy
        "loss backward": states + kept + 8 * V * n,  # + fp32 gradients of the log-softmax and of the logits
        "last layer's backward": states + adapter_g + (kept - head) + (layer * n if ckpt else 0) + temps * n,
        "optimizer step": states + adapter_g + 2 * 4.0 * max(tensors),
    }
    phase = max(candidates, key=candidates.get)
    comps = {"frozen_weights": frozen, "adapter_weights": adapter_w, "adapter_optimizer_states": adapter_s}
    if phase == "forward end (logits to loss)":
        comps |= {"activations": kept, "logits_temporary": 6.0 * V * n}
    elif phase == "loss backward":
        comps |= {"activations": kept, "logit_gradients_temporary": 8.0 * V * n}
    elif phase == "last layer's backward":
        comps |= {"adapter_gradients": adapter_g, "activations": kept - head + (layer * n if ckpt else 0),
                  "backward_temporaries": temps * n}
    else:
        comps |= {"adapter_gradients": adapter_g, "optimizer_temporaries": candidates[phase] - states - adapter_g}
    if dequant:
        comps["dequantized_weight"] = dequant
    if device_type == "cuda":
        comps["runtime_overhead"] = memory.DEFAULT_CUDA_OVERHEAD_BYTES
    flops = 4.0 * n_params + 6.0 * trainable + (2.0 * n_params if ckpt else 0.0)
    targets = tuple(m.module for m in matrices)
    if method == PROMPT_TUNING:  # per token of the data: the virtual positions run too
        flops *= positions / s
        targets = (f"{int(num_virtual_tokens)} virtual tokens",)
    return FinetunePlan(method, base_precision, optimizer, rank, targets, s, b, ckpt,
                        device_type, n_params, trainable, tuple((k, float(v)) for k, v in comps.items() if v), phase,
                        flops, tuple((k, float(v)) for k, v in candidates.items()))


def _full_plan(c: Mapping, n_params: int, s: int, b: int, ckpt: bool, optimizer: str, device_type: str
               ) -> FinetunePlan:
    """Full fine-tuning with mixed precision (fp32 master weights and gradients, autocast 16-bit compute): the
    measured-and-validated training prediction of ``core.measure.predict_training_step`` with its AdamW states
    replaced by the chosen optimizer's."""
    from core.plan.peak_memory.predict import predict_training_step

    pred = predict_training_step(c, "mixed_precision", s, b, ckpt, device_type)
    n_train = pred["n_params"]
    adam = 8.0 * n_train
    states = optimizer_state_bytes(optimizer, [n_train])  # one tensor's worth: the blockwise rate applies
    rest = pred["predicted_peak_bytes"] - 4.0 * n_train - adam
    comps = {"weights": 4.0 * n_train, "optimizer_states": states}
    grads = pred["components"].get("gradients", 0.0)
    if grads:
        comps["gradients"] = grads
    comps["activations"] = max(0.0, rest - grads)
    if device_type == "cuda":
        comps["runtime_overhead"] = memory.DEFAULT_CUDA_OVERHEAD_BYTES
    flops = 6.0 * n_params + (2.0 * n_params if ckpt else 0.0)
    return FinetunePlan("full", "fp32 master + 16-bit compute", optimizer, None, ("all weights",), s, b, ckpt,
                        device_type, n_params, n_train, tuple((k, float(v)) for k, v in comps.items() if v),
                        pred["phase"], flops, tuple(pred["candidates"].items()))


def finetune_compute(plan: Mapping, dataset_tokens: float, epochs: float, peak_flops_per_gpu: float, mfu: float,
                     price_per_gpu_hour: float) -> dict:
    """FLOPs, GPU-hours and cost of fine-tuning on ``dataset_tokens`` tokens for ``epochs`` epochs at
    ``plan["flops_per_token"]`` (core.plan.compute.gpu_hours / training_cost: FLOPs ÷ (peak × MFU))."""
    from core.plan import compute

    tokens = float(dataset_tokens) * float(epochs)
    if not (math.isfinite(tokens) and tokens > 0):
        raise FinetuneError("Dataset size and epochs must be positive.")
    flops = plan["flops_per_token"] * tokens
    hours = compute.gpu_hours(flops, peak_flops_per_gpu, mfu)
    return {"tokens": tokens, "flops": flops, "gpu_hours": hours,
            "cost": compute.training_cost(hours, price_per_gpu_hour)}


def comparison_rows(plan: Mapping, full: Mapping) -> list[dict]:
    """A plan's components next to full fine-tuning's, in GB (1e9 bytes), with a total row (the planner's table)."""
    names = list(dict.fromkeys(list(plan["components"]) + list(full["components"])))
    rows = [{"component": n, "this plan (GB)": plan["components"].get(n, 0.0) / GB,
             "full fine-tuning (GB)": full["components"].get(n, 0.0) / GB} for n in names]
    rows.append({"component": "total (predicted peak)", "this plan (GB)": plan["total_bytes"] / GB,
                 "full fine-tuning (GB)": full["total_bytes"] / GB})
    return rows
