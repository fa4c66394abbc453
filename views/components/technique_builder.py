"""Prompt builder for reasoning techniques (chain-of-thought, ReAct, PAL) next to zero/few-shot, with the token cost
of each on the same question. Thin: prompts and costs come from core.run.prompts."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.run.prompts import DEFAULT_QUESTION, TECHNIQUES, WORKED_EXAMPLES, build_technique_prompt, pal_program, technique_costs


def technique_prompt_builder(loaded) -> str:
    """Widgets for a technique and a question; returns the prompt. Shows every technique's prompt length."""
    cols = st.columns([3, 1])
    technique = cols[0].selectbox(
        "Technique", list(TECHNIQUES), format_func=TECHNIQUES.get, key="gen_technique",
        help="How the prompt asks for the answer. Chain-of-thought makes the model write its reasoning first; "
             "ReAct interleaves reasoning with tool calls; PAL asks for a program instead of an answer.")
    shots = cols[1].number_input(
        "Worked examples", 1, len(WORKED_EXAMPLES), 2, 1, key="gen_technique_shots",
        disabled=technique in ("zero-shot", "zero-shot-cot"),
        help="Solved examples placed before the question (few-shot, few-shot CoT, ReAct and PAL).")
    question = st.text_area("Question", value=DEFAULT_QUESTION, key="gen_technique_question", height=80,
                            help="A word problem; the prompt ends where the model should continue.")
    costs = pd.DataFrame(technique_costs(loaded.tokenizer, question, int(shots)))
    st.dataframe(costs[["label", "prompt_tokens", "characters"]], hide_index=True, column_config={
        "label": st.column_config.TextColumn("technique", width="large"),
        "prompt_tokens": st.column_config.NumberColumn("prompt tokens", help="Tokens this technique's prompt "
                                                       "spends on the same question, with this model's tokenizer."),
        "characters": st.column_config.NumberColumn("characters"),
    })
    if technique == "react":
        st.caption("ReAct's actions are not connected to tools here: the model writes Action / Observation lines "
                   "itself, so its observations may be made up.")
    if technique == "pal":
        st.caption("PAL: the model's program is shown below after generation and is never executed on the server.")
        result = st.session_state.get("gen_result")
        if result is not None and result.completion:
            st.code(pal_program(result.completion) or "(no program in the last completion)", language="python")
    return build_technique_prompt(technique, question, int(shots))
