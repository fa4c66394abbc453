"""Quantization page: the perplexity of a served model (say an AWQ or FP8 vLLM deployment) on the same reference text
and the same number of tokens as the local variants, from the server's prompt log-probabilities."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.serve import endpoints as E
from core.serve.endpoint_scoring import perplexity, prompt_logprobs
from core.common.user_text import escape_markdown
from views.components.endpoint_panel import probe_or_error, select_endpoint


def render_served_perplexity(reference_text: str, reference_tokens: int, local_results: dict | None) -> None:
    with st.expander("Served model: perplexity over an OpenAI-compatible endpoint", expanded=False):
        st.caption("The server scores the reference text (vLLM's `prompt_logprobs`, else `echo` + `logprobs`); the "
                   f"first {reference_tokens:,} tokens are kept, as for the local variants. Same text and token count "
                   "make the numbers comparable when the served model uses the same tokenizer.")
        endpoint = select_endpoint("q_ep")
        if endpoint is None:
            return
        if st.button("Score the reference text on the server", key="q_ep_run", disabled=not reference_text.strip(),
                     help="One request: the server returns the log-probability of every token of the text."):
            if probe_or_error(endpoint) is not None:
                with st.spinner(f"Scoring on {endpoint.name}…"):
                    try:
                        logprobs = prompt_logprobs(endpoint, reference_text)[: max(int(reference_tokens) - 1, 1)]
                        st.session_state["q_ep_result"] = {
                            "endpoint": endpoint.name, "model": endpoint.model, "scored_tokens": len(logprobs) + 1,
                            "perplexity": perplexity(logprobs)}
                    except E.EndpointError as exc:
                        st.error(escape_markdown(exc), icon=":material/cloud_off:")
        served = st.session_state.get("q_ep_result")
        if served is None:
            return
        row = dict(served)
        if local_results is not None:
            frame = local_results["frame"]
            base = frame[frame["available"] & (frame["variant"] == frame["baseline"])]
            if len(base):
                row["local baseline"] = base["variant"].iloc[0]
                row["local baseline perplexity"] = float(base["perplexity"].iloc[0])
                row["ΔPPL vs local baseline"] = served["perplexity"] - row["local baseline perplexity"]
        st.dataframe(pd.DataFrame([row]), hide_index=True)
