"""LLM Lab core: everything computable, importable without Streamlit. The map of its packages and what may import
what is core/README.md."""
