"""Training layouts: tensor × pipeline × data parallelism with ZeRO, sequence parallelism and recomputation, planned
together (pure formulas, layer 1 "plan").

``communication``: bytes per rank per step of the TP / PP / DP collectives (the public API real runs are set beside).
"""
from __future__ import annotations

from core.plan.parallel.communication import (RECOMPUTE_OPTIONS, dp_allreduce_bytes_per_step,
                                              dp_allreduce_payload_bytes_per_step, pp_p2p_bytes_per_step,
                                              ring_allreduce_factor, tp_allreduce_bytes_per_step,
                                              tp_allreduce_payload_bytes_per_step, tp_allreduces_per_layer)

__all__ = ["RECOMPUTE_OPTIONS", "dp_allreduce_bytes_per_step", "dp_allreduce_payload_bytes_per_step",
           "pp_p2p_bytes_per_step", "ring_allreduce_factor", "tp_allreduce_bytes_per_step",
           "tp_allreduce_payload_bytes_per_step", "tp_allreduces_per_layer"]
