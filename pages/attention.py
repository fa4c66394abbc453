"""Attention page (coming soon)."""
import streamlit as st

st.title("Attention")
st.info("Coming soon: this page is being built.")
