"""This process's memory: resident set size now and at its peak, and one meter for the peak while a block runs.

CPU peaks come from the kernel's own high-water mark (``VmHWM`` in /proc/self/status, reset by writing 5 to
/proc/self/clear_refs; proc(5), Linux ≥ 4.0), with RSS sampling where that is not allowed or where the mark does not
survive an unmap (sandboxed kernels emulate /proc; a probe checks this once per process).

Both read the resident set: a block that malloc serves from memory this process freed earlier but still holds does
not raise it. For tensor bytes, use core.measure's allocator trackers. CUDA peaks come from
``torch.cuda.max_memory_allocated`` after ``torch.cuda.reset_peak_memory_stats``
(https://pytorch.org/docs/stable/generated/torch.cuda.max_memory_allocated.html).
"""
from __future__ import annotations

import ctypes
import gc
import functools
import mmap
import threading
from pathlib import Path


def process_rss_bytes() -> int:
    """Resident set size of this process (psutil), in bytes."""
    import psutil

    return int(psutil.Process().memory_info().rss)


_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def proc_status_bytes(field: str) -> int | None:
    """A memory line of /proc/self/status in bytes ("VmRSS": resident now, "VmHWM": peak resident since start or
    the last reset); None where /proc is not there (not Linux) or the field is missing. See proc(5)."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_rss_bytes() -> int | None:
    """The kernel's peak resident set size of this process (VmHWM), in bytes; None where unavailable."""
    return proc_status_bytes("VmHWM")


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS counter to the current RSS (Linux ≥ 4.0: writing 5 to /proc/self/clear_refs, see
    proc(5)); True when the reset worked and the peak can be read back."""
    try:
        with open(_CLEAR_REFS, "w") as handle:
            handle.write("5")
        return peak_rss_bytes() is not None
    except OSError:
        return False


_PROBE_BYTES = 64 * 2**20


@functools.lru_cache(maxsize=1)
def peak_rss_keeps_freed_memory() -> bool:
    """Whether this kernel's VmHWM remembers memory that was touched and then unmapped.

    Linux raises the high-water mark lazily (from the RSS counters at some events, and when /proc is read); a kernel
    that skips the update on unmap forgets a temporary peak that is gone by the time the mark is read. The probe
    maps 64 MiB, touches every page, unmaps it (the path glibc takes to free a large block) and reads the mark; it
    compares with the RSS after the unmap, so another thread's growth in the meantime can't pass for a kept peak.
    """
    if not reset_peak_rss():
        return False
    block = mmap.mmap(-1, _PROBE_BYTES)
    try:
        for offset in range(0, _PROBE_BYTES, mmap.PAGESIZE):
            block[offset] = 1
    finally:
        block.close()
    peak, now = peak_rss_bytes(), proc_status_bytes("VmRSS")
    return peak is not None and now is not None and peak - now >= 0.9 * _PROBE_BYTES


class PeakMemoryMeter:
    """Peak memory while a block runs: ``with PeakMemoryMeter(device) as meter: ...`` then ``meter.peak_bytes``.

    CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (bytes of live tensors).
    CPU: the process's peak resident memory — VmHWM reset through /proc/self/clear_refs before the block (exact, kernel
    maintained); where that is not allowed or the kernel forgets unmapped peaks (``peak_rss_keeps_freed_memory``),
    RSS sampled every ``interval_s`` seconds by a background thread (may miss
    peaks shorter than the interval). ``method`` says which one was used.
    """

    def __init__(self, device=None, interval_s: float = 0.002):
        self.device = device
        self.interval_s = interval_s
        self.method = ""
        self.peak_bytes = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def _is_cuda(self) -> bool:
        return getattr(self.device, "type", str(self.device)) == "cuda"

    def __enter__(self) -> "PeakMemoryMeter":
        if self._is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.method = "torch.cuda.max_memory_allocated"
        elif peak_rss_keeps_freed_memory() and reset_peak_rss():
            self.method = "peak RSS (VmHWM, reset via /proc/self/clear_refs)"
        else:
            self.method = f"RSS sampled every {self.interval_s * 1000:g} ms"
            self.peak_bytes = process_rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak_bytes = max(self.peak_bytes, process_rss_bytes())
            self._stop.wait(self.interval_s)

    def __exit__(self, *exc_info) -> None:
        if self._is_cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self.peak_bytes = int(torch.cuda.max_memory_allocated(self.device))
        elif self._thread is not None:
            self._stop.set()
            self._thread.join()
            self.peak_bytes = max(self.peak_bytes, process_rss_bytes())
        else:
            self.peak_bytes = max(peak_rss_bytes() or 0, process_rss_bytes())


def free_released_memory() -> None:
    """The one way to hand memory back after a model's references are dropped: collect garbage, empty the CUDA cache, and ask glibc to hand freed heap
    pages back to the OS (``malloc_trim(0)``), so process memory does not ratchet up from variant to variant."""
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): the allocator keeps its own policy
