"""A one-line text field with a length limit that keeps the first characters of a longer paste and says so.

Streamlit's own ``max_chars`` is enforced by the browser, which ignores any edit that would pass the limit: a
10,000-character paste into a 2,000-character field left it empty (issue 32). This field has no browser limit; the
server keeps the first ``max_chars`` characters (written back into the field) and a warning under it says how long the
paste was."""
from __future__ import annotations

import streamlit as st

from core.common.user_text import clip


def clipped_text_input(container, label: str, *, key: str, value: str, max_chars: int, help: str,
                       what: str = "The text") -> str:
    """``container.text_input`` holding at most ``max_chars`` characters; returns the text kept."""
    cut_key = f"{key}_cut_from"  # the length of the paste that was cut, until the field is edited again

    def keep_first() -> None:
        text = st.session_state.get(key) or ""
        if len(text) > max_chars:
            st.session_state[key] = clip(text, max_chars, ellipsis="")
            st.session_state[cut_key] = len(text)
        else:
            st.session_state.pop(cut_key, None)

    text = container.text_input(label, value=value, key=key, on_change=keep_first,
                                help=f"{help} At most {max_chars:,} characters: a longer paste keeps the first "
                                     f"{max_chars:,}.") or ""
    if len(text) > max_chars:  # reached the field without an edit (set in the session before the page ran)
        st.session_state[cut_key] = len(text)
        text = clip(text, max_chars, ellipsis="")
    cut_from = st.session_state.get(cut_key)
    if cut_from:
        container.warning(f"{what} had {cut_from:,} characters, more than the {max_chars:,} allowed: the first "
                          f"{max_chars:,} are kept.", icon=":material/content_cut:")
    return text
