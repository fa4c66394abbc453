"""*Token focus* on the Attention page: one token followed through every layer — what it attends to, and what attends
to it — for one head or the mean of all heads. Thin: the weights come from core.run.attention.token_focus, the bars
from core.run.attention_charts.

One call: ``render_token_focus(maps, shown, head)`` returns ``(figure, (csv text, file name))``: the last chart drawn
and the per-layer weights of the chosen token, for the page's exports.
"""
from __future__ import annotations

import html

import streamlit as st

from core.run import attention as A
from core.run import attention_charts as C


def render_token_focus(maps: A.AttentionMaps, shown: A.AttentionMaps, head: int):
    """The focus view of ``shown`` (the token window of ``maps``), with ``head`` used when heads are not averaged."""
    use_mean = st.checkbox("Average over heads", value=True, key="focus_mean",
                           help="On: the mean of all heads of each layer. Off: only the head chosen above.")
    focus_head = None if use_mean else head
    query_positions = list(range(shown.offset_queries, shown.offset_queries + len(shown.query_tokens)))
    query_labels = A.indexed_labels(shown.query_tokens, shown.offset_queries)
    # A causal model's last token sees the whole text; in a bidirectional one every token does.
    default_index = len(query_positions) - 1 if maps.causal else len(query_positions) // 2
    query_pick = st.selectbox(
        "Token" if maps.is_self_attention else "Output token (what it reads in the input)",
        query_positions, index=default_index, format_func=lambda p: query_labels[p - shown.offset_queries],
        key="focus_token",
        help="The token to follow through the layers: what it attends to, and what attends to it.")
    key_pick = query_pick
    if not maps.is_self_attention:
        key_positions = list(range(shown.offset_keys, shown.offset_keys + len(shown.key_tokens)))
        key_labels = A.indexed_labels(shown.key_tokens, shown.offset_keys)
        key_pick = st.selectbox("Input token (which output tokens read it)", key_positions,
                                format_func=lambda p: key_labels[p - shown.offset_keys], key="focus_source_token",
                                help="A token of the encoder's input; the bars show how much each output token's "
                                     "cross-attention puts on it.")
    outgoing = A.token_focus(shown, query_pick - shown.offset_queries, focus_head)
    incoming = A.token_focus(shown, key_pick - shown.offset_keys, focus_head)
    who = "all heads" if focus_head is None else f"head {focus_head}"
    tabs = st.tabs([f"What '{outgoing.query_token}' attends to", f"What attends to '{incoming.key_token}'"])
    panels = (
        (outgoing.attends_to, shown.key_tokens, query_pick, shown.offset_keys, "focus_out_chart",
         f"Attention of '{html.escape(outgoing.query_token)}' (position {query_pick})"),
        (incoming.attended_by, shown.query_tokens, key_pick, shown.offset_queries, "focus_in_chart",
         f"Attention paid to '{html.escape(incoming.key_token)}' (position {key_pick})"),
    )
    for tab, (values, axis_tokens, position, offset, chart_key, subject) in zip(tabs, panels):
        with tab:
            # For self-attention the picked token is on the bar axis too: draw it in red.
            fig = C.token_focus_figure(values, axis_tokens, position if maps.is_self_attention else None,
                                       f"{subject} in every layer, {who}", offset=offset)
            st.plotly_chart(fig, key=chart_key)
    st.caption("Bars: the weight in each layer (red: the token itself)." +
               (" In a causal model a token can only attend to itself and earlier tokens, and only later tokens "
                "can attend to it." if maps.causal else ""))
    frame = A.matrix_frame(outgoing.attends_to, [f"layer {i}" for i in range(maps.n_layers)], shown.key_tokens,
                           0, shown.offset_keys)
    frame.index = [f"layer {i}" for i in range(maps.n_layers)]
    return fig, (frame.to_csv(float_format="%.6g"), f"attention-token{query_pick}-per-layer.csv")
