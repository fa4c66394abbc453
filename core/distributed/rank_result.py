"""What one rank reports after its measured step, the same for every strategy (DDP / ZeRO / FSDP2 in ``worker``,
TP / PP in ``parallel_worker``): its peak over what it held before the step, the step's phases, its losses and
collectives, written as ``rank<N>.json`` for the launcher to read."""
from __future__ import annotations

import json
from pathlib import Path


def write_rank_result(out_dir: Path, rank: int, identity: dict, resident: int, memory, parts: dict, losses: list,
                      collectives: list, method: str) -> dict:
    """The rank's result: ``identity`` (rank, world size, strategy, device, layout fields) first, then peak =
    ``resident`` (bytes held before the step) + the step's peak above it (``memory``: a PhaseMemory), what the
    profiler could not attribute, the parts, losses and collectives. Written to ``out_dir/rank<N>.json``."""
    result = {**identity,
              "peak_bytes": int(resident + memory.peak), "resident_bytes": int(resident),
              "step_peak_over_resident_bytes": int(memory.peak), "step_net_bytes": int(memory.end),
              "unrecorded_frees_bytes": int(memory.unrecorded_frees), "peak_at": memory.peak_at,
              "parts_bytes": parts, "losses": losses, "collectives": collectives, "memory_method": method}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"rank{rank}.json").write_text(json.dumps(result))
    return result
