"""LLM Lab: entry point. Builds the navigation; each page is a thin script in views/."""
import os

# Idle OpenMP threads sleep instead of spinning: on a few shared CPU cores, spinning threads of concurrent
# sessions starve each other (a 256-token forward pass went from ~2 s to ~15 s under load). Must precede torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import streamlit as st  # noqa: E402

st.set_page_config(page_title="LLM Lab", page_icon=":material/science:", layout="wide")
if os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "pages")):
    # Streamlit would run each server's first session in its legacy `pages/` multipage mode (page scripts are in views/).
    st.warning("Delete the leftover `pages/` folder next to app.py (e.g. an old `pages/__pycache__`): it makes the "
               "first visitor after a restart see \"Page not found\" instead of a shared link's page.")

PAGES = {
    "Overview": [st.Page("views/home.py", title="Home", icon=":material/home:", default=True)],
    "Explore a model": [
        st.Page("views/generate.py", title="Generate", icon=":material/edit_note:", url_path="generate"),
        st.Page("views/attention.py", title="Attention", icon=":material/grid_on:", url_path="attention"),
        st.Page("views/layers.py", title="Layers", icon=":material/layers:", url_path="layers"),
        st.Page("views/quantization.py", title="Quantization", icon=":material/compress:", url_path="quantization"),
        st.Page("views/finetune.py", title="Fine-tune", icon=":material/model_training:", url_path="finetune"),
        st.Page("views/optimize.py", title="Optimize", icon=":material/content_cut:", url_path="optimize"),
        st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:", url_path="evaluate"),
    ],
    "Plan hardware": [
        st.Page("views/memory_planner.py", title="Memory planner", icon=":material/memory:", url_path="memory"),
        st.Page("views/compute_planner.py", title="Compute planner", icon=":material/speed:", url_path="compute"),
        st.Page("views/serving.py", title="Serving planner", icon=":material/dns:", url_path="serving"),
        st.Page("views/serving_load.py", title="Serving load test", icon=":material/stacked_line_chart:",
                url_path="serving-load"),
    ],
}

page = st.navigation(PAGES)
with st.sidebar:
    from views.components.hardware_panel import render_hardware_panel

    render_hardware_panel(compact=True)
page.run()
