"""Tensor and pipeline parallelism of a Hugging Face Llama-style decoder, as PyTorch implements them.

- Tensor parallelism (Megatron-LM, Shoeybi et al. 2019 §3, Figure 3): in each transformer layer the attention's
  q/k/v projections are split by columns (whole heads per rank) and its output projection by rows; the MLP's
  gate/up projections by columns and its down projection by rows, with
  ``torch.distributed.tensor.parallel.parallelize_module`` (``ColwiseParallel`` / ``RowwiseParallel``,
  https://pytorch.org/docs/stable/distributed.tensor.parallel.html). The attention's and the MLP's input is made a
  replicated DTensor once (``PrepareModuleInput``), so each block does Megatron's two collectives: an all-reduce of
  the row-parallel output in forward ("g") and one of the input's gradient in backward ("f") — 2 all-reduces
  forward and 2 backward per layer. Embeddings, norms and the LM head stay replicated (identical on every rank).
- Pipeline parallelism (GPipe, Huang et al. 2019; 1F1B, Narayanan et al. 2021 §2.2): the layers are cut into
  equal consecutive stages, the first also holding the embeddings, the last the final norm and the LM head; each
  stage is a ``torch.distributed.pipelining.PipelineStage`` run by ``ScheduleGPipe`` or ``Schedule1F1B``
  (https://pytorch.org/docs/stable/distributed.pipelining.html), which send each micro-batch's activations forward
  and their gradients back point-to-point.
- TP × PP: a 2-D ``DeviceMesh`` (pp, tp): every pipeline stage tensor-parallel over its tp ranks.
"""
from __future__ import annotations

from core.plan import architectures

# strategy → (tensor-parallel degree from the world size?, pipeline?, schedule)
LAYOUTS = {
    "tp": "Tensor parallel (Megatron column/row split of attention and MLP)",
    "pp_gpipe": "Pipeline parallel, GPipe schedule (all forwards, then all backwards)",
    "pp_1f1b": "Pipeline parallel, 1F1B schedule (one forward, one backward)",
    "tp_pp": "Tensor × pipeline parallel (2-D mesh: TP inside each 1F1B pipeline stage)",
}
LAYOUT_LABELS = {"tp": "TP", "pp_gpipe": "PP (GPipe)", "pp_1f1b": "PP (1F1B)", "tp_pp": "TP × PP"}


class LayoutError(ValueError):
    """A layout that cannot run on this model or number of ranks; the message is user-facing."""


def is_layout(strategy: str) -> bool:
    return str(strategy).strip().lower() in LAYOUTS


def degrees(strategy: str, world_size: int) -> tuple[int, int]:
    """(tensor-parallel degree, pipeline-parallel degree) of ``strategy`` on ``world_size`` ranks. TP × PP uses a
    pipeline of 2 stages with world_size / 2 tensor-parallel ranks each."""
    world = int(world_size)
    if strategy == "tp":
        return world, 1
    if strategy in ("pp_gpipe", "pp_1f1b"):
        return 1, world
    if strategy == "tp_pp":
        if world < 4 or world % 2:
            raise LayoutError(f"TP × PP needs an even number of ranks, at least 4 (2 stages × 2 tensor-parallel "
                              f"ranks); {world} were chosen.")
        return world // 2, 2
    raise LayoutError(f"Unknown layout {strategy!r}. Known: {', '.join(LAYOUTS)}.")


def check_layout(architecture, strategy: str, world_size: int, microbatches: int = 1) -> tuple[int, int]:
    """(tp, pp) after checking that the model divides: heads and KV heads and the MLP width by TP, layers by PP, at
    least as many micro-batches as stages; LayoutError with a plain sentence otherwise."""
    world = int(world_size)
    if world < 2:
        raise LayoutError("Tensor and pipeline parallelism need at least 2 ranks.")
    tp, pp = degrees(strategy, world)
    cfg = architectures.get_config(architecture)
    if cfg.get("model_type") not in ("llama", "mistral", "qwen2", "qwen3"):
        raise LayoutError(f"Tensor and pipeline parallelism run here on Llama-style decoders; this model is "
                          f"{cfg.get('model_type')!r}.")
    heads, kv, layers = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["num_hidden_layers"]
    if tp > 1:
        if heads % tp or kv % tp:
            raise LayoutError(f"{heads} attention heads and {kv} key/value heads cannot be split over {tp} "
                              f"tensor-parallel ranks: both must be divisible by TP.")
        if cfg["intermediate_size"] % tp:
            raise LayoutError(f"The MLP width {cfg['intermediate_size']} is not divisible by TP = {tp}.")
    if pp > 1:
        if layers % pp:
            raise LayoutError(f"{layers} layers cannot be cut into {pp} equal pipeline stages: the number of "
                              "layers must be divisible by PP.")
        if cfg.get("tie_word_embeddings"):
            raise LayoutError("This model ties its input embedding to its LM head, which would sit on different "
                              "pipeline stages; choose a model with untied embeddings for pipeline parallelism.")
        if int(microbatches) < pp:
            raise LayoutError(f"{pp} pipeline stages need at least {pp} micro-batches per step; "
                              f"{int(microbatches)} were chosen.")
    return tp, pp


def stage_layers(n_layers: int, pp: int, stage: int) -> list[int]:
    """The layer indices of pipeline ``stage``: equal consecutive blocks."""
    per = n_layers // pp
    return list(range(stage * per, (stage + 1) * per))


def tensor_parallel_plan() -> dict:
    """parallelize_module's plan for one Llama decoder layer (module names as transformers' LlamaDecoderLayer)."""
    from torch.distributed.tensor import Replicate
    from torch.distributed.tensor.parallel import ColwiseParallel, PrepareModuleInput, RowwiseParallel

    return {
        "self_attn": PrepareModuleInput(input_kwarg_layouts={"hidden_states": Replicate()},
                                        desired_input_kwarg_layouts={"hidden_states": Replicate()},
                                        use_local_output=False),
        "self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
        "self_attn.v_proj": ColwiseParallel(), "self_attn.o_proj": RowwiseParallel(),
        "mlp": PrepareModuleInput(input_layouts=(Replicate(),), desired_input_layouts=(Replicate(),),
                                  use_local_output=False),
        "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(), "mlp.down_proj": RowwiseParallel(),
    }


def apply_tensor_parallel(layers, tp_mesh) -> None:
    """Split every layer's attention and MLP over ``tp_mesh`` (each rank keeps heads / TP of the heads)."""
    from torch.distributed.tensor.parallel import parallelize_module

    for layer in layers:
        parallelize_module(layer, tp_mesh, tensor_parallel_plan())


def build_stage(model, pp: int, stage: int):
    """The nn.Module of pipeline ``stage``: the first takes token ids, the others hidden states; the last returns
    logits. Built from the whole model (same seed on every rank: same weights), keeping only this stage's parts."""
    import torch
    from torch import nn

    base = model.model
    first, last = stage == 0, stage == pp - 1
    keep = stage_layers(len(base.layers), pp, stage)

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = base.embed_tokens if first else None
            self.layers = nn.ModuleList(base.layers[i] for i in keep)
            self.rotary_emb = base.rotary_emb
            self.norm = base.norm if last else None
            self.lm_head = model.lm_head if last else None

        def forward(self, x):
            hidden = self.embed_tokens(x) if self.embed_tokens is not None else x
            positions = torch.arange(hidden.shape[1], device=hidden.device).unsqueeze(0)
            rotary = self.rotary_emb(hidden, positions)
            for layer in self.layers:  # no mask: scaled_dot_product_attention's causal path, as the whole model
                hidden = layer(hidden, attention_mask=None, position_ids=positions, position_embeddings=rotary)
            if self.lm_head is not None:
                hidden = self.lm_head(self.norm(hidden))
            return hidden

    return Stage()


def causal_lm_loss(logits, ids):
    """Next-token cross-entropy averaged over tokens, as transformers' ForCausalLMLoss (labels = the inputs)."""
    import torch.nn.functional as F

    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))
