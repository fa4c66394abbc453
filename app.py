"""LLM Lab: entry point. Builds the navigation; each page is a thin script in pages/."""
import streamlit as st

st.set_page_config(page_title="LLM Lab", page_icon=":material/science:", layout="wide")

PAGES = {
    "Overview": [st.Page("pages/home.py", title="Home", icon=":material/home:", default=True)],
    "Explore a model": [
        st.Page("pages/generate.py", title="Generate", icon=":material/edit_note:", url_path="generate"),
        st.Page("pages/attention.py", title="Attention", icon=":material/grid_on:", url_path="attention"),
        st.Page("pages/quantization.py", title="Quantization", icon=":material/compress:", url_path="quantization"),
    ],
    "Plan hardware": [
        st.Page("pages/memory_planner.py", title="Memory planner", icon=":material/memory:", url_path="memory"),
        st.Page("pages/compute_planner.py", title="Compute planner", icon=":material/speed:", url_path="compute"),
    ],
}

st.navigation(PAGES).run()
