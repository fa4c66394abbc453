"""Bytes a rank holds in tensors: distinct storages (DTensors by their local shard), an optimizer's state."""
from __future__ import annotations


def local_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a DTensor counts its local shard; None is skipped)."""
    seen, total = set(), 0
    for t in tensors:
        if t is None:
            continue
        local = t.to_local() if hasattr(t, "to_local") else t
        storage = local.untyped_storage()
        if storage.data_ptr() in seen or storage.nbytes() == 0:
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()
    return total


def optimizer_state_bytes(optimizer) -> int:
    """Bytes of an optimizer's state tensors held on this rank (scalars such as Adam's step left out)."""
    inner = getattr(optimizer, "optim", optimizer)  # ZeroRedundancyOptimizer keeps its shard's optimizer in .optim
    return local_bytes(v for state in inner.state.values() for v in state.values()
                       if hasattr(v, "untyped_storage") and v.dim() > 0)
