"""Generate page (coming soon)."""
import streamlit as st

st.title("Generate")
st.info("Coming soon: this page is being built.")
