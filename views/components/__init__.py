"""Streamlit-side building blocks shared by several pages (caching, panels). Logic stays in core/."""
