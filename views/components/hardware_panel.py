"""The hardware panel: what this machine runs models on (GPU via torch.cuda / NVML, else CPU cores and RAM).

One call: ``render_hardware_panel()`` (in the sidebar: ``with st.sidebar: render_hardware_panel(compact=True)``).
"""
from __future__ import annotations

import streamlit as st

from core.plan.hardware import GB, detect_hardware, hardware_rows, memory_in_use_fraction


@st.cache_data(ttl=10, show_spinner=False)
def _detected() -> dict:
    # Free memory changes as models load, so the cache is short-lived; detection itself takes milliseconds.
    return detect_hardware()


def render_hardware_panel(compact: bool = False, key: str = "hardware_panel") -> dict | None:
    """Show the device in use and its memory; returns the detection dict (None if detection failed)."""
    try:
        info = _detected()
    except Exception as exc:  # noqa: BLE001 - a broken driver must not take the page down
        st.warning(f"Could not detect the hardware: {exc}")
        return None
    if info["device"] == "cuda":
        title = f"GPU: {info['gpu_name']}"
        headline = (f"{info['free_memory_bytes'] / GB:.1f} GB free of {info['total_memory_bytes'] / GB:.1f} GB "
                    f"GPU memory · compute capability {info['compute_capability']} · "
                    f"bf16 {'yes' if info['bf16_supported'] else 'no'}")
    else:
        title = "CPU (no CUDA GPU)"
        headline = (f"{info['cpu_cores']} cores · {info['ram_available_bytes'] / GB:.1f} GB free of "
                    f"{info['ram_total_bytes'] / GB:.1f} GB RAM")
    with st.container(border=True, key=key):
        st.markdown(f"**This machine — {title}**")
        st.caption(headline)
        used = memory_in_use_fraction(info)
        st.progress(used, text=f"{100 * used:.0f} % of memory in use")
        if info["catalog_gpu"]:
            g = info["catalog_gpu"]
            st.caption(f"Catalog match: **{g['name']}** — {g['memory_gb']:g} GB, {g['bf16_tflops']:g} bf16 TFLOP/s, "
                       f"{g['bandwidth_gbs']:g} GB/s (datasheet).")
        elif info["device"] == "cuda":
            st.caption("This GPU is not in the catalog: planners use a custom GPU with its memory.")
        if not compact:
            with st.expander("Details", expanded=False):
                rows = hardware_rows(info)
                st.table({"": [label for label, _ in rows], "value": [value for _, value in rows]})
    return info
