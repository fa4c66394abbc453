"""One device resolver for every module that runs a model or reads device memory.

"auto" means: the first *available* device type of CUDA > MPS > CPU that the caller supports. A caller that cannot
use Apple's MPS (e.g. the memory meters, which read CUDA's allocator or the process's RSS) passes
``supported=("cuda", "cpu")`` and so gets CUDA else CPU. An explicit device ("cpu", "cuda", "cuda:1", "mps") is
checked to exist here. Availability follows PyTorch: ``torch.cuda.is_available`` / ``torch.cuda.device_count``
(https://pytorch.org/docs/stable/cuda.html) and ``torch.backends.mps.is_available``
(https://pytorch.org/docs/stable/notes/mps.html).
"""
from __future__ import annotations

DEVICE_TYPES = ("cuda", "mps", "cpu")
"""Device types in "auto" preference order."""

MEMORY_DEVICE_TYPES = ("cuda", "cpu")
"""Devices whose memory ``core`` can read (CUDA's allocator and ``mem_get_info``; the process's RSS on CPU). MPS is
not among them, so hardware detection and the memory meters resolve "auto" to CUDA else CPU."""


class DeviceError(ValueError):
    """The requested device is unknown, unsupported here, or not present (the message is user-facing)."""


def mps_available() -> bool:
    """True when PyTorch can use Apple's MPS backend on this machine."""
    import torch

    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def _available(kind: str) -> bool:
    import torch

    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return mps_available()
    return kind == "cpu"


def resolve_device(device=None, supported: tuple[str, ...] = DEVICE_TYPES):
    """``device`` ("auto"/None, "cpu", "cuda", "cuda:N", "mps" or a ``torch.device``) → a present ``torch.device``.

    "auto" (or None) picks the first available of CUDA > MPS > CPU among ``supported``. Raises ``DeviceError`` for an
    unknown or unsupported device, or one this machine does not have.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    kinds = [k for k in DEVICE_TYPES if k in supported]
    usable = "'auto', " + ", ".join(f"'{k}'" for k in kinds)
    if isinstance(device, torch.device):
        device = str(device)
    text = "auto" if device is None else str(device).strip().lower()
    if text in ("", "auto"):
        for kind in kinds:
            if _available(kind):
                return torch.device(kind)
        return torch.device("cpu")
    try:
        chosen = torch.device(text)
    except (RuntimeError, ValueError) as exc:
        raise DeviceError(f"Unknown device '{device}'. Use {usable}.") from exc
    if chosen.type not in kinds:
        raise DeviceError(f"Unsupported device '{device}'. Use {usable}.")
    if chosen.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("Device 'cuda' was requested but no CUDA GPU is available here; use 'auto' or 'cpu'.")
        if chosen.index is not None and chosen.index >= torch.cuda.device_count():
            raise DeviceError(f"Device '{device}' does not exist: this machine has {torch.cuda.device_count()} GPU(s).")
    elif chosen.type == "mps" and not mps_available():
        raise DeviceError("Device 'mps' (Apple GPU) was requested but is not available here; use 'auto' or 'cpu'.")
    return chosen
