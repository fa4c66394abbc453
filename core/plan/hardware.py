"""GPU catalog (datasheet numbers) and lookups.

Source: NVIDIA's datasheets (and the Ada whitepaper for the RTX 4090); each GPU's page is listed in
docs/references/gpus.md.
Throughput is dense tensor-core bf16/fp16 (no sparsity); bandwidth in GB/s (1e9 bytes/s).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from core.common.device import MEMORY_DEVICE_TYPES, resolve_device
from core.common.units import GB  # re-exported: GPU memory is sold in decimal GB (1e9 bytes), like the ZeRO paper uses


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gb: float
    bf16_tflops: float  # dense tensor-core bf16/fp16 TFLOP/s
    fp32_tflops: float  # non-tensor fp32 TFLOP/s
    bandwidth_gbs: float  # memory bandwidth, GB/s
    tdp_w: float
    note: str = ""
    interconnect: str = ""  # GPU-to-GPU link of the form factor, e.g. "NVLink 4" or "PCIe Gen4 x16"
    interconnect_gbs: float = 0.0  # its datasheet bandwidth, GB/s, both directions together

    @property
    def interconnect_bytes_per_s(self) -> float:
        """One direction of the GPU-to-GPU link (datasheets quote both directions together), bytes/s."""
        return self.interconnect_gbs * 1e9 / 2

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

# GPU-to-GPU interconnect per catalog GPU, GB/s both directions (NVIDIA datasheets: V100 "NVLink 300 GB/s";
# T4 "PCIe Gen3 x16" = 32 GB/s; A10 "PCIe Gen4 64 GB/s"; L4 "PCIe Gen4 x16 64 GB/s"; GeForce RTX 4090 spec page: PCIe
# Gen4 x16, no NVLink; A100 SXM "NVLink 600 GB/s"; H100 SXM "NVLink 900 GB/s"; H100 PCIe "PCIe Gen5 128 GB/s" (its
# optional NVLink bridge pairs only two cards); H200 SXM "NVLink 900 GB/s").
_INTERCONNECTS = {
    "V100 SXM2 16GB": ("NVLink 2", 300), "V100 SXM2 32GB": ("NVLink 2", 300), "T4": ("PCIe Gen3 x16", 32),
    "A10 (PCIe)": ("PCIe Gen4 x16", 64), "L4": ("PCIe Gen4 x16", 64), "RTX 4090": ("PCIe Gen4 x16", 64),
    "A100 40GB SXM": ("NVLink 3", 600), "A100 80GB SXM": ("NVLink 3", 600), "H100 SXM": ("NVLink 4", 900),
    "H100 PCIe": ("PCIe Gen5 x16", 128), "H200 SXM": ("NVLink 4", 900),
}
GPUS = {name: replace(g, interconnect=_INTERCONNECTS[name][0], interconnect_gbs=float(_INTERCONNECTS[name][1]))
        for name, g in GPUS.items()}

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


# --------------------------------------------------------------------------------------------------
# Detection of the machine this process runs on (GPU through torch.cuda / NVML, else CPU and RAM).
# --------------------------------------------------------------------------------------------------

def _cgroup_memory_limit_bytes() -> int | None:
    """Memory limit of this container (cgroup v2 `memory.max` or v1 `memory.limit_in_bytes`), if any.

    Source: Linux kernel documentation, Documentation/admin-guide/cgroup-v2.rst ("memory.max").
    """
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # v1 reports "no limit" as a huge number
            return int(text)
    return None


def _cpu_model_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else platform.processor()."""
    import platform

    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _meminfo() -> tuple[int, int, str]:
    """(total, available) RAM bytes: psutil when installed, else /proc/meminfo (a bare GPU box may lack psutil)."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        return int(vm.total), int(vm.available), "psutil.virtual_memory"
    except ImportError:
        fields = {}
        with open("/proc/meminfo") as fh:
            for line in fh:
                key, value = line.split(":", 1)
                fields[key] = int(value.split()[0]) * 1024
        return fields["MemTotal"], fields.get("MemAvailable", fields.get("MemFree", 0)), "/proc/meminfo"


def _cpu_counts() -> tuple[int, int | None]:
    try:
        import psutil

        return psutil.cpu_count(logical=True) or 1, psutil.cpu_count(logical=False)
    except ImportError:
        import os

        return os.cpu_count() or 1, None


def cpu_memory_info() -> dict:
    """Total and available RAM in bytes (psutil), capped by the container's cgroup limit when there is one."""
    total, available, source = _meminfo()
    limit = _cgroup_memory_limit_bytes()
    if limit is not None and limit < total:
        try:
            with open("/sys/fs/cgroup/memory.current") as fh:
                used = int(fh.read().strip())
        except (OSError, ValueError):
            used = total - available
        total, available = limit, max(0, min(available, limit - used))
        source += " + cgroup memory.max"
    return {"total_bytes": total, "available_bytes": available, "source": source}


def _nvml_memory(index: int) -> dict | None:
    """Total/free/used bytes of GPU `index` from NVML (nvidia-ml-py), or None when NVML is not installed."""
    try:
        import pynvml  # provided by the nvidia-ml-py package
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        info = pynvml.nvmlDeviceGetMemoryInfo(handle)
        driver = pynvml.nvmlSystemGetDriverVersion()
        return {
            "total_bytes": int(info.total),
            "free_bytes": int(info.free),
            "used_bytes": int(info.used),
            "driver": driver.decode() if isinstance(driver, bytes) else str(driver),
        }
    except Exception:  # NVML present but unusable (no driver, MIG slice, ...): fall back to torch.cuda
        return None


def free_device_memory_bytes(device: str = "auto") -> int:
    """Bytes free for new tensors on `device` ("cuda", "cuda:N", "cpu" or "auto").

    CUDA: `torch.cuda.mem_get_info` (cudaMemGetInfo: free bytes on the device, all processes counted)
    plus what PyTorch's caching allocator holds reserved but unused (it can reuse that without asking the driver).
    CPU: available RAM (psutil), capped by the container's cgroup limit.
    """
    import torch

    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        free, _total = torch.cuda.mem_get_info(index)
        cached_unused = torch.cuda.memory_reserved(index) - torch.cuda.memory_allocated(index)
        return int(free + max(0, cached_unused))
    return int(cpu_memory_info()["available_bytes"])


def detect_hardware(device: str = "auto") -> dict:
    """What this process runs on: the GPU (torch.cuda, NVML when installed) or else the CPU and RAM.

    Keys (always present; None where not applicable):
      device ("cuda" / "cpu"), device_name, gpu_name, gpu_count, total_memory_bytes, free_memory_bytes,
      memory_source, compute_capability ("9.0"), bf16_supported, bf16_native, cpu_name, cpu_cores (logical),
      cpu_physical_cores, ram_total_bytes, ram_available_bytes, torch_version, cuda_version, driver_version,
      catalog_gpu (the matching catalog entry as a dict, from `match_catalog_gpu`), catalog_gpu_name.
    On a GPU, total/free memory are the GPU's; on CPU they are the RAM's.
    Sources: PyTorch docs for torch.cuda.get_device_properties / mem_get_info / is_bf16_supported;
    NVIDIA NVML API reference (nvmlDeviceGetMemoryInfo).
    """
    import torch

    ram = cpu_memory_info()
    logical, physical = _cpu_counts()
    flags = _cpu_flags()
    info: dict = {
        "device": "cpu",
        "device_name": None,
        "gpu_name": None,
        "gpu_count": 0,
        "total_memory_bytes": ram["total_bytes"],
        "free_memory_bytes": ram["available_bytes"],
        "memory_source": ram["source"],
        "compute_capability": None,
        "bf16_supported": True,  # PyTorch's CPU kernels all accept bfloat16 (natively or by conversion)
        "bf16_native": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "cpu_name": _cpu_model_name(),
        "cpu_cores": logical,
        "cpu_physical_cores": physical,
        "ram_total_bytes": ram["total_bytes"],
        "ram_available_bytes": ram["available_bytes"],
        "torch_version": torch.__version__,
        "cuda_version": torch.version.cuda,
        "driver_version": None,
        "catalog_gpu": None,
        "catalog_gpu_name": None,
    }
    info["device_name"] = info["cpu_name"]
    dev = resolve_device(device, MEMORY_DEVICE_TYPES)
    if dev.type != "cuda":
        return info

    index = dev.index if dev.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    free, total = torch.cuda.mem_get_info(index)
    nvml = _nvml_memory(index)
    source = "torch.cuda.mem_get_info"
    if nvml is not None:
        total, free = nvml["total_bytes"], nvml["free_bytes"]
        info["driver_version"] = nvml["driver"]
        source = "NVML (nvmlDeviceGetMemoryInfo)"
    catalog = match_catalog_gpu(props.name)
    info.update(
        device="cuda",
        device_name=props.name,
        gpu_name=props.name,
        gpu_count=torch.cuda.device_count(),
        total_memory_bytes=int(total),
        free_memory_bytes=int(free),
        memory_source=source,
        compute_capability=f"{props.major}.{props.minor}",
        bf16_supported=bool(torch.cuda.is_bf16_supported()),
        bf16_native=props.major >= 8,  # bf16 tensor cores arrived with Ampere (compute capability 8.0)
        catalog_gpu=catalog.as_dict() if catalog else None,
        catalog_gpu_name=catalog.name if catalog else None,
    )
    return info


def memory_in_use_fraction(info: dict) -> float:
    """Share of the device's memory in use (0..1) from ``detect_hardware()``: 1 − free / total GPU memory on CUDA,
    1 − available / total RAM on the CPU; 0 when the total is unknown."""
    if info["device"] == "cuda":
        total, free = info["total_memory_bytes"], info["free_memory_bytes"]
    else:
        total, free = info["ram_total_bytes"], info["ram_available_bytes"]
    if not total:
        return 0.0
    return min(max(1.0 - free / total, 0.0), 1.0)


def hardware_rows(info: dict) -> list[tuple[str, str]]:
    """(label, value with unit) rows describing `detect_hardware()`'s result, for tables and panels."""

    def gb(x):
        return "—" if x is None else f"{x / GB:.2f} GB"

    if info["device"] == "cuda":
        rows = [
            ("Device", f"CUDA GPU: {info['gpu_name']}"
             + (f" (×{info['gpu_count']})" if info["gpu_count"] > 1 else "")),
            ("Total GPU memory", gb(info["total_memory_bytes"])),
            ("Free GPU memory", gb(info["free_memory_bytes"])),
            ("Compute capability", info["compute_capability"] or "—"),
            ("bf16 support", "yes" if info["bf16_supported"] else "no"),
            ("Catalog match", info["catalog_gpu_name"] or "none (not in the catalog)"),
            ("CUDA / driver", f"{info['cuda_version'] or '—'} / {info['driver_version'] or '—'}"),
        ]
    else:
        rows = [
            ("Device", "CPU (no CUDA GPU visible to PyTorch)"),
            ("CPU", info["cpu_name"]),
            ("CPU cores", f"{info['cpu_cores']} logical" + (
                f", {info['cpu_physical_cores']} physical" if info["cpu_physical_cores"] else "")),
            ("Total RAM", gb(info["ram_total_bytes"])),
            ("Available RAM", gb(info["ram_available_bytes"])),
            ("bf16 support", "native (AVX512-BF16/AMX)" if info["bf16_native"] else "yes (emulated by conversion)"),
        ]
    rows.append(("Memory source", info["memory_source"]))
    rows.append(("PyTorch", info["torch_version"]))
    return rows
