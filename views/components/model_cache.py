"""Page-side model cache: one loaded model per weight-changing setting, shared across reruns and sessions.

``cached_load_model`` wraps ``core.run.models.load_model`` in ``st.cache_resource`` keyed by everything that changes the
weights in memory (name, dtype, device, quantization and its options, attention implementation). The one-time
conversion of the bundled SmolLM2 .gguf runs outside the cache with a progress bar, so it is never replayed.
"""
from __future__ import annotations

import time

import streamlit as st
import torch

from core.run import models
from core.run.model_policy import ModelPolicy
from core.run.models import LoadedModel, ModelLoadError
from core.common.units import format_duration_s
from core.common.user_text import code
from views.components.model_access import server_model_policy


def _key(value) -> str | None:
    if isinstance(value, torch.dtype):
        return models.SHORT_DTYPE.get(value, str(value))
    return None if value is None else str(value)


@st.cache_resource(max_entries=8, show_spinner=False)
def _load_cached(
    name: str,
    dtype: str,
    device: str,
    quantization: str | None,
    attn_implementation: str | None,
    double_quant: bool,
    compute_dtype: str | None,
    policy: ModelPolicy,
) -> LoadedModel:
    return models.load_model(
        name,
        dtype=dtype,
        device=device,
        quantization=quantization,
        attn_implementation=attn_implementation,
        double_quant=double_quant,
        compute_dtype=compute_dtype,
        policy=policy,
    )


def _convert_bundled_decoder_with_progress() -> None:
    """First use only: show a progress bar while the bundled .gguf is converted into the local cache."""
    try:
        if models.bundled_decoder_is_converted():
            return
    except ModelLoadError:
        return  # load_model will raise the same clear message
    # Measured 2026-12-01: ~30 s on an idle 2-core x86-64 machine, ~100 s with the cores busy.
    started = time.perf_counter()
    with st.status("Preparing the bundled SmolLM2 model: first use on this machine only, usually 30 s to 2 min…",
                   expanded=True) as box:
        st.caption("Its .gguf file is de-quantized to fp32 and saved once to the local model cache; every later "
                   "load (any session) reads that cache in a few seconds.")
        bar = st.progress(0.0)

        def report(fraction: float, message: str) -> None:
            elapsed = format_duration_s(time.perf_counter() - started)
            bar.progress(min(max(fraction, 0.0), 1.0), text=f"{message} ({elapsed} so far)")

        try:
            models.ensure_bundled_decoder(report)
        except ModelLoadError:
            box.update(label="Preparing the bundled SmolLM2 model failed", state="error")
            raise
        box.update(label=f"Bundled SmolLM2 model prepared in {format_duration_s(time.perf_counter() - started)}",
                   state="complete", expanded=False)


def cached_load_model(
    name: str | None = None,
    dtype: str | torch.dtype = "auto",
    device: str | torch.device = "auto",
    quantization: str | None = None,
    attn_implementation: str | None = None,
    *,
    double_quant: bool = False,
    compute_dtype: str | torch.dtype | None = None,
) -> LoadedModel:
    """``load_model`` cached with ``st.cache_resource``; shows progress while loading. Raises ModelLoadError.

    The server's model policy (views/components/model_access.py) decides which names may be loaded."""
    policy = server_model_policy()
    resolved = models.canonical_name(name)  # load_model checks the name (length, policy) and says what is wrong
    device_key = str(models.select_device(device))  # "auto" resolves here so the key names the real device
    if resolved == models.BUNDLED_DECODER:
        _convert_bundled_decoder_with_progress()
    label = code(resolved) + (f" ({quantization})" if quantization else "")
    with st.spinner(f"Loading {label} on {device_key}… (usually a few seconds; only the first use in this server "
                    "process loads it, later runs reuse it)", show_time=True):
        return _load_cached(
            resolved,
            _key(dtype) or "auto",
            device_key,
            quantization or None,
            attn_implementation,
            bool(double_quant),
            _key(compute_dtype),
            policy,
        )


def load_model_or_error(*args, **kwargs) -> LoadedModel | None:
    """Like ``cached_load_model`` but shows the ModelLoadError as ``st.error`` and returns None."""
    try:
        return cached_load_model(*args, **kwargs)
    except ModelLoadError as exc:
        st.error(str(exc), icon=":material/block:")
        return None
