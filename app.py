"""LLM Lab: entry point. Builds the navigation; each page is a thin script in pages/."""
import os

# Idle OpenMP threads sleep instead of spinning: on a few shared CPU cores, spinning threads of concurrent
# sessions starve each other (a 256-token forward pass went from ~2 s to ~15 s under load). Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

st.set_page_config(page_title="LLM Lab", page_icon=":material/science:", layout="wide")

PAGES = {
    "Overview": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Explore a model": [
        st.Page("pages/generate.py", title="Generate", icon=":material/edit_note:", url_path="generate"),
        st.Page("pages/attention.py", title="Attention", icon=":material/grid_on:", url_path="attention"),
        st.Page("pages/quantization.py", title="Quantization", icon=":material/compress:", url_path="quantization"),
        st.Page("pages/finetune.py", title="Fine-tune", icon=":material/model_training:", url_path="finetune"),
    ],
    "Plan hardware": [
        st.Page("pages/memory_planner.py", title="Memory planner", icon=":material/memory:", url_path="memory"),
        st.Page("pages/compute_planner.py", title="Compute planner", icon=":material/speed:", url_path="compute"),
    ],
}

page = st.navigation(PAGES)
with st.sidebar:
    from pages.components.hardware_panel import render_hardware_panel

    render_hardware_panel(compact=True)
page.run()
