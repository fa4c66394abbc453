"""Memory planner page (coming soon)."""
import streamlit as st

st.title("Memory planner")
st.info("Coming soon: this page is being built.")
