"""GPU catalog (datasheet numbers) and lookups.

Source: NVIDIA datasheets / whitepapers as collected in shared/reference/gpus.md.
Throughput is dense tensor-core bf16/fp16 (no sparsity); bandwidth in GB/s (1e9 bytes/s).
"""
from __future__ import annotations

from dataclasses import dataclass, asdict

GB = 1e9  # GPU memory is sold in decimal GB; the planners use GB = 1e9 bytes like the ZeRO paper.


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    bf16_tflops: float  # dense tensor-core bf16/fp16 TFLOP/s
    fp32_tflops: float  # non-tensor fp32 TFLOP/s
    bandwidth_gbs: float  # memory bandwidth, GB/s
    tdp_w: float
    note: str = ""

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * GB

    @property
    def peak_flops(self) -> float:
        """Dense bf16/fp16 tensor throughput in FLOP/s."""
        return self.bf16_tflops * 1e12

    @property
    def bandwidth_bytes_per_s(self) -> float:
        return self.bandwidth_gbs * 1e9

    def as_dict(self) -> dict:
        return asdict(self)


GPUS: dict[str, GPU] = {
    g.name: g
    for g in [
        GPU("V100 SXM2 16GB", 16, 125, 15.7, 900, 300, "fp16 tensor throughput"),
        GPU("V100 SXM2 32GB", 32, 125, 15.7, 900, 300, "fp16 tensor throughput"),
        GPU("T4", 16, 65, 8.1, 320, 70, "fp16 tensor throughput"),
        GPU("A10 (PCIe)", 24, 125, 31.2, 600, 150),
        GPU("L4", 24, 121, 30.3, 300, 72),
        GPU("RTX 4090", 24, 165.2, 82.6, 1008, 450, "fp32 accumulate; 330 with fp16 accumulate"),
        GPU("A100 40GB SXM", 40, 312, 19.5, 1555, 400),
        GPU("A100 80GB SXM", 80, 312, 19.5, 2039, 400),
        GPU("H100 SXM", 80, 989, 67, 3350, 700),
        GPU("H100 PCIe", 80, 756, 51, 2000, 350),
        GPU("H200 SXM", 141, 989, 67, 4800, 700),
    ]
}

DEFAULT_GPU = "A100 80GB SXM"


def get_gpu(name: str) -> GPU:
    """Catalog entry by name; raises KeyError with the known names."""
    try:
        return GPUS[name]
    except KeyError:
        raise KeyError(f"Unknown GPU {name!r}. Known: {', '.join(GPUS)}") from None


def custom_gpu(memory_gb: float, bf16_tflops: float = 0.0, bandwidth_gbs: float = 0.0, name: str = "Custom GPU") -> GPU:
    """A user-entered GPU; memory must be positive."""
    if not memory_gb or memory_gb <= 0:
        raise ValueError("GPU memory must be a positive number of GB.")
    return GPU(name, float(memory_gb), float(bf16_tflops), 0.0, float(bandwidth_gbs), 0.0, "user-entered")


def match_catalog_gpu(device_name: str) -> GPU | None:
    """Best catalog entry for a CUDA device name such as 'NVIDIA H100 80GB HBM3'."""
    n = device_name.upper().replace("-", " ")
    candidates = []
    for g in GPUS.values():
        base = g.name.split(" ")[0].upper()  # V100, T4, A10, L4, RTX, A100, H100, H200
        if g.name.startswith("RTX"):
            if "4090" in n:
                candidates.append(g)
            continue
        if base in n.split():
            candidates.append(g)
    if not candidates:
        return None
    # Prefer the variant whose memory size or form factor appears in the name.
    for g in candidates:
        if f"{int(g.memory_gb)}GB" in n.replace(" ", "") or ("PCIE" in n and "PCIe" in g.name):
            return g
    return candidates[0]
