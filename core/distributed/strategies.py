"""The data-parallel strategies a training step can run with, as PyTorch implements them.

- ``ddp``: DistributedDataParallel — every rank holds the whole model, gradients and optimizer state; gradients are
  all-reduced in buckets during backward (``gradient_as_bucket_view``: the gradients live in the buckets).
  https://pytorch.org/docs/stable/notes/ddp.html
- ``zero1``: DDP + ``torch.distributed.optim.ZeroRedundancyOptimizer`` — optimizer state sharded across ranks
  (ZeRO stage 1, Rajbhandari et al. 2020 §5.1); after its step each rank broadcasts the parameters it updated.
- ``zero2``: FSDP2 ``fully_shard(reshard_after_forward=False)`` — parameters, gradients and optimizer state sharded;
  parameters all-gathered once in forward and kept unsharded until backward ends, gradients reduce-scattered
  (ZeRO-2-like: the paper's stage 2 keeps full parameters on every rank throughout).
- ``zero3``: FSDP2 ``fully_shard(reshard_after_forward=True)`` — parameters all-gathered again in backward (ZeRO-3,
  §5.3). https://pytorch.org/docs/stable/distributed.fsdp.fully_shard.html

Communication volume per rank per step in units of Ψ (the model's parameter bytes), in the ZeRO paper's accounting
(§7: an all-reduce moves 2Ψ — a reduce-scatter Ψ plus an all-gather Ψ): DDP 2Ψ; ZeRO-2 2Ψ; ZeRO-3 3Ψ. PyTorch's
ZeRO-1 all-reduces the gradients (2Ψ) and then broadcasts the updated parameters (Ψ): 3Ψ, where the paper's
reduce-scatter-based ZeRO-1 moves 2Ψ.
"""
from __future__ import annotations

STRATEGIES = {
    "ddp": "DDP (every rank holds everything)",
    "zero1": "ZeRO-1 (ZeroRedundancyOptimizer: optimizer state sharded)",
    "zero2": "FSDP2, reshard_after_forward=False (ZeRO-2-like)",
    "zero3": "FSDP2, reshard_after_forward=True (ZeRO-3)",
}
# The short names every table, chart and picker uses for the strategies above.
STRATEGY_LABELS = {"ddp": "DDP", "zero1": "ZeRO-1", "zero2": "ZeRO-2-like (FSDP2)", "zero3": "ZeRO-3 (FSDP2)"}
VOLUME_PSI = {"ddp": 2.0, "zero1": 3.0, "zero2": 2.0, "zero3": 3.0}
ZERO_STAGE = {"ddp": 0, "zero1": 1, "zero2": 2, "zero3": 3}


class StrategyError(ValueError):
    """An unknown strategy; the message is user-facing."""


def check_strategy(strategy: str) -> str:
    key = str(strategy).strip().lower()
    if key not in STRATEGIES:
        raise StrategyError(f"Unknown strategy {strategy!r}. Known: {', '.join(STRATEGIES)}.")
    return key


def communication_volume_bytes(strategy: str, param_bytes: float) -> float:
    """Bytes one rank sends and receives per step, ZeRO §7 accounting (see the module docstring)."""
    return VOLUME_PSI[check_strategy(strategy)] * float(param_bytes)


def wrap(model, strategy: str, lr: float = 1e-3):
    """(the model wrapped for ``strategy``, its optimizer: AdamW in fp32). Call after init_process_group."""
    import torch

    strategy = check_strategy(strategy)
    if strategy in ("ddp", "zero1"):
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model, gradient_as_bucket_view=True)
        if strategy == "ddp":
            return wrapped, torch.optim.AdamW(wrapped.parameters(), lr=lr, foreach=False)
        from torch.distributed.optim import ZeroRedundancyOptimizer

        return wrapped, ZeroRedundancyOptimizer(wrapped.parameters(), optimizer_class=torch.optim.AdamW, lr=lr,
                                                foreach=False)
    from torch.distributed.fsdp import fully_shard

    reshard = strategy == "zero3"
    for layer in _layers(model):
        fully_shard(layer, reshard_after_forward=reshard)
    fully_shard(model, reshard_after_forward=reshard)
    return model, torch.optim.AdamW(model.parameters(), lr=lr, foreach=False)


def _layers(model):
    """The transformer blocks of a Hugging Face decoder (each its own FSDP unit)."""
    base = getattr(model, "model", model)
    layers = getattr(base, "layers", None) or getattr(getattr(base, "decoder", None), "layers", None)
    if layers is None:
        raise StrategyError("This model has no list of transformer layers to shard.")
    return list(layers)
