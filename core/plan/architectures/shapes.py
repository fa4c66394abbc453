"""The shapes every architecture module shares: the error for bad names and configs, a group of weight matrices
(``LinearLayer``) and a group of layers with the same KV cache (``KVGroup``)."""
from __future__ import annotations

from dataclasses import dataclass


class ArchitectureError(ValueError):
    """A model name, or a config, that cannot be turned into an architecture (message is user-facing)."""



@dataclass(frozen=True)
class LinearLayer:
    """One kind of weight matrix: ``count`` copies of an in_features x out_features matrix in the model."""

    name: str
    in_features: int
    out_features: int
    count: int
    bias: bool
    quantizable: bool  # False for modules transformers' bitsandbytes integration leaves in 16-bit

    @property
    def weight_params(self) -> int:
        return self.in_features * self.out_features * self.count

    @property
    def bias_params(self) -> int:
        return self.out_features * self.count if self.bias else 0


@dataclass(frozen=True)
class KVGroup:
    """``layers`` attention layers that each cache ``values_per_token`` values per token, for at most ``window``
    tokens (None: the whole sequence)."""

    layers: int
    values_per_token: int
    window: int | None
