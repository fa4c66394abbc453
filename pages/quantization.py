"""Quantization page (coming soon)."""
import streamlit as st

st.title("Quantization")
st.info("Coming soon: this page is being built.")
