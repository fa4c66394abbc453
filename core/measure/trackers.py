"""The measuring instrument: memory trackers (one per device type); a phase yields its peak and net change in bytes.

- CUDA: ``torch.cuda.reset_peak_memory_stats`` / ``max_memory_allocated`` around each phase (bytes of live tensors).
- CPU: the PyTorch profiler's allocation events (``profile_memory=True``): the running total of PyTorch's CPU
  allocator, the CPU twin of ``max_memory_allocated``; RSS growth (VmHWM) only when those events are unavailable.
"""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass

from core.common import process_memory
from core.common.device import MEMORY_DEVICE_TYPES, resolve_device

@dataclass
class PhaseMemory:
    """Bytes allocated during one phase, relative to its start: ``peak`` (highest point) and ``end`` (net change);
    ``start``: the allocator's running total when the phase began (on CPU, of the allocations it was told of)."""
    peak: int = 0
    end: int = 0
    start: int = 0
    peak_at: str = ""  # CPU: the operators around the allocation that made the peak, innermost first
    # CPU: blocks freed on a thread the profiler does not record (seen when their address came back), bytes
    unrecorded_frees: int = 0


class CudaTracker:
    method = ("torch.cuda.max_memory_allocated (reset_peak_memory_stats before each phase): bytes of live tensors; "
              "the caching allocator's reserve and the CUDA context are not included")

    def __init__(self, device):
        self.device = device

    def allocated(self) -> int:
        import torch

        torch.cuda.synchronize(self.device)
        return int(torch.cuda.memory_allocated(self.device))

    @contextlib.contextmanager
    def phase(self, release_hints=None):  # the caching allocator sees every thread
        import torch

        result = PhaseMemory()
        start = result.start = self.allocated()
        torch.cuda.reset_peak_memory_stats(self.device)
        try:
            yield result
        finally:
            torch.cuda.synchronize(self.device)
            result.peak = max(0, int(torch.cuda.max_memory_allocated(self.device)) - start)
            result.end = int(torch.cuda.memory_allocated(self.device)) - start

    def reserved(self) -> int:
        import torch

        return int(torch.cuda.memory_reserved(self.device))


def _walk(events):
    stack = list(events)
    while stack:
        event = stack.pop()
        yield event
        stack.extend(event.children)


@dataclass
class _Totals:
    base: int
    values: list
    unrecorded_frees: int


def _running_totals(allocations, release_hint=None) -> _Totals:
    """Bytes allocated after each allocation event (sorted by time), relative to the phase's start, from the
    allocator's own process-wide running total (``total_allocated``).

    That total only goes down for frees on a thread the profiler records (its memory reporting is per thread): a
    block freed by another thread — gloo's workers drop the last reference to some collective buffers — would stay
    in it. Such a block (no recorded free) is taken out of the total from the time ``release_hint(event)`` gives
    (nanoseconds; what the caller knows of when that buffer is let go), or else from the moment the allocator hands
    out its address again, when it had certainly been freed. In a process without such threads nothing changes.
    """
    fields = [e.typed[1] for e in allocations]
    first = fields[0]
    base = first.total_allocated - first.alloc_size  # the total before the first event (an allocation or a free)
    releases: list[tuple[int, int]] = []  # (time from which a block without a recorded free is gone, its bytes)
    live: dict[int, int] = {}  # address → index of its allocation event
    for i, f in enumerate(fields):
        if f.alloc_size > 0:
            if f.ptr in live:  # the address came back: the earlier block was freed unrecorded
                j = live[f.ptr]
                hint = release_hint(allocations[j]) if release_hint else None
                at = allocations[i].start_time_ns
                if hint is not None:
                    at = max(allocations[j].start_time_ns, min(hint, at))
                releases.append((at, fields[j].alloc_size))
            live[f.ptr] = i
        else:
            live.pop(f.ptr, None)
    if release_hint:  # blocks still without a free at the end: released where the caller says, if it knows
        for j in live.values():
            hint = release_hint(allocations[j])
            if hint is not None:
                releases.append((max(hint, allocations[j].start_time_ns), fields[j].alloc_size))
    releases.sort()
    values, k, missed = [], 0, 0
    for e, f in zip(allocations, fields):
        while k < len(releases) and releases[k][0] <= e.start_time_ns:
            missed += releases[k][1]
            k += 1
        values.append(f.total_allocated - base - missed)
    return _Totals(base, values, sum(size for _, size in releases))


def _op_chain(event, depth: int = 4) -> str:
    names = []
    parent = getattr(event, "parent", None)
    while parent is not None and len(names) < depth:
        names.append(parent.name)
        parent = getattr(parent, "parent", None)
    return " < ".join(names)


class CpuProfilerTracker:
    method = ("torch.profiler allocation events (profile_memory=True): peak of the bytes allocated by PyTorch's CPU "
              "allocator, the CPU twin of torch.cuda.max_memory_allocated")

    def __init__(self, device):
        self.device = device

    @contextlib.contextmanager
    def phase(self, release_hints=None):
        """``release_hints``: optional ``f(all events) -> g(allocation event) -> ns | None``, for blocks that
        another thread frees (see ``_running_totals``)."""
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        result = PhaseMemory()
        prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        prof.__enter__()
        try:
            yield result
        finally:
            prof.__exit__(None, None, None)
            events = list(_walk(prof.profiler.kineto_results.experimental_event_tree()))
            allocations = [e for e in events
                           if e.typed[0] == _EventType.Allocation and str(e.typed[1].device).startswith("cpu")]
            if allocations:
                allocations.sort(key=lambda e: e.start_time_ns)
                totals = _running_totals(allocations, release_hints(events) if release_hints else None)
                result.start = totals.base
                result.peak = max(0, max(totals.values))
                result.end = totals.values[-1]
                at = totals.values.index(max(totals.values))
                result.peak_at = _op_chain(allocations[at])
                result.unrecorded_frees = totals.unrecorded_frees

    @staticmethod
    def available() -> bool:
        try:
            import torch
            from torch._C._profiler import _EventType  # noqa: F401
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
                torch.empty(1024)
            return hasattr(prof.profiler.kineto_results, "experimental_event_tree")
        except Exception:  # noqa: BLE001 - any failure means: use the RSS fallback
            return False


class CpuRssTracker:
    method = ("process RSS growth (peak VmHWM after /proc/self/clear_refs, or RSS sampled where the kernel forgets "
              "unmapped peaks): includes allocator slack, less exact than tensor bytes")

    def __init__(self, device):
        self.device = device

    @contextlib.contextmanager
    def phase(self, release_hints=None):
        result = PhaseMemory()
        gc.collect()
        start = process_memory.process_rss_bytes()
        meter = process_memory.PeakMemoryMeter(self.device)
        try:
            with meter:
                yield result
        finally:
            result.peak = max(0, meter.peak_bytes - start)
            result.end = process_memory.process_rss_bytes() - start


_PROFILER_OK: bool | None = None


def tracker_for(device):
    global _PROFILER_OK
    if device.type == "cuda":
        return CudaTracker(device)
    if _PROFILER_OK is None:
        _PROFILER_OK = CpuProfilerTracker.available()
    return CpuProfilerTracker(device) if _PROFILER_OK else CpuRssTracker(device)


def resolve_device_type(device: str = "auto") -> str:
    """"cuda" or "cpu" for a device string ("auto" = CUDA when available); ValueError for an unusable device."""
    return resolve_device(device, MEMORY_DEVICE_TYPES).type


def measurement_method(device: str = "auto") -> str:
    """How peaks are measured on ``device`` (the ``method`` string the results carry)."""
    return tracker_for(resolve_device(device, MEMORY_DEVICE_TYPES)).method


def cpu_kernels() -> dict:
    """Which CPU kernels PyTorch picks here (they decide some temporaries): ATen's dispatch level
    (``torch.backends.cpu.get_cpu_capability()``: DEFAULT / AVX2 / AVX512; ``ATEN_CPU_CAPABILITY`` lowers it),
    whether oneDNN runs bf16 matmuls natively (AVX512-BF16 / AMX; ``ONEDNN_MAX_CPU_ISA`` lowers it) and the thread
    count, whether a bf16 matmul allocates an fp32 copy of its output (``bf16_matmul_scratch``), and what a bf16
    product of the tiny test models' MLP shape (128 × 64 by 64 × 256) allocates beyond its output without and with a
    bias (``bf16_workspace_bytes``, from ``matmul_workspace_bytes``). Measured on an AVX2 CPU (2026-12-01): every CPU
    ledger term was byte-identical at DEFAULT / AVX2, oneDNN AVX2 / SSE4.1 and 1–8 threads."""
    import torch

    try:
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        bf16 = False
    return {"aten_cpu_capability": torch.backends.cpu.get_cpu_capability(), "onednn_bf16": bf16,
            "bf16_matmul_scratch": bf16_matmul_scratch(), "threads": torch.get_num_threads(),
            "bf16_workspace_bytes": {"linear": matmul_workspace_bytes(128, 64, 256, bias=False),
                                     "linear+bias": matmul_workspace_bytes(128, 64, 256, bias=True)}}


_BF16_SCRATCH: dict = {}
_WORKSPACE: dict = {}
# Products up to this many multiply-adds are probed at their own shape (~0.1 s of bf16 on one slow core); larger
# ones at two row counts below it, extrapolated along the rows (a workspace is a per-thread block or a copy of the
# output, both linear in M at fixed K and N).
WORKSPACE_PROBE_MACS = 1 << 28
# Weights past this many elements (32 MiB of bf16) are probed at two narrower widths and extrapolated along N.
WORKSPACE_PROBE_WEIGHT = 1 << 24


def bf16_matmul_scratch() -> bool:
    """Whether a bf16 matrix product on this CPU allocates an fp32 buffer of its output's size for the duration of the
    op, besides the bf16 output: oneDNN does so where it has bf16 matmuls but no native bf16 instructions (seen on
    AVX-512 without AVX512-BF16 or AMX, 2026-12-06: (M·N·4 + 128) bytes per product; with ``ONEDNN_MAX_CPU_ISA=AVX2``
    ATen's own kernel runs and allocates none). Probed once per process with a 128×64 · 64×176 product under the
    profiler, the same instrument as the measurements. What a product allocates, whatever its form, at a given
    shape: ``matmul_workspace_bytes``."""
    if "value" not in _BF16_SCRATCH:
        m, k, n = 128, 64, 176
        _BF16_SCRATCH["value"] = matmul_workspace_bytes(m, k, n, bias=False, layout="matmul") >= m * n * 4
    return _BF16_SCRATCH["value"]


def matmul_workspace_bytes(m: int, k: int, n: int, bias: bool = False, layout: str = "linear",
                           dtype: str = "bf16") -> int:
    """Bytes a CPU matrix product of (m × k) by (k × n) allocates beyond its (m × n) output while it runs, probed
    once per shape and process under the profiler (the measurements' instrument), with ``torch.inference_mode``.

    The workspace is a property of the kernel PyTorch and oneDNN pick on this CPU, not of the model: it differs by
    instruction set (AVX2: ATen's kernel, none; AVX-512 without BF16: an fp32 copy of the output; native AVX512-BF16
    and AMX: oneDNN's own per-thread blocks, differently with a bias, whose ``beta = 1`` adds a sum post-op), by
    thread count and by shape, so it is asked of the kernel rather than assumed. ``layout``: ``"linear"``
    (``F.linear``: weight stored n × k, as ``nn.Linear``), ``"conv1d"`` (``torch.addmm`` with the weight stored
    k × n, GPT-2's ``Conv1D``) or ``"matmul"`` (``a @ b``, no bias). Shapes past ``WORKSPACE_PROBE_MACS``
    multiply-adds are probed at two smaller row counts and extrapolated linearly in m, and weights past
    ``WORKSPACE_PROBE_WEIGHT`` elements at two narrower widths, extrapolated linearly in n."""
    for name, value in (("m", m), ("k", k), ("n", n)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    if layout not in ("linear", "conv1d", "matmul"):
        raise ValueError(f"layout must be 'linear', 'conv1d' or 'matmul', got {layout!r}")
    m, k, n = int(m), int(k), int(n)
    if k * n > WORKSPACE_PROBE_WEIGHT and n > 64:
        # A 70B model's MLP weight is ~0.5 GB in bf16: probe two narrower products and extrapolate along the columns
        # (both workspaces above are linear in N at fixed M and K), so a page never allocates a layer to plan it.
        narrow = max(32, min((n - 1) // 2, WORKSPACE_PROBE_WEIGHT // (2 * k)))
        a, b = (matmul_workspace_bytes(m, k, c, bias, layout, dtype) for c in (narrow, 2 * narrow))
        return max(0, round(b + (b - a) * (n - 2 * narrow) / narrow))
    if m * k * n > WORKSPACE_PROBE_MACS and m > 32:
        # Both probes stay strictly below m (and, unless at the 16-row floor, within the budget), so this ends.
        small = max(16, min((m - 1) // 2, WORKSPACE_PROBE_MACS // (2 * k * n)))
        a, b = (matmul_workspace_bytes(r, k, n, bias, layout, dtype) for r in (small, 2 * small))
        return max(0, round(b + (b - a) * (m - 2 * small) / small))
    key = (m, k, n, bool(bias), layout, dtype)
    if key not in _WORKSPACE:
        _WORKSPACE[key] = _probe_workspace(m, k, n, bool(bias), layout, dtype)
    return _WORKSPACE[key]


def _probe_workspace(m: int, k: int, n: int, bias: bool, layout: str, dtype: str) -> int:
    import torch
    import torch.nn.functional as F

    torch_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[dtype]
    x = torch.ones(m, k, dtype=torch_dtype)
    w = torch.ones((k, n) if layout in ("conv1d", "matmul") else (n, k), dtype=torch_dtype)
    b = torch.ones(n, dtype=torch_dtype) if bias and layout != "matmul" else None

    def product():
        if layout == "matmul":
            return x @ w
        if layout == "conv1d":
            return torch.addmm(b, x, w) if b is not None else x @ w
        return F.linear(x, w, b)

    tracker = CpuProfilerTracker(torch.device("cpu"))
    with torch.inference_mode():
        del_me = product()  # oneDNN creates its primitive (and caches it) on the first call
        del del_me
        with tracker.phase() as ph:
            out = product()
    del out
    return max(0, ph.peak - ph.end)
