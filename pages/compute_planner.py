"""Compute planner page (coming soon)."""
import streamlit as st

st.title("Compute planner")
st.info("Coming soon: this page is being built.")
