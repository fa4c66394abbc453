"""LLM Lab core: everything computable, importable without Streamlit."""
