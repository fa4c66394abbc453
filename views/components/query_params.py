"""Keep a page's inputs in its URL (st.query_params), so a copied link reopens the same view. Each planner describes
its inputs in a core.io URL module (``plan_io``, ``compute_url``, ``serving_url``: ``FIELDS``, ``defaults``,
``parse_query_params``, ``to_query_params``, all on core.io.url_state.UrlCodec); these three functions are the page
side of that round trip, the same on every page."""
from collections.abc import Mapping

import streamlit as st


def sync_query_params(wanted: dict[str, str], keys) -> None:
    """Set each of ``keys`` that is in ``wanted`` to its text and remove the others from the URL; only changed
    values are written, so an unchanged page does not rewrite its URL on every rerun."""
    for url_key in keys:
        if url_key in wanted and st.query_params.get(url_key) != wanted[url_key]:
            st.query_params[url_key] = wanted[url_key]
        elif url_key not in wanted and url_key in st.query_params:
            del st.query_params[url_key]


def restore_inputs_from_url(url, written_key: str, keep: Mapping | None = None) -> list[str]:
    """Keep every input of ``url`` (a core.io URL module) across reruns and, when the URL differs from what this page
    last wrote (a shared link, or another planner's link), load the inputs from it. ``keep``: more session-state
    defaults to hold while this page runs (another page's inputs: Streamlit drops the state of widgets a run does
    not draw). Returns the messages about invalid values in the link."""
    for key, default in {**(keep or {}), **url.defaults()}.items():
        # Re-assigning keeps values of widgets that are not drawn in this run (e.g. the catalog model while a
        # parameter count is being planned), so switching back restores them.
        st.session_state[key] = st.session_state.get(key, default)
    ours = {k: v for k, v in st.query_params.to_dict().items() if k in url.FIELDS}
    if not ours or ours == st.session_state.get(written_key):
        return []
    values, problems = url.parse_query_params(ours)
    for key, value in values.items():
        st.session_state[key] = value
    return problems


def write_inputs_to_url(url, written_key: str) -> None:
    """Every input of ``url`` into st.query_params, so a copied link reopens the same view."""
    wanted = url.to_query_params({k: st.session_state[k] for k in url.defaults()})
    sync_query_params(wanted, url.FIELDS)
    st.session_state[written_key] = wanted
