"""Speculative decoding, watched: plain greedy vs prompt lookup vs a self-drafted assistant on the current prompt,
with acceptance rate, tokens per target forward pass, speed-up and the identical-output check (core.run.speculative)."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.run.generation import GenerationError, GenerationInputError
from core.run.speculative import DEFAULT_DRAFT_LAYERS, PROMPTS, compare_methods, self_draft
from core.common.user_text import escape_markdown


@st.cache_resource(show_spinner=False, max_entries=2)
def _draft(model_key: str, layers: int, _loaded):
    return self_draft(_loaded, layers)


def render_speculative_panel(loaded, prompt: str, use_chat: bool) -> None:
    with st.expander("Speculative decoding, watched: prompt lookup and a draft model", expanded=False):
        st.caption(
            "A cheap guess of the next few tokens, checked by the model in ONE forward pass (Leviathan et al. 2023): "
            "every correct guess is a token the model did not have to generate alone. Prompt lookup guesses by "
            "copying what followed the same words earlier in the prompt (Saxena 2023); the draft model here is the "
            "model's own first layers (self-speculative decoding, Zhang et al. 2024), the only draft that shares "
            "this tokenizer offline. Greedy decoding, so the output must be identical to plain decoding."
        )
        cols = st.columns([2, 1, 1, 1])
        which = cols[0].radio("Prompt", ["current", *PROMPTS], horizontal=True, key="spec_prompt",
                              format_func=lambda k: {"current": "the prompt above", "copying": "copying (helps)",
                                                     "open-ended": "open-ended (doesn't)"}[k],
                              help="Prompt lookup helps when the answer repeats the prompt (extraction, "
                                   "summaries that copy, code edits) and does nothing for new text.")
        tokens = cols[1].number_input("New tokens", 4, 256, 32, 4, key="spec_tokens",
                                      help="Tokens each method generates (greedy).")
        layers = cols[2].number_input("Draft layers", 1, 64, DEFAULT_DRAFT_LAYERS, 1, key="spec_layers",
                                      help="How many of the model's first blocks the self-draft uses: fewer = cheaper "
                                           "guesses but fewer accepted (see the Layers page's logit lens).")
        run = cols[3].button("Compare", key="spec_run", help="Runs plain, prompt-lookup and assisted generation "
                                                             "one after another (a few seconds each on a CPU).")
        if run:
            text = prompt if which == "current" else PROMPTS[which]
            try:
                draft = _draft(f"{loaded.name}|{loaded.dtype_name}|{loaded.device}", int(layers), loaded)
                if draft is None:
                    st.info("No draft model: this architecture's blocks could not be split (Llama-family models "
                            "only), or the draft would have as many layers as the model. Prompt lookup only.")
                with st.spinner("Plain, prompt lookup and assisted generation…", show_time=True):
                    st.session_state["spec_result"] = compare_methods(
                        loaded, text, which, int(tokens), draft=draft, use_chat_template=use_chat if which == "current" else True)
            except (GenerationInputError, GenerationError) as error:
                st.error(escape_markdown(error))
            except Exception as error:  # noqa: BLE001 (a page never shows a traceback)
                st.error(f"Speculative decoding failed: {escape_markdown(error)}")
        result = st.session_state.get("spec_result")
        if result is None:
            return
        st.dataframe(pd.DataFrame(result.rows()), hide_index=True, column_config={
            "tokens_per_forward": st.column_config.NumberColumn("tokens / target pass", format="%.2f",
                                                                help="New tokens per forward pass of the big model."),
            "acceptance_rate": st.column_config.NumberColumn("acceptance", format="%.2f",
                                                             help="Accepted / proposed guessed tokens."),
            "time_s": st.column_config.NumberColumn("time (s)", format="%.2f"),
            "speedup": st.column_config.NumberColumn("speed-up ×", format="%.2f",
                                                     help="Plain decoding's time / this method's (one run: noisy)."),
            "same_tokens_as_plain": st.column_config.CheckboxColumn("same tokens as plain"),
        })
        if result.identical:
            st.success("Identical output: every method produced exactly plain greedy decoding's tokens.")
        else:
            st.warning("The outputs differ from plain greedy decoding (numerical differences between batched "
                       "verification and one-token steps can flip a near-tie).")
