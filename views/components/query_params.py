"""Keep a page's inputs in its URL (st.query_params), so a copied link reopens the same view."""
import streamlit as st


def sync_query_params(wanted: dict[str, str], keys) -> None:
    """Set each of ``keys`` that is in ``wanted`` to its text and remove the others from the URL; only changed
    values are written, so an unchanged page does not rewrite its URL on every rerun."""
    for url_key in keys:
        if url_key in wanted and st.query_params.get(url_key) != wanted[url_key]:
            st.query_params[url_key] = wanted[url_key]
        elif url_key not in wanted and url_key in st.query_params:
            del st.query_params[url_key]
