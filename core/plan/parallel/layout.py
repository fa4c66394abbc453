"""What a training-layout plan is made of: the model's shape, the layout (TP × PP × DP, ZeRO, micro-batch, virtual
stages, sequence parallelism, recomputation) and the cluster (nodes × GPUs, intra- and inter-node links), with the
divisibility rules a layout must obey.

Divisibility rules (Megatron-LM's argument checks, megatron/training/arguments.py, and Narayanan et al. 2021, §2):
attention heads divisible by TP (each rank owns whole heads, Shoeybi et al. 2019, §3); layers divisible by PP × v
(each virtual stage holds the same number of layers, Narayanan et al. 2021, §2.2.2); global batch divisible by
DP × micro-batch (a whole number of micro-batches per step); TP × PP × DP equal to the GPUs used; and, as advice, TP
within one node (tensor-parallel all-reduces need NVLink bandwidth, Narayanan et al. 2021, Takeaway #1).

Link bandwidths (one direction; datasheets quote both directions together):
NVIDIA A100 datasheet "NVLink: 600 GB/s" (third-generation NVLink), NVIDIA H100 datasheet "NVLink: 900 GB/s"
(fourth generation); NVIDIA DGX A100 datasheet "8x Single-Port Mellanox ConnectX-6 VPI 200Gb/s HDR InfiniBand",
DGX H100 datasheet "8x single-port NVIDIA ConnectX-7 VPI ... 400 Gb/s InfiniBand".
https://www.nvidia.com/en-us/data-center/a100/ · https://www.nvidia.com/en-us/data-center/h100/ ·
https://www.nvidia.com/en-us/data-center/dgx-a100/ · https://www.nvidia.com/en-us/data-center/dgx-h100/
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from core.common.checks import check_int, check_positive, check_positive_int
from core.plan import architectures
from core.plan.architectures import ArchitectureError
from core.plan.hardware import get_gpu
from core.plan.parallel.communication import RECOMPUTE_OPTIONS


class LayoutError(ValueError):
    """A layout, model or cluster the planner cannot evaluate; the message says which input and why."""


@dataclass(frozen=True)
class ModelShape:
    """What the layout formulas need of a decoder: its dimensions and parameter counts (exact, from the config)."""
    name: str
    layers: int
    hidden: int
    heads: int
    vocab: int
    ffn: int
    kv_heads: int
    params_per_layer: int  # one transformer layer's parameters (attention + MLP + norms)
    embedding_params: int  # token (+ position) embeddings, held by the first stage
    lm_head_params: int  # the untied output projection (0 when tied to the token embedding)

    @property
    def params(self) -> int:
        """All parameters, tied weights counted once."""
        return self.layers * self.params_per_layer + self.embedding_params + self.lm_head_params

    @property
    def last_stage_head_params(self) -> int:
        """The output projection the last pipeline stage holds: its own, or with tied weights a copy of the token
        embedding (Megatron keeps one on the last stage when pp > 1 and all-reduces their gradients: Shoeybi et al.
        2019 §3, Megatron-LM ``megatron/core/models/common/language_module``)."""
        return self.lm_head_params or self.vocab * self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


def gpt_shape(name: str, layers: int, hidden: int, heads: int, vocab: int = 51200, seq_len: int = 2048,
              tied: bool = True) -> ModelShape:
    """A GPT of Narayanan et al. 2021 (§5.1: vocabulary 51,200, sequence 2,048, MLP 4h): per layer 12h² + 13h
    parameters, embeddings (V + s)·h; their eq. (2): P = 12·l·h²·(1 + 13/(12h) + (V + s)/(12·l·h))."""
    h = check_positive_int(hidden, "Hidden size", error=LayoutError)
    return ModelShape(name, check_positive_int(layers, "Layers", error=LayoutError), h,
                      check_positive_int(heads, "Attention heads", error=LayoutError),
                      check_positive_int(vocab, "Vocabulary", error=LayoutError), 4 * h, heads,
                      12 * h * h + 13 * h, (vocab + seq_len) * h, 0 if tied else vocab * h)


def model_shape(model) -> ModelShape:
    """The shape of a catalog model (id) or a config dict (config.json keys), with exact parameter counts from
    ``core.plan.architectures.param_breakdown``. Decoder-only models; LayoutError otherwise."""
    try:
        c = architectures.get_config(model)
        parts = architectures.param_breakdown(model)
    except (ArchitectureError, KeyError, TypeError) as exc:
        raise LayoutError(f"Model not understood: {exc}") from None
    if c.get("num_experts_total"):
        raise LayoutError(f"{c.get('_name_or_path', model)!r} is a mixture of experts: its layouts need expert "
                          "parallelism, which this planner does not cover (dense decoders only).")
    if c.get("kind") != "decoder":
        raise LayoutError(f"The layout planner covers decoder-only models; {c.get('_name_or_path', model)!r} is "
                          f"{c.get('kind')!r}.")
    layers = int(c["num_hidden_layers"])
    per_layer = round((parts["attention"] + parts["mlp"] + parts["norms"]) / layers)
    return ModelShape(str(c.get("_name_or_path") or model), layers, int(c["hidden_size"]),
                      int(c["num_attention_heads"]), int(c["vocab_size"]), int(c.get("intermediate_size") or
                                                                                4 * c["hidden_size"]),
                      int(c.get("num_key_value_heads") or c["num_attention_heads"]), per_layer,
                      int(parts["embeddings"]), int(parts["lm_head"]))


@dataclass(frozen=True)
class Layout:
    """One way to lay a training step out over GPUs (Narayanan et al. 2021, §2–3; Korthikanti et al. 2022, §4–5)."""
    tp: int = 1
    pp: int = 1
    dp: int = 1
    zero_stage: int = 0
    micro_batch: int = 1
    virtual_stages: int = 1  # v of the interleaved 1F1B schedule (Narayanan et al. 2021, §2.2.2); 1 = plain 1F1B
    sequence_parallel: bool = False
    recompute: str = "none"  # "none" | "selective" | "full" (Korthikanti et al. 2022, §5)
    flash_attention: bool = False  # fused attention that never stores the s×s scores (Dao et al. 2022)

    def __post_init__(self):
        for name in ("tp", "pp", "dp", "micro_batch", "virtual_stages"):
            check_positive_int(getattr(self, name), f"Layout {name}", error=LayoutError)
        check_int(self.zero_stage, "ZeRO stage", 0, 3, error=LayoutError)
        if self.recompute not in RECOMPUTE_OPTIONS:
            raise LayoutError(f"Recomputation must be one of {', '.join(RECOMPUTE_OPTIONS)}, got {self.recompute!r}.")
        if self.sequence_parallel and self.tp == 1:
            raise LayoutError("Sequence parallelism splits the tensor-parallel group's work; it needs TP ≥ 2.")
        if self.virtual_stages > 1 and self.pp == 1:
            raise LayoutError("Virtual pipeline stages (interleaving) need PP ≥ 2.")

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def num_microbatches(self, global_batch: int) -> int:
        """Micro-batches each pipeline runs per step: B / (DP · b)."""
        return global_batch // (self.dp * self.micro_batch)

    def label(self) -> str:
        parts = [f"TP{self.tp}", f"PP{self.pp}" + (f"×v{self.virtual_stages}" if self.virtual_stages > 1 else ""),
                 f"DP{self.dp}", f"ZeRO-{self.zero_stage}", f"mb{self.micro_batch}"]
        if self.sequence_parallel:
            parts.append("SP")
        parts.append(f"recompute {self.recompute}")
        if self.flash_attention:
            parts.append("flash")
        return " · ".join(parts)

    def to_dict(self) -> dict:
        return {**asdict(self), "gpus": self.gpus}


# NVLink generation → one GPU's NVLink bandwidth, one direction (datasheet both-direction figure / 2), and a DGX
# node's InfiniBand, one direction: 8 NICs × 200 Gb/s HDR (DGX A100), 8 × 400 Gb/s NDR (DGX H100), 4 × 100 Gb/s EDR
# (DGX-1 V100), in bytes/s.
_LINKS = {"NVLink 3": 600e9 / 2, "NVLink 4": 900e9 / 2, "NVLink 2": 300e9 / 2}
_INFINIBAND = {"NVLink 3": 8 * 200e9 / 8, "NVLink 4": 8 * 400e9 / 8, "NVLink 2": 4 * 100e9 / 8}


@dataclass(frozen=True)
class Cluster:
    """Nodes × GPUs per node; ``intra_node_bytes_per_s``: one GPU's NVLink bandwidth, one direction;
    ``inter_node_bytes_per_s``: one node's InfiniBand bandwidth, one direction, all its NICs together (each GPU's
    share is ``/ gpus_per_node``)."""
    nodes: int
    gpus_per_node: int = 8
    intra_node_bytes_per_s: float = 300e9
    inter_node_bytes_per_s: float = 200e9

    def __post_init__(self):
        check_positive_int(self.nodes, "Nodes", error=LayoutError)
        check_positive_int(self.gpus_per_node, "GPUs per node", error=LayoutError)
        check_positive(self.intra_node_bytes_per_s, "Intra-node bandwidth", error=LayoutError, unit="bytes/s")
        check_positive(self.inter_node_bytes_per_s, "Inter-node bandwidth", error=LayoutError, unit="bytes/s")

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def inter_node_bytes_per_s_per_gpu(self) -> float:
        return self.inter_node_bytes_per_s / self.gpus_per_node

    def to_dict(self) -> dict:
        return {**asdict(self), "gpus": self.gpus}


def default_cluster(gpu: str, gpus: int, gpus_per_node: int = 8) -> Cluster:
    """DGX-like nodes of a catalog GPU: NVLink of the GPU's generation inside a node and one InfiniBand NIC per GPU
    (HDR 200 Gb/s for NVLink 3 / A100, NDR 400 Gb/s for NVLink 4 / H100, EDR 100 Gb/s ×4 for V100 DGX-1; DGX
    datasheets in the module docstring). PCIe GPUs get their PCIe link and 100 Gb/s Ethernet per GPU."""
    g = get_gpu(gpu)
    n = check_positive_int(gpus, "GPUs", error=LayoutError)
    per_node = min(check_positive_int(gpus_per_node, "GPUs per node", error=LayoutError), n)
    if n % per_node:
        raise LayoutError(f"{n} GPUs do not fill whole nodes of {per_node} GPUs.")
    intra = _LINKS.get(g.interconnect, g.interconnect_bytes_per_s or 32e9)
    inter = _INFINIBAND.get(g.interconnect, per_node * 100e9 / 8)
    return Cluster(n // per_node, per_node, intra, inter)


def why_infeasible_shape(model: ModelShape, layout: Layout, cluster: Cluster, global_batch: int) -> list[str]:
    """Every divisibility / size rule the layout breaks, each as a plain sentence (empty list: none)."""
    why = []
    if model.heads % layout.tp:
        why.append(f"{model.heads} attention heads are not divisible by TP = {layout.tp}.")
    elif model.kv_heads % layout.tp:
        why.append(f"{model.kv_heads} key/value heads (grouped-query attention) are not divisible by TP = "
                   f"{layout.tp} (Megatron-LM: num_query_groups must be a multiple of the TP size).")
    stages = layout.pp * layout.virtual_stages
    if model.layers % stages:
        why.append(f"{model.layers} layers are not divisible by PP × v = {layout.pp} × {layout.virtual_stages}.")
    if global_batch % (layout.dp * layout.micro_batch):
        why.append(f"Global batch {global_batch} is not divisible by DP × micro-batch = {layout.dp} × "
                   f"{layout.micro_batch}.")
    elif layout.virtual_stages > 1 and layout.num_microbatches(global_batch) % layout.pp:
        why.append(f"The interleaved schedule needs micro-batches per step ({layout.num_microbatches(global_batch)}) "
                   f"divisible by PP = {layout.pp}.")
    if layout.pp > 1 and layout.zero_stage >= 2:
        why.append(f"ZeRO-{layout.zero_stage} shards gradients that pipeline parallelism accumulates over micro-batches; "
                   "DeepSpeed rejects the pair (deepspeed/runtime/pipe/engine.py: \"ZeRO-2 and ZeRO-3 are incompatible "
                   "with pipeline parallelism\"); use ZeRO-1 (Megatron's distributed optimizer) with PP.")
    if layout.gpus != cluster.gpus:
        why.append(f"TP × PP × DP = {layout.tp} × {layout.pp} × {layout.dp} = {layout.gpus} GPUs, but the cluster "
                   f"has {cluster.gpus}.")
    return why


def layout_advice(layout: Layout, cluster: Cluster) -> list[str]:
    """What is allowed but slow: TP across nodes puts its per-layer all-reduces on the inter-node link
    (Narayanan et al. 2021, Takeaway #1: TP up to the GPUs of a server, PP across servers)."""
    if layout.tp > cluster.gpus_per_node:
        return [f"TP = {layout.tp} spans nodes ({cluster.gpus_per_node} GPUs per node): its all-reduces cross the "
                "inter-node link (Narayanan et al. 2021, Takeaway #1: keep TP within a node)."]
    return []


def check_layout(model: ModelShape, layout: Layout, cluster: Cluster, global_batch: int) -> None:
    """Raise LayoutError with every broken rule (see ``why_infeasible_shape``)."""
    check_positive_int(global_batch, "Global batch", error=LayoutError)
    why = why_infeasible_shape(model, layout, cluster, global_batch)
    if why:
        raise LayoutError(" ".join(why))
